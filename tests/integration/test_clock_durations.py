"""Durations a running node shows, across wall-clock steps (real processes, libfaketime).

``hotline status`` and ``/metrics`` show how long things have lasted: a line unreachable
for so many seconds, the oldest envelope of a lane waiting so long, a link's round trips
over the last hour. Each is a duration: a step of the wall clock (``date -s``, an NTP
step) must not move it. Before the fix each was a difference of wall-clock times, and a
step of +1 h added an hour to every one (a queue-age alert fired at once), a step back
hid a stuck queue for an hour and drew the round-trip sparkline off its chart.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from tests.integration.test_clock_faults import clock_steps
from tests.nodes import NodeProcess, link, wait_until

Make = Callable[[str], NodeProcess]
HOUR_S = 3600
#: how far a duration shown may be from the one measured here (the node's status is
#: read after it, the metrics scrape takes a moment): far below the steps of an hour
SLACK_S = 30.0


def _queue_metric(node: NodeProcess, peer: str) -> float:
    text = node.api("GET", "/metrics").text
    found = re.search(rf'^hotline_queue_oldest_age_seconds\{{peer="{peer}"\}} (\S+)$', text,
                      re.M)
    assert found, text[:2000]
    return float(found.group(1))


def _durations(node: NodeProcess) -> dict[str, Any]:
    peer = node.peer_status("RU-GS")
    return {"unreachable": peer["unreachable_for_seconds"],
            "lane": peer["lanes"]["control"]["oldest_age_s"],
            "metric": _queue_metric(node, "RU-GS")}


def _assert_close(shown: dict[str, Any], true_s: float, what: str) -> None:
    for name, value in shown.items():
        assert value is not None, (what, name, shown)
        assert true_s - SLACK_S <= value <= true_s + SLACK_S, (what, name, value, true_s)


def test_queue_age_and_unreachable_time_do_not_move_with_the_wall_clock(
        make_sqlite_node: Make) -> None:
    """RU is down; US queues a message and keeps failing. US's wall clock steps +1 h,
    then back to true time (-1 h), then +1 day: the time RU has been unreachable and the
    age of the queued envelope (status and metrics) stay what they really are."""
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    us.configure("delivery", backoff_max_seconds=0.5)
    us_wall = us.fake_wall_clock(0)
    us.start()
    us.send("RU-GS", ["waits for RU"])
    queued = time.monotonic()
    wait_until(lambda: us.peer_status("RU-GS")["unreachable_for_seconds"] is not None, 10,
               what="US to find RU unreachable")
    _assert_close(_durations(us), 0.0, "before any step")
    for steps, offset in enumerate((HOUR_S, 0, 24 * HOUR_S), start=1):
        us_wall.set(offset)
        wait_until(lambda n=steps: clock_steps(us) == n, 10,
                   what=f"US to apply step {steps}")
        _assert_close(_durations(us), time.monotonic() - queued, f"after step to {offset} s")
    us.send("RU-GS", ["queued after the steps"])
    _assert_close(_durations(us), time.monotonic() - queued, "with a later envelope queued")


def test_round_trips_of_the_last_hour_keep_their_order_across_a_step_back(
        make_sqlite_node: Make) -> None:
    """US tests its link to RU every 0.2 s; US's wall clock steps back 1 h. The samples of
    ``rtt_last_hour`` (what the console's sparkline draws, by their times) stay in order
    and within the last hour of US's clock: the ones taken before the step are not an
    hour in the future."""
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    us.configure("health", test_every_seconds=0.2)
    us_wall = us.fake_wall_clock(0)
    ru.start()
    us.start()
    wait_until(lambda: len(us.peer_status("RU-GS")["rtt_last_hour"]) >= 5, 20,
               what="five link test rounds")
    us_wall.set(-HOUR_S)
    wait_until(lambda: clock_steps(us) == 1, 10, what="US to apply the step back")
    count = len(us.peer_status("RU-GS")["rtt_last_hour"])
    wait_until(lambda: len(us.peer_status("RU-GS")["rtt_last_hour"]) >= count + 5, 20,
               what="five rounds after the step")
    samples = us.peer_status("RU-GS")["rtt_last_hour"]
    times = [at for at, _rtt in samples]
    assert times == sorted(times), times
    now_ms = (time.time() - HOUR_S) * 1000  # US's wall clock
    assert now_ms - HOUR_S * 1000 <= times[0], (times[0], now_ms)
    assert times[-1] <= now_ms + SLACK_S * 1000, (times[-1], now_ms)
