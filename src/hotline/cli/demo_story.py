"""The demo's narration: who is who, and what each signed step of a call proves.

Everything printed here is derived from what the nodes report — each party's directory
file as applied (roles and their titles), and the signed call states the caller's node
holds (``GET /api/v1/calls/ID``: state, role, who was rung, who answered, whether the
signature verified) — never from what the scenario expects. :class:`CallStory` turns the
call's events into sentences as they arrive: ringing whom (or that no one is on duty in
the role), the escalation to the next step, who answered; and the first time a kind of
step is seen, one sentence on what it proves that the 2022 phone call could not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from hotline.calls.directory import Directory
from hotline.cli.tables import Col, show

#: what each kind of signed step proves, in one sentence ({callee}: the called party)
PROOF = {
    "delivered": "\u201cdelivered\u201d is {callee}'s node signing that the call reached "
                 "it: in 2022 an unanswered phone could not show the call had even got "
                 "through.",
    "ringing": "\u201cringing\u201d is {callee} signing which desk it alerted and when, and "
               "who was on duty there: in 2022 nobody could tell whether the Chief was "
               "unreachable or unwilling.",
    "verified": "\u201csigned by {callee} (verified)\u201d means the caller's node checked "
                "{callee}'s signature with the key exchanged when the link was set up: "
                "{callee} cannot later deny the step, and no one else could have forged "
                "it — a silent phone line proves nothing.",
}


def directories(base: Path, nodes: Sequence[tuple[str, str]]) -> dict[str, Directory]:
    """Each party's directory as its node applied it (``DIR/<key>/directory.toml``),
    from ``(key, party)`` pairs."""
    from hotline.calls.directory import parse_directory

    return {party: parse_directory((base / key / "directory.toml").read_text(
        encoding="utf-8"), "directory.toml") for key, party in nodes}


def title(dirs: Mapping[str, Directory], party: str, roles: str | None) -> str:
    """The English title of a role (or of each of a comma-joined list of roles) of
    ``party``; the id itself where the directory gives none."""
    if not roles:
        return "(no role)"
    d = dirs.get(party)
    names = []
    for role in roles.split(","):
        found = d.roles.get(role) if d is not None else None
        names.append(found.titles.get("en", role) if found is not None else role)
    return " and ".join(names)


def print_parties(console: Console, dirs: Mapping[str, Directory],
                  names: Mapping[str, str]) -> None:
    """The parties and their roles, titles first (as each party's directory has them)."""
    console.print("[bold]The parties and their roles[/] (from each node's directory):")
    rows = []
    for party, d in dirs.items():
        roles = "\n".join(f"{r.titles.get('en', r.id)} ({r.id})"
                          for r in d.roles.values())
        rows.append([party, names.get(party, ""), roles])
    show(console, [Col("party", keep=True), Col("name", drop=1), Col("roles")], rows)


class CallStory:
    """Narrates one call from its events (as :func:`hotline.cli.demo._follow_call` gives
    them, in order): what each step means, from the event's own fields."""

    def __init__(self, console: Console, dirs: Mapping[str, Directory], callee: str) -> None:
        self.console = console
        self.dirs = dirs
        self.callee = callee
        self.explained: set[str] = set()
        self.last_ring: dict[str, Any] | None = None
        self.lines: list[str] = []

    def _say(self, text: str) -> None:
        self.lines.append(text)
        self.console.print(f"      [italic]{escape(text)}[/]", highlight=False)

    def _explain(self, kind: str) -> None:
        if kind not in self.explained:
            self.explained.add(kind)
            self.console.print(f"      [dim]{escape(PROOF[kind].format(callee=self.callee))}"
                               "[/]", highlight=False)

    def __call__(self, event: Mapping[str, Any]) -> None:
        state = event["state"]
        signer = event["signed_by"]
        if signer != self.callee:
            self._caller(event)
            return
        name = title(self.dirs, signer, event.get("role"))
        if state == "delivered":
            self._say(f"{signer}'s node has the call: delivered.")
            self._explain("delivered")
        elif state == "ringing":
            self._ringing(event, name)
        elif state == "answered":
            by = event.get("operator") or "someone"
            self._say(f"answered by {by}, {name}.")
        elif state in ("declined", "unanswered", "undeliverable", "expired", "refused"):
            reason = f": {event['reason']}" if event.get("reason") else ""
            self._say(f"the call ended {state}{reason}.")
        if event.get("verified"):
            self._explain("verified")

    def _caller(self, event: Mapping[str, Any]) -> None:
        """The caller's own signed steps that say something about the callee."""
        if event["state"] == "undeliverable":
            self._say(f"{self.callee}'s node has not taken the call within the link's "
                      "deadline: the caller knows at once that it is not delivered, and "
                      "delivery keeps trying.")
        elif event["state"] == "fallback" and event.get("reason"):
            self._say(f"{event['signed_by']}'s fallback: {event['reason']}.")

    def _ringing(self, event: Mapping[str, Any], name: str) -> None:
        who = list(event.get("who") or ())
        prev = self.last_ring
        self.last_ring = dict(event)
        if prev is not None and prev.get("role") == event.get("role"):
            self._say(f"no answer yet: the {name} rings again"
                      + (f" ({', '.join(who)})." if who else "."))
            return
        if prev is not None:
            before = title(self.dirs, self.callee, prev.get("role"))
            if not prev.get("who"):
                self._say(f"the {before} is not on duty, so the call rings the {name}.")
            else:
                self._say(f"the {before} did not answer in time, so the call rings the "
                          f"{name}.")
        if who:
            self._say(f"ringing the {name}: {', '.join(who)} on duty.")
        else:
            self._say(f"ringing the {name}: no one holding the role is on duty.")
        self._explain("ringing")
