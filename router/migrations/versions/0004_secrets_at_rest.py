"""Signing secrets and endpoint credentials encrypted at rest (Fernet tokens in Text columns).

The key is the process's (router/crypto.py), installed by the engine that runs the
migration. A value that no configured key decrypts is plaintext and gets encrypted, so
the upgrade is safe to resume; one that looks like a token yet does not decrypt stops it,
rather than encrypting someone else's ciphertext a second time. Downgrade decrypts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from router.crypto import SecretCipher, installed_cipher, looks_like_token
from router.errors import EncryptionKeyError

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The columns as raw text: the models' encrypting types must not touch them here.
webhooks = sa.table(
    "webhooks",
    sa.column("id", sa.String),
    sa.column("secret", sa.Text),
    sa.column("previous_secret", sa.Text),
    sa.column("auth_credentials", sa.Text),
)
ENCRYPTED = ("secret", "previous_secret", "auth_credentials")


def upgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        # Tokens are about twice as long as what they hold, and credentials become text.
        batch.alter_column(
            "secret", type_=sa.Text(), existing_type=sa.String(100), existing_nullable=False
        )
        batch.alter_column(
            "previous_secret", type_=sa.Text(), existing_type=sa.String(100), existing_nullable=True
        )
        batch.alter_column(
            "auth_credentials", type_=sa.Text(), existing_type=sa.JSON(), existing_nullable=False
        )
    _rewrite(_encrypt_plaintext)


def downgrade() -> None:
    _rewrite(lambda cipher, _webhook_id, value: cipher.decrypt(value))
    with op.batch_alter_table("webhooks") as batch:
        batch.alter_column(
            "auth_credentials",
            type_=sa.JSON(),
            existing_type=sa.Text(),
            existing_nullable=False,
            postgresql_using="auth_credentials::json",
        )
        batch.alter_column(
            "previous_secret", type_=sa.String(100), existing_type=sa.Text(), existing_nullable=True
        )
        batch.alter_column(
            "secret", type_=sa.String(100), existing_type=sa.Text(), existing_nullable=False
        )


def _encrypt_plaintext(cipher: SecretCipher, webhook_id: str, value: str) -> str:
    if cipher.can_decrypt(value):
        return value
    if looks_like_token(value):
        raise EncryptionKeyError(
            f"webhook {webhook_id} holds a Fernet token that the keys of {cipher.source} do"
            " not decrypt: set the key it was encrypted with"
        )
    return cipher.encrypt(value)


def _rewrite(convert: Callable[[SecretCipher, str, str], str]) -> None:
    cipher = installed_cipher()
    connection = op.get_bind()
    columns = [webhooks.c[name] for name in ENCRYPTED]
    rows = connection.execute(sa.select(webhooks.c.id, *columns)).all()
    for row in rows:
        stored = row._mapping
        values = {
            name: None if stored[name] is None else convert(cipher, row.id, stored[name])
            for name in ENCRYPTED
        }
        connection.execute(webhooks.update().where(webhooks.c.id == row.id).values(**values))
