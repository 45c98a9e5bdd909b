"""Property: any edit of a populated node's state behind its back is found by the state
check, naming the table and row (or it changed nothing); an unedited store passes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from hotline.integrity.run import check_state
from hotline.store.engine import create_engine, sqlite_url
from tests.calls import place, us_and_ru, wait_for_state
from tests.nodes import nodes_on, wait_until


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """US-JS's database after a real exchange: an answered call, a conversation message
    each way, plain messages each way, and one left undelivered."""
    base = tmp_path_factory.mktemp("state-props")
    with nodes_on("sqlite", base) as make:
        us, ru = us_and_ru(make)
        call_id = place(us, "cgs@RU-GS", "nmcc-do", "property")
        wait_for_state(ru, call_id, "ringing")
        assert ru.api("POST", f"/api/v1/calls/{call_id}/answer",
                      json={"as": "cgs", "operator": "cgs-1"}).status_code == 200
        wait_for_state(us, call_id, "answered")
        for node, role, op in ((us, "nmcc-do", "nmcc-1"), (ru, "cgs", "cgs-1")):
            r = node.api("POST", f"/api/v1/conversations/{call_id}/messages",
                         json={"text": f"from {node.party}", "as": role, "operator": op})
            assert r.status_code == 201, r.text
        us.send("RU-GS", ["a", "b"])
        ru.send("US-JS", ["c"])
        wait_until(lambda: len(us.query("SELECT id FROM conversation_messages")) == 2,
                   what="both messages at US")
        wait_until(lambda: us.peer_status("RU-GS")["queued"] == 0, what="US delivered")
        wait_until(lambda: us.query("SELECT id FROM inbound WHERE type = 'message'"),
                   what="RU's message at US")
        ru.stop()
        us.send("RU-GS", ["left undelivered"])
        us.stop()
        path = base / "template.db"
        shutil.copy(Path(us.config.db.removeprefix("sqlite:///")), path)
        yield path


@dataclass(frozen=True)
class Edit:
    table: str
    column: str | None  # None: delete the row
    key: str            # the column naming the row
    pick: int           # which row (modulo the row count)
    value: Any = None


STATES = ["placed", "delivered", "ringing", "answered", "declined", "cancelled", "expired"]
words = st.text(alphabet="abcdefghij", min_size=1, max_size=8).map(lambda s: "x-" + s)
edits = st.one_of(
    st.builds(Edit, st.just("outbox"), st.none(), st.just("id"), st.integers(0, 99)),
    st.builds(Edit, st.just("inbound"), st.none(), st.just("id"), st.integers(0, 99)),
    st.builds(Edit, st.just("outbox"), st.sampled_from(["type", "subject"]), st.just("id"),
              st.integers(0, 99), words),
    st.builds(Edit, st.just("inbound"), st.just("type"), st.just("id"), st.integers(0, 99),
              words),
    st.builds(Edit, st.just("calls"), st.just("state"), st.just("id"), st.integers(0, 99),
              st.sampled_from(STATES)),
    st.builds(Edit, st.just("calls"), st.just("statements"), st.just("id"),
              st.integers(0, 99), st.integers(0, 9)),
    st.builds(Edit, st.just("conversation_messages"), st.just("text"), st.just("id"),
              st.integers(0, 99), words),
    st.builds(Edit, st.just("log_entries"), st.just("subject"), st.just("idx"),
              st.integers(0, 999), st.one_of(st.none(), words)),
    st.builds(Edit, st.just("log_entries"), st.just("at"), st.just("idx"),
              st.integers(0, 999), st.integers(0, 2**40)),
    st.builds(Edit, st.just("log_entries"), st.just("kind"), st.just("idx"),
              st.integers(0, 999), st.sampled_from(["sent", "received", "alarm", "keys", "link",
                                                    "call-state", "directory", "receipt"])),
    st.builds(Edit, st.just("directory_versions"), st.sampled_from(["digest", "body"]),
              st.just("version"), st.integers(0, 9), words),
    st.builds(Edit, st.just("links"), st.sampled_from(["send_seq", "recv_next"]),
              st.just("party"), st.just(0), st.integers(0, 20)),
)


ROW = {"calls": "id", "conversation_messages": "id", "log_entries": "idx", "links": "party",
       "directory_versions": "version"}


def _apply(engine: Engine, edit: Edit) -> tuple[str, bool]:
    """Make ``edit``; returns how a finding names the row, and whether anything changed."""
    with engine.begin() as conn:
        keys = [r[0] for r in conn.execute(text(
            f"SELECT {edit.key} FROM {edit.table} ORDER BY {edit.key}"))]  # noqa: S608
        key = keys[edit.pick % len(keys)]
        where = f"{edit.key} = :k"
        if edit.table in ("outbox", "inbound"):
            peer, seq, lane = conn.execute(text(
                f"SELECT peer, seq, lane FROM {edit.table} WHERE {where}"),  # noqa: S608
                {"k": key}).one()
            # a row is named by its lane's sequence; the control lane's name is the old one
            row = f"{edit.table} peer={peer} seq={seq}" + (
                "" if lane == "control" else f" lane={lane}")
        else:
            row = f"{edit.table} {ROW[edit.table]}={key}"
        if edit.column is None:
            conn.execute(text(f"DELETE FROM {edit.table} WHERE {where}"), {"k": key})  # noqa: S608
            return row, True
        before = conn.execute(text(f"SELECT {edit.column} FROM {edit.table} "  # noqa: S608
                                   f"WHERE {where}"), {"k": key}).scalar()
        conn.execute(text(f"UPDATE {edit.table} SET {edit.column} = :v "  # noqa: S608
                          f"WHERE {where}"), {"k": key, "v": edit.value})
        return row, before != edit.value


def _findings(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [f"{f.table} {f.row}: {f.message}" for f in check_state(conn, "US-JS").findings]


def test_the_unedited_store_passes(template: Path) -> None:
    engine = create_engine(sqlite_url(template))
    try:
        assert _findings(engine) == []
    finally:
        engine.dispose()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edit=edits)
def test_every_edit_is_found(template: Path, tmp_path: Path, edit: Edit) -> None:
    path = tmp_path / "edited.db"
    shutil.copy(template, path)
    engine = create_engine(sqlite_url(path))
    try:
        row, changed = _apply(engine, edit)
        found = _findings(engine)
    finally:
        engine.dispose()
    if not changed:
        assert found == []
        return
    assert any(f.startswith(row + ":") for f in found), (edit, row, found)
