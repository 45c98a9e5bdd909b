"""The two formats of the node's process log, and setting one up for ``hotline serve``.

``text`` (the default) is one terse line per event a person should see; no line per
HTTP request (uvicorn's access log stays off: a line per request to a peer would bury
what matters). ``json`` is one object per line::

    {"ts": "2026-11-30T20:31:02.123Z", "level": "INFO", "logger": "hotline.calls",
     "message": "...", "call_id": "...", "request_id": "..."}

with ``exc`` (the formatted traceback) when the line carries one, and each id of
:data:`hotline.logfmt.context.ID_FIELDS` that is set in the logging context or given as
``extra``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from hotline.logfmt.context import ID_FIELDS, current

FORMATS = ("text", "json")
#: libraries that log one INFO line per HTTP request they make (httpx: every batch to
#: a peer, every checkpoint, every webhook): kept at WARNING unless the level is debug
PER_REQUEST_LOGGERS = ("httpx", "httpcore")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: what would end or rewrite a line: C0/C1 controls, DEL and the Unicode line and
#: paragraph separators (``str.splitlines`` and many log readers split on them)
_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: the ones ``json.dumps(ensure_ascii=False)`` leaves raw in its output
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class TextFormatter(logging.Formatter):
    """The terse text line; a message's line breaks and control characters are shown
    escaped (``\\n``, ``\\u001b``): text from a peer (an error body, a refusal's
    message) cannot start a forged line of its own. A traceback keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _BREAKS.sub(
            lambda m: repr(m.group())[1:-1] if m.group() in "\n\r\t" else _escaped(m),
            record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = current()
        for name in ID_FIELDS:
            given = getattr(record, name, None)
            if isinstance(given, str):
                ids[name] = given
        body.update((name, ids[name]) for name in ID_FIELDS if name in ids)
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return _JSON_RAW.sub(_escaped, json.dumps(body, ensure_ascii=False))


def configure(log_format: str, level: str) -> None:
    """Send the root logger's records to stderr in ``log_format`` ("text" or "json") at
    ``level`` (a logging level name). Raises ValueError for an unknown format."""
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)
