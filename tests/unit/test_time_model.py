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
