"""The CLI's table policy and help names, without a node: kept cells (ids, states, times)
come out whole at any terminal width; every command's help shows flags without a value
and arguments in capitals."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError, field_validator
from rich.console import Console

from hotline.cli.helpfmt import tidy
from hotline.cli.main import app
from hotline.cli.tables import Col, fit
from hotline.fieldtext import describe

ids = st.text(alphabet="0123456789abcdef", min_size=8, max_size=32)
words = st.lists(st.text(alphabet="abcdefghij", min_size=1, max_size=12), min_size=0,
                 max_size=12).map(" ".join)
STATES = ["delivered", "declined", "undeliverable", "unreachable", "ringing"]


def test_a_droppable_column_goes_before_a_word_in_a_wrapping_one_is_broken() -> None:
    """At 80 columns, a message naming a 32-digit id keeps the id on one line: the
    droppable column makes room (it once stayed, and the id was folded in two)."""
    console = Console(file=io.StringIO(), width=80, color_system=None)
    notice = "0123456789abcdef0123456789abcdef"
    cols = [Col("#", keep=True), Col("from", keep=True),
            Col("lane seq", keep=True, drop=2), Col("received (UTC)", keep=True),
            Col("text")]
    rows = [["7", "US-JS", "control 12", "2026-12-01 01:50:00",
             f"Notification {notice}: read it with hotline notification show {notice}"]]
    console.print(fit(console, cols, rows), crop=False)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert notice in text, text
    assert "lane seq" not in text
    wide = Console(file=io.StringIO(), width=140, color_system=None)
    wide.print(fit(wide, cols, rows), crop=False)
    assert "control 12" in wide.file.getvalue()  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None)
@given(width=st.integers(min_value=40, max_value=200),
       rows=st.lists(st.tuples(ids, st.sampled_from(STATES), words, words), min_size=1,
                     max_size=6))
def test_kept_cells_come_out_whole_at_any_width(width: int,
                                                rows: list[tuple[str, str, str, str]]) -> None:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    cols = [Col("id", keep=True), Col("state", keep=True), Col("topic", drop=1),
            Col("note")]
    console.print(fit(console, cols, [list(r) for r in rows]), crop=False)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "…" not in text
    for call_id, state, _, _ in rows:
        assert re.search(rf"\b{call_id}\b", text)
        assert re.search(rf"\b{state}\b", text)


def test_optional_columns_go_first_and_empty_ones_are_left_out() -> None:
    console = Console(file=io.StringIO(), width=80, color_system=None)
    cols = [Col("id", keep=True), Col("members", drop=1), Col("topic"), Col("reason")]
    row = ["ab" * 16, "US-JS, RU-GS, PL-GS, UA-GS, " * 2, "nmcc-do@US-JS / cgs@RU-GS", ""]
    table = fit(console, cols, [row])
    assert [c.header for c in table.columns] == ["id", "topic"]
    assert [c.header for c in fit(Console(width=200), cols, [row]).columns] == [
        "id", "members", "topic"]


def test_a_cell_is_shown_as_written_not_as_markup() -> None:
    console = Console(file=io.StringIO(), width=80, color_system=None)
    console.print(fit(console, [Col("text")], [["add it under [links.RU-GS] may_call"]]))
    assert "[links.RU-GS]" in console.file.getvalue()  # type: ignore[attr-defined]


def _commands(command: Any, path: list[str]) -> list[list[str]]:
    subs = getattr(command, "commands", {})
    found = [path] if path else []
    for name, sub in subs.items():
        found += _commands(sub, [*path, name])
    return found


def test_every_commands_help_names_flags_and_arguments_conventionally(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    command = typer.main.get_command(app)
    tidy(command)
    paths = _commands(command, [])
    assert ["answer"] in paths
    assert ["link", "accept"] in paths
    for path in paths:
        with pytest.raises(BaseException):  # noqa: B017, PT011 - --help exits
            command.main([*path, "--help"], prog_name="hotline", standalone_mode=True)
        text = capsys.readouterr().out
        assert "<bool>" not in text, (path, text)
        assert "LIST[" not in text, (path, text)  # a repeatable option takes one value
        assert not re.search(r"\{[a-z_]+\}", text), (path, text)
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        after = usage.split("[OPTIONS]", 1)[-1].replace("COMMAND [ARGS]...", "")
        assert after == after.upper(), (path, usage)


def test_help_text_is_shown_as_written_not_as_markup(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``[fields]`` in an option's help is the TOML table the file holds, not a style:
    it stays in the help (it was dropped, leaving "template, to, lang, .")."""
    monkeypatch.setenv("COLUMNS", "80")
    command = typer.main.get_command(app)
    tidy(command)
    with pytest.raises(BaseException):  # noqa: B017, PT011 - --help exits
        command.main(["notify", "--help"], prog_name="hotline", standalone_mode=True)
    text = re.sub(r"[\s│]+", " ", capsys.readouterr().out)
    assert "template, to, lang, [fields]." in text, text
    assert "--to TEXT Recipient party" in text, text


