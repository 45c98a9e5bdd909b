"""Key history: every signing/encryption key a party (a peer or this node) announced,
with the statements that introduced, retired or revoked it, so a receiver can apply the
grace rule and refuse a revoked key, and evidence can be checked across a rotation.

Revision ID: 0011
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("party", sa.String(length=32), nullable=False),
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("sign_key", sa.String(length=64), nullable=False),
        sa.Column("enc_key", sa.String(length=64), nullable=False),
        sa.Column("accepted_at", sa.BigInteger(), nullable=False),
        sa.Column("introduced_at", sa.BigInteger(), nullable=True),
        sa.Column("introduced_by", sa.String(length=16), nullable=True),
        sa.Column("statement", sa.Text(), nullable=True),
        sa.Column("retired_at", sa.BigInteger(), nullable=True),
        sa.Column("rotated_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("revocation", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("party", "kid", name="uq_key_history_party_kid"),
    )


def downgrade() -> None:
    op.drop_table("key_history")
