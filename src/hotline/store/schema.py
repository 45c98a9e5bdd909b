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
    # migration 0012: a removed link stays as history (not trusted); its generation
    # numbers the sequence space it resumes in if accepted again (docs/protocol.md)
    Column("removed_at", BigInteger, nullable=True),
    Column("generation", Integer, nullable=False, server_default="0"),
    # migration 0016: the bulk lane's counters (the columns above are the control
    # lane's), and the federation protocol the peer last said it speaks (1: one lane;
    # 0: not known yet)
    Column("bulk_send_seq", BigInteger, nullable=False, server_default="0"),
    Column("bulk_recv_next", BigInteger, nullable=False, server_default="1"),
    Column("peer_protocol", Integer, nullable=False, server_default="0"),  # 0: not asked
)

outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("peer", String(32), ForeignKey("links.party"), nullable=False),
    Column("envelope_id", String(32), nullable=False, unique=True),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(64), nullable=False),
    Column("subject", String(64), nullable=True),       # call / conversation (migration 0003)
    Column("payload", Text, nullable=False),            # canonical JSON, our plaintext copy
    Column("envelope", LargeBinary, nullable=False),    # exact wire bytes, latest sealing
    Column("created_at", BigInteger, nullable=False),
    Column("sealed_at", BigInteger, nullable=False),    # the envelope's signed timestamp
    Column("deadline_at", BigInteger, nullable=True),   # call.place: late after (0006)
    Column("delivered_at", BigInteger, nullable=True),
    Column("receipt", LargeBinary, nullable=True),      # peer-signed, verified before stored
    Column("failed_at", BigInteger, nullable=True),     # never to be delivered (0012)
    Column("failure", Text, nullable=True),             # why: "undeliverable: link removed"
    # migration 0016: the lane whose sequence ``seq`` belongs to ("control" or "bulk")
    Column("lane", String(16), nullable=False, server_default="control"),
    UniqueConstraint("peer", "lane", "seq", name="uq_outbox_peer_lane_seq"),
    Index("ix_outbox_pending", "peer", "lane", "delivered_at", "seq"),
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
    Column("lane", String(16), nullable=False, server_default="control"),  # 0016
    # bulk only: the sender's last control seq before it (released after that one)
    Column("after_seq", BigInteger, nullable=True),
    UniqueConstraint("peer", "envelope_id", name="uq_inbound_peer_envelope"),
    UniqueConstraint("peer", "lane", "seq", name="uq_inbound_peer_lane_seq"),
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
    Column("at", BigInteger, nullable=False),           # first seen, ms
    # migration 0008: one row per distinct conflicting pair, repeats counted
    Column("pair", String(64), nullable=False),         # hex SHA-256 of the pair, any order
    Column("count", Integer, server_default="1", nullable=False),
    Column("last_at", BigInteger, nullable=False),      # last seen, ms
    UniqueConstraint("peer", "kind", "pair", name="uq_evidence_pair"),
)

# -- calls to roles (migration 0002) ---------------------------------------------------

directory_versions = Table(
    "directory_versions", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("digest", String(64), nullable=False),       # SHA-256 of the canonical body
    Column("body", Text, nullable=False),               # canonical JSON of the directory
    Column("applied_at", BigInteger, nullable=False),
)

presence = Table(
    "presence", metadata,
    Column("operator", String(32), primary_key=True),
    Column("last_seen", BigInteger, nullable=False),
)

peer_desks = Table(
    "peer_desks", metadata,
    Column("party", String(32), primary_key=True),
    Column("role", String(32), primary_key=True),
    Column("titles", Text, nullable=False),             # JSON {lang: title}
    Column("staffed", Integer, nullable=False),         # 0/1, as the peer last said
    Column("callers", Text, nullable=False),            # JSON list of our roles it accepts
    Column("updated_at", BigInteger, nullable=False),   # the peer's time of the report
)

