"""Table definitions used by the queries. Migrations (Alembic) create the same tables;
``tests/integration/test_store.py`` checks that the two never drift apart."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

links = Table(
    "links", metadata,
    Column("party", String(32), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("sign_key", String(64), nullable=False),
    Column("enc_key", String(64), nullable=False),
    Column("kid", String(16), nullable=False),
    Column("endpoints", Text, nullable=False),          # JSON list, primary first
    Column("offer", Text, nullable=False),              # the signed offer we accepted
    Column("accepted_at", BigInteger, nullable=False),  # ms since epoch
    Column("send_seq", BigInteger, nullable=False, server_default="0"),  # last seq assigned
    Column("recv_next", BigInteger, nullable=False, server_default="1"),  # next seq to release
)

outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("peer", String(32), ForeignKey("links.party"), nullable=False),
    Column("envelope_id", String(32), nullable=False, unique=True),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(64), nullable=False),
    Column("payload", Text, nullable=False),            # canonical JSON, our plaintext copy
    Column("envelope", LargeBinary, nullable=False),    # exact wire bytes, latest sealing
    Column("created_at", BigInteger, nullable=False),
    Column("sealed_at", BigInteger, nullable=False),    # the envelope's signed timestamp
    Column("delivered_at", BigInteger, nullable=True),
    Column("receipt", LargeBinary, nullable=True),      # peer-signed, verified before stored
    UniqueConstraint("peer", "seq", name="uq_outbox_peer_seq"),
    Index("ix_outbox_pending", "peer", "delivered_at", "seq"),
)

inbound = Table(
    "inbound", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("peer", String(32), ForeignKey("links.party"), nullable=False),
    Column("envelope_id", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("sent_at", BigInteger, nullable=False),      # the sender's signed timestamp
    Column("received_at", BigInteger, nullable=False),
    Column("release_no", BigInteger, nullable=True),    # node-wide order of release
    Column("released_at", BigInteger, nullable=True),
    UniqueConstraint("peer", "envelope_id", name="uq_inbound_peer_envelope"),
    UniqueConstraint("peer", "seq", name="uq_inbound_peer_seq"),
    Index("ix_inbound_release", "release_no"),
)

operator_requests = Table(
    "operator_requests", metadata,
    Column("key", String(100), primary_key=True),        # the client's Idempotency-Key
    Column("fingerprint", String(64), nullable=False),   # SHA-256 of what was asked
    Column("response", Text, nullable=False),            # JSON of what was accepted
    Column("created_at", BigInteger, nullable=False),
)

evidence = Table(
    "evidence", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("peer", String(32), nullable=False),
    Column("kind", String(32), nullable=False),         # e.g. "equivocation"
    Column("detail", Text, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("other_envelope", LargeBinary, nullable=True),
    Column("at", BigInteger, nullable=False),
)
