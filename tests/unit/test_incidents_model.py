"""Incidents, pure parts: signed entries, the timeline's order, the membership state
machine, the relay rules and the JSON Lines round trip."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from hotline.errors import HotlineError
from hotline.incidents.export import from_jsonl, to_jsonl
from hotline.incidents.model import (
    MAX_MEMBERS,
    Membership,
    MembershipError,
    may_carry,
    relay_targets,
    timeline,
)
from hotline.protocol.incident import BadEntry, Entry, sign_entry, verify_entry
from hotline.protocol.keys import PartyKeys

KEYS = {p: PartyKeys.generate() for p in ("PL-GS", "US-JS", "UA-GS")}
INCIDENT = "a" * 32


def _entry(author: str, n: int, at: int, text: str = "x", **more: object) -> Entry:
    return sign_entry(keys=KEYS[author], incident=INCIDENT, id=f"{n:08x}{at:016x}"[:24]
                      + f"{hash(author) & 0xffffffff:08x}", author=author, n=n, at=at,
                      type="fact", text=text, **more)


def test_an_entry_verifies_with_its_authors_key_only() -> None:
    e = _entry("US-JS", 1, 1000, confidence="moderate", source="PL-GS")
    assert verify_entry(e.raw, KEYS["US-JS"].public.sign_bytes) == e
    with pytest.raises(BadEntry, match="signed with key"):
        verify_entry(e.raw, KEYS["UA-GS"].public.sign_bytes)
    tampered = e.raw.replace('"text":"x"', '"text":"y"')
    with pytest.raises(BadEntry, match="does not verify"):
        verify_entry(tampered, KEYS["US-JS"].public.sign_bytes)


@pytest.mark.parametrize(("fields", "field"), [
    ({"type": "rumour"}, "type"), ({"confidence": "certain"}, "confidence"),
    ({"text": ""}, "text"), ({"source": "us"}, "source"), ({"refs": ["nope"]}, "refs"),
    ({"corrects": "b" * 32}, "corrects"), ({"title": "t"}, "title")])
def test_a_bad_field_is_refused_naming_it(fields: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"incident": INCIDENT, "id": "c" * 32, "author": "US-JS",
                               "n": 1, "at": 1, "type": "fact", "text": "x"}
    with pytest.raises(BadEntry) as caught:
        sign_entry(keys=KEYS["US-JS"], **{**base, **fields})
    assert caught.value.field == field
    assert caught.value.error_id == "bad-incident-entry"


entries = st.lists(st.tuples(st.sampled_from(sorted(KEYS)), st.integers(0, 5)),
                   min_size=1, max_size=12)


@settings(max_examples=30, deadline=None)
@given(entries, st.randoms(use_true_random=False))
def test_every_arrival_order_gives_the_same_timeline(spec: list[tuple[str, int]],
                                                     rnd: random.Random) -> None:
    counters: dict[str, int] = {}
    made = []
    for author, at in spec:
        counters[author] = counters.get(author, 0) + 1
        made.append(_entry(author, counters[author], at))
    shuffled = list(made)
    rnd.shuffle(shuffled)
    ordered = timeline(shuffled)
    assert ordered == timeline(made)
    keys = [e.order_key() for e in ordered]
    assert keys == sorted(keys)  # signed time, then author, then the author's number


class MembershipMachine(RuleBasedStateMachine):
    """Random invitations and acceptances by anyone, checked against the rules."""

    parties = st.sampled_from([f"P{i}" for i in range(20)])

    def __init__(self) -> None:
        super().__init__()
        self.m = Membership.opened("P0")
        self.accepted: set[str] = {"P0"}

    @rule(by=parties, party=parties)
    def invite(self, by: str, party: str) -> None:
        before = self.m
        try:
            self.m = self.m.invite(by, party)
        except MembershipError:
            assert by != "P0" or party in before.members or \
                len(before.members | before.invited) >= MAX_MEMBERS
            assert self.m == before
            return
        assert by == "P0"
        assert party in self.m.invited

    @rule(party=parties)
    def accept(self, party: str) -> None:
        before = self.m
        try:
            self.m = self.m.accept(party)
        except MembershipError:
            assert party not in before.invited
            assert self.m == before
            return
        assert party in before.invited
        self.accepted.add(party)

    @invariant()
    def rules_hold(self) -> None:
        assert self.m.opener in self.m.members
        assert not self.m.members & self.m.invited
        assert set(self.m.members) == self.accepted  # only acceptance makes a member
        assert len(self.m.members | self.m.invited) <= MAX_MEMBERS


TestMembership = MembershipMachine.TestCase
TestMembership.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


def test_only_members_send_and_only_the_opener_relays() -> None:
    m = Membership("PL-GS", frozenset({"PL-GS", "US-JS", "UA-GS"}))
    assert may_carry(m, "UA-GS", "US-JS", "US-JS") is None
    assert may_carry(m, "UA-GS", "PL-GS", "US-JS") is None
    assert "not the incident's opener" in str(may_carry(m, "PL-GS", "US-JS", "UA-GS"))
    assert "not a member" in str(may_carry(m, "PL-GS", "RU-GS", "RU-GS"))
    assert "this node is not a member" in str(may_carry(m, "RU-GS", "PL-GS", "PL-GS"))
    assert relay_targets(m, "US-JS", ["PL-GS"]) == ["UA-GS"]
    assert relay_targets(m, "US-JS", ["PL-GS", "UA-GS"]) == []


def test_jsonl_round_trips_and_refuses_a_line_that_disagrees_with_its_statement() -> None:
    e = _entry("US-JS", 1, 5, text="claim")
    row = {**{k: v for k, v in e.as_dict().items()}, "kid": e.kid,
           "received_at": 9, "via": "PL-GS", "corrected_by": [], "statement": e.raw}
    inc = {"id": INCIDENT, "title": "t", "opener": "PL-GS", "state": "member",
           "members": ["PL-GS", "US-JS"], "invited": [], "created_at": 1, "joined_at": 1,
           "entries": [row]}
    assert from_jsonl(to_jsonl(inc)) == inc
    with pytest.raises(HotlineError, match="line 2: field 'text'"):
        from_jsonl(to_jsonl(inc).replace('"text": "claim"', '"text": "other"'))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_change_to_a_signed_entry_fails_verification(data: st.DataObject) -> None:
    """Whatever field of a signed entry is changed (to another value of a valid shape),
    the author's key no longer verifies it: a relay cannot alter what it carries."""
    from hotline.protocol import canonical

    e = _entry("US-JS", 3, 1_700_000_000_000, text="claim", confidence="low",
               source="US-JS")
    obj = canonical.decode(e.raw.encode())
    assert isinstance(obj, dict)
    changes = {"text": st.text(min_size=1, max_size=20).filter(
                   lambda t: t.strip() and t != "claim" and "\x00" not in t
                   and all(ord(c) >= 32 for c in t)),
               "at": st.integers(0, 2**52).filter(lambda v: v != e.at),
               "n": st.integers(1, 2**31 - 1).filter(lambda v: v != 3),
               "confidence": st.sampled_from(["moderate", "high", None]),
               "author": st.sampled_from(["PL-GS", "UA-GS"]),
               "source": st.sampled_from(["PL-GS", "UA-GS", None])}
    name = data.draw(st.sampled_from(sorted(changes)))
    obj[name] = data.draw(changes[name])
    forged = canonical.encode(obj).decode()
    with pytest.raises(BadEntry):
        verify_entry(forged, KEYS["US-JS"].public.sign_bytes)
