"""CAP 1.2 and JSON Lines exports of notices, and the notice receipt statement."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from hotline.exports.cap import CAP_NS, cap_alert, notice_alert
from hotline.exports.jsonl import read_jsonl, to_jsonl
from hotline.forms import model
from hotline.protocol.keys import PartyKeys
from hotline.protocol.notice import sign_notice_receipt, verify_notice_receipt
from hotline.protocol.statement import BadStatement
from tests.forms_scenario import PRZEWODOW, PRZEWODOW_LANG

XSD = etree.XMLSchema(etree.parse(str(Path(__file__).resolve().parents[1] / "data" /
                                      "CAP-v1.2.xsd")))
NS = {"cap": CAP_NS}
SENT = 1668523500000  # 2022-11-15T14:45:00Z


def _notice(**over: Any) -> dict[str, Any]:
    t = model.latest("incident-notification")
    return {"id": "a" * 32, "party": "PL-GS", "template": t.id, "version": t.version,
            "lang": PRZEWODOW_LANG, "fields": model.validate(t, PRZEWODOW),
            "recipients": ["UA-GS", "US-JS"], "role": "ops-do", "operator": None,
            "sent_at": SENT, "received_at": None,
            "receipts": [{"party": "US-JS", "receipt": "delivered", "operator": None,
                          "role": None, "reason": None, "at": SENT + 40,
                          "verified": True}], **over}


def test_the_scenario_notification_is_valid_cap_with_one_info_per_language() -> None:
    doc = etree.fromstring(notice_alert(_notice()))
    XSD.assertValid(doc)
    infos = doc.findall("cap:info", NS)
    assert [i.findtext("cap:language", namespaces=NS) for i in infos] == list(
        model.LANGUAGES)
    times = [doc.findtext("cap:sent", namespaces=NS),
             *(i.findtext("cap:onset", namespaces=NS) for i in infos)]
    assert times[0] == "2022-11-15T14:45:00+00:00"
    assert set(times[1:]) == {"2022-11-15T15:40:00+01:00"}
    assert all(re.fullmatch(r".*[+-]\d\d:\d\d", t or "") and "Z" not in (t or "")
               for t in times)
    en = infos[0]
    params = {p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value",
                                                                       namespaces=NS)
              for p in en.findall("cap:parameter", NS)}
    assert params["killed"] == "2"
    assert params["confidence"] == "high"
    assert en.findtext("cap:area/cap:circle", namespaces=NS) == "50.47,23.93 0"
    assert en.findtext("cap:area/cap:areaDesc", namespaces=NS) == "Przewodów"
    assert [en.findtext(f"cap:{k}", namespaces=NS) for k in
            ("urgency", "severity", "certainty")] == ["Immediate", "Severe", "Observed"]
    assert "Pilność: Natychmiastowa" in infos[4].findtext("cap:description", namespaces=NS)
    assert doc.findtext("cap:addresses", namespaces=NS) == "PL-GS UA-GS US-JS"


def test_every_template_exports_valid_cap() -> None:
    from tests.unit.test_forms import _valid

    notices = [_notice(id=f"{i:032x}", template=t.id, version=t.version,
                       fields=model.validate(t, _valid(t)))
               for i, t in enumerate(model.templates().values())]
    doc = etree.fromstring(cap_alert(notices, identifier="b" * 32, sender="PL-GS",
                                     sent_ms=SENT, note="incident export"))
    XSD.assertValid(doc)
    assert len(doc.findall("cap:info", NS)) == len(notices) * len(model.LANGUAGES)


def test_a_broken_alert_fails_the_schema() -> None:
    """The XSD check is a real one: a ``Z`` time is refused."""
    raw = notice_alert(_notice()).replace(b"2022-11-15T14:45:00+00:00",
                                          b"2022-11-15T14:45:00Z")
    assert not XSD.validate(etree.fromstring(raw))


def test_jsonl_round_trips() -> None:
    items = [_notice(), _notice(id="c" * 32, lang="uk")]
    text = to_jsonl(items)
    assert text.count("\n") == 2
    assert "Przewodów" in text
    assert read_jsonl(text) == items


@given(st.lists(st.dictionaries(st.text(max_size=8), st.one_of(
    st.integers(), st.text(), st.booleans(), st.none()), max_size=4), max_size=5))
def test_jsonl_round_trips_any_objects(items: list[dict[str, Any]]) -> None:
    assert read_jsonl(to_jsonl(items)) == items


def test_jsonl_refuses_a_line_that_is_not_an_object() -> None:
    with pytest.raises(Exception, match="line 2"):
        read_jsonl('{"a": 1}\n[1]\n')


def test_notice_receipts_are_signed_and_verified() -> None:
    keys, other = PartyKeys.generate(), PartyKeys.generate()
    stmt = sign_notice_receipt(notice="a" * 32, author="PL-GS", signer="US-JS",
                               receipt="refused", at=SENT, keys=keys,
                               reason="unknown-template: no such template")
    back = verify_notice_receipt(stmt.raw, signer="US-JS", public=keys.public)
    assert (back.receipt, back.reason, back.author) == ("refused",
                                                       "unknown-template: no such template",
                                                       "PL-GS")
    with pytest.raises(BadStatement):
        verify_notice_receipt(stmt.raw, signer="US-JS", public=other.public)
    with pytest.raises(BadStatement):
        verify_notice_receipt(stmt.raw.replace("refused", "delivered"), signer="US-JS",
                              public=keys.public)


@pytest.mark.parametrize(("key", "value"), [("role", "r" * 33), ("operator", "O P"),
                                            ("reason", "x" * 2001), ("notice", "z" * 40),
                                            ("author", "not a party"), ("at", -1),
                                            ("at", 2**53 - 1),
                                            # printed by `notification show` on a terminal
                                            ("reason", "bad \x1b[2J\x1b[1;1H fake"),
                                            ("reason", "field \u202e'dellik'")])
def test_a_notice_receipt_whose_claims_fit_no_column_does_not_verify(key: str,
                                                                    value: Any) -> None:
    keys = PartyKeys.generate()
    args: dict[str, Any] = {"notice": "a" * 32, "author": "PL-GS", "signer": "US-JS",
                            "receipt": "read", "at": SENT, "keys": keys,
                            "operator": "jane", "role": "ops-do", "reason": None}
    stmt = sign_notice_receipt(**{**args, key: value})
    with pytest.raises(BadStatement):
        verify_notice_receipt(stmt.raw, signer="US-JS", public=keys.public)
    verify_notice_receipt(sign_notice_receipt(**args).raw, signer="US-JS",
                          public=keys.public)
