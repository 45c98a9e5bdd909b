"""Every persisted time column is either a duration deadline (moved by a wall-clock step)
or a record of when something happened (never moved): a new column must be classified."""

from __future__ import annotations

from sqlalchemy import BigInteger

from hotline.store.clocksteps import DURATION_DEADLINES, NOT_DEADLINES
from hotline.store.schema import metadata


def test_every_integer_time_column_is_classified() -> None:
    deadlines = {f"{d.table.name}.{d.column}" for d in DURATION_DEADLINES}
    columns = {f"{t.name}.{c.name}" for t in metadata.tables.values() for c in t.columns
               if isinstance(c.type, BigInteger)}
    assert not deadlines & NOT_DEADLINES
    assert columns - deadlines - NOT_DEADLINES == set(), "classify in store/clocksteps.py"
    assert (deadlines | NOT_DEADLINES) - columns == set(), "a listed column does not exist"


def test_a_slew_is_absorbed_and_anything_faster_is_a_step() -> None:
    from hotline.health.clockwatch import is_step

    assert not is_step(0, 0.25)
    assert not is_step(90, 0.25)            # reading two clocks, and a slew
    assert not is_step(-130, 60.0)          # 500 ppm for a minute (a check was late)
    assert is_step(200, 0.25)               # NTP steps past 128 ms
    assert is_step(-3_600_000, 0.25)
    # a clock running twice as fast gains 250 ms in every 0.25 s check: each is a step
    assert is_step(250, 0.25)
    # a clock stepping by 0.9 s again and again: each one is seen
    assert is_step(900, 0.25)
