"""The cache of verified call statements gives the same answers as verifying afresh:
a good statement verifies, a changed one or another key does not, whatever was asked
before, and the cache stays within its size."""

from __future__ import annotations

from hotline.calls.service import VerifiedStatements
from hotline.protocol.keys import PartyKeys
from hotline.protocol.statement import sign_call_state

KEYS, OTHER = PartyKeys.generate(), PartyKeys.generate()
CALL = "c" * 32


def _statement(n: int) -> str:
    return sign_call_state(call=CALL, signer="RU-GS", n=n, state="ringing", at=1000 + n,
                           caller="nmcc-do@US-JS", callee="cgs@RU-GS", keys=KEYS,
                           role="cgs").raw


def test_same_answers_as_verifying_afresh() -> None:
    cache = VerifiedStatements(size=4)
    raw = _statement(1)
    for _ in range(2):  # the second round comes from the cache
        good = cache.get(raw, "RU-GS", KEYS.public, CALL)
        assert good is not None
        assert good.n == 1
        assert cache.get(raw, "RU-GS", OTHER.public, CALL) is None  # another key
        assert cache.get(raw, "UA-GS", KEYS.public, CALL) is None  # another signer
        assert cache.get(raw, "RU-GS", KEYS.public, "d" * 32) is None  # another call
        assert cache.get(raw.replace("ringing", "answered"), "RU-GS", KEYS.public,
                         CALL) is None


def test_bounded_oldest_out() -> None:
    cache = VerifiedStatements(size=3)
    for n in range(10):
        assert cache.get(_statement(n), "RU-GS", KEYS.public, CALL) is not None
    assert len(cache._outcomes) == 3
