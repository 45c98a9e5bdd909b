"""Any change made to the log directly in the database is reported at the right entry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from hotline.log.merkle import leaf_hash
from hotline.log.verify import verify_database
from hotline.store import log as log_store
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.log import Record
from hotline.store.migrate import upgrade

SIZE = 12


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = create_engine(sqlite_url(Path(tmp_path_factory.mktemp("log")) / "log.db"))
    upgrade(engine)
    yield engine
    engine.dispose()


def fresh_log(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM log_entries"))
        conn.execute(text("DELETE FROM log_nodes"))
        conn.execute(text("UPDATE log_state SET size = 0, frontier = '[]', last_leaf = ''"))
        log_store.append(conn, [Record("test", {"n": n, "text": f"event {n}"}, 1000 + n,
                                       f"s{n % 3}") for n in range(SIZE)])


def first_bad(engine: Engine) -> int | None:
    with engine.connect() as conn:
        report = verify_database(conn, "US-JS", {})
    assert not report.ok
    return report.problems[0].index


def entry(engine: Engine, idx: int) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT entry FROM log_entries WHERE idx = :i"),
                                {"i": idx}).scalar_one())


def sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def test_an_untouched_log_verifies(engine: Engine) -> None:
    fresh_log(engine)
    with engine.connect() as conn:
        report = verify_database(conn, "US-JS", {})
    assert report.ok, report.problems
    assert report.size == SIZE


index = st.integers(0, SIZE - 1)
settings_ = settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings_
@given(k=index, rehash=st.booleans())
def test_a_changed_entry_is_named(engine: Engine, k: int, rehash: bool) -> None:
    fresh_log(engine)
    changed = entry(engine, k).replace(f'"event {k}"', f'"event {k} (edited)"')
    if rehash:  # the forger also recomputes the stored hash of the row
        sql(engine, "UPDATE log_entries SET entry = :e, leaf = :l WHERE idx = :i",
            e=changed, l=leaf_hash(changed.encode()), i=k)
    else:
        sql(engine, "UPDATE log_entries SET entry = :e WHERE idx = :i", e=changed, i=k)
    assert first_bad(engine) == k


@settings_
@given(k=index)
def test_a_deleted_entry_is_named(engine: Engine, k: int) -> None:
    fresh_log(engine)
    sql(engine, "DELETE FROM log_entries WHERE idx = :i", i=k)
    assert first_bad(engine) == k


@settings_
@given(k=index, renumber=st.booleans())
def test_an_inserted_entry_is_named(engine: Engine, k: int, renumber: bool) -> None:
    fresh_log(engine)
    if renumber:  # make room by shifting every later row up one
        sql(engine, "UPDATE log_entries SET idx = -idx - 1 WHERE idx >= :i", i=k)
        sql(engine, "UPDATE log_entries SET idx = -idx WHERE idx < 0")
    else:
        sql(engine, "DELETE FROM log_entries WHERE idx = :i", i=k)
    forged = json.dumps({"v": 1, "i": k, "at": 1, "kind": "test", "body": {"n": -1},
                         "prev": ""})
    sql(engine, "INSERT INTO log_entries (idx, kind, subject, at, entry, leaf) "
                "VALUES (:i, 'test', NULL, 1, :e, :l)", i=k, e=forged,
        l=leaf_hash(forged.encode()))
    assert first_bad(engine) == k


@settings_
@given(pair=st.lists(index, min_size=2, max_size=2, unique=True))
def test_reordered_entries_are_named_at_the_first(engine: Engine, pair: list[int]) -> None:
    fresh_log(engine)
    a, b = sorted(pair)
    sql(engine, "UPDATE log_entries SET idx = -1 WHERE idx = :a", a=a)
    sql(engine, "UPDATE log_entries SET idx = :a WHERE idx = :b", a=a, b=b)
    sql(engine, "UPDATE log_entries SET idx = :b WHERE idx = -1", b=b)
    assert first_bad(engine) == a


@settings_
@given(cut=st.integers(1, SIZE))
def test_truncation_is_named_at_the_first_missing_entry(engine: Engine, cut: int) -> None:
    fresh_log(engine)
    sql(engine, "DELETE FROM log_entries WHERE idx >= :i", i=SIZE - cut)
    assert first_bad(engine) == SIZE - cut


def test_an_entry_appended_behind_the_nodes_back_is_named(engine: Engine) -> None:
    fresh_log(engine)
    with engine.connect() as conn:
        state = log_store.read_state(conn)
    forged = log_store.entry_bytes(SIZE, Record("test", {"n": 99}, 1), state.last_leaf)
    sql(engine, "INSERT INTO log_entries (idx, kind, subject, at, entry, leaf) "
                "VALUES (:i, 'test', NULL, 1, :e, :l)", i=SIZE, e=forged.decode(),
        l=leaf_hash(forged))
    assert first_bad(engine) == SIZE
