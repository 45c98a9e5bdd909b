"""Incidents: a shared case among parties, and its timeline of signed entries (each
the author's signed statement, kept as signed; never updated).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("opener", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("members", sa.Text(), nullable=False),
        sa.Column("invited", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("joined_at", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "incident_entries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("incident_id", sa.String(32), sa.ForeignKey("incidents.id"),
                  nullable=False),
        sa.Column("author", sa.String(32), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("via", sa.String(32), nullable=True),
        sa.UniqueConstraint("incident_id", "author", "n",
                            name="uq_incident_entries_author_n"),
    )
    op.create_index("ix_incident_entries_incident", "incident_entries",
                    ["incident_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_incident_entries_incident", table_name="incident_entries")
    op.drop_table("incident_entries")
    op.drop_table("incidents")
