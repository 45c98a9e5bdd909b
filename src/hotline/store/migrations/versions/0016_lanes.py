"""Lanes: each link carries a control lane and a bulk lane, each with its own sequence.

The sequence every link has used so far becomes the **control** lane's, unchanged:

* every envelope already signed (in the outbox, the inbound table and the log) was sealed
  without a lane field, and an envelope without one *is* a control-lane envelope on the
  wire (docs/protocol.md §"Lanes"): re-labelling the old sequence as the bulk lane would
  make the stored, signed envelopes contradict the rows that hold them;
* a peer that has not upgraded knows one sequence only; the node keeps talking to it on
  that very sequence (the fallback), so it must stay the control lane, which carries
  everything while only one lane exists;
* the link's statements (key rotations, removal notices) ride the control lane: their
  order with what came before them on the old sequence is kept by construction.

The bulk lane starts empty, at the first sequence number of the link's generation, in
both directions (``bulk_send_seq``, ``bulk_recv_next``). Queued and delivered rows keep
their numbers and become ``lane = 'control'``; nothing is re-sealed or renumbered, so
exactly-once holds across the upgrade. ``peer_protocol`` starts at 0 (not known) for
every link: the node asks the peer before its first bulk message, and every batch answer
says it again.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_GENERATION_BITS = 40  # hotline.protocol.generation.GENERATION_BITS, frozen here


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("bulk_send_seq", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("bulk_recv_next", sa.BigInteger(), nullable=False,
                                   server_default="1"))
        batch.add_column(sa.Column("peer_protocol", sa.Integer(), nullable=False,
                                   server_default="0"))
    # a link in generation g numbers its (new, empty) bulk lane from g * 2**40 + 1 too
    op.execute(sa.text(
        "UPDATE links SET bulk_send_seq = generation * :span, "
        "bulk_recv_next = generation * :span + 1 WHERE generation > 0"
    ).bindparams(span=2 ** _GENERATION_BITS))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lane", sa.String(16), nullable=False,
                                   server_default="control"))
        batch.drop_constraint("uq_outbox_peer_seq", type_="unique")
        batch.create_unique_constraint("uq_outbox_peer_lane_seq", ["peer", "lane", "seq"])
        batch.drop_index("ix_outbox_pending")
        batch.create_index("ix_outbox_pending", ["peer", "lane", "delivered_at", "seq"])
    with op.batch_alter_table("inbound") as batch:
        batch.add_column(sa.Column("lane", sa.String(16), nullable=False,
                                   server_default="control"))
        batch.add_column(sa.Column("after_seq", sa.BigInteger(), nullable=True))
        batch.drop_constraint("uq_inbound_peer_seq", type_="unique")
        batch.create_unique_constraint("uq_inbound_peer_lane_seq", ["peer", "lane", "seq"])


def downgrade() -> None:
    with op.batch_alter_table("inbound") as batch:
        batch.drop_constraint("uq_inbound_peer_lane_seq", type_="unique")
        batch.create_unique_constraint("uq_inbound_peer_seq", ["peer", "seq"])
        batch.drop_column("after_seq")
        batch.drop_column("lane")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_pending")
        batch.create_index("ix_outbox_pending", ["peer", "delivered_at", "seq"])
        batch.drop_constraint("uq_outbox_peer_lane_seq", type_="unique")
        batch.create_unique_constraint("uq_outbox_peer_seq", ["peer", "seq"])
        batch.drop_column("lane")
    # not a batch: re-creating ``links`` would drop a table the outbox and the inbound
    # refer to (SQLite refuses with its foreign keys on); SQLite >= 3.35 drops a column
    for column in ("peer_protocol", "bulk_recv_next", "bulk_send_seq"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE links DROP COLUMN {column}")
        else:
            op.drop_column("links", column)
