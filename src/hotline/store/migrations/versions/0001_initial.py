"""Initial schema: links, outbox, inbound, operator_requests, evidence.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("party", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("sign_key", sa.String(64), nullable=False),
        sa.Column("enc_key", sa.String(64), nullable=False),
        sa.Column("kid", sa.String(16), nullable=False),
        sa.Column("endpoints", sa.Text, nullable=False),
        sa.Column("offer", sa.Text, nullable=False),
        sa.Column("accepted_at", sa.BigInteger, nullable=False),
        sa.Column("send_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("recv_next", sa.BigInteger, nullable=False, server_default="1"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("peer", sa.String(32), sa.ForeignKey("links.party"), nullable=False),
        sa.Column("envelope_id", sa.String(32), nullable=False, unique=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("sealed_at", sa.BigInteger, nullable=False),
        sa.Column("delivered_at", sa.BigInteger, nullable=True),
        sa.Column("receipt", sa.LargeBinary, nullable=True),
        sa.UniqueConstraint("peer", "seq", name="uq_outbox_peer_seq"),
    )
    op.create_index("ix_outbox_pending", "outbox", ["peer", "delivered_at", "seq"])
    op.create_table(
        "inbound",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("peer", sa.String(32), sa.ForeignKey("links.party"), nullable=False),
        sa.Column("envelope_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("sent_at", sa.BigInteger, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("release_no", sa.BigInteger, nullable=True),
        sa.Column("released_at", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("peer", "envelope_id", name="uq_inbound_peer_envelope"),
        sa.UniqueConstraint("peer", "seq", name="uq_inbound_peer_seq"),
    )
    op.create_index("ix_inbound_release", "inbound", ["release_no"])
    op.create_table(
        "operator_requests",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "evidence",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("peer", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("other_envelope", sa.LargeBinary, nullable=True),
        sa.Column("at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("evidence")
    op.drop_table("operator_requests")
    op.drop_table("inbound")
    op.drop_table("outbox")
    op.drop_table("links")
