#!/usr/bin/env python
"""Merkle log benchmark: leaf hashes and roots of a large synthetic log.

A node that audits a peer's log (or rebuilds its own after a restore) has to hash every
entry and recompute the root; this measures what that costs in pure Python on this
machine. It builds ``--entries`` synthetic entries (random 100-byte bodies, generated
before any clock starts), then times, each on its own:

* ``leaf_hash_s``: ``leaf_hash`` of every body;
* ``root_s``: ``root_from_leaf_hashes`` over all leaf hashes (batch, level by level);
* ``compact_range_s``: appending every leaf hash to a ``CompactRange`` one at a time
  and reading its root, as a log that grows entry by entry does;
* ``total_s``: the three together, i.e. a full audit from bodies to root.

The two roots must agree, or the benchmark exits 1. Prints one JSON object on stdout.

    .venv/bin/python bench/log_verify.py --entries 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

from hotline.log.merkle import CompactRange, leaf_hash, root_from_leaf_hashes

BODY_SIZE = 100


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--entries", type=int, default=1_000_000,
                   help="number of synthetic log entries (default 1000000)")
    args = p.parse_args(argv)
    if args.entries < 0:
        p.error("--entries must be >= 0")
    return args


def run(entries: int) -> dict[str, Any]:
    blob = os.urandom(BODY_SIZE * entries)
    bodies = [blob[i:i + BODY_SIZE] for i in range(0, len(blob), BODY_SIZE)]
    del blob

    t0 = time.perf_counter()
    hashes = [leaf_hash(body) for body in bodies]
    t1 = time.perf_counter()
    root = root_from_leaf_hashes(hashes)
    t2 = time.perf_counter()
    compact = CompactRange()
    compact.extend(hashes)
    compact_root = compact.root()
    t3 = time.perf_counter()

    return {
        "entries": entries,
        "leaf_hash_s": round(t1 - t0, 3),
        "root_s": round(t2 - t1, 3),
        "compact_range_s": round(t3 - t2, 3),
        "total_s": round(t3 - t0, 3),
        "root": root.hex(),
        "roots_agree": compact_root == root,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args.entries)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if not report["roots_agree"]:
        print("FAILED: CompactRange and root_from_leaf_hashes disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
