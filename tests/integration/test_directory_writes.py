"""Concurrent directory writers on a real database (SQLite and PostgreSQL): the node's own
writer (the operator API's path) and offline ``roles apply`` writers beside it, all at
once. Every write gets its own version or a clean ``directory-conflict``; duty overrides
added meanwhile are all kept and make no version."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hotline.admin import apply_directory, init_node
from hotline.calls.duty import DutyService
from hotline.calls.registry import DirectoryAdmin, Registry
from hotline.clock import SystemClock
from hotline.scenario import directory_toml
from hotline.store import log as log_store
from hotline.store import schedules as schedule_store
from hotline.store.database import Database
from hotline.store.directory import DirectoryConflict
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.migrate import upgrade
from tests.nodes import PASSPHRASE, create_pg_database, drop_pg_database, free_port

ME = "RU-GS"
WRITERS = 8  # of each kind: in-node (API path) and offline (`roles apply` path)
SECURITY = "hotline.security"


def variant(i: int) -> str:
    """The scenario's directory, made distinct by its staffed_within (``i + 1`` seconds)."""
    return re.sub(r'staffed_within = "[^"]*"', f'staffed_within = "{i + 1}s"',
                  directory_toml(ME, 200, 5000, peers=()), count=1)


def staffed_s(body: dict[str, Any]) -> int:
    return int(body["settings"]["staffed_within_ms"]) // 1000


@dataclass
class Node:
    dir: Path
    db: Database
    admin: DirectoryAdmin
    duty: DutyService

    async def versions(self) -> dict[int, dict[str, Any]]:
        """Every stored version's body, read back from the database."""
        from sqlalchemy import text

        def query(conn: Any) -> dict[int, dict[str, Any]]:
            rows = conn.execute(text("SELECT version, body FROM directory_versions"))
            return {int(v): json.loads(b) for v, b in rows}
        return await self.db.read(query)

    async def logged_versions(self) -> list[int]:
        entries = await self.db.read(lambda conn: list(log_store.scan(conn)))
        return [json.loads(e.entry)["body"]["version"] for e in entries
                if e.kind == "directory"]

    async def offline(self, text: str, name: str, base: int | None = None
                      ) -> tuple[int, bool]:
        """``hotline roles apply`` (its own engine and connection), on a thread."""
        path = self.dir / name
        path.write_text(text)
        version, changed, _, _ = await asyncio.to_thread(apply_directory, self.dir, path,
                                                         base=base)
        return version, changed

    async def apply(self, text: str, base: int | None = None) -> tuple[int, bool]:
        """``PUT /api/v1/directory``'s path, in this process."""
        version, changed, _ = await self.admin.apply_text(text, base=base)
        return version, changed


@pytest.fixture
def db_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    if db_kind == "sqlite":
        yield sqlite_url(tmp_path / "node" / "node.db")
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
async def node(db_url: str, tmp_path: Path) -> AsyncIterator[Node]:
    node_dir = tmp_path / "node"
    init_node(node_dir, party=ME, name=None, listen=f"127.0.0.1:{free_port()}",
              endpoints=[], db=db_url, passphrase=PASSPHRASE)
    engine = create_engine(db_url)
    upgrade(engine)
    fatal: list[BaseException] = []
    db = Database(engine, fatal.append, hooks=[log_store.HOOKS])  # as the node builds it
    db.start()
    try:
        registry = Registry(db)
        yield Node(node_dir, db, DirectoryAdmin(ME, registry, db, SystemClock()),
                   DutyService(registry=registry, db=db, clock=SystemClock()))
    finally:
        await db.stop()
    assert fatal == []


async def test_concurrent_applies_each_get_their_own_version(node: Node) -> None:
    in_node = [node.apply(variant(i)) for i in range(WRITERS)]
    offline = [node.offline(variant(WRITERS + i), f"d{i}.toml") for i in range(WRITERS)]
    results = await asyncio.gather(*in_node, *offline)
    assert sorted(v for v, _ in results) == list(range(1, 2 * WRITERS + 1))
    assert all(changed for _, changed in results)
    stored = await node.versions()
    assert sorted(stored) == list(range(1, 2 * WRITERS + 1))
    # each writer's version holds exactly what that writer applied
    for i, (version, _) in enumerate(results):
        assert staffed_s(stored[version]) == i + 1
    assert sorted(await node.logged_versions()) == list(range(1, 2 * WRITERS + 1))


