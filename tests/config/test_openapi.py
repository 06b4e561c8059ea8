"""``/openapi.json`` describes every /v1 route: its errors, bodies and answers, truthfully."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.config.conftest import Keys
from tests.receiver import Receiver

ERROR_REF = "#/components/schemas/ErrorResponse"
WRITE_METHODS = frozenset({"post", "patch", "put", "delete"})
_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


@pytest.fixture
def spec(api: TestClient) -> dict[str, Any]:
    """The app's OpenAPI document."""
    response = api.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def v1_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) of every /v1 route."""
    return [
        (path, method, operation)
        for path, item in spec["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
    ]


def error_ref(operation: dict[str, Any], status: str) -> str | None:
    """The schema $ref the operation declares for an error status, if it declares it."""
    response = operation["responses"].get(status)
    if response is None:
        return None
    ref: str | None = response["content"]["application/json"]["schema"].get("$ref")
    return ref


def test_every_v1_route_declares_the_errors_it_can_return(spec: dict[str, Any]) -> None:
    # Given the OpenAPI document
    operations = v1_operations(spec)
    assert len(operations) >= 12
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        expected = {"401", "503"}  # every call checks its key in the database
        if method in WRITE_METHODS:
            expected.add("403")
        if "{" in path:
            expected.add("404")
        if operation.get("parameters") or operation.get("requestBody"):
            expected.add("422")
        # When its declared responses are read
        declared = set(operation["responses"])
        # Then it declares each status it can return, in the JSON error model
        assert expected <= declared, f"{where} lacks {sorted(expected - declared)}"
        for status in declared:
            if status.startswith(("4", "5")):
                assert error_ref(operation, status) == ERROR_REF, f"{where} {status}"


def test_no_route_documents_fastapis_own_validation_error(spec: dict[str, Any]) -> None:
    # Given the OpenAPI document
    # When the /v1 routes' 422 answers are read
    refs = {error_ref(op, "422") for _, _, op in v1_operations(spec)} - {None}
    # Then they all use the router's error model
    assert refs == {ERROR_REF}


@pytest.mark.parametrize(
    ("path", "method", "success", "request_model", "response_model"),
    [
        ("/v1/webhooks", "post", "201", "WebhookCreate", "WebhookCreated"),
        ("/v1/webhooks/{webhook_id}", "patch", "200", "WebhookUpdate", "WebhookOut"),
        ("/v1/webhooks/{webhook_id}/test", "post", "201", "SendTestRequest", "LogDetail"),
        (
            "/v1/webhooks/{webhook_id}/rotate-secret",
            "post",
            "200",
            "SecretRotationRequest",
            "WebhookRotated",
        ),
        ("/v1/webhooks/{webhook_id}/logs", "get", "200", None, "LogList"),
        ("/v1/logs/{log_id}", "get", "200", None, "LogDetail"),
    ],
)
def test_bodies_and_answers_name_their_models(
    spec: dict[str, Any],
    path: str,
    method: str,
    success: str,
    request_model: str | None,
    response_model: str,
) -> None:
    # Given a route
    operation = spec["paths"][path][method]
    # When its request body and success answer are read
    answer = operation["responses"][success]["content"]["application/json"]["schema"]
    # Then they are the models the route really takes and returns
    assert answer == {"$ref": f"#/components/schemas/{response_model}"}
    if request_model is not None:
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        refs = [body.get("$ref")] + [part.get("$ref") for part in body.get("anyOf", [])]
        assert f"#/components/schemas/{request_model}" in refs


def test_new_fields_are_documented(spec: dict[str, Any]) -> None:
    # Given the component schemas
    schemas = spec["components"]["schemas"]
    # When the log list, log entry and rotation models are read
    # Then counts, the test trigger and the rotation fields are there
    assert set(schemas["LogList"]["required"]) == {"items", "next_cursor", "counts"}
    assert "test" in schemas["LogEntry"]["properties"]["trigger"]["enum"]
    assert {"secret", "previous_secret_expires_at"} <= set(schemas["WebhookRotated"]["required"])
    assert "secret" not in schemas["WebhookOut"]["properties"]


def test_real_answers_match_their_declared_schemas(
    api: TestClient, acme: Keys, globex: Keys, receiver: Receiver, spec: dict[str, Any]
) -> None:
    # Given a webhook with a test send logged
    created = api.post(
        "/v1/webhooks",
        json={"name": "Spec", "url": receiver.url, "events": ["delivery.done"]},
        headers=acme.admin,
    )
    webhook_id = created.json()["id"]
    sent = api.post(f"/v1/webhooks/{webhook_id}/test", headers=acme.admin)
    hook = "/v1/webhooks/{webhook_id}"
    # When a sample of calls is made, successes and errors
    calls = [
        (created, "/v1/webhooks", "post"),
        (sent, hook + "/test", "post"),
        (api.get(f"/v1/webhooks/{webhook_id}", headers=acme.viewer), hook, "get"),
        (api.get("/v1/webhooks", headers=acme.viewer), "/v1/webhooks", "get"),
        (api.get(f"/v1/webhooks/{webhook_id}/logs", headers=acme.viewer), hook + "/logs", "get"),
        (api.get(f"/v1/logs/{sent.json()['id']}", headers=acme.viewer), "/v1/logs/{log_id}", "get"),
        (
            api.post(f"/v1/webhooks/{webhook_id}/rotate-secret", headers=acme.admin),
            hook + "/rotate-secret",
            "post",
        ),
        (api.get("/v1/event-types"), "/v1/event-types", "get"),
        (api.post(f"/v1/webhooks/{webhook_id}/test", headers=acme.viewer), hook + "/test", "post"),
        (api.get(f"/v1/webhooks/{webhook_id}", headers=globex.viewer), hook, "get"),
        (
            api.post(
                f"/v1/webhooks/{webhook_id}/rotate-secret",
                json={"overlap_s": -1},
                headers=acme.admin,
            ),
            hook + "/rotate-secret",
            "post",
        ),
    ]
    # Then each answer's status is declared and its body validates against the schema
    statuses = []
    for response, path, method in calls:
        declared = spec["paths"][path][method]["responses"]
        status = str(response.status_code)
        assert status in declared, f"{method.upper()} {path} answered undeclared {status}"
        schema = declared[status]["content"]["application/json"]["schema"]
        validate(response.json(), schema, spec, f"{method.upper()} {path} {status}")
        statuses.append(response.status_code)
    assert statuses == [201, 201, 200, 200, 200, 200, 200, 401, 403, 404, 422]


def validate(value: Any, schema: dict[str, Any], spec: dict[str, Any], where: str) -> None:
    """Check ``value`` against the JSON Schema subset pydantic emits; fail naming the spot."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        validate(value, spec["components"]["schemas"][name], spec, f"{where} ({name})")
        return
    for key in ("anyOf", "oneOf"):
        if key in schema:
            matches = sum(_valid(value, option, spec) for option in schema[key])
            assert matches >= 1 if key == "anyOf" else matches == 1, f"{where}: {key} {value!r}"
            return
    if "const" in schema:
        assert value == schema["const"], f"{where}: {value!r} != {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    kind = schema.get("type")
    if kind is not None:
        assert isinstance(value, _TYPES[kind]), f"{where}: {value!r} is not {kind}"
        # bool is an int subclass in Python, never in JSON
        assert kind == "boolean" or not isinstance(value, bool), f"{where}: {value!r} is bool"
    if schema.get("format") == "date-time":
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        missing = set(schema.get("required", ())) - set(value)
        assert not missing, f"{where}: missing {sorted(missing)}"
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                validate(item, properties[name], spec, f"{where}.{name}")
            elif extra is False:
                raise AssertionError(f"{where}: undeclared property {name!r}")
            elif isinstance(extra, dict):
                validate(item, extra, spec, f"{where}.{name}")
        # pydantic leaves extra properties open; the models answer with declared ones only
        undeclared = set(value) - set(properties)
        assert not (properties and undeclared), f"{where}: undeclared {sorted(undeclared)}"
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            validate(item, schema["items"], spec, f"{where}[{index}]")


def _valid(value: Any, schema: dict[str, Any], spec: dict[str, Any]) -> bool:
    try:
        validate(value, schema, spec, "")
    except (AssertionError, ValueError, AttributeError):
        return False
    return True
