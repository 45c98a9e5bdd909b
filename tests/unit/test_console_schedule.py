"""The schedule page's own decisions, without a browser: which window "take the
current/next watch" means, local times read in the schedule's zone across DST, and the
lines of the final schedule as the page names them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.calls.directory import parse_directory
from hotline.console import i18n
from hotline.console.schedule import (
    local_input,
    local_instant,
    shift_rows,
    version,
    watch_window,
)
from hotline.errors import HotlineError
from hotline.scenario import directory_toml
from hotline.schedules.model import Shift
from hotline.store.schedules import OverrideRow

RU = parse_directory(directory_toml("RU-GS", 200.0), "ru.toml")
H = 3_600_000


def _utc(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)


SHIFTS = [Shift("ccp-do", ("ccp-1",), 0, 10 * H, "layer:watch"),
          Shift("ccp-do", (), 10 * H, 12 * H, "gap"),
          Shift("ccp-do", ("ccp-2",), 12 * H, 24 * H, "override:7"),
          Shift("ccp-do", ("ccp-3",), 24 * H, 36 * H, "layer:watch")]


def test_the_current_watch_runs_from_now_to_the_end_of_the_shift_in_progress() -> None:
    assert watch_window(SHIFTS, 4 * H, "current", "ccp-2") == (4 * H, 10 * H)
    assert watch_window(SHIFTS, 11 * H, "current", "ccp-2") == (11 * H, 12 * H)  # a gap


def test_the_current_watch_is_refused_to_its_holder() -> None:
    with pytest.raises(HotlineError) as refused:
        watch_window(SHIFTS, 4 * H, "current", "ccp-1")
    assert refused.value.error_id == "already-on-duty"


def test_the_next_watch_is_the_first_later_shift_not_already_the_operators() -> None:
    assert watch_window(SHIFTS, 4 * H, "next", "ccp-1") == (10 * H, 12 * H)  # the gap
    assert watch_window(SHIFTS, 11 * H, "next", "ccp-2") == (24 * H, 36 * H)
    with pytest.raises(HotlineError) as refused:
        watch_window(SHIFTS, 30 * H, "next", "ccp-1")
    assert refused.value.error_id == "no-watch"


def test_local_times_are_read_in_the_schedules_zone_by_the_schedules_rule() -> None:
    assert local_instant("2026-11-30T08:00", "Europe/Moscow", "from") == _utc(2026, 11, 30, 5)
    # Europe/Warsaw: 08:00 is 07:00 UTC in winter and 06:00 UTC in summer
    assert local_instant("2026-03-28T08:00", "Europe/Warsaw", "from") == _utc(2026, 3, 28, 7)
    assert local_instant("2026-03-29T08:00", "Europe/Warsaw", "from") == _utc(2026, 3, 29, 6)
    # the skipped hour: the first instant after it, 03:00 CEST
    assert local_instant("2026-03-29T02:30", "Europe/Warsaw", "from") == _utc(2026, 3, 29, 1)
    # the repeated hour: its first pass, 02:30 CEST
    assert local_instant("2026-10-25T02:30", "Europe/Warsaw", "from") == _utc(
        2026, 10, 25, 0, 30)


@pytest.mark.parametrize("value", ["", "tomorrow", "2026-11-30", "2026-11-30T08:00+03:00",
                                   "2026-13-01T08:00", "2026-11-30T25:00",
                                   "2026-11-30T08:00:00.000000"])
def test_a_local_time_that_cannot_be_read_is_refused_naming_the_field(value: str) -> None:
    with pytest.raises(HotlineError) as refused:
        local_instant(value, "Europe/Moscow", "until")
    assert refused.value.error_id == "bad-shift-time"
    assert refused.value.status == 422
    assert refused.value.message.startswith("until: ")


@given(st.integers(min_value=0, max_value=_utc(2100, 1, 1) // 60_000))
def test_the_form_shows_what_it_reads_back(minute: int) -> None:
    """The page pre-fills the form with local times that read back to the same instant
    (to the minute), in a zone with DST, the repeated hour excepted (its second pass is
    written like its first)."""
    ms = minute * 60_000
    shown = local_input(ms, "Europe/Warsaw")
    back = local_instant(shown, "Europe/Warsaw", "from")
    assert back == ms or back == ms - H


def test_lines_name_holders_layers_and_who_set_an_override() -> None:
    override = OverrideRow(id=7, role="ccp-do", operator="ccp-2", from_ms=12 * H,
                           until_ms=24 * H, unavailable=False, created_by="ccp-2",
                           created_at=0)
    rows = shift_rows(SHIFTS, [override], RU, "ccp-2", 11 * H)
    assert [r.kind for r in rows] == ["layer", "gap", "override", "layer"]
    assert rows[0].layer == "watch"
    assert rows[0].holders == (("ccp-1", "CCP duty officer"),)
    assert rows[1].is_gap
    assert rows[1].now
    assert [r.now for r in rows].count(True) == 1
    assert rows[2].set_by == ("ccp-2",)
    assert rows[2].mine
    assert not rows[3].mine


def test_zoned_times_carry_their_offset_in_every_language() -> None:
    at = _utc(2026, 3, 29, 6)
    assert i18n.Formatter("en").zoned(at, "Europe/Warsaw") == "Sun, Mar 29 08:00 (GMT+02:00)"
    for lang in ("ar", "ru", "uk", "pl"):
        shown = i18n.Formatter(lang).zoned(at, "Europe/Warsaw")
        assert "08:00" in shown
        assert "+02:00" in shown


def test_the_live_part_is_swapped_only_when_what_it_shows_changed() -> None:
    rows = shift_rows(SHIFTS, [], RU, "ccp-2", 11 * H)
    same = shift_rows(SHIFTS, [], RU, "ccp-2", 11 * H + 60_000)
    assert version(rows, ()) == version(same, ())
    later = shift_rows(SHIFTS, [], RU, "ccp-2", 13 * H)  # the gap ended: "now" moved
    assert version(later, ("ccp-2",)) != version(rows, ())
    covered = [*SHIFTS[:1], Shift("ccp-do", ("ccp-4",), 10 * H, 12 * H, "override:8"),
               *SHIFTS[2:]]
    assert version(shift_rows(covered, [], RU, "ccp-2", 11 * H), ()) != version(rows, ())
