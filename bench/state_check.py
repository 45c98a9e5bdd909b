#!/usr/bin/env python
"""The whole start-up check at scale: the log verified, then the state checked against it.

Builds a fresh node database (the real schema, migrated) holding one link and
``--entries`` log entries, half ``sent`` (each with its outbox row) and half
``received`` (each with its inbound row, released), appended through
``store.log.append`` in transactions of ``--batch`` as the node writes them; then times
what ``hotline serve`` runs before it serves, in one snapshot and one read of the log:
``integrity.run.check_all`` (``log.verify.verify_database`` with the state checkers fed
from the same pass). The log's verification alone is timed after it, for comparison.
Prints one JSON object on stdout; progress on stderr. The target is 15 s at 1 M entries.

    .venv/bin/python bench/state_check.py --entries 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, update

from hotline.integrity.run import check_all
from hotline.log.verify import verify_database
from hotline.store import log as log_store
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.log import Record
from hotline.store.migrate import upgrade
from hotline.store.schema import inbound, links, outbox

PEER = "RU-GS"
T0 = 1_668_524_760_000
ENVELOPE = b"x" * 600  # the check never reads the envelope bytes; their size is realistic


def build(engine: Engine, entries: int, batch: int) -> None:
    with engine.begin() as conn:
        conn.execute(links.insert().values(
            party=PEER, name="RU", sign_key="s" * 43, enc_key="e" * 43, kid="k" * 16,
            endpoints="[]", offer="{}", accepted_at=T0))
    half = entries // 2
    done = 0
    while done < entries:
        n = min(batch, entries - done)
        records: list[Record] = []
        out_rows: list[dict[str, Any]] = []
        in_rows: list[dict[str, Any]] = []
        for k in range(done, done + n):
            sending = k < half
            seq = (k if sending else k - half) + 1
            eid = secrets.token_hex(16)
            digest = hashlib.sha256(str(k).encode()).hexdigest()
            body = {"peer": PEER, "id": eid, "seq": seq, "type": "message", "subject": None,
                    "digest": digest}
            records.append(Record("sent" if sending else "received", body, T0 + k))
            row = {"peer": PEER, "envelope_id": eid, "seq": seq, "type": "message",
                   "payload": '{"text":"hello"}', "envelope": ENVELOPE}
            if sending:
                out_rows.append({**row, "created_at": T0 + k, "sealed_at": T0 + k,
                                 "delivered_at": T0 + k})
            else:
                in_rows.append({**row, "sent_at": T0 + k, "received_at": T0 + k,
                                "release_no": seq, "released_at": T0 + k})
        with engine.begin() as conn:
            if out_rows:
                conn.execute(outbox.insert(), out_rows)
            if in_rows:
                conn.execute(inbound.insert(), in_rows)
            log_store.append(conn, records)
        done += n
        if done % 100_000 == 0:
            print(f"[bench] built {done}", file=sys.stderr, flush=True)
    with engine.begin() as conn:
        conn.execute(update(links).values(send_seq=half, recv_next=entries - half + 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="hotline-bench-state-")) / "hotline.db"
    engine = create_engine(sqlite_url(path))
    upgrade(engine)
    start = time.perf_counter()
    build(engine, args.entries, args.batch)
    build_s = time.perf_counter() - start
    with engine.connect() as conn:
        conn.exec_driver_sql("BEGIN")  # one snapshot, as at start-up
        start = time.perf_counter()
        report, state = check_all(conn, "US-JS", {})  # what `hotline serve` runs
        total = time.perf_counter() - start
        conn.rollback()
    with engine.connect() as conn:  # for comparison: the log's verification alone
        conn.exec_driver_sql("BEGIN")
        start = time.perf_counter()
        verify_database(conn, "US-JS", {})
        verify_s = time.perf_counter() - start
        conn.rollback()
    engine.dispose()
    result = {"benchmark": "state_check", "entries": args.entries, "log_ok": report.ok,
              "state_ok": state.ok, "findings": len(state.findings),
              "build_s": round(build_s, 1), "log_verify_alone_s": round(verify_s, 2),
              "total_s": round(total, 2),
              "db_mb": round(path.stat().st_size / 1e6, 1),
              "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "target_total_s": 15}
    print(json.dumps(result, indent=2))
    path.unlink()
    return 0 if report.ok and state.ok and total <= 15 else 1


if __name__ == "__main__":
    raise SystemExit(main())
