"""``hotline link remove``: report what a removal ends, ask, remove, report the outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from hotline.cli.common import EXIT_USAGE, err, out, print_json
from hotline.errors import HotlineError
from hotline.protocol.envelope import PARTY_RE


def _affected(body: dict[str, Any]) -> list[str]:
    party = body["party"]
    calls = body["calls"]
    lines = [f"{len(body['queued'])} message(s) queued for {party} will be marked "
             "undeliverable (link removed)",
             f"{len(calls)} open call(s) with {party} will end cancelled (link removed)"]
    lines += [f"  call {c['id']} ({'to' if c['direction'] == 'out' else 'from'} {party}, "
              f"{c['state']})" for c in calls]
    lines.append(f"{len(body['conversations'])} conversation(s) with {party} are kept; "
                 f"nothing more is exchanged with {party} in them")
    if body["policy_left"]:
        lines.append(f"the directory still holds a link policy [links.{party}]: it stays "
                     "(it applies again only if the link is accepted again); remove it "
                     "with `hotline roles apply` if it should go")
    return lines


def remove_link(node_dir: Path, party: str, *, yes: bool, wait: float,
                as_json: bool) -> None:
    from hotline.cli.client import OperatorClient
    from hotline.nodedir.config import load_config

    if not PARTY_RE.match(party):
        raise HotlineError("bad-party", f"{party!r} is not a party id", status=EXIT_USAGE)
    client = OperatorClient(node_dir, load_config(node_dir), timeout=2 * wait + 30)
    try:
        preview = client.request("GET", f"/api/v1/links/{party}/removal")
    except HotlineError as exc:
        if exc.error_id == "no-link":  # a usage error: nothing was changed
            raise HotlineError(exc.error_id, exc.message, exc.hint, status=EXIT_USAGE) \
                from None
        raise
    if not as_json:
        err.print(f"Removing the link with [bold]{escape(party)}[/]:", highlight=False)
        for line in _affected(preview):
            err.print(f"  {escape(line)}", highlight=False)
    if not yes and not typer.confirm(f"Remove the link with {party}?"):
        raise HotlineError("not-confirmed", "link not removed: not confirmed")
    body = client.request("POST", f"/api/v1/links/{party}/remove",
                          json={"wait_seconds": wait})
    if as_json:
        print_json(body)
        return
    out.print(f"Link with {escape(party)} removed: {len(body['queued'])} message(s) marked "
              f"undeliverable, {len(body['ended_calls'])} call(s) ended.", highlight=False)
    if body["peer_told"]:
        out.print(f"{escape(party)} was told (its signed receipt of the notice is logged).",
                  highlight=False)
    else:
        out.print(f"[bold red]{escape(party)} was NOT told[/]: "
                  f"{escape(body['not_told'] or '')}. It keeps its side of the link until "
                  "its operator removes it too.", highlight=False)
    if body["policy_left"]:
        out.print(f"The directory still holds [links.{escape(party)}].", highlight=False)
