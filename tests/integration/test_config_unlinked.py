"""A per-party config section naming a party the node has no link with (a typo such
as ``RU-GX``) used to be ignored without a word: the node now says so at start."""

from __future__ import annotations

from collections.abc import Callable

from tests.nodes import NodeProcess, link, wait_until

Make = Callable[..., NodeProcess]


def test_sections_for_unlinked_parties_are_warned_of_at_start(make_sqlite_node: Make) -> None:
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    us.configure("health", links={"RU-GS": {"test_every_seconds": 5.0},
                                  "RU-GX": {"test_every_seconds": 5.0}})
    us.configure("admission", peers={"PL-GS": {"envelopes_per_second": 10.0}})
    us.start()
    wait_until(lambda: us.log_lines("started with 1 link(s)"), 30, what="the node's start")
    warned = us.log_lines("names a party this node has no link with")
    assert len(warned) == 2, warned
    assert any("[health.links.RU-GX]" in line for line in warned)
    assert any("[admission.peers.PL-GS]" in line for line in warned)
    assert not any("RU-GS]" in line for line in warned)