async def test_the_same_file_applied_concurrently_is_stored_once(node: Node) -> None:
    text = variant(0)
    results = await asyncio.gather(
        *[node.apply(text) for _ in range(4)],
        *[node.offline(text, f"same{i}.toml") for i in range(4)])
    assert {v for v, _ in results} == {1}
    assert sum(changed for _, changed in results) == 1
    assert sorted(await node.versions()) == [1]


async def test_a_stale_base_is_refused_with_the_current_version_and_one_log_line(
        node: Node, caplog: pytest.LogCaptureFixture) -> None:
    assert await node.apply(variant(0), base=0) == (1, True)
    caplog.set_level(logging.WARNING, logger=SECURITY)
    with pytest.raises(DirectoryConflict) as api:
        await node.apply(variant(1), base=0)
    assert api.value.status == 409
    assert api.value.to_dict()["current_version"] == 1
    assert "based on directory version 0" in api.value.message
    with pytest.raises(DirectoryConflict) as cli:
        await node.offline(variant(2), "stale.toml", base=0)
    assert cli.value.current == 1
    lines = [r.getMessage() for r in caplog.records if r.name == SECURITY]
    assert lines == ["directory write from api refused: this change was based on directory "
                     "version 0, but the directory is now at version 1",
                     "directory write from cli refused: this change was based on directory "
                     "version 0, but the directory is now at version 1"]
    assert sorted(await node.versions()) == [1]  # nothing was written
    assert await node.offline(variant(3), "fresh.toml", base=1) == (2, True)


async def test_concurrent_writers_on_one_base_one_wins_the_rest_conflict(
        node: Node, caplog: pytest.LogCaptureFixture) -> None:
    await node.apply(variant(0))
    caplog.set_level(logging.WARNING, logger=SECURITY)
    results = await asyncio.gather(
        *[node.apply(variant(1 + i), base=1) for i in range(WRITERS)],
        *[node.offline(variant(1 + WRITERS + i), f"b{i}.toml", base=1)
          for i in range(WRITERS)], return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert won == [(2, True)]
    assert len(lost) == 2 * WRITERS - 1
    assert all(isinstance(e, DirectoryConflict) and e.current == 2 for e in lost), lost
    assert len([r for r in caplog.records if r.name == SECURITY]) == len(lost)
    assert sorted(await node.versions()) == [1, 2]


async def test_overrides_racing_applies_are_all_kept_and_make_no_version(
        node: Node) -> None:
    """Overrides (``POST /api/v1/roster``'s path) live outside directory versions: added
    while files are applied, none is lost, none makes a version, and the applies each get
    their own version as before."""
    first, _ = await node.apply(variant(0))
    duties = [node.duty.take_shift("cgs", "cgs-1", 1000 * i, 1000 * i + 1, unavailable=True)
              for i in range(WRITERS)]
    applies = [node.apply(variant(1 + i)) for i in range(WRITERS // 2)]
    offline = [node.offline(variant(100 + i), f"r{i}.toml") for i in range(WRITERS // 2)]
    results = await asyncio.gather(*duties, *applies, *offline)
    stored = await node.versions()
    assert sorted(stored) == list(range(first, first + WRITERS + 1))
    rows = await node.db.read(lambda conn: schedule_store.overrides(conn, "cgs"))
    assert sorted((r.from_ms, r.until_ms, r.unavailable) for r in rows) == \
        [(1000 * i, 1000 * i + 1, True) for i in range(WRITERS)]
    assert {r.id for r in results[:WRITERS]} == {r.id for r in rows}  # type: ignore[union-attr]
    assert all(body["roster"] == stored[first]["roster"] for body in stored.values())
