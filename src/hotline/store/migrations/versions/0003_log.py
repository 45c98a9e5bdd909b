"""The tamper-evident log: entries, the tree's compact state, cosigned checkpoints; the
outbox learns which call or conversation an envelope concerns.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_entries",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx"),
    )
    op.create_index("ix_log_entries_subject", "log_entries", ["subject"], unique=False)
    log_state = op.create_table(
        "log_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.Column("last_leaf", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(log_state, [{"id": 1, "size": 0, "frontier": "[]", "last_leaf": ""}])
    op.create_table(
        "log_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("witness", sa.String(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.Column("cosignature", sa.Text(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_log_checkpoints_pair", "log_checkpoints",
                    ["origin", "witness", "size"], unique=False)
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("subject", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("subject")
    op.drop_index("ix_log_checkpoints_pair", table_name="log_checkpoints")
    op.drop_table("log_checkpoints")
    op.drop_table("log_state")
    op.drop_index("ix_log_entries_subject", table_name="log_entries")
    op.drop_table("log_entries")
