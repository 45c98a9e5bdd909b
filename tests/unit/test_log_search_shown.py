"""The audit page's search for one reader (``hotline.store.log.search_shown``): only
entries whose subject the reader may see, pages that go on below the last one shown,
and a bounded scan however little of the log the reader sees. Real migrated SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from hotline.store import log as log_store
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.migrate import upgrade


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    made = create_engine(sqlite_url(tmp_path / "hotline.db"))
    upgrade(made)
    return made


def _fill(engine: Engine, subjects: list[str | None]) -> None:
    with engine.begin() as conn:
        for n, subject in enumerate(subjects):
            log_store.append_one(conn, "test", {"n": n}, 1_000 + n, subject)


def test_pages_of_what_is_shown_go_on_below_the_last_shown(engine: Engine) -> None:
    _fill(engine, ["hidden" if n % 3 else "open" for n in range(30)])  # 10 open
    with engine.connect() as conn:
        rows, boundary = log_store.search_shown(conn, lambda s: s != "hidden", limit=4)
        assert [r.subject for r in rows] == ["open"] * 4
        assert boundary == rows[-1].idx
        seen = [r.idx for r in rows]
        while boundary is not None:
            rows, boundary = log_store.search_shown(conn, lambda s: s != "hidden",
                                                    limit=4, before=boundary)
            seen += [r.idx for r in rows]
    with engine.connect() as conn:
        everything = log_store.search(conn, limit=100)
    assert seen == [r.idx for r in everything if r.subject == "open"]


def test_the_scan_is_bounded_and_says_where_it_stopped(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_store, "SCAN_AT_MOST", 250)
    _fill(engine, ["hidden"] * 600)
    with engine.connect() as conn:
        rows, boundary = log_store.search_shown(conn, lambda s: s != "hidden", limit=50)
        assert rows == []
        # 200 a batch: two batches looked at, then it stops; more may match below
        assert boundary == 600 - 400
        rest, end = log_store.search_shown(conn, lambda s: s != "hidden", limit=50,
                                           before=boundary)
        assert rest == []
        assert end is None  # the rest looked at: nothing older
