"""The JSON API fuzzed from its own OpenAPI document (schemathesis), on the real broker and DB.

Every operation gets schema-valid and schema-breaking requests, with an admin key and then
a viewer key; every answer must be no 5xx, a documented status and content type, and a
body matching its schema. Examples are few and derandomized, so a run is repeatable and
stays well within a minute; a failure prints the request to replay (curl).

Random ids only ever reach "404", so half the cases are aimed at a real webhook and a real
attempt of the account instead: that is how fuzzed bodies get as far as the database.
Deletes and test sends keep their random ids (one would remove the target, the other
would make outgoing calls).

``ROUTER_ALLOW_PRIVATE_TARGETS`` is off here, as in production: the URLs the fuzzer
invents are checked for real, and most are refused because they do not resolve.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import Engine

from router.settings import Settings
from tests.config.conftest import Keys, create
from tests.reliability.attempts import add_attempt

EXAMPLES_PER_OPERATION = 50
# Few examples, the same ones on every run, no example database left behind.
FUZZ_SETTINGS = hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
# A public address, so that the webhook passes the target check without DNS.
PUBLIC_URL = "http://93.184.215.14/hooks"

# PostgreSQL only: it is stricter than SQLite about the text it stores (no NUL
# characters), so it finds more. The tenancy matrix covers both backends.
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings (tests/conftest.py), with private targets refused."""
    return settings.model_copy(update={"allow_private_targets": False})


def aim(case: Any, real_ids: dict[str, str]) -> None:
    """Point the case's id parameters at existing rows, where that is harmless."""
    if case.method.upper() == "DELETE" or case.path.endswith("/test"):
        return
    parameters = case.path_parameters or {}
    for name, value in real_ids.items():
        if name in parameters:
            parameters[name] = value


def fuzz(schema: Any, headers: dict[str, str], real_ids: dict[str, str]) -> tuple[int, list[str]]:
    """Fuzz every operation of ``schema`` with ``headers``: the calls made and the failures."""
    calls, failures = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @FUZZ_SETTINGS
        @given(case=cases, aimed=st.booleans())
        def run(case: Any, aimed: bool) -> None:
            nonlocal calls
            calls += 1
            if aimed:
                aim(case, real_ids)
            case.call_and_validate(headers=headers)

        try:
            run()
        # schemathesis reports through a BaseExceptionGroup; one report per operation.
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label}: {exc}")
    return calls, failures


def test_json_api_answers_every_fuzzed_request_as_documented(
    api: TestClient, engine: Engine, acme: Keys
) -> None:
    # Given the API, private targets refused, with a webhook of the account and an attempt
    assert not api.app.state.settings.allow_private_targets  # type: ignore[attr-defined]
    hook = create(api, acme, url=PUBLIC_URL)
    real_ids = {"webhook_id": hook["id"], "log_id": add_attempt(engine, hook, "acme")}
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    started = time.monotonic()
    # When every operation is fuzzed, with an admin key, then with a viewer key
    admin_calls, failures = fuzz(schema, acme.admin, real_ids)
    viewer_calls, viewer_failures = fuzz(schema, acme.viewer, real_ids)
    # Then nothing answered 5xx or off the schema
    print(
        f"fuzzed {admin_calls} admin and {viewer_calls} viewer requests over"
        f" {len(list(schema.get_all_operations()))} operations"
        f" in {time.monotonic() - started:.1f} s"
    )
    assert not failures + viewer_failures, "\n\n".join(failures + viewer_failures)
