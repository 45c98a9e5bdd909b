"""No amplification: evidence is kept once per distinct conflicting pair, with a count of
how often it was presented and when first and last; duplicate rows already stored are
folded into one. Checkpoints a witness cosigned before the tree rules were checked, and
that state an impossible tree (size 0 with a root other than the empty tree's, or a size
beyond 2^48), are moved out of ``log_checkpoints`` into evidence: left there, no honest
checkpoint of that origin could ever be cosigned again.

Revision ID: 0008
Revises: 0007
"""

import hashlib
import logging

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

security_log = logging.getLogger("hotline.security")

# Fixed here rather than imported, so this migration means the same thing for ever.
EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_TREE_SIZE = 2**48


def _pair(statement: bytes, other: bytes | None) -> str:
    """As ``hotline.store.evidence.pair_digest``: the unordered, length-prefixed pair."""
    h = hashlib.sha256()
    for part in sorted((statement, other or b"")):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _fold(conn: sa.Connection) -> None:
    """One row per (peer, kind, pair): the oldest id stays, with the group's count and
    its first and last times."""
    rows = conn.execute(sa.text("SELECT id, peer, kind, envelope, other_envelope, at "
                                "FROM evidence ORDER BY id")).all()
    groups: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
    for r in rows:
        other = None if r.other_envelope is None else bytes(r.other_envelope)
        key = (str(r.peer), str(r.kind), _pair(bytes(r.envelope), other))
        groups.setdefault(key, []).append((int(r.id), int(r.at)))
    for (_peer, _kind, pair), members in groups.items():
        keep = members[0][0]
        times = [at for _, at in members]
        conn.execute(sa.text("UPDATE evidence SET pair = :pair, count = :count, at = :first, "
                             "last_at = :last WHERE id = :id"),
                     {"pair": pair, "count": len(members), "first": min(times),
                      "last": max(times), "id": keep})
        for extra, _ in members[1:]:
            conn.execute(sa.text("DELETE FROM evidence WHERE id = :id"), {"id": extra})


def _unblock(conn: sa.Connection) -> None:
    """Move cosigned checkpoints of impossible trees into evidence (one security-log line
    each, naming the origin and the alarm an operator may now clear)."""
    rows = conn.execute(sa.text("SELECT id, origin, witness, size, root, checkpoint, at "
                                "FROM log_checkpoints WHERE size = 0 OR size > :max"),
                        {"max": MAX_TREE_SIZE}).all()
    for r in rows:
        size = int(r.size)
        if size == 0 and bytes(r.root) == EMPTY_ROOT:
            continue
        statement = str(r.checkpoint).encode()
        detail = (f"{r.origin} signed a checkpoint of an impossible tree (size {size}); "
                  f"{r.witness} had cosigned it before the tree rules were checked, and the "
                  "upgrade removed it so the log can be cosigned again")
        conn.execute(sa.text(
            "INSERT INTO evidence (peer, kind, detail, envelope, other_envelope, at, pair, "
            "count, last_at) VALUES (:peer, 'log-invalid-head', :detail, :statement, NULL, "
            ":at, :pair, 1, :at)"),
            {"peer": r.origin, "detail": detail, "statement": statement, "at": int(r.at),
             "pair": _pair(statement, None)})
        conn.execute(sa.text("DELETE FROM log_checkpoints WHERE id = :id"), {"id": r.id})
        security_log.warning(
            "upgrade 0008: removed the cosigned checkpoint of %s at size %d cosigned by %s "
            "(an impossible tree; kept as evidence 'log-invalid-head'); if an alarm "
            "'log-inconsistent:%s' stands, clear it: hotline alarms --dir DIR --clear "
            "log-inconsistent:%s --operator OP", r.origin, size, r.witness, r.origin, r.origin)


def upgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("pair", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("count", sa.Integer(), server_default="1",
                                   nullable=False))
        batch.add_column(sa.Column("last_at", sa.BigInteger(), nullable=True))
    conn = op.get_bind()
    _fold(conn)
    _unblock(conn)
    with op.batch_alter_table("evidence") as batch:
        batch.alter_column("pair", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("last_at", existing_type=sa.BigInteger(), nullable=False)
        batch.create_unique_constraint("uq_evidence_pair", ["peer", "kind", "pair"])


def downgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.drop_constraint("uq_evidence_pair", type_="unique")
        batch.drop_column("last_at")
        batch.drop_column("count")
        batch.drop_column("pair")