class _Request(BaseModel):
    call_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    party: str = "US-JS"
    limit: int = Field(default=1, ge=1, le=1000)

    @field_validator("party")
    @classmethod
    def _party(cls, value: str) -> str:
        if value != value.upper():
            raise ValueError("party id must be 1-32 of A-Z, 0-9 and '-', e.g. US-JS")
        return value


@pytest.mark.parametrize(("data", "field", "sentence"), [
    ({"call_id": "xyz"}, "call_id", "'xyz' is not a call id (32 characters 0-9 and a-f"),
    ({}, "call_id", "is missing; it takes a call id"),
    ({"call_id": "0" * 32, "party": "us js"}, "party", "party id must be 1-32 of A-Z"),
    ({"call_id": "0" * 32, "limit": 0}, "limit", "must be at least 1"),
    ({"call_id": "0" * 32, "limit": "many"}, "limit", "'many' is not a whole number"),
])
def test_a_validators_error_in_the_users_terms(data: dict[str, Any], field: str,
                                               sentence: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _Request.model_validate(data)
    named, said = describe(caught.value.errors()[0])
    assert named == field
    assert said.startswith(sentence), said
    for words in ("should", "Value error", "pattern", "Field required"):
        assert words not in said


@pytest.mark.parametrize(("model", "data", "field", "sentence"), [
    ("incident", {"kind": "rumour", "text": "x"}, "kind",
     "'rumour' is not fact, claim, assessment or notification"),
    ("incident", {"kind": "fact", "text": "x", "confidence": "sure"}, "confidence",
     "'sure' is not low, moderate or high"),
    ("incident", {"kind": "fact", "text": "x", "corrects": "zz"}, "corrects",
     "'zz' is not an entry id (32 characters 0-9 and a-f"),
    ("incident", {"kind": "fact", "text": "x", "refs": ["zz"]}, "refs.0",
     "'zz' is not an entry id (32 characters 0-9 and a-f"),
    ("incident", {"kind": "fact", "text": "x", "source": "pl-gs"}, "source",
     "'pl-gs' is not a party id"),
    ("notice", {"template": "incident-notification", "to": ["pl-gs"], "fields": {}},
     "to.0", "'pl-gs' is not a party id"),
    ("notice", {"template": "incident-notification", "to": ["PL-GS"], "fields": {},
                "lang": "xx"}, "lang", "'xx' is not en, ar, ru, uk or pl"),
    ("notice", {"template": "Incident", "to": ["PL-GS"], "fields": {}}, "template",
     "'Incident' is not a template id"),
])
def test_notification_and_incident_refusals_in_the_users_terms(
        model: str, data: dict[str, Any], field: str, sentence: str) -> None:
    """The incident and notification routes' fields say what they take: the choices of
    a closed set, an entry id, a party id (not "in the form this field takes")."""
    from hotline.api.incidents import EntryRequest
    from hotline.api.notices import NoticeRequest

    cls = {"incident": EntryRequest, "notice": NoticeRequest}[model]
    with pytest.raises(ValidationError) as caught:
        cls.model_validate(data)
    named, said = describe(caught.value.errors()[0])
    assert named == field
    assert said.startswith(sentence), said
    assert "in the form this field takes" not in said
