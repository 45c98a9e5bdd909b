"""Whatever a peer puts in a ``notice`` envelope, the receiving side does exactly one of
three things, and nothing else:

- takes it: the notice is stored with fields that pass this node's template, and a
  signed *delivered* receipt is queued back;
- refuses it for its template or a field: nothing of it is stored, one security-log
  line, and a signed *refused* receipt naming why is queued back;
- refuses it as malformed (``PeerRefused``): nothing is stored, nothing queued.

Run on a real SQLite file through the node's writer, with the service the dispatcher
calls (hypothesis draws the payloads: a valid one, mutated).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, func, select

from hotline.calls.registry import Registry
from hotline.delivery.outbound import Outbound
from hotline.effects import Effects
from hotline.errors import PeerRefused
from hotline.forms import model
from hotline.forms.service import NoticeService
from hotline.peers import PeerDirectory
from hotline.protocol.keys import PartyKeys
from hotline.protocol.notice import verify_notice_receipt
from hotline.protocol.offer import make_offer, parse_offer
from hotline.store import links as link_store
from hotline.store import log as log_store
from hotline.store.database import Database
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.migrate import upgrade
from hotline.store.schema import notices, outbox
from tests.forms_scenario import PRZEWODOW

ME, PEER = "US-JS", "PL-GS"
ME_KEYS, PEER_KEYS = PartyKeys.generate(), PartyKeys.generate()
START_MS = 1_700_000_000_000

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
TEMPLATE = model.latest("incident-notification")
FIELD_NAMES = [f.name for f in TEMPLATE.fields]


class Clock:
    def __init__(self) -> None:
        self.now = START_MS

    def now_ms(self) -> int:
        self.now += 1
        return self.now

    def monotonic(self) -> float:
        return self.now / 1000


def _valid() -> dict[str, Any]:
    return {"notice": "ab" * 16, "template": TEMPLATE.id, "version": TEMPLATE.version,
            "lang": "pl", "fields": dict(PRZEWODOW), "recipients": [ME], "role": "ops-do",
            "operator": None, "sent_at": START_MS}


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    p = _valid()
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["field", "drop-field", "key", "drop-key", "version",
                                     "template", "lang"]))
        # an earlier "key" or "drop-key" may have replaced or removed the fields
        fields_kept = isinstance(p.get("fields"), dict)
        if what == "field" and fields_kept:
            p["fields"][draw(st.sampled_from([*FIELD_NAMES, "extra"]))] = draw(JSON)
        elif what == "drop-field" and fields_kept and p["fields"]:
            p["fields"].pop(draw(st.sampled_from(sorted(p["fields"]))))
        elif what == "key":
            p[draw(st.sampled_from(sorted(p)))] = draw(JSON)
        elif what == "drop-key":
            p.pop(draw(st.sampled_from(sorted(p))))
        elif what == "version":
            p["version"] = draw(st.integers(0, 3))
        elif what == "template":
            p["template"] = draw(st.sampled_from(["link-test", "weather", TEMPLATE.id]))
        else:
            p["lang"] = draw(st.sampled_from(["en", "ar", "xx", ""]))
    return p


async def _apply(payload: dict[str, Any]) -> tuple[str, Effects, int, list[str]]:
    with tempfile.TemporaryDirectory(prefix="hotline-notice-") as tmp:
        engine = create_engine(sqlite_url(Path(tmp) / "node.db"))
        fatal: list[BaseException] = []
        db = Database(engine, fatal.append)
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

            def work(conn: Connection) -> tuple[str, Effects]:
                effects = Effects()
                try:
                    with log_store.savepoint(conn):  # as the dispatcher applies it
                        service.on_notice(conn, PEER, payload, clock.now_ms(), effects)
                except PeerRefused:
                    return "malformed", Effects()
                return "applied", effects
            outcome, effects = await db.write(work)

            def read(conn: Connection) -> tuple[int, list[str]]:
                stored = conn.execute(select(func.count()).select_from(notices)).scalar_one()
                sent = [r.payload for r in conn.execute(
                    select(outbox.c.payload).where(outbox.c.type == "notice.receipt"))]
                return int(stored), sent
            stored, sent = await db.read(read)
        finally:
            await db.stop()
        assert not fatal, fatal
        return outcome, effects, stored, sent


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
def test_a_notice_is_taken_refused_signed_or_refused_as_malformed(
        payload: dict[str, Any]) -> None:
    outcome, effects, stored, sent = asyncio.run(_apply(payload))
    if outcome == "malformed":
        assert (stored, sent) == (0, [])
        return
    [raw] = sent
    stmt = verify_notice_receipt(json.loads(raw)["statement"], signer=ME,
                                 public=ME_KEYS.public)
    assert stmt.notice == payload["notice"]
    if stmt.receipt == "delivered":
        assert stored == 1
        assert effects.security == []
        template = model.get(payload["template"], payload["version"])
        assert model.validate(template, payload["fields"]) is not None
    else:
        assert stmt.receipt == "refused"
        assert stored == 0
        assert stmt.reason
        assert len(effects.security) == 1


def test_the_valid_payload_is_taken() -> None:
    outcome, _effects, stored, sent = asyncio.run(_apply(_valid()))
    assert (outcome, stored, len(sent)) == ("applied", 1, 1)


def test_a_role_operator_or_recipient_list_no_column_holds_is_refused_as_malformed() -> None:
    """What the notices table keeps of the sender's claims must fit it on every store
    (PostgreSQL refuses a 40-character role where SQLite would keep it)."""
    others = [f"P{i}-GS" for i in range(16)]
    for key, value in [("role", "r" * 40), ("role", "Ops DO"), ("operator", "o" * 33),
                       ("operator", "ops\x00"), ("role", 7),
                       ("recipients", [ME, *others]), ("recipients", [ME, ME]),
                       ("recipients", [ME, "not a party"]),
                       # a time no calendar writes: the CAP export and every page that
                       # shows it would fail on it
                       ("sent_at", 2**53 - 1), ("sent_at", -1),
                       # a template id no template has: its refusal would carry it back
                       # (and into the security log) whole
                       ("template", "t" * 5000), ("template", "Link Test")]:
        outcome, _effects, stored, sent = asyncio.run(_apply({**_valid(), key: value}))
        assert (outcome, stored, sent) == ("malformed", 0, []), (key, value)
