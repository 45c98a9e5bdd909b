"""An incident as JSON Lines, and back.

Line 1 is the incident ``{"record": "incident", "id", "title", "opener", "state",
"members", "invited", "created_at", "joined_at"}``; each further line one timeline entry
in timeline order ``{"record": "entry", ...the entry's fields..., "received_at", "via",
"corrected_by", "statement"}``, where ``statement`` is the author's signed canonical JSON
(anyone holding the author's public key can check it). :func:`from_jsonl` gives back
exactly the incident that :func:`to_jsonl` was given (as the operator API answers it),
and refuses a file whose entry lines disagree with their signed statements.
"""

from __future__ import annotations

import json
from typing import Any

from hotline.errors import HotlineError
from hotline.protocol.incident import BadEntry, parse_entry


def to_jsonl(incident: dict[str, Any]) -> str:
    """The incident (as ``GET /api/v1/incidents/{id}`` answers) as JSON Lines."""
    head = {"record": "incident", **{k: v for k, v in incident.items() if k != "entries"}}
    lines = [json.dumps(head, ensure_ascii=False, sort_keys=True)]
    for entry in incident.get("entries", []):
        lines.append(json.dumps({"record": "entry", **entry}, ensure_ascii=False,
                                sort_keys=True))
    return "\n".join(lines) + "\n"


def from_jsonl(text: str) -> dict[str, Any]:
    """Read :func:`to_jsonl`'s output back. Raises ``bad-jsonl`` naming the line."""
    incident: dict[str, Any] | None = None
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise HotlineError("bad-jsonl", f"line {number} is not JSON: {exc}") from None
        record = obj.pop("record", None) if isinstance(obj, dict) else None
        if record == "incident" and incident is None and number == 1:
            incident = obj
        elif record == "entry" and incident is not None:
            try:
                signed = parse_entry(obj.get("statement"))
            except BadEntry as exc:
                raise HotlineError("bad-jsonl", f"line {number}: {exc.message}") from None
            for name, value in signed.items():
                if name not in ("v", "kind", "sig") and obj.get(name) != value:
                    raise HotlineError("bad-jsonl", f"line {number}: field {name!r} is "
                                                    "not what the statement signed")
            entries.append(obj)
        else:
            raise HotlineError("bad-jsonl", f"line {number} is not an incident or entry "
                                            "record in its place")
    if incident is None:
        raise HotlineError("bad-jsonl", "no incident record on line 1")
    return {**incident, "entries": entries}
