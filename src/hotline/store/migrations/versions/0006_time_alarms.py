"""Nothing silent: alarms (coalesced by cause), the basis of each deadline (a duration
shifts with a wall-clock step, a calendar instant does not), the local deadline of a call
signal that expires when late, and how long a notification keeps being retried.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("cause", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("first_at", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), server_default="1", nullable=False),
        sa.Column("cleared_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("cause"),
    )
    with op.batch_alter_table("timers") as batch:
        batch.add_column(sa.Column("basis", sa.String(length=8), server_default="duration",
                                   nullable=False))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("deadline_at", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("retry_until", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("retry_until")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("deadline_at")
    with op.batch_alter_table("timers") as batch:
        batch.drop_column("basis")
    op.drop_table("alarms")
