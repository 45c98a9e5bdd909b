"""Admission control on virtual time: the token bucket's bound, lanes, prefixes, the
pre-verification check, bounded memory and the rate-limited security log."""

from __future__ import annotations

import logging
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.federation import admission as adm
from hotline.federation.admission import (
    Admission,
    Budget,
    ThrottledLog,
    TokenBucket,
    claimed,
    lane_of,
    request_lane,
    retry_after_seconds,
)
from hotline.nodedir.config import AdmissionConfig, PeerLimits


class VirtualClock:
    def __init__(self) -> None:
        self.mono = 1000.0

    def monotonic(self) -> float:
        return self.mono

    def now_ms(self) -> int:
        return int(self.mono * 1000)


steps = st.lists(st.tuples(st.floats(0, 5, allow_nan=False),   # seconds since the last
                           st.integers(1, 50)),                 # tokens asked for
                 min_size=1, max_size=200)


@settings(max_examples=300, deadline=None)
@given(rate=st.floats(0.1, 1000), burst=st.integers(1, 100), requests=steps)
def test_bucket_never_admits_more_than_rate_times_t_plus_burst(
        rate: float, burst: int, requests: list[tuple[float, int]]) -> None:
    """Over every window [t_i, t_j] of the run, what was handed out is at most
    ``burst + rate * (t_j - t_i)`` (tiny float slack)."""
    bucket = TokenBucket(rate, burst)
    now = 0.0
    admitted: list[tuple[float, int]] = []
    for dt, amount in requests:
        now += dt
        if bucket.wait(amount, now) == 0:
            bucket.take(amount)
            admitted.append((now, amount))
    for i in range(len(admitted)):
        total = 0
        for j in range(i, len(admitted)):
            total += admitted[j][1]
            window = admitted[j][0] - admitted[i][0]
            assert total <= burst + rate * window + 1e-6 * (1 + total)


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(0.1, 1000), burst=st.integers(1, 100), requests=steps)
def test_bucket_admits_after_the_wait_it_names(
        rate: float, burst: int, requests: list[tuple[float, int]]) -> None:
    """A refusal's wait is honest: after it, the same amount is admitted (if it can ever
    be: at most the burst), and never sooner than the bound allows."""
    bucket = TokenBucket(rate, burst)
    now = 0.0
    for dt, amount in requests:
        now += dt
        wait = bucket.wait(amount, now)
        if amount > burst:
            assert wait == math.inf
            continue
        if wait > 0:
            now += wait * (1 + 1e-9) + 1e-9
            assert bucket.wait(amount, now) == 0
        bucket.take(amount)


def test_bucket_ignores_a_clock_read_that_goes_backwards() -> None:
    bucket = TokenBucket(10, 10)
    assert bucket.wait(10, 0.0) == 0
    bucket.take(10)
    assert bucket.wait(1, 5.0) == 0  # 5 s from the first read: full again
    bucket.take(10)
    assert bucket.wait(1, 4.0) > 0   # earlier than the last read: nothing added


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0), (-1, 1), (math.inf, 1),
                                             (1, math.nan)])
def test_bucket_refuses_nonsense(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate, burst)


def test_budget_charges_both_buckets_or_neither() -> None:
    budget = Budget.of(10, 10, 100, 100)
    assert budget.try_take(1, 150, 0.0) > 0      # bytes over: nothing charged
    assert budget.envelopes.tokens == 10
    assert budget.try_take(10, 100, 0.0) == 0
    wait = budget.try_take(1, 1, 0.0)
    assert wait == pytest.approx(0.1)             # one envelope at 10/s


@pytest.mark.parametrize(("wait", "expected"), [(0.001, 1), (1.0, 1), (1.01, 2),
                                                (1e9, adm.MAX_RETRY_AFTER_S),
                                                (math.inf, adm.MAX_RETRY_AFTER_S)])
def test_retry_after_is_whole_seconds_rounded_up(wait: float, expected: int) -> None:
    assert retry_after_seconds(wait) == expected


def test_lanes() -> None:
    for control in ("call.place", "call.state", "call.cancel", "conv.receipt", "desks"):
        assert lane_of(control) == "control"
    for bulk in ("message", "conv.message", "conv.invite", "anything.else"):
        assert lane_of(bulk) == "bulk"


def _config(**peer: float) -> AdmissionConfig:
    limits = PeerLimits(envelopes_per_second=10, envelopes_burst=5, bytes_burst=4096,
                        control_envelopes_per_second=1, control_envelopes_burst=2,
                        control_bytes_burst=4096, **peer)
    return AdmissionConfig(default=limits, peers={"XX-BIG": limits.model_copy(
        update={"envelopes_burst": 50})})