calls = Table(
    "calls", metadata,
    Column("id", String(32), primary_key=True),         # chosen by the caller; same on both
    Column("direction", String(3), nullable=False),     # "out" (we call) | "in"
    Column("peer", String(32), nullable=False),
    Column("caller_role", String(32), nullable=False),
    Column("callee_role", String(32), nullable=False),
    Column("reason", Text, nullable=True),
    Column("state", String(16), nullable=False),
    Column("step", Integer, nullable=True),             # the step ringing now (callee side)
    Column("chain", Text, nullable=True),               # frozen chain, JSON (callee side)
    Column("next_ring", Integer, nullable=False, server_default="0"),
    Column("placed_at", BigInteger, nullable=False),    # the caller's time
    Column("started_at", BigInteger, nullable=True),    # escalation start (callee side)
    Column("deliver_by", BigInteger, nullable=True),    # undeliverable deadline (caller)
    Column("expires_at", BigInteger, nullable=True),    # link policy "expire" (both)
    Column("parent_id", String(32), nullable=True),     # the call this one falls back from
    Column("envelope_id", String(32), nullable=True),   # our call.place envelope (caller)
    Column("statements", Integer, nullable=False, server_default="0"),  # our last signed n
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_calls_state", "state"),
)

call_events = Table(
    "call_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(32), ForeignKey("calls.id"), nullable=False),
    Column("signer", String(32), nullable=False),       # the party whose statement it is
    Column("n", Integer, nullable=False),               # the signer's statement number
    Column("state", String(16), nullable=False),
    Column("statement", Text, nullable=False),          # signed canonical JSON
    Column("verified", Integer, nullable=False),        # 0/1: signature checked on arrival
    Column("at", BigInteger, nullable=False),           # the signer's time
    UniqueConstraint("call_id", "signer", "n", name="uq_call_events_statement"),
)

timers = Table(
    "timers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(100), nullable=False, unique=True),  # idempotency key
    Column("kind", String(16), nullable=False),         # "escalate" | "deliver"
    Column("call_id", String(32), nullable=False),
    Column("due_at", BigInteger, nullable=False),       # wall-clock ms
    Column("fired_at", BigInteger, nullable=True),
    Column("outcome", String(16), nullable=True),       # "fired" | "void" (call had ended)
    Column("basis", String(8), nullable=False, server_default="duration"),  # | "calendar"
    Index("ix_timers_due", "fired_at", "due_at"),
)

notifications = Table(
    "notifications", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(120), nullable=False, unique=True),
    Column("channel", String(32), nullable=False),
    Column("alert", Text, nullable=False),              # JSON of the alert
    Column("created_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    Column("failed_at", BigInteger, nullable=True),     # permanent failure
    Column("last_error", Text, nullable=True),
    Column("retry_until", BigInteger, nullable=True),   # keep retrying until (0006)
    Index("ix_notifications_pending", "delivered_at", "failed_at", "next_at"),
)

journal = Table(
    "journal", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # the event stream cursor
    Column("kind", String(32), nullable=False),         # "call" | "conversation" | ...
    Column("subject", String(32), nullable=False),      # call or conversation id
    Column("body", Text, nullable=False),               # JSON, as streamed
    Column("at", BigInteger, nullable=False),
)

conversations = Table(
    "conversations", metadata,
    Column("id", String(32), primary_key=True),         # the call id that opened it
    Column("topic", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("members", Text, nullable=False),            # JSON list of party ids
)

conversation_messages = Table(
    "conversation_messages", metadata,
    Column("id", String(32), primary_key=True),         # chosen by the author's node
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False),
    Column("party", String(32), nullable=False),
    Column("role", String(32), nullable=False),
    Column("operator", String(32), nullable=True),
    Column("text", Text, nullable=False),
    Column("sent_at", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=True),   # null for our own
    Index("ix_conversation_messages_conv", "conversation_id", "sent_at"),
)

message_receipts = Table(
    "message_receipts", metadata,
    Column("message_id", String(32), primary_key=True),
    Column("party", String(32), primary_key=True),      # the party that gave the receipt
    Column("kind", String(16), primary_key=True),       # delivered | read | acknowledged
    Column("operator", String(32), nullable=True),
    Column("role", String(32), nullable=True),
    Column("at", BigInteger, nullable=False),
    Column("statement", Text, nullable=False),          # signed canonical JSON
    Column("verified", Integer, nullable=False),
)

# -- the tamper-evident log (migration 0003) -------------------------------------------

