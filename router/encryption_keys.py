"""Where the encryption keys come from: ROUTER_ENCRYPTION_KEYS, or else a local key file.

The key file keeps ``make run`` working on a fresh machine with no setup: the first
process to need a key creates it (mode 0600) and every later process of the same working
directory (serve, its workers, ``db upgrade``, the CLI) reads the same one. Production sets
ROUTER_ENCRYPTION_KEYS instead, the same in every process of the deployment.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from router.crypto import SecretCipher, generate_key, parse_keys
from router.errors import ConfigurationError

if TYPE_CHECKING:
    from router.settings import Settings

logger = logging.getLogger(__name__)

KEY_FILE_VARIABLE = "ROUTER_ENCRYPTION_KEY_FILE"


def load_cipher(settings: Settings) -> SecretCipher:
    """The cipher of ROUTER_ENCRYPTION_KEYS, or of the key file (created when missing)."""
    if settings.encryption_keys is not None:
        # Already checked when the settings were loaded.
        keys = parse_keys(settings.encryption_keys.get_secret_value())
        return SecretCipher(keys, source="ROUTER_ENCRYPTION_KEYS")
    path = settings.encryption_key_file
    created = _create_key_file(path)
    logger.warning(
        "ROUTER_ENCRYPTION_KEYS is not set: secrets at rest are encrypted with the key %s %s;"
        " fine on one machine, but production should set ROUTER_ENCRYPTION_KEYS (the same"
        " keys in every process)",
        "created now in" if created else "in",
        path.resolve(),
    )
    return SecretCipher(_read_key_file(path), source=f"the key file {path} ({KEY_FILE_VARIABLE})")


def _create_key_file(path: Path) -> bool:
    """Write a new key to ``path`` unless it exists; whether this call created it."""
    if path.exists():
        return False
    try:
        # mkstemp makes the file 0600. Linking it into place is atomic and never replaces:
        # when serve and its workers start together, exactly one key wins and all read it.
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".webhook-router-key-")
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as file:
                file.write(generate_key() + "\n")
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                return False
            return True
        finally:
            os.unlink(temporary)
    except OSError as exc:
        raise ConfigurationError(
            f"{KEY_FILE_VARIABLE}: cannot create the key file {path}: {exc.strerror}"
            " (or set ROUTER_ENCRYPTION_KEYS)"
        ) from None


def _read_key_file(path: Path) -> list[bytes]:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
        raise ConfigurationError(
            f"{KEY_FILE_VARIABLE}: cannot read the key file {path}: {reason}"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("the key file %s is readable by other users: chmod 600 it", path)
    try:
        return parse_keys(text)
    except ValueError as exc:
        raise ConfigurationError(f"{KEY_FILE_VARIABLE}: the key file {path}: {exc}") from None