def test_a_lane_admits_a_prefix_and_control_has_its_own_budget() -> None:
    clock = VirtualClock()
    admission = Admission(_config(), clock)
    batch = admission.batch()
    verdicts = [batch.admit("AA-ONE", t, 100) for t in
                ["message"] * 5 + ["call.state", "message", "conv.receipt", "call.place"]]
    # five messages fit the burst; the sixth is refused, and so is every later message;
    # control traffic passes from its own budget (burst 2), then stops too
    assert verdicts[:5] == [None] * 5
    assert (verdicts[5], verdicts[7]) == (None, None)
    assert (verdicts[6], verdicts[8]) == (1, 1)
    [refusal] = batch.refusals()
    assert (refusal.sender, refusal.lanes, refusal.envelopes, refusal.nbytes) == \
        ("AA-ONE", ("bulk", "control"), 2, 200)
    # another sender is not touched by AA-ONE's flood; a per-link override applies
    other = admission.batch()
    assert [other.admit("BB-TWO", "message", 100) for _ in range(5)] == [None] * 5
    assert all(other.admit("XX-BIG", "message", 80) is None for _ in range(50))
    # half a second later five more messages of AA-ONE's fit (10/s)
    clock.mono += 0.5
    later = admission.batch()
    assert [later.admit("AA-ONE", "message", 100) for _ in range(6)] == [None] * 5 + [1]


def test_precheck_spends_nothing_and_reads_only_known_senders() -> None:
    clock = VirtualClock()
    admission = Admission(_config(), clock)
    batch = admission.batch()
    # a name never verified has no budget: verify it (and create nothing)
    assert batch.precheck("AA-ONE", "message", 100) is None
    assert not admission.known("AA-ONE")
    for _ in range(5):
        assert batch.admit("AA-ONE", "message", 100) is None
    # however often a forger names AA-ONE, AA-ONE's budget does not move
    fresh = admission.batch()
    tokens = admission.budget("AA-ONE", "control").envelopes.tokens
    for _ in range(100):  # each a request of its own
        assert admission.batch().precheck("AA-ONE", "call.state", 100) is None
    assert admission.budget("AA-ONE", "control").envelopes.tokens == tokens
    # an empty lane is refused before verification, and the lane stays blocked
    assert fresh.precheck("AA-ONE", "message", 100) == 1
    assert fresh.admit("AA-ONE", "message", 100) == 1


def test_address_budget_and_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = VirtualClock()
    admission = Admission(AdmissionConfig(), clock)
    c = AdmissionConfig()
    assert admission.admit_address("10.0.0.1", envelopes=0,
                                   nbytes=c.address_bytes_burst) is None
    wait = admission.admit_address("10.0.0.1", envelopes=0, nbytes=8 * 1024 * 1024)
    assert wait == math.ceil(8 * 1024 * 1024 / c.address_bytes_per_second)
    assert admission.admit_address("10.0.0.2", envelopes=4096, nbytes=1) is None
    monkeypatch.setattr(adm, "MAX_ADDRESSES", 3)
    for n in range(10):
        admission.admit_address(f"10.1.0.{n}", envelopes=1, nbytes=1)
        assert len(admission._addresses) <= 3


def test_claimed_reads_sender_and_type_without_parsing() -> None:
    raw = b'{"ct":"x","from":"AA-ONE","id":"1","kid":"k","seq":1,"sig":"s","to":"B",' \
          b'"ts":1,"type":"call.state","v":1}'
    assert claimed(raw) == ("AA-ONE", "call.state", "control")
    assert claimed(b"garbage") is None


def test_throttled_log_says_how_many_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock()
    log = ThrottledLog(logging.getLogger("hotline.security"), clock, per_window=3,
                       window_s=10)
    with caplog.at_level(logging.WARNING, "hotline.security"):
        written = [log.warning("refused %d", n) for n in range(10)]
        assert written == [True] * 3 + [False] * 7
        clock.mono += 10
        assert log.warning("refused %d", 10)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["refused 0", "refused 1", "refused 2",
                     "refused 10 (7 similar line(s) suppressed before this one)"]


