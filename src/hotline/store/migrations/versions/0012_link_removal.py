"""Link removal: a link is kept as a removed row (its keys stay for the history it
signed, and it is no longer trusted), with the generation it will resume at if it is
accepted again; outbox rows that can never be delivered (their link was removed) are
marked with why and when, instead of waiting for ever.

Revision ID: 0012
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("removed_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("generation", sa.Integer(), server_default="0",
                                   nullable=False))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("failed_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("failure", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("failure")
        batch.drop_column("failed_at")
    with op.batch_alter_table("links") as batch:
        batch.drop_column("generation")
        batch.drop_column("removed_at")
