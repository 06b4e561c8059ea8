"""``webhook-router secrets reencrypt``: every stored secret moved to the first key.

Key rotation: put a new key first in ROUTER_ENCRYPTION_KEYS, keep the old one after it,
restart every process, run this, then drop the old key. Processes keep running meanwhile:
each row is rewritten only if it has not changed since it was read (a secret rotated
through the API in between is read again, never overwritten with its older value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from router.crypto import Encrypted, EncryptedJSON, SecretCipher
from router.models import Webhook

BATCH_ROWS = 200


@dataclass(frozen=True)
class ReencryptResult:
    """What ``reencrypt_webhooks`` did."""

    webhooks: int
    rewritten: int


def encrypted_columns() -> list[str]:
    """The webhook columns stored encrypted, read off the model so none is forgotten."""
    table = Webhook.__table__
    return [c.name for c in table.columns if isinstance(c.type, Encrypted | EncryptedJSON)]


def reencrypt_webhooks(engine: Engine, cipher: SecretCipher) -> ReencryptResult:
    """Re-encrypt, under the first key of ``cipher``, every webhook not already under it."""
    names = encrypted_columns()
    # Untyped columns: the raw tokens, not what the model's types would decrypt them to.
    raw = sa.table("webhooks", sa.column("id"), *(sa.column(name) for name in names))
    with engine.connect() as connection:
        pending = list(connection.execute(sa.select(raw.c.id).order_by(raw.c.id)).scalars())
    total, rewritten = len(pending), 0
    while pending:
        batch, pending = pending[:BATCH_ROWS], pending[BATCH_ROWS:]
        with engine.begin() as connection:
            done, changed_meanwhile = _reencrypt_batch(connection, raw, names, cipher, batch)
        rewritten += done
        pending = changed_meanwhile + pending
    return ReencryptResult(webhooks=total, rewritten=rewritten)


def _reencrypt_batch(
    connection: Connection,
    raw: sa.TableClause,
    names: Sequence[str],
    cipher: SecretCipher,
    ids: Sequence[str],
) -> tuple[int, list[str]]:
    """Rows rewritten, and the ids whose row changed since it was read (to read again)."""
    rewritten, changed_meanwhile = 0, []
    for row in connection.execute(sa.select(raw).where(raw.c.id.in_(ids))):
        stored: dict[str, Any] = dict(row._mapping)
        tokens = {name: stored[name] for name in names if stored[name] is not None}
        if all(cipher.uses_first_key(token) for token in tokens.values()):
            continue
        unchanged = [
            raw.c[name].is_(None) if stored[name] is None else raw.c[name] == stored[name]
            for name in names
        ]
        result = connection.execute(
            raw.update()
            .where(raw.c.id == stored["id"], *unchanged)
            .values({name: cipher.reencrypt(token) for name, token in tokens.items()})
        )
        if result.rowcount == 1:
            rewritten += 1
        else:
            changed_meanwhile.append(stored["id"])
    return rewritten, changed_meanwhile
