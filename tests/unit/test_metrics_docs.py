"""docs/operations.md lists every series ``/metrics`` exposes, with its labels, and no
other: a real scrape of a node's metrics (a real collector over a real SQLite store
holding one call, one line in its status, one event of each kind) against the doc's
table."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from hotline.clock import SystemClock
from hotline.health.supervisor import TaskState
from hotline.metrics.collector import StateCollector
from hotline.metrics.exposition import Metrics
from hotline.metrics.recorder import Recorder
from hotline.status import PeerStatus
from hotline.store.database import Database
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.migrate import upgrade
from hotline.store.schema import calls

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(hotline_[a-z_]+)` \| ([^|]*) \|", re.MULTILINE)


def documented() -> dict[str, set[str]]:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("## Metrics", 1)[1]
    return {name: set(re.findall(r"`([a-z_]+)`", labels))
            for name, labels in ROW.findall(section)}


class Measured:
    """Link-health readings as the link-health fields will give them."""

    def rtt_seconds(self, status: PeerStatus) -> float | None:
        return 0.012

    def health(self, status: PeerStatus) -> str | None:
        return "up"


def line() -> PeerStatus:
    return PeerStatus(party="RU-GS", name="RU", endpoints=["http://127.0.0.1:9"], queued=0,
                      in_flight=0, delivered=0, received=0, last_receipt_at=None,
                      last_received_at=None, last_error=None, last_error_at=None,
                      unreachable_since=None, unreachable_for_seconds=None,
                      next_attempt_at=None, state="idle")


async def scraped(tmp_path: Path) -> dict[str, set[str]]:
    engine = create_engine(sqlite_url(tmp_path / "node.db"))
    upgrade(engine)
    db = Database(engine, lambda exc: None)
    db.start()
    await db.write(lambda conn: conn.execute(calls.insert().values(
        id="c" * 32, direction="out", peer="RU-GS", caller_role="nmcc-do",
        callee_role="cgs", state="placed", placed_at=0, updated_at=0)))

    async def status() -> list[PeerStatus]:
        return [line()]

    try:
        recorder = Recorder()
        metrics = Metrics(recorder, StateCollector(
            db=db, clock=SystemClock(), status=status,
            tasks=lambda: [TaskState("timers", "running")], readings=Measured()))
        recorder.delivered("RU-GS", 0.05)
        recorder.deadline_fired("escalate", 0.01)
        recorder.notification("pager", "delivered")
        recorder.rejected("bad-signature")
        body, content_type = await metrics.scrape()
    finally:
        await db.stop()
    assert content_type.startswith("text/plain")
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body.decode()):
        name = family.name + "_total" if family.type == "counter" else family.name
        if not name.startswith("hotline_"):
            continue
        out[name] = {k for s in family.samples for k in s.labels if k != "le"}
    return out


async def test_every_series_is_documented_with_its_labels_and_nothing_else(
        tmp_path: Path) -> None:
    doc = documented()
    assert len(doc) >= 12, "docs/operations.md lost its table of series"
    got = await scraped(tmp_path)
    assert sorted(got) == sorted(doc)
    # an empty outbox and inbox give hotline_messages no sample (its labels are checked
    # on a real run: tests/integration/test_metrics.py); every other series has one
    assert [name for name, labels in got.items() if not labels] == ["hotline_messages"]
    for name, labels in got.items():
        if not labels:
            continue
        assert labels == doc[name], f"{name}: labels {sorted(labels)} documented as " \
                                    f"{sorted(doc[name])}"
