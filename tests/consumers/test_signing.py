"""Standard Webhooks signatures, checked against the reference library (consumers/signing.py)."""

from __future__ import annotations

import base64
import re
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from consumers.signing import SECRET_PREFIX, generate_secret, sign, signature_header

BODY = b'{"type":"delivery.done","id":"evt_1","data":{"order":{"id":"ord_1"}}}'
MESSAGE_ID = "evt_1"


def headers(signature: str, timestamp_s: int, message_id: str = MESSAGE_ID) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signature,
    }


def test_secret_is_whsec_and_32_random_bytes() -> None:
    # Given nothing
    # When a secret is generated
    secret = generate_secret()
    # Then it is whsec_ followed by the standard base64 of 32 bytes
    assert secret.startswith(SECRET_PREFIX)
    assert SECRET_PREFIX == "whsec_"
    encoded = secret.removeprefix("whsec_")
    assert len(base64.b64decode(encoded, validate=True)) == 32


def test_secrets_are_unique() -> None:
    # Given nothing
    # When many secrets are generated
    secrets = {generate_secret() for _ in range(1000)}
    # Then none repeats
    assert len(secrets) == 1000


def test_signature_has_the_v1_format() -> None:
    # Given a secret
    secret = generate_secret()
    # When a message is signed
    signature = sign(secret, MESSAGE_ID, int(time.time()), BODY)
    # Then it is v1, then the base64 of a 32-byte HMAC-SHA256
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", signature)


def test_signature_verifies_with_the_reference_library() -> None:
    # Given a secret and a message signed with it now
    secret = generate_secret()
    now_s = int(time.time())
    signature = signature_header([secret], MESSAGE_ID, now_s, BODY)
    # When the reference library verifies it
    payload = Webhook(secret).verify(BODY, headers(signature, now_s))
    # Then it accepts it and returns the parsed body
    assert payload["id"] == "evt_1"


def test_signature_matches_the_reference_librarys_own_signature() -> None:
    # Given a secret, an id, a timestamp and a body
    secret = generate_secret()
    now_s = int(time.time())
    # When both implementations sign it
    from datetime import UTC, datetime

    reference = Webhook(secret).sign(
        MESSAGE_ID, datetime.fromtimestamp(now_s, tz=UTC), BODY.decode()
    )
    # Then the signatures are identical
    assert sign(secret, MESSAGE_ID, now_s, BODY) == reference


@pytest.mark.parametrize("which", [0, 1])
def test_header_with_two_secrets_verifies_with_either(which: int) -> None:
    # Given an old and a new secret during a rotation, both signing the message
    old, new = generate_secret(), generate_secret()
    now_s = int(time.time())
    signature = signature_header([old, new], MESSAGE_ID, now_s, BODY)
    # When a receiver that knows only one of them verifies it
    secret = (old, new)[which]
    Webhook(secret).verify(BODY, headers(signature, now_s))
    # Then it accepts it; and the header holds two space-separated v1 values
    assert len(signature.split(" ")) == 2
    assert all(part.startswith("v1,") for part in signature.split(" "))


def test_header_with_no_secret_is_empty() -> None:
    # Given no valid secret
    # When the header is built
    # Then it holds no signature
    assert signature_header([], MESSAGE_ID, 0, BODY) == ""


def test_a_tampered_body_fails_verification() -> None:
    # Given a signed message
    secret = generate_secret()
    now_s = int(time.time())
    signature = signature_header([secret], MESSAGE_ID, now_s, BODY)
    tampered = BODY.replace(b"ord_1", b"ord_2")
    # When the body is changed in transit
    # Then the reference library refuses it
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers(signature, now_s))


@pytest.mark.parametrize("field", ["webhook-id", "webhook-timestamp"])
def test_a_tampered_id_or_timestamp_fails_verification(field: str) -> None:
    # Given a signed message
    secret = generate_secret()
    now_s = int(time.time())
    sent = headers(signature_header([secret], MESSAGE_ID, now_s, BODY), now_s)
    # When the id or the timestamp is changed in transit
    sent[field] = "evt_2" if field == "webhook-id" else str(now_s - 1)
    # Then the reference library refuses it
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, sent)


def test_another_secret_fails_verification() -> None:
    # Given a message signed with one secret
    now_s = int(time.time())
    signature = signature_header([generate_secret()], MESSAGE_ID, now_s, BODY)
    # When a receiver holding another secret verifies it
    # Then it is refused
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers(signature, now_s))