log_entries = Table(
    "log_entries", metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),  # 0-based position
    Column("kind", String(32), nullable=False),
    Column("subject", String(64), nullable=True),       # call / conversation id, for export
    Column("at", BigInteger, nullable=False),
    Column("entry", Text, nullable=False),              # canonical JSON: what the leaf hashes
    Column("leaf", LargeBinary, nullable=False),        # SHA-256(0x00 || entry)
    Index("ix_log_entries_subject", "subject"),
)

log_state = Table(
    "log_state", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("size", BigInteger, nullable=False),
    Column("frontier", Text, nullable=False),           # JSON: compact range, hex hashes
    Column("last_leaf", String(64), nullable=False),    # hex leaf hash of entry size-1
)

log_checkpoints = Table(
    "log_checkpoints", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("origin", String(32), nullable=False),       # whose log
    Column("witness", String(32), nullable=False),      # who cosigned it
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary, nullable=False),
    Column("checkpoint", Text, nullable=False),         # signed by the origin
    Column("cosignature", Text, nullable=False),        # signed by the witness
    Column("at", BigInteger, nullable=False),
    Index("ix_log_checkpoints_pair", "origin", "witness", "size"),
)

log_nodes = Table(
    "log_nodes", metadata,                              # migration 0004
    Column("level", Integer, primary_key=True, autoincrement=False),  # 1 = pairs of leaves
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),        # root of leaves idx*2^level ..
)

# -- operator accounts for the web console (migration 0005) ---------------------------

operator_accounts = Table(
    "operator_accounts", metadata,
    Column("operator", String(32), primary_key=True),   # an operator id of the directory
    Column("password_hash", Text, nullable=False),      # Argon2id, PHC string
    Column("totp_secret", String(64), nullable=False),  # base32
    Column("totp_last_step", BigInteger, nullable=True),  # last code accepted (no replay)
    Column("failures", Integer, nullable=False, server_default="0"),  # since last success
    Column("locked_until", BigInteger, nullable=True),  # ms since epoch
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

console_sessions = Table(
    "console_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),  # SHA-256 hex of the cookie value
    Column("operator", String(32), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("lang", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),   # ms; absolute end of the session
    Column("pending_totp", String(64), nullable=True),  # a new secret being enrolled
    Index("ix_console_sessions_operator", "operator"),
)

# -- alarms (migration 0006) ------------------------------------------------------------

alarms = Table(
    "alarms", metadata,
    Column("cause", String(160), primary_key=True),     # what coalesces: one row a cause
    Column("kind", String(32), nullable=False),
    Column("subject", String(64), nullable=True),       # peer, task or channel concerned
    Column("message", Text, nullable=False),
    Column("detail", Text, nullable=False),             # JSON
    Column("first_at", BigInteger, nullable=False),
    Column("last_at", BigInteger, nullable=False),
    Column("count", Integer, nullable=False, server_default="1"),
    Column("cleared_at", BigInteger, nullable=True),    # None while the alarm stands
)

# -- per-operator API tokens (migration 0007) -------------------------------------------

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", String(16), primary_key=True),         # public part of the token
    Column("operator", String(32), nullable=False),     # an operator id of the directory
    Column("secret_sha256", String(64), nullable=False),  # hex; the secret is never kept
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),    # None while the token is valid
)

# -- key history (migration 0011) -------------------------------------------------------

key_history = Table(
    "key_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("party", String(32), nullable=False),        # a peer, or this node's own party
    Column("kid", String(16), nullable=False),
    Column("sign_key", String(64), nullable=False),
    Column("enc_key", String(64), nullable=False),
    Column("accepted_at", BigInteger, nullable=False),  # our clock: when it was announced
    Column("introduced_at", BigInteger, nullable=True),  # signed time of its rotation
    Column("introduced_by", String(16), nullable=True),  # the key that rotated to it
    Column("statement", Text, nullable=True),            # the signed statement naming it
    Column("retired_at", BigInteger, nullable=True),     # our clock: grace counts from here
    Column("rotated_at", BigInteger, nullable=True),     # signed time of the retiring rotation
    Column("revoked_at", BigInteger, nullable=True),     # our clock: refused from here
    Column("revocation", Text, nullable=True),           # the signed revocation
    UniqueConstraint("party", "kid", name="uq_key_history_party_kid"),  # ids never reused
)


# -- duty schedules (migration 0009) ----------------------------------------------------

