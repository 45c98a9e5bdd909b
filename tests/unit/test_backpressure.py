"""The sender's side of admission control: a 429 is read as back-pressure (wait the
peer's Retry-After, count no failure), not as a dead line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hotline.delivery import sender as sender_module
from hotline.delivery.backoff import Backoff
from hotline.delivery.sender import PeerSender, _rate_limited
from hotline.delivery.transport import (
    BatchAnswer,
    TransportError,
    parse_answer,
    parse_protocol,
    parse_retry_after,
)
from hotline.protocol.lanes import PROTOCOL


class VirtualClock:
    def __init__(self) -> None:
        self.mono = 50.0

    def monotonic(self) -> float:
        return self.mono

    def now_ms(self) -> int:
        return int(self.mono * 1000)


class FakeLink:
    party = "BB-TWO"


def _sender(clock: VirtualClock) -> PeerSender:
    fake: Any = None  # _throttled touches only the clock, the link's name and the backoff
    return PeerSender(me="AA-ONE", link=FakeLink(), db=fake,  # type: ignore[arg-type]
                      transport=fake, clock=clock, backoff=Backoff(0.1, 30.0),
                      batch_size=10, batch_bytes=1 << 20, reseal=fake, reseal_after_ms=60_000)


@pytest.mark.parametrize(("header", "expected"), [("3", 3.0), (" 12 ", 12.0), (None, None),
                                                  ("-1", None), ("1.5", None), ("soon", None),
                                                  ("Wed, 21 Oct 2015 07:28:00 GMT", None),
                                                  ("٣", None)])
def test_retry_after_is_delay_seconds_only(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_a_whole_request_refused_429_is_an_answer_without_results() -> None:
    body = json.dumps({"error": "rate-limited", "message": "x", "retry_after": 2}).encode()
    answer = parse_answer("http://b", 429, body, 5, "2")
    assert (answer.status, answer.results, answer.retry_after_s) == (429, [], 2.0)
    # any other status still needs one result per envelope
    with pytest.raises(TransportError):
        parse_answer("http://b", 503, body, 5, "2")


def test_the_first_undelivered_result_decides_whether_it_is_back_pressure() -> None:
    limited = {"error": "rate-limited", "message": "x", "retry_after": 4}
    answer = BatchAnswer(429, [{"receipt": "r"}, limited, limited], 9.0)
    assert _rate_limited(answer, 1) == 4.0
    assert _rate_limited(answer, 0) is False      # a receipt that did not verify: failure
    other = BatchAnswer(409, [{"error": "sequence-reused"}, limited], None)
    assert _rate_limited(other, 0) is False
    no_wait = BatchAnswer(429, [{"error": "rate-limited", "retry_after": "x"}], 7.0)
    assert _rate_limited(no_wait, 0) == 7.0       # the header then


def test_back_pressure_is_not_a_failure_until_nothing_gets_through() -> None:
    clock = VirtualClock()
    sender = _sender(clock)
    sender._backoff.failures = 3
    assert sender._throttled(2.0, progressed=True) is False
    assert sender._pause_s == 2.0
    assert sender.health.failing_since_mono is None       # some got through: line works
    assert sender._backoff.failures == 3                  # the backoff does not grow
    assert sender.health.unreachable_since is None
    assert sender.health.throttled == 1
    assert "slow down" in (sender.health.last_error or "")
    clock.mono += 5
    sender._throttled(None, progressed=False)             # nothing got through
    assert sender.health.failing_since_mono == 55.0       # counts towards line-down
    assert sender._pause_s == sender._backoff.ceiling()
    sender._throttled(10**6, progressed=False)            # an absurd wait is capped
    assert sender._pause_s == sender_module.MAX_PAUSE_S
    sender._throttled(0.0, progressed=False)              # never a busy loop
    assert sender._pause_s == 0.1


@pytest.mark.parametrize("version", [3, 2**70, 10**30])
def test_a_peer_naming_a_protocol_above_ours_is_spoken_to_in_ours(version: int) -> None:
    """A garbage or future version is capped at ours: an absurd number must not reach
    the links table's integer column (it would fail the bookkeeping of every batch)."""
    assert parse_protocol(200, json.dumps({"protocol": version}).encode()) == PROTOCOL
    answer = parse_answer("http://peer", 200, json.dumps(
        {"results": [{"receipt": "r"}], "protocol": version}).encode(), 1, None)
    assert answer.protocol == PROTOCOL
