#!/usr/bin/env python
"""``hotline log verify`` at scale: a real SQLite log of ``--entries`` entries, verified.

Builds a fresh node database (the real schema, migrated), appends ``--entries`` entries
through the same code every event uses (``store.log.append``, in transactions of
``--batch``), each a realistic ``sent`` entry (peer, id, seq, type, digest), then times
``log.verify.verify_database`` — what ``hotline log verify`` and ``hotline serve`` run —
over the whole log: reading every row, checking index and link of each entry, hashing
every entry and recomputing the tree. Building is timed too (the cost of logging). Prints
one JSON object on stdout; progress on stderr.

    .venv/bin/python bench/log_verify_db.py --entries 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

from hotline.log.verify import verify_database
from hotline.store import log as log_store
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.log import Record
from hotline.store.migrate import upgrade


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="hotline-bench-log-")) / "hotline.db"
    engine = create_engine(sqlite_url(path))
    upgrade(engine)
    start = time.perf_counter()
    done = 0
    while done < args.entries:
        n = min(args.batch, args.entries - done)
        records = [Record("sent", {"peer": "RU-GS", "id": secrets.token_hex(16),
                                   "seq": done + k + 1, "type": "message",
                                   "digest": hashlib.sha256(str(done + k).encode()).hexdigest()},
                          1_668_524_760_000 + done + k) for k in range(n)]
        with engine.begin() as conn:
            log_store.append(conn, records)
        done += n
        if done % 100_000 == 0:
            print(f"[bench] appended {done}", file=sys.stderr, flush=True)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    with engine.connect() as conn:
        report = verify_database(conn, "US-JS", {})
    verify_s = time.perf_counter() - start
    engine.dispose()
    result = {"benchmark": "log_verify_db", "entries": args.entries, "ok": report.ok,
              "size": report.size, "build_s": round(build_s, 2),
              "append_us_per_entry": round(build_s / args.entries * 1e6, 1),
              "verify_s": round(verify_s, 2),
              "db_mb": round(path.stat().st_size / 1e6, 1), "target_verify_s": 10}
    print(json.dumps(result, indent=2))
    return 0 if report.ok and report.size == args.entries else 1


if __name__ == "__main__":
    raise SystemExit(main())
