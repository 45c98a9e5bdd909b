"""The start-up state check (and ``hotline log verify``, ``repair --from-log``) covers
notices and their receipts: any edit of a ``notices`` or ``notice_receipts`` row behind
the node's back is named with its table and row, and repaired from the log."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from hotline.calls.registry import Registry
from hotline.delivery.outbound import Outbound
from hotline.effects import Effects
from hotline.forms import model
from hotline.forms.service import NoticeService
from hotline.integrity.findings import RepairContext
from hotline.integrity.run import check_state, repair
from hotline.peers import PeerDirectory
from hotline.protocol.keys import PartyKeys
from hotline.protocol.offer import make_offer, parse_offer
from hotline.store import links as link_store
from hotline.store.database import Database
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.migrate import upgrade
from tests.forms_scenario import PRZEWODOW
from tests.nodes import create_pg_database, drop_pg_database

ME, PEER = "US-JS", "PL-GS"
ME_KEYS, PEER_KEYS = PartyKeys.generate(), PartyKeys.generate()
START_MS = 1_700_000_000_000
TEMPLATE = model.latest("incident-notification")
TAKEN, REFUSED = "ab" * 16, "cd" * 16


class Clock:
    def __init__(self) -> None:
        self.now = START_MS

    def now_ms(self) -> int:
        self.now += 1
        return self.now

    def monotonic(self) -> float:
        return self.now / 1000


def _payload(notice: str, **over: Any) -> dict[str, Any]:
    return {"notice": notice, "template": TEMPLATE.id, "version": TEMPLATE.version,
            "lang": "pl", "recipients": [ME, "UA-GS"], "role": "ops-do",
            "operator": None, "sent_at": START_MS,
            # written as a peer may: a shorter time the check normalises
            "fields": {**PRZEWODOW, "event_time": {"at": "2022-11-15T15:40+01:00",
                                                   "zone": "Europe/Warsaw"}}, **over}


def _findings(conn: Connection) -> list[str]:
    return [f"{f.table} {f.row}" for f in check_state(conn, ME).findings]


async def _run(edit: str, kind: str) -> tuple[list[str], list[str]]:
    """Receive one notice (taken) and one refused, edit behind the node's back, check;
    then repair from the log and check again (on SQLite or PostgreSQL)."""
    with tempfile.TemporaryDirectory(prefix="hotline-notice-state-") as tmp:
        url = sqlite_url(Path(tmp) / "node.db") if kind == "sqlite" else create_pg_database()
        engine = create_engine(url)
        db = Database(engine, lambda exc: None)
        clock = Clock()
        upgrade(engine)
        db.start()
        try:
            offer = parse_offer(make_offer(party=PEER, name="PL", keys=PEER_KEYS,
                                           endpoints=["http://127.0.0.1:7100"],
                                           at_ms=START_MS))
            await db.write(lambda conn: link_store.accept_offer(conn, offer, ME, START_MS))
            peers = PeerDirectory(db, clock)
            await peers.reload()
            service = NoticeService(me=ME, outbound=Outbound(me=ME, keys=ME_KEYS,
                                                             peers=peers),
                                    registry=Registry(db), db=db, clock=clock)

            def receive(conn: Connection) -> None:
                service.on_notice(conn, PEER, _payload(TAKEN), clock.now_ms(), Effects())
                service.on_notice(conn, PEER, _payload(REFUSED, version=99),
                                  clock.now_ms(), Effects())
            await db.write(receive)
            assert await db.read(_findings) == [], "the unedited store passes"

            def tamper(conn: Connection) -> None:
                conn.execute(text(edit))
            await db.write(tamper)
            found = await db.read(_findings)

            def fix(conn: Connection) -> None:
                report = check_state(conn, ME)
                repair(conn, report.findings, RepairContext(ME, ME_KEYS, {}, clock.now_ms()))
            await db.write(fix)
            after = await db.read(_findings)
        finally:
            await db.stop()
            engine.dispose()
            if kind != "sqlite":
                drop_pg_database(url)
        return found, after


N, R = f"notices id={TAKEN}", f"notice_receipts notice_id={TAKEN} party={ME} kind=delivered"
EDITS: list[tuple[str, str, bool]] = [
    ("UPDATE notices SET fields = replace(fields, '\"killed\"\\:2', '\"killed\"\\:0')", N, True),
    ("UPDATE notices SET recipients = '[\"US-JS\"]'", N, True),
    ("UPDATE notices SET role = 'someone-else', lang = 'en'", N, True),
    ("UPDATE notices SET party = 'RU-GS'", N, True),
    ("UPDATE notices SET fields = 'not json'", N, True),
    ("DELETE FROM notices", N, True),
    ("INSERT INTO notices SELECT 'efefefefefefefefefefefefefefefef', party, template, "
     "version, lang, fields, recipients, role, operator, sent_at, received_at FROM notices",
     f"notices id={'ef' * 16}", False),
    ("UPDATE notice_receipts SET at = at + 3600000", R, True),
    ("UPDATE notice_receipts SET statement = replace(statement, 'delivered', 'read')", R,
     True),
    ("DELETE FROM notice_receipts", R, True),
]


@pytest.mark.parametrize(("edit", "named", "repairable"), EDITS)
def test_an_edit_of_a_notice_or_its_receipt_is_named_and_repaired_from_the_log(
        edit: str, named: str, repairable: bool, db_kind: str) -> None:
    found, after = asyncio.run(_run(edit, db_kind))
    assert named in found, found
    if repairable:
        assert after == [], after
    else:
        assert after == [named]