schedule_overrides = Table(
    "schedule_overrides", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("role", String(32), nullable=False),
    Column("operator", String(32), nullable=False),
    Column("from_ms", BigInteger, nullable=False),      # calendar instant, inclusive
    Column("until_ms", BigInteger, nullable=False),     # calendar instant, exclusive
    Column("unavailable", Integer, nullable=False, server_default="0"),  # 0/1
    Column("created_by", String(64), nullable=False),   # "admin" or the operator's id
    Column("created_at", BigInteger, nullable=False),
    Index("ix_schedule_overrides_role", "role", "until_ms"),
)

duty_holders = Table(
    "duty_holders", metadata,
    Column("role", String(32), primary_key=True),
    Column("holders", Text, nullable=False),            # JSON list, as last logged
    Column("since_at", BigInteger, nullable=False),     # when that hand-over was logged
)


# -- formatted notifications (migration 0013; "notices": ``notifications`` are channel
# rings) ----------------------------------------------------------------------------------

notices = Table(
    "notices", metadata,
    Column("id", String(32), primary_key=True),         # chosen by the author's node
    Column("party", String(32), nullable=False),        # the author
    Column("template", String(48), nullable=False),
    Column("version", Integer, nullable=False),
    Column("lang", String(8), nullable=False),          # the author's language
    Column("fields", Text, nullable=False),             # canonical JSON, validated
    Column("recipients", Text, nullable=False),         # JSON list of party ids
    Column("role", String(32), nullable=True),
    Column("operator", String(32), nullable=True),
    Column("sent_at", BigInteger, nullable=False),      # the author's signed time
    Column("received_at", BigInteger, nullable=True),   # null for our own
    Index("ix_notices_sent", "sent_at"),
)

notice_receipts = Table(
    "notice_receipts", metadata,
    Column("notice_id", String(32), primary_key=True),
    Column("party", String(32), primary_key=True),      # the party that gave the receipt
    Column("kind", String(16), primary_key=True),       # delivered|read|acknowledged|refused
    Column("operator", String(32), nullable=True),
    Column("role", String(32), nullable=True),
    Column("reason", Text, nullable=True),
    Column("at", BigInteger, nullable=False),
    Column("statement", Text, nullable=False),          # signed canonical JSON
    Column("verified", Integer, nullable=False),
)

# -- incidents (migration 0014) ---------------------------------------------------------

incidents = Table(
    "incidents", metadata,
    Column("id", String(32), primary_key=True),
    Column("title", Text, nullable=False),
    Column("opener", String(32), nullable=False),
    Column("state", String(16), nullable=False),         # "invited" | "member"
    Column("members", Text, nullable=False),             # JSON list of party ids
    Column("invited", Text, nullable=False),             # JSON list: invited, not yet in
    Column("created_at", BigInteger, nullable=False),    # when this node first held it
    Column("joined_at", BigInteger, nullable=True),      # when we became a member
)

incident_entries = Table(
    "incident_entries", metadata,
    Column("id", String(32), primary_key=True),          # chosen by the author's node
    Column("incident_id", String(32), ForeignKey("incidents.id"), nullable=False),
    Column("author", String(32), nullable=False),
    Column("n", Integer, nullable=False),                # the author's 1, 2, ... here
    Column("at", BigInteger, nullable=False),            # signed time (the order)
    Column("type", String(16), nullable=False),
    Column("statement", Text, nullable=False),           # signed canonical JSON
    Column("received_at", BigInteger, nullable=False),   # arrival here (ours: = at)
    Column("via", String(32), nullable=True),            # the relaying opener, if relayed
    UniqueConstraint("incident_id", "author", "n", name="uq_incident_entries_author_n"),
    Index("ix_incident_entries_incident", "incident_id", "at"),
)


# -- queries (migration 0015) -----------------------------------------------------------
queries = Table(
    "queries", metadata,
    Column("call_id", String(32), primary_key=True),    # a query is a call of this kind
    Column("question", Text, nullable=False),
    Column("deadline_ms", BigInteger, nullable=False),  # a duration, from placing/delivery
    Column("incident", String(32), nullable=True),      # --about, asker side
    Column("late", Integer, nullable=False, server_default="0"),  # answer after our deadline
)
