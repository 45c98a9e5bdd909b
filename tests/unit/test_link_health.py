"""The link-health state machine (hotline.links.health): properties over sequences of
test outcomes, and the signed link-test messages (hotline.protocol.linktest)."""

from __future__ import annotations

import contextlib
import http.server
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.errors import HotlineError
from hotline.links.health import (
    DEGRADED,
    DOWN,
    HISTORY_MS,
    UNKNOWN,
    UP,
    EndpointHealth,
    LinkHealth,
    Outcome,
    Sample,
    Thresholds,
    judge,
)
from hotline.links.prober import MAX_ANSWER_BYTES, HttpPost
from hotline.protocol.keys import PartyKeys
from hotline.protocol.linktest import make_answer, make_probe, verify_answer, verify_probe

outcomes = st.lists(st.one_of(st.none(), st.floats(min_value=0.01, max_value=5000)),
                    max_size=60).map(lambda xs: [Outcome(x) for x in xs])


@st.composite
def thresholds(draw: st.DrawFn) -> Thresholds:
    degraded = draw(st.floats(min_value=0.05, max_value=1.0))
    return Thresholds(window=draw(st.integers(1, 20)), degraded_loss=degraded,
                      down_loss=draw(st.floats(min_value=degraded, max_value=1.0)),
                      down_after=draw(st.integers(1, 10)),
                      degraded_rtt_ms=draw(st.floats(min_value=1, max_value=4000)))


def _streak(recent: list[Outcome]) -> int:
    n = 0
    for o in reversed(recent):
        if o.ok:
            break
        n += 1
    return n


