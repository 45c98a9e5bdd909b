"""Durations shown since a recorded wall-clock time, across wall-clock steps.

``hotline.clock.elapsed_ms`` takes out the steps the clock watch applied since the time
was recorded; the oldest envelope of a lane is the first in the lane's order, whatever
times a step gave the envelopes. (Real processes: tests/integration/test_clock_durations.py.)
"""

from __future__ import annotations

from sqlalchemy import create_engine, insert

from hotline.clock import SteadyWall, elapsed_ms
from hotline.store import outbox as outbox_store
from hotline.store.schema import metadata, outbox

HOUR = 3_600_000
T0 = 1_800_000_000_000


class ManualClock:
    """A machine's clocks: the wall clock steps, the monotonic clock only runs."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono = 100.0

    def now_ms(self) -> int:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def run(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += int(seconds * 1000)


def _step(steady: SteadyWall, machine: ManualClock, delta_ms: int) -> None:
    """The machine's clock steps; the clock watch applies it (health/clockwatch.py)."""
    machine.wall += delta_ms
    anchor = (machine.now_ms(), machine.monotonic())
    steady.rebase(anchor, step_ms=delta_ms)
    steady.rebase(anchor, step_ms=delta_ms)  # the writer re-ran the transaction: once


def test_a_step_forward_back_or_a_day_ahead_does_not_age_what_was_recorded() -> None:
    machine = ManualClock()
    steady = SteadyWall(machine)
    enqueued = steady.now_ms()
    machine.run(10)
    _step(steady, machine, HOUR)
    assert elapsed_ms(steady, enqueued) == 10_000  # not an hour and 10 s
    machine.run(5)
    later = steady.now_ms()                        # recorded on the stepped clock
    machine.run(HOUR / 1000)
    latest = steady.now_ms()
    machine.run(5)
    _step(steady, machine, -HOUR)
    machine.run(5)
    assert elapsed_ms(steady, enqueued) == HOUR + 25_000  # not 25 s: a stuck queue hidden
    assert elapsed_ms(steady, later) == HOUR + 10_000
    # recorded less than the step back before it: indistinguishable from a time after
    # it, so understated by the step (as a plain difference is), never overstated
    assert elapsed_ms(steady, latest) == 0
    _step(steady, machine, 24 * HOUR)
    machine.run(1)
    assert elapsed_ms(steady, enqueued) == HOUR + 26_000
    assert elapsed_ms(steady, later) == HOUR + 11_000
    assert elapsed_ms(steady, steady.now_ms()) == 0


def test_a_slew_is_no_step_and_a_time_from_the_future_is_no_negative_age() -> None:
    machine = ManualClock()
    steady = SteadyWall(machine)
    enqueued = steady.now_ms()
    machine.run(10)
    machine.wall += 40  # a slew: re-anchored without a step
    steady.rebase((machine.now_ms(), machine.monotonic()))
    assert elapsed_ms(steady, enqueued) == 10_040
    assert elapsed_ms(steady, steady.now_ms() + HOUR) == 0
    assert elapsed_ms(machine, T0 - 5_000) == 15_040  # a plain clock: the difference


def test_the_oldest_envelope_of_a_lane_is_the_first_in_its_order() -> None:
    """After a step back, an envelope committed later carries an earlier time: the lane's
    oldest is still the one with the lowest seq (the oldest time would hide its age)."""
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    rows = [(1, T0, "control"), (2, T0 - HOUR + 1_000, "control"), (1, T0 + 5, "bulk")]
    with engine.begin() as conn:
        for seq, created, lane in rows:
            conn.execute(insert(outbox).values(
                peer="RU-GS", envelope_id=f"e{lane}{seq}", seq=seq, type="message",
                payload="{}", envelope=b"x", created_at=created, sealed_at=created,
                lane=lane))
        loads = outbox_store.lane_loads(conn)["RU-GS"]
        assert (loads["control"].queued, loads["control"].oldest_at) == (2, T0)
        assert loads["bulk"].oldest_at == T0 + 5
        assert outbox_store.lane_loads(conn, "RU-GS", "bulk")["RU-GS"].keys() == {"bulk"}
