"""Key history: rotation and revocation statements, and which key a receiver accepts when."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.protocol.keyhistory import (
    BAD_KEY_STATEMENT,
    KEY_BACKDATED,
    KEY_ID_REUSED,
    KEY_RETIRED,
    KEY_REVOKED,
    UNKNOWN_KEY,
    KeyHistory,
    KeyStatementError,
    make_certificate,
    make_revocation,
    make_rotation,
    parse_revocation,
    parse_rotation,
)
from hotline.protocol.keys import PartyKeys

PARTY = "US-JS"
T0 = 1_700_000_000_000
GRACE = 60_000
POOL = [PartyKeys.generate() for _ in range(8)]


def _history(keys: PartyKeys = POOL[0]) -> KeyHistory:
    return KeyHistory.first(PARTY, keys.public, T0)


def test_a_rotation_retires_the_old_key_after_the_grace_measured_on_the_receivers_clock(
        ) -> None:
    old, new = POOL[0], POOL[1]
    rotation = parse_rotation(make_rotation(PARTY, old, new, at_ms=T0 + 10))
    # the receiver accepts it late by its own clock: the grace counts from then
    h = _history().rotate(rotation, now=T0 + 5_000)
    assert h.current is not None
    assert h.current.kid == new.public.key_id
    kid = old.public.key_id
    assert h.check(kid, ts=T0 + 9, now=T0 + 5_000 + GRACE - 1, grace_ms=GRACE) is None
    assert h.check(kid, ts=T0 + 10, now=T0 + 5_001, grace_ms=GRACE) is None
    assert h.check(kid, ts=T0 + 9, now=T0 + 5_000 + GRACE, grace_ms=GRACE) == KEY_RETIRED
    # a time after the rotation's own, under the old key, is back-dated use: at once
    assert h.check(kid, ts=T0 + 11, now=T0 + 5_001, grace_ms=GRACE) == KEY_BACKDATED
    assert h.check(new.public.key_id, ts=T0, now=T0 + 10**9, grace_ms=GRACE) is None
    assert h.check("00" * 8, ts=T0, now=T0, grace_ms=GRACE) == UNKNOWN_KEY


def test_a_rotation_must_be_signed_by_the_current_key_and_the_new_one() -> None:
    forged = make_rotation(PARTY, POOL[2], POOL[1], at_ms=T0)  # old key is not PARTY's
    forged["old"] = POOL[0].public.key_id
    with pytest.raises(KeyStatementError) as exc:  # the new key's signature covers "old"
        parse_rotation(forged)
    assert exc.value.error_id == BAD_KEY_STATEMENT
    spliced = make_rotation(PARTY, POOL[0], POOL[1], at_ms=T0)
    spliced["sig_old"] = make_rotation(PARTY, POOL[2], POOL[1], at_ms=T0)["sig_old"]
    with pytest.raises(KeyStatementError) as exc:
        _history().rotate(parse_rotation(spliced), now=T0)
    assert exc.value.error_id == BAD_KEY_STATEMENT
    tampered = make_rotation(PARTY, POOL[0], POOL[1], at_ms=T0)
    tampered["at"] = T0 + 1
    with pytest.raises(KeyStatementError):
        parse_rotation(tampered)


def test_a_stale_rotation_and_a_reused_key_id_are_refused() -> None:
    h = _history().rotate(parse_rotation(make_rotation(PARTY, POOL[0], POOL[1], T0)), T0)
    with pytest.raises(KeyStatementError) as exc:  # signed by the retired key
        h.rotate(parse_rotation(make_rotation(PARTY, POOL[0], POOL[2], T0 + 1)), T0 + 1)
    assert exc.value.error_id == KEY_RETIRED
    with pytest.raises(KeyStatementError) as exc:  # back to a key it had
        h.rotate(parse_rotation(make_rotation(PARTY, POOL[1], POOL[0], T0 + 1)), T0 + 1)
    assert exc.value.error_id == KEY_ID_REUSED


def test_a_revocation_refuses_the_key_at_once_and_undoes_a_thiefs_rotation() -> None:
    owner, thief_key, fresh = POOL[0], POOL[3], POOL[4]
    cert = make_certificate(PARTY, owner, made_at_ms=T0)
    # the thief rotates the stolen key to one of its own ...
    h = _history().rotate(parse_rotation(make_rotation(PARTY, owner, thief_key, T0 + 500)),
                          T0 + 600)
    # ... the owner revokes the stolen key from before that, naming a fresh key
    revocation = parse_revocation(make_revocation(PARTY, cert, fresh, from_ms=T0 + 100,
                                                  at_ms=T0 + 700))
    after = h.revoke(revocation, now=T0 + 800)
    assert after.current is not None
    assert after.current.kid == fresh.public.key_id
    for kid in (owner.public.key_id, thief_key.public.key_id):
        assert after.check(kid, ts=T0, now=T0 + 800, grace_ms=GRACE) == KEY_REVOKED
    assert after.check(fresh.public.key_id, ts=T0 + 900, now=T0 + 900, grace_ms=GRACE) is None
    # once revoked, nothing the revoked key signs applies any more
    with pytest.raises(KeyStatementError) as exc:
        after.rotate(parse_rotation(make_rotation(PARTY, owner, POOL[5], T0 + 900)), T0 + 900)
    assert exc.value.error_id in (KEY_REVOKED, KEY_RETIRED)


def test_a_revocation_needs_a_certificate_signed_by_the_revoked_key() -> None:
    cert = make_certificate(PARTY, POOL[2], made_at_ms=T0)  # someone else's key
    cert["kid"] = POOL[0].public.key_id
    revocation = make_revocation(PARTY, cert, POOL[4], from_ms=T0, at_ms=T0)
    with pytest.raises(KeyStatementError) as exc:
        _history().revoke(parse_revocation(revocation), now=T0)
    assert exc.value.error_id == BAD_KEY_STATEMENT
    good = make_revocation(PARTY, make_certificate(PARTY, POOL[0], T0), POOL[4], T0, T0)
    swapped: dict[str, Any] = copy.deepcopy(good)
    swapped["from"] = T0 + 1  # covered by the current key's signature
    with pytest.raises(KeyStatementError):
        parse_revocation(swapped)


# -- the rules as a property: any sequence of rotations and revocations ---------------
class _Model:
    """An independent statement of the rule, kept as plain facts per key."""

    def __init__(self) -> None:
        self.facts: dict[str, dict[str, int | None]] = {}
        self.by: dict[str, str | None] = {}
        self.order: list[str] = []

    def add(self, kid: str, now: int, by: str | None = None) -> None:
        self.facts[kid] = {"retired": None, "rotated": None, "revoked": None,
                           "introduced": now if by is not None else None}
        self.by[kid] = by
        self.order.append(kid)

    def doomed(self, kid: str, from_ms: int) -> list[str]:
        """``kid`` and its successors by rotations signed at or after ``from_ms``."""
        out = [kid]
        for k in self.order:
            introduced = self.facts[k]["introduced"]
            if self.by[k] in out and introduced is not None and introduced >= from_ms:
                out.append(k)
        return out

    def ok(self, kid: str, ts: int, now: int) -> bool:
        f = self.facts.get(kid)
        if f is None or f["revoked"] is not None:
            return False
        if f["retired"] is not None:
            assert f["rotated"] is not None
            return ts <= f["rotated"] and now < f["retired"] + GRACE
        return True


steps = st.lists(st.tuples(st.sampled_from(["rotate", "revoke", "revoke-retired", "noop"]),
                           st.integers(0, 50_000)), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(steps=steps, probe_ts=st.integers(-100_000, 400_000),
       probe_later=st.integers(0, 200_000))
def test_any_sequence_of_rotations_and_revocations_follows_the_rule(
        steps: list[tuple[str, int]], probe_ts: int, probe_later: int) -> None:
    h = _history()
    model = _Model()
    model.add(POOL[0].public.key_id, T0)
    keys = {POOL[0].public.key_id: POOL[0]}
    current = POOL[0]
    fresh = iter(POOL[1:])
    now = T0
    for action, gap in steps:
        now += gap
        if action == "rotate":
            new = next(fresh, None)
            if new is None:
                break
            h = h.rotate(parse_rotation(make_rotation(PARTY, current, new, at_ms=now)), now)
            model.facts[current.public.key_id].update(retired=now, rotated=now)
            model.add(new.public.key_id, now, by=current.public.key_id)
            keys[new.public.key_id], current = new, new
        elif action == "revoke":
            new = next(fresh, None)
            if new is None:
                break
            cert = make_certificate(PARTY, current, made_at_ms=T0)
            h = h.revoke(parse_revocation(make_revocation(PARTY, cert, new, from_ms=now,
                                                          at_ms=now)), now)
            model.facts[current.public.key_id]["revoked"] = now
            model.add(new.public.key_id, now)
            keys[new.public.key_id], current = new, new
        elif action == "revoke-retired":
            # a key rotated out earlier is found compromised: revoked, the current stays
            retired = [k for k in model.order if model.facts[k]["retired"] is not None
                       and model.facts[k]["revoked"] is None]
            if retired:
                # from the time of its own rotation or earlier, the successors it led to
                # (the current key among them) are revoked too, and a fresh key named
                from_ms = now - gap
                doomed = model.doomed(retired[0], from_ms)
                named = current
                if current.public.key_id in doomed:
                    fresh_key = next(fresh, None)
                    if fresh_key is None:
                        break
                    named = fresh_key
                cert = make_certificate(PARTY, keys[retired[0]], made_at_ms=T0)
                h = h.revoke(parse_revocation(make_revocation(PARTY, cert, named,
                                                              from_ms=from_ms, at_ms=now)), now)
                for kid in doomed:
                    if model.facts[kid]["revoked"] is None:
                        model.facts[kid]["revoked"] = now
                if named is not current:
                    model.add(named.public.key_id, now)
                    keys[named.public.key_id], current = named, named
        assert h.current is not None
        assert h.current.kid == current.public.key_id
    # no key id twice, and every announced key is judged exactly as the model says
    assert len({r.kid for r in h.records}) == len(h.records)
    at = now + probe_later
    for kid in model.order:
        expected = model.ok(kid, T0 + probe_ts, at)
        assert (h.check(kid, T0 + probe_ts, at, GRACE) is None) == expected, kid
    assert set(h.usable(at, GRACE)) <= set(model.order)
