"""Notices (or any JSON objects: incident entries) as JSON Lines, and back.

One object per line, keys sorted, UTF-8 as written (no ``\\u`` escapes of letters):
``read_jsonl(to_jsonl(items)) == items`` for JSON-able items.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from hotline.errors import HotlineError


def to_jsonl(items: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(item, sort_keys=True, ensure_ascii=False,
                              separators=(",", ":")) + "\n" for item in items)


def read_jsonl(text: str) -> list[dict[str, Any]]:
    """The objects of ``text`` (lines end with LF or CRLF; a leading byte-order mark is
    skipped); ``bad-jsonl`` naming the line if one is not an object."""
    out = []
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write first
    # only "\n" ends a line: JSON escapes it inside strings, but not U+2028 or U+0085,
    # which str.splitlines would also split on
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            item = None
        if not isinstance(item, dict):
            raise HotlineError("bad-jsonl", f"line {n} is not a JSON object")
        out.append(item)
    return out
