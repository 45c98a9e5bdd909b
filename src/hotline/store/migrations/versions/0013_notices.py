"""Formatted notifications ("notices") and their signed receipts.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("party", sa.String(32), nullable=False),
        sa.Column("template", sa.String(48), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("role", sa.String(32), nullable=True),
        sa.Column("operator", sa.String(32), nullable=True),
        sa.Column("sent_at", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_notices_sent", "notices", ["sent_at"])
    op.create_table(
        "notice_receipts",
        sa.Column("notice_id", sa.String(32), primary_key=True),
        sa.Column("party", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("operator", sa.String(32), nullable=True),
        sa.Column("role", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("verified", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notice_receipts")
    op.drop_index("ix_notices_sent", table_name="notices")
    op.drop_table("notices")
