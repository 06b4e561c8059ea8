"""Engine and sessions for the log database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from router.crypto import SecretCipher, install_cipher
from router.encryption_keys import load_cipher

if TYPE_CHECKING:
    from router.settings import Settings


def engine_from_settings(settings: Settings) -> Engine:
    """The engine of ROUTER_DATABASE_URL, secrets at rest under the configured keys."""
    return make_engine(settings.database_url.get_secret_value(), load_cipher(settings))


def make_engine(database_url: str, cipher: SecretCipher) -> Engine:
    """An engine tuned for the backend: WAL and a busy timeout on SQLite.

    ``cipher`` becomes the process's key for encrypted columns (router/crypto.py): every
    engine of one process must use the same keys, as every process of one deployment does.
    """
    install_cipher(cipher)
    # SQLAlchemy prints bind parameters into its errors (and its SQL log): they would carry
    # credentials and event data into whatever logs the error.
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        database_url, pool_pre_ping=True, pool_size=10, max_overflow=10, hide_parameters=True
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a worker writes. FULL sync fsyncs every commit, so a
    # row is on disk before its message is acked; batching commits keeps that cheap.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