@given(outcomes, thresholds())
def test_the_state_follows_the_documented_thresholds(seq: list[Outcome], t: Thresholds) -> None:
    state = judge(seq, t)
    recent = seq[-t.window:]
    if not recent:
        assert state == UNKNOWN
        return
    lost = sum(not o.ok for o in recent) / t.window  # missing tests count as answered
    streak = _streak(recent)
    down = streak >= t.down_after or lost >= t.down_loss
    assert (state == DOWN) == down
    if state == UP:
        assert recent[-1].ok
        assert lost < t.degraded_loss
        rtts = sorted(o.rtt_ms for o in recent if o.rtt_ms is not None)
        assert rtts[(len(rtts) - 1) // 2] < t.degraded_rtt_ms  # the lower median, at most
    if not recent[-1].ok and not down:
        assert state == DEGRADED
    if lost >= t.degraded_loss and not down:
        assert state == DEGRADED
    assert state != UNKNOWN


@given(outcomes, thresholds())
def test_only_the_window_counts(seq: list[Outcome], t: Thresholds) -> None:
    older = [Outcome(None)] * 7 + [Outcome(9999.0)] * 3
    assert judge(older + seq, t) == judge(seq, t) or len(seq) < t.window


@given(outcomes, thresholds())
def test_changes_are_reported_once_and_match_the_state(seq: list[Outcome],
                                                        t: Thresholds) -> None:
    endpoint = EndpointHealth("http://a.example", t)
    state = UNKNOWN
    first_ok = next((n for n, o in enumerate(seq) if o.ok), len(seq))
    for n, outcome in enumerate(seq):
        old = endpoint.record(outcome, now_ms=1000 + n)
        # the losses before the first answer are forgotten at it (a start, not the line)
        new = judge(seq[min(first_ok, n):n + 1] if n >= first_ok else seq[:n + 1], t)
        assert endpoint.state == new
        assert (old is not None) == (new != state)
        if old is not None:
            assert old == state
            assert endpoint.since == 1000 + n
        state = new
        if outcome.ok:
            assert endpoint.last_good_at == 1000 + n
            assert endpoint.rtt_ms == outcome.rtt_ms


@given(outcomes, thresholds())
def test_an_answered_test_never_takes_an_endpoint_down(seq: list[Outcome],
                                                       t: Thresholds) -> None:
    """Not even the one that fills the window (it used to: lost tests of a window not yet
    full counted only once it was, so a good answer raised link-down)."""
    endpoint = EndpointHealth("http://a.example", t)
    for n, outcome in enumerate(seq):
        before = endpoint.state
        endpoint.record(outcome, n)
        if outcome.ok:
            assert endpoint.state != DOWN or before == DOWN


def test_the_answer_that_fills_the_window_keeps_an_intermittent_endpoint_up() -> None:
    t = Thresholds(window=6, down_after=3, degraded_loss=0.2, down_loss=0.5)
    endpoint = EndpointHealth("http://a.example", t)
    states = []
    for n, rtt in enumerate([5.0, None, None, 5.0, None, 5.0, 5.0]):
        endpoint.record(Outcome(rtt), n)
        states.append(endpoint.state)
    # half the window lost at the third loss: down then, never on an answer
    assert states == [UP, DEGRADED, DEGRADED, DEGRADED, DOWN, DOWN, DOWN]


def test_a_line_that_goes_dark_is_degraded_then_down_then_recovers() -> None:
    t = Thresholds(window=6, down_after=3, degraded_loss=0.2, down_loss=0.5)
    endpoint = EndpointHealth("http://a.example", t)
    states = []
    for n, outcome in enumerate([Outcome(5.0)] * 6 + [Outcome(None)] * 3
                                + [Outcome(5.0)] * 6):
        endpoint.record(outcome, n)
        states.append(endpoint.state)
    # back: down while half the window is lost, degraded while a fifth is, then up
    assert states == [UP] * 6 + [DEGRADED, DEGRADED, DOWN] + [DOWN] * 3 + [DEGRADED] + [UP] * 2


@given(st.tuples(st.sampled_from([UP, DEGRADED, DOWN, UNKNOWN]),
                 st.sampled_from([UP, DEGRADED, DOWN, UNKNOWN])))
def test_the_link_is_its_best_endpoint_and_prefers_the_primary_among_equals(
        states: tuple[str, str]) -> None:
    link = LinkHealth.new("RU-GS", ["http://one", "http://two"], Thresholds())
    for endpoint, state in zip(link.endpoints.values(), states, strict=True):
        endpoint.state = state
    rank = {UP: 3, DEGRADED: 2, UNKNOWN: 1, DOWN: 0}
    assert rank[link.state] == max(rank[s] for s in states)
    expected = "http://one" if rank[states[0]] >= rank[states[1]] else "http://two"
    assert link.current == expected
    assert link.order()[0] == expected
    assert sorted(link.order()) == ["http://one", "http://two"]


def test_a_lost_first_test_is_degraded_and_the_next_answer_up() -> None:
    """A peer starting after this node: not held degraded for a whole window."""
    endpoint = EndpointHealth("http://a.example", Thresholds(window=10))
    endpoint.record(Outcome(None), 0)
    assert endpoint.state == DEGRADED
    endpoint.record(Outcome(3.0), 1)
    assert endpoint.state == UP


def test_the_rtt_history_keeps_one_hour() -> None:
    link = LinkHealth.new("RU-GS", ["http://one"], Thresholds())
    for n in range(100):
        link.add_sample(Sample(at=n * 60_000, mono=n * 60.0, rtt_ms=float(n)))
    kept = link.rtt_history(now_mono=99 * 60.0)
    assert kept[0].mono >= 99 * 60.0 - HISTORY_MS / 1000
    assert len(kept) == 61


# -- the signed messages ------------------------------------------------------------------
US, RU = PartyKeys.generate(), PartyKeys.generate()


def test_a_probe_and_its_answer_verify() -> None:
    probe = make_probe("US-JS", "RU-GS", "https://ru.example", 1_000, US)
    checked = verify_probe(probe, US.public, sender="US-JS", recipient="RU-GS")
    answer = make_answer(checked, 1_050, RU)
    assert verify_answer(answer, RU.public, probe).at == 1_050


@pytest.mark.parametrize("change", ["sig", "endpoint", "to", "at", "other-key"])
def test_an_altered_or_forged_probe_is_refused(change: str) -> None:
    probe = make_probe("US-JS", "RU-GS", "https://ru.example", 1_000, US)
    if change == "sig":
        sig = probe["sig"]
        probe["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    elif change == "endpoint":
        probe["endpoint"] = "https://elsewhere.example"
    elif change == "to":
        probe["to"] = "PL-GS"
    elif change == "at":
        probe["at"] += 1
    else:
        probe = make_probe("US-JS", "RU-GS", "https://ru.example", 1_000, RU)
    with pytest.raises(HotlineError) as refused:
        verify_probe(probe, US.public, sender="US-JS", recipient="RU-GS")
    assert refused.value.error_id == "bad-linktest"


def test_an_answer_to_another_probe_or_by_another_key_is_refused() -> None:
    first = make_probe("US-JS", "RU-GS", "https://ru.example", 1_000, US)
    second = make_probe("US-JS", "RU-GS", "https://ru.example", 1_000, US)
    answer = make_answer(verify_probe(first, US.public, sender="US-JS", recipient="RU-GS"),
                         1_050, RU)
    with pytest.raises(HotlineError, match="another probe"):
        verify_answer(answer, RU.public, second)
    with pytest.raises(HotlineError, match="key"):
        verify_answer(answer, US.public, first)


class _Flood(http.server.BaseHTTPRequestHandler):
    """Whoever answers at an endpoint, answering a link test with megabytes."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        with contextlib.suppress(OSError):  # the prober hangs up once it has enough
            for _ in range(64):
                self.wfile.write(b" " * 65536)

    def log_message(self, *args: object) -> None:
        pass


async def test_an_oversized_answer_is_cut_off_not_buffered() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flood)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    post = HttpPost()
    try:
        with pytest.raises(ValueError, match=f"exceeds {MAX_ANSWER_BYTES} bytes"):
            await post(f"http://127.0.0.1:{server.server_port}/federation/v1/linktest",
                       b"{}", 30.0)
    finally:
        await post.close()
        server.shutdown()
        server.server_close()
