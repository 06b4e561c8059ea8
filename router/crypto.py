"""Encryption at rest of webhook signing secrets and endpoint credentials (Fernet).

The rest of the code reads and writes plaintext attributes: the column types below encrypt
on the way into the database and decrypt on the way out. A column type has no engine to
ask for a key, so the process's cipher is installed once, by ``router.db.make_engine``,
from the settings (``router.encryption_keys``). Until then every read or write of an
encrypted column fails: a silent fallback key would write rows no other process can read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Dialect, Text
from sqlalchemy.types import TypeDecorator

from router.errors import EncryptionKeyError

# Every Fernet token starts with its version byte 0x80, which base64 spells "gAAAAA".
_TOKEN_PREFIX = "gAAAAA"  # noqa: S105 - a format marker, not a secret
_KEY_SEPARATORS = re.compile(r"[,\s]+")


def generate_key() -> str:
    """A new random Fernet key (32 bytes, url-safe base64)."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(text: str) -> list[bytes]:
    """Fernet keys separated by commas or whitespace, first one first.

    Raises ValueError saying which key is wrong, never what it holds.
    """
    parts = [part for part in _KEY_SEPARATORS.split(text.strip()) if part]
    if not parts:
        raise ValueError("no key given: one or more Fernet keys, separated by commas")
    keys = []
    for position, part in enumerate(parts, start=1):
        try:
            Fernet(part)
        except ValueError:
            raise ValueError(
                f"key {position} of {len(parts)} is not a Fernet key (32 url-safe base64-encoded"
                " bytes, e.g. from `python -c 'from cryptography.fernet import Fernet;"
                " print(Fernet.generate_key().decode())'`)"
            ) from None
        keys.append(part.encode("ascii"))
    return keys


class SecretCipher:
    """Encrypts with the first key, decrypts with any (MultiFernet), so keys can rotate."""

    def __init__(self, keys: Sequence[bytes], source: str) -> None:
        if not keys:
            raise ValueError("a cipher needs at least one key")
        self._keys = tuple(keys)
        self._primary = Fernet(keys[0])
        self._all = MultiFernet([Fernet(key) for key in keys])
        # Where the keys came from, for error messages (never the keys themselves).
        self.source = source

    def __repr__(self) -> str:
        return f"SecretCipher({len(self._keys)} key(s) from {self.source})"

    def encrypt(self, plaintext: str) -> str:
        """A Fernet token of ``plaintext`` under the first key."""
        return self._primary.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext of a token made under any of the keys; EncryptionKeyError if none."""
        try:
            return self._all.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            if not looks_like_token(token):
                raise EncryptionKeyError(
                    "a stored secret is not encrypted: the database predates migration 0004"
                    " (run `webhook-router db upgrade`)"
                ) from None
            raise EncryptionKeyError(
                f"a stored secret does not decrypt with the keys of {self.source}: it was"
                " encrypted with a key that is not configured (a wrong key, or an old key"
                " dropped before `webhook-router secrets reencrypt` ran)"
            ) from None

    def can_decrypt(self, value: str) -> bool:
        """Whether ``value`` is a token made under one of the keys."""
        try:
            self.decrypt(value)
        except EncryptionKeyError:
            return False
        return True

    def uses_first_key(self, token: str) -> bool:
        """Whether ``token`` was made under the first key (nothing to re-encrypt)."""
        try:
            self._primary.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    def reencrypt(self, token: str) -> str:
        """The same plaintext under the first key (for key rotation)."""
        self.decrypt(token)  # the explanatory error for a token no key opens
        return self._all.rotate(token.encode("ascii")).decode("ascii")


def looks_like_token(value: str) -> bool:
    """Whether ``value`` is shaped like a Fernet token (under whatever key)."""
    return value.startswith(_TOKEN_PREFIX)


_installed: SecretCipher | None = None


def install_cipher(cipher: SecretCipher) -> None:
    """Make ``cipher`` the one every encrypted column of this process uses."""
    # A global on purpose: one deployment, one key set, per process.
    global _installed
    _installed = cipher


def installed_cipher() -> SecretCipher:
    """The process's cipher; EncryptionKeyError when none was installed."""
    if _installed is None:
        raise EncryptionKeyError(
            "no encryption key is configured in this process: make engines with"
            " router.db.make_engine (which installs the key of ROUTER_ENCRYPTION_KEYS)"
        )
    return _installed


class Encrypted(TypeDecorator[str]):
    """A text column stored as a Fernet token of its value."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else installed_cipher().encrypt(value)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> str | None:
        return None if value is None else installed_cipher().decrypt(value)


class EncryptedJSON(TypeDecorator[dict[str, Any]]):
    """A JSON object column stored as a Fernet token of its JSON text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else installed_cipher().encrypt(json.dumps(value))

    def process_result_value(self, value: Any | None, dialect: Dialect) -> dict[str, Any] | None:
        if value is None:
            return None
        loaded: dict[str, Any] = json.loads(installed_cipher().decrypt(value))
        return loaded
