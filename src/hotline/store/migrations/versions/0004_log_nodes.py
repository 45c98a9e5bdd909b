"""The log's perfect subtree roots, kept as they complete, so proofs are lookups; filled
in for the entries already logged.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from hotline.log.merkle import CompactRange

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    nodes = op.create_table(
        "log_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    tree = CompactRange()
    rows: list[dict[str, object]] = []
    leaves = op.get_bind().execute(sa.text("SELECT leaf FROM log_entries ORDER BY idx"))
    for (leaf,) in leaves:
        for level, node in enumerate(tree.append_nodes(bytes(leaf)), 1):
            rows.append({"level": level, "idx": (tree.size >> level) - 1, "hash": node})
    if rows:
        op.bulk_insert(nodes, rows)


def downgrade() -> None:
    op.drop_table("log_nodes")
