"""The schema the queries use is the schema the migrations build, on both engines, and
the durability settings are really in force."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from hotline.store.engine import create_engine, sqlite_url
from hotline.store.migrate import upgrade
from hotline.store.schema import metadata
from tests.nodes import create_pg_database, drop_pg_database


@pytest.fixture
def db_url(db_kind: str, tmp_path: Path) -> object:
    if db_kind == "sqlite":
        yield sqlite_url(tmp_path / "store.db")
        return
    url = create_pg_database()
    yield url
    drop_pg_database(url)


def test_migrations_build_exactly_the_schema_the_code_uses(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine)
        upgrade(engine)  # idempotent: a second run changes nothing
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


def test_durability_settings_are_in_force(db_url: str, db_kind: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            if db_kind == "sqlite":
                found = (str(conn.execute(text("PRAGMA journal_mode")).scalar_one()),
                         str(conn.execute(text("PRAGMA synchronous")).scalar_one()))
            else:
                found = ("postgresql",
                         str(conn.execute(text("SHOW synchronous_commit")).scalar_one()))
    finally:
        engine.dispose()
    expected = ("wal", "2") if db_kind == "sqlite" else ("postgresql", "on")  # 2 = FULL
    assert found == expected


def test_the_known_head_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from hotline.store.migrate import HEAD, MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_heads() == [HEAD]
