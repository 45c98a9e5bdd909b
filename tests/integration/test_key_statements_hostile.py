"""Key statements from a hostile peer on the line: each refused with one security-log
line, nothing of it kept, and the line goes on (docs/protocol.md §6.2)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hotline.protocol import canonical
from hotline.protocol.keyhistory import make_certificate, make_revocation, make_rotation
from hotline.protocol.keys import PartyKeys
from tests.integration.test_key_rotation import history, texts
from tests.nodes import NodeProcess, link, wait_until
from tests.peers import send_sealed

Make = Callable[..., NodeProcess]


def _statement(obj: dict[str, Any]) -> dict[str, str]:
    return {"statement": canonical.encode(obj).decode()}


def test_forged_replayed_and_foreign_key_statements_are_refused(
        make_sqlite_node: Make) -> None:
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    ru.start()  # US is played by the test, with its real keys
    keys = us.private_keys()
    now = int(time.time() * 1000)
    thief, other = PartyKeys.generate(), PartyKeys.generate()
    # signed by the new key only (the old signature is the thief's)
    only_new = make_rotation("US-JS", thief, other, now) | {"old": keys.public.key_id}
    # a revocation certificate of another party's key
    foreign = make_revocation("US-JS", make_certificate("RU-GS", ru.private_keys(), now),
                              other, now, now)
    # RU's own key "rotated" by US
    not_its_own = make_rotation("RU-GS", ru.private_keys(), other, now)
    bad = [("key.rotate", only_new), ("key.revoke", foreign), ("key.rotate", not_its_own),
           ("key.rotate", {"v": 1})]
    lines = len(ru.log_lines("refused key."))
    seq = 1
    for type_, statement in bad:
        send_sealed(ru, "US-JS", keys, seq, type_, _statement(statement))
        seq += 1
    send_sealed(ru, "US-JS", keys, seq, "message", {"text": "still here"})
    wait_until(lambda: texts(ru, "US-JS") == ["still here"], 30, what="the line to go on")
    wait_until(lambda: len(ru.log_lines("refused key.")) >= lines + len(bad), 10,
               what="the refusals")
    assert len(ru.log_lines("refused key.")) == lines + len(bad)
    assert history(ru, "US-JS") == []            # nothing of them kept
    assert ru.query("SELECT idx FROM log_entries WHERE kind LIKE 'key-%'") == []
    assert ru.query("SELECT kid FROM links WHERE party = 'US-JS'")[0].kid == \
        keys.public.key_id
    assert [a for a in ru.status()["alarms"] if a["kind"].startswith("key-")] == []

    # a real rotation is taken once; the same statement replayed is refused
    fresh = PartyKeys.generate()
    real = make_rotation("US-JS", keys, fresh, int(time.time() * 1000))
    seq += 1
    send_sealed(ru, "US-JS", keys, seq, "key.rotate", _statement(real))
    wait_until(lambda: len(history(ru, "US-JS")) == 2, 30, what="the real rotation")
    seq += 1
    send_sealed(ru, "US-JS", fresh, seq, "key.rotate", _statement(real))
    seq += 1
    send_sealed(ru, "US-JS", fresh, seq, "message", {"text": "under the new key"})
    wait_until(lambda: texts(ru, "US-JS")[-1:] == ["under the new key"], 30,
               what="the message under the new key")
    assert len(ru.log_lines("refused key.")) == lines + len(bad) + 1
    assert len(history(ru, "US-JS")) == 2
    assert len(ru.query("SELECT idx FROM log_entries WHERE kind = 'key-rotation'")) == 1
