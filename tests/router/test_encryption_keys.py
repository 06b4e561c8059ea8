"""Where the encryption keys come from: ROUTER_ENCRYPTION_KEYS, or the local key file."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session

from router.crypto import SecretCipher, generate_key, install_cipher, parse_keys
from router.db import make_engine
from router.encryption_keys import load_cipher
from router.errors import ConfigurationError
from router.models import Webhook
from router.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def file_settings(path: Path) -> Settings:
    """Settings with no ROUTER_ENCRYPTION_KEYS, the key file at ``path``."""
    return Settings(encryption_keys=None, encryption_key_file=path)


def test_the_configured_keys_are_used_and_no_file_is_made(tmp_path: Path) -> None:
    # Given ROUTER_ENCRYPTION_KEYS with a new key first and an old one after it
    old, new = generate_key(), generate_key()
    settings = Settings(
        encryption_keys=SecretStr(f"{new}, {old}"), encryption_key_file=tmp_path / "k"
    )
    # When the cipher is loaded
    cipher = load_cipher(settings)
    # Then it encrypts with the first, decrypts with both, and leaves the key file alone
    token = cipher.encrypt("whsec_x")
    assert SecretCipher(parse_keys(new), "new").decrypt(token) == "whsec_x"
    assert cipher.decrypt(SecretCipher(parse_keys(old), "old").encrypt("y")) == "y"
    assert not (tmp_path / "k").exists()


def test_without_keys_a_private_key_file_is_made_once_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given no ROUTER_ENCRYPTION_KEYS and no key file yet
    path = tmp_path / "webhook-router.key"
    # When the cipher is loaded twice (two processes of one machine)
    with caplog.at_level(logging.WARNING, logger="router.encryption_keys"):
        first = load_cipher(file_settings(path))
        second = load_cipher(file_settings(path))
    # Then the file is made once, readable by its owner only, and both use its key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert second.decrypt(first.encrypt("whsec_x")) == "whsec_x"
    # And a warning says production should set ROUTER_ENCRYPTION_KEYS, without the key
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "created now" in warnings[0]
    assert "created now" not in warnings[1]
    assert all("production should set ROUTER_ENCRYPTION_KEYS" in w for w in warnings)
    key = path.read_text().strip()
    assert key not in caplog.text
    # And no temporary file is left behind
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_malformed_key_file_names_the_setting(tmp_path: Path) -> None:
    # Given a key file that holds no Fernet key
    path = tmp_path / "webhook-router.key"
    path.write_text("not-a-key\n")
    path.chmod(0o600)
    # When the cipher is loaded
    with pytest.raises(ConfigurationError) as caught:
        load_cipher(file_settings(path))
    # Then the error names the setting and the file, never the content
    assert "ROUTER_ENCRYPTION_KEY_FILE" in str(caught.value)
    assert str(path) in str(caught.value)
    assert "not-a-key" not in str(caught.value)


def test_an_uncreatable_key_file_names_the_setting(tmp_path: Path) -> None:
    # Given a key file in a directory that does not exist
    path = tmp_path / "missing" / "webhook-router.key"
    # When the cipher is loaded
    # Then the error names the setting
    with pytest.raises(ConfigurationError, match="ROUTER_ENCRYPTION_KEY_FILE"):
        load_cipher(file_settings(path))


def test_processes_of_one_directory_share_the_default_key_file(
    tmp_path: Path, cipher: SecretCipher
) -> None:
    # Given a fresh directory and an environment without ROUTER_ENCRYPTION_KEYS
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env["ROUTER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'router.db'}"
    env["PYTHONPATH"] = str(ROOT)

    def cli(*args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "router.cli", *args],
            cwd=tmp_path,
            env=env | extra,
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    # When one process migrates (making the key file) and another creates a key
    upgraded = cli("db", "upgrade")
    cli("keys", "create", "--account", "acme", "--role", "admin")
    # Then the first made the default key file, warning that production should not rely on it
    assert (tmp_path / "webhook-router.key").exists()
    assert "production should set ROUTER_ENCRYPTION_KEYS" in upgraded.stderr
    # And a webhook written with that file's key by this process
    file_cipher = load_cipher(file_settings(tmp_path / "webhook-router.key"))
    engine = make_engine(env["ROUTER_DATABASE_URL"], file_cipher)
    try:
        with Session(engine) as session:
            session.add(
                Webhook(
                    id="wh_1",
                    account_id="acme",
                    name="n",
                    url="https://example.com",
                    secret="whsec_x",
                    events=["delivery.done"],
                )
            )
            session.commit()
    finally:
        engine.dispose()
        install_cipher(cipher)
    # Then a later process reads it with that same key
    reencrypted = cli("secrets", "reencrypt")
    assert "re-encrypted 0 of 1 webhook(s)" in reencrypted.stdout
    assert "of the key file webhook-router.key" in reencrypted.stdout
    # And a process given another key stops with an error naming the setting
    wrong = cli("secrets", "reencrypt", check=False, ROUTER_ENCRYPTION_KEYS=generate_key())
    assert wrong.returncode == 2
    assert "does not decrypt with the keys of ROUTER_ENCRYPTION_KEYS" in wrong.stderr
