"""The shipped example directories: real-time values, valid, and what the demo scales.

``examples/directories/<PARTY>.toml`` is what the scenario's parties would apply; the demo
writes each node's ``directory.toml`` from it, durations divided by ``--speed``, schedules
untouched (issue 15, item 15)."""

from __future__ import annotations

from pathlib import Path

from hotline.calls.directory import Directory, parse_directory
from hotline.calls.directory.links import LinkFacts, check_links
from hotline.cli.demo import PARTIES as DEMO_PARTIES
from hotline.cli.demo import _set_up
from hotline.scenario import (
    DELIVERY_FLOOR_MS,
    PARTIES,
    example_path,
    example_text,
    peers_of,
    scale_directory,
)
from tests.nodes import PASSPHRASE, free_port

SPEED = 60.0


def _durations(d: Directory) -> dict[str, int]:
    """Every duration the demo scales, by where it is."""
    out = {"staffed_within": d.staffed_within_ms}
    for role, chain in d.chains.items():
        out[f"chains.{role}.repeat_every"] = chain.repeat_every_ms or 0
        for i, step in enumerate(chain.steps):
            out[f"chains.{role}.steps[{i}].wait"] = step.wait_ms
    for peer, policy in d.links.items():
        out[f"links.{peer}.deliver_within"] = policy.deliver_within_ms
    return out


def test_the_examples_are_valid_real_time_directories_with_comments() -> None:
    for party in PARTIES:
        text = example_text(party)
        directory = parse_directory(text, example_path(party).name)
        assert check_links(directory, party, LinkFacts(frozenset(peers_of(party)))) == ([], [])
        assert text.count("\n#") >= 8  # explained, section by section
        # real time: a desk stays staffed for minutes, a step rings for minutes
        assert directory.staffed_within_ms == 5 * 60_000
        waits = [s.wait_ms for c in directory.chains.values() for s in c.steps]
        assert waits
        assert min(waits) >= 60_000
        assert all(p.deliver_within_ms >= 10_000 for p in directory.links.values())
        assert "ms\"" not in text  # written as people write durations: "2m", "30s"


def test_the_demo_writes_the_examples_scaled_by_its_speed(tmp_path: Path) -> None:
    _set_up(tmp_path, free_port(), PASSPHRASE, SPEED)
    assert {p.party for p in DEMO_PARTIES} == set(PARTIES)
    for p in DEMO_PARTIES:
        written = (tmp_path / p.key / "directory.toml").read_text(encoding="utf-8")
        example = example_text(p.party)
        assert written == scale_directory(example, SPEED)
        demo = parse_directory(written, "directory.toml")
        real = parse_directory(example, "example.toml")
        assert _durations(demo) == {
            k: max(min(v, DELIVERY_FLOOR_MS), round(v / SPEED)) if "deliver_within" in k
            else max(1, round(v / SPEED)) for k, v in _durations(real).items()}
        # the network's time does not compress with the scenario's
        assert all(p.deliver_within_ms >= DELIVERY_FLOOR_MS for p in demo.links.values())
        assert demo.staffed_within_ms == 5000  # the demo's speed, not a real desk's
        # everything but the scaled durations is the example's, schedules included
        assert demo.schedules == real.schedules
        assert (demo.roles, demo.operators, demo.roster) == \
            (real.roles, real.operators, real.roster)