def test_precheck_lets_through_to_verification_only_what_could_pass() -> None:
    """A batch far over a known sender's budget costs only as many signature checks as
    envelopes could be admitted: the rest are refused before verification."""
    clock = VirtualClock()
    admission = Admission(_config(), clock)
    first = admission.batch()
    assert first.admit("AA-ONE", "message", 100) is None  # AA-ONE is known: 4 tokens left
    batch = admission.batch()
    verdicts = [batch.precheck("AA-ONE", "message", 100) for _ in range(100)]
    assert verdicts.count(None) == 4
    assert verdicts[:4] == [None] * 4
    assert set(verdicts[4:]) == {1}
    assert admission.budget("AA-ONE", "bulk").envelopes.tokens == 4  # nothing charged
    # the four let through verify and are admitted: the refusals after them do not
    # reach back into the prefix
    assert [batch.admit("AA-ONE", "message", 100) for _ in range(4)] == [None] * 4
    [refusal] = batch.refusals()
    assert refusal.envelopes == 96
    # a batch beyond the whole burst is told a finite wait, not the maximum
    clock.mono += 0.1   # one token back
    again = admission.batch()
    waits = [again.precheck("AA-ONE", "message", 100) for _ in range(50)]
    assert waits[0] is None
    assert waits[1] == 1


def test_after_a_refusal_the_address_is_refused_on_headers_until_that_request_fits() -> None:
    """A refused batch of N envelopes keeps the address refused on its headers until N
    tokens are there (not merely one), so a flood of large batches is not read one body
    per refilled token; an admitted charge clears it."""
    clock = VirtualClock()
    c = AdmissionConfig()
    admission = Admission(c, clock)
    rate = c.address_envelopes_per_second
    assert admission.address_exhausted("10.0.0.9") is None  # never seen
    assert admission.admit_address("10.0.0.9", envelopes=c.address_envelopes_burst,
                                   nbytes=0) is None
    assert admission.admit_address("10.0.0.9", envelopes=256, nbytes=0) is not None
    clock.mono += 2 / rate  # two tokens back: one envelope would fit, 256 would not
    assert admission.address_exhausted("10.0.0.9") is not None
    clock.mono += 250 / rate
    assert admission.address_exhausted("10.0.0.9") is not None
    clock.mono += 5 / rate
    assert admission.address_exhausted("10.0.0.9") is None
    assert admission.admit_address("10.0.0.9", envelopes=256, nbytes=0) is None
    clock.mono += 1.5 / rate  # admitted: one envelope's worth is again enough
    assert admission.address_exhausted("10.0.0.9") is None
    # a refusal for bytes is remembered the same way
    big = c.address_bytes_burst
    assert admission.admit_address("10.0.0.10", envelopes=0, nbytes=big) is None
    assert admission.admit_address("10.0.0.10", envelopes=0, nbytes=big) is not None
    clock.mono += (big - 1) / c.address_bytes_per_second
    assert admission.address_exhausted("10.0.0.10") is not None
    clock.mono += 2 / c.address_bytes_per_second
    assert admission.address_exhausted("10.0.0.10") is None


def test_bulk_lane_cannot_use_up_what_the_control_lane_needs() -> None:
    """A peer's bulk-lane flood empties only the bulk lane's budget: its conversation
    messages and call signals (both on the control protocol lane) still pass, so the
    control lane's sequence gets no hole for bulk's sake."""
    admission = Admission(_config(), VirtualClock())
    batch = admission.batch()
    assert [batch.admit("AA-ONE", "message", 100, "bulk") for _ in range(6)] == \
        [None] * 5 + [1]
    assert batch.admit("AA-ONE", "conv.message", 100) is None
    assert batch.admit("AA-ONE", "call.place", 100) is None
    assert batch.precheck("AA-ONE", "conv.message", 100, "control") is None
    # and the bulk lane stays bounded: refused before verification once empty
    assert admission.batch().precheck("AA-ONE", "message", 100, "bulk") == 1
    assert claimed(b'{"from":"AA-ONE","lane":"bulk","type":"message"}') == \
        ("AA-ONE", "message", "bulk")


def test_address_budget_is_per_declared_lane_and_each_is_bounded() -> None:
    c = AdmissionConfig()
    admission = Admission(c, VirtualClock())
    assert request_lane(b"lane=bulk") == "bulk"
    assert request_lane("") == request_lane(b"lane=bulky") == "control"
    assert admission.admit_address("10.0.0.7", envelopes=c.address_envelopes_burst,
                                   nbytes=0, lane="bulk") is None
    assert admission.address_exhausted("10.0.0.7", "bulk") is not None
    # the same address's control requests have their own budget ...
    assert admission.address_exhausted("10.0.0.7", "control") is None
    assert admission.admit_address("10.0.0.7", envelopes=1, nbytes=100) is None
    # ... which is bounded too
    assert admission.admit_address("10.0.0.7", envelopes=c.address_envelopes_burst,
                                   nbytes=0) is not None
