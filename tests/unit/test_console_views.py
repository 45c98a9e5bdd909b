"""The console's decisions, without a browser: language negotiation, which desks an
operator may call, which incoming calls ring for them, redirects that stay on site."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hotline.calls.directory import LANGUAGES, parse_directory
from hotline.console import i18n, views
from hotline.console.web import _safe_next
from hotline.inbox import iso
from hotline.scenario import directory_toml
from hotline.status import AlarmStatus, TaskStatus

US = parse_directory(directory_toml("US-JS", 200.0), "us.toml")
NMCC = views.Viewer(operator="nmcc-1", name="NMCC", roles=("nmcc-do",), lang="en", csrf="x")
CCP = views.Viewer(operator="ccp-1", name="CCP", roles=("ccp-do",), lang="ru", csrf="x")


def test_query_beats_accept_language_which_beats_the_default() -> None:
    assert i18n.negotiate("ar", "pl-PL,pl;q=0.9") == "ar"
    assert i18n.negotiate(None, "de-DE,uk;q=0.8,ru;q=0.9") == "ru"
    assert i18n.negotiate("xx", "pl-PL") == "pl"
    assert i18n.negotiate(None, "de, fr;q=0.5") == "en"
    assert i18n.negotiate(None, "uk;q=0, pl;q=0.1") == "pl"
    assert i18n.negotiate(None, "ru;q=abc, pl") == "pl"


@given(st.one_of(st.none(), st.text(max_size=12)), st.one_of(st.none(), st.text(max_size=80)))
def test_negotiation_always_yields_a_supported_language(query: str | None,
                                                         header: str | None) -> None:
    assert i18n.negotiate(query, header) in LANGUAGES


def test_arabic_is_right_to_left_and_formats_its_own_way() -> None:
    assert i18n.Formatter("ar").direction == "rtl"
    assert i18n.Formatter("pl").direction == "ltr"
    at = 1_763_190_000_000
    assert i18n.Formatter("ru").datetime(at) != i18n.Formatter("en").datetime(at)
    assert i18n.Formatter("pl").number(1234.5) == "1\u00a0234,5"
    assert i18n.Formatter("en").elapsed(3_725_000) == "1:02:05"
    afternoon = 1_764_173_045_000  # 2025-11-26 16:04:05 UTC
    assert {i18n.Formatter(lang).time(afternoon) for lang in LANGUAGES} == {"16:04:05"}
    assert i18n.Formatter("pl").datetime(afternoon) == "26 lis 2025, 16:04:05"
    assert i18n.Formatter("en").datetime(None) == i18n.NO_VALUE
    assert i18n.Formatter("en").elapsed(65_000) == "1:05"


def _desk(role: str, callers: list[str], staffed: bool = True) -> dict[str, Any]:
    return {"party": "RU-GS", "role": role, "titles": {"en": role.upper(), "ru": "Генштаб"},
            "staffed": staffed, "callers": callers}


def test_desks_need_the_peer_to_accept_and_our_policy_to_allow() -> None:
    desks = [_desk("cgs", ["nmcc-do", "cjcs"], staffed=False), _desk("dcd", ["nmcc-do"]),
             _desk("cgs-1d", ["cjcs"])]
    shown = views.callable_desks(desks, US, NMCC)
    # by role, whatever the staffing: a tile does not move when a desk is staffed
    assert [d.address for d in shown] == ["cgs@RU-GS", "dcd@RU-GS"]
    assert shown[1].as_roles == ("nmcc-do",)
    assert not views.callable_desks(desks, US, views.Viewer("x", "X", ("vcjcs",), "en", ""))


def _incoming(state: str, rings: list[str]) -> dict[str, Any]:
    history = [{"state": "delivered", "role": "cgs", "at": 1}]
    history += [{"state": "ringing", "role": r, "at": 2 + i} for i, r in enumerate(rings)]
    return {"id": "a" * 32, "direction": "in", "state": state, "callee": "cgs@RU-GS",
            "caller": "nmcc-do@US-JS", "placed_at": 0, "history": history}


def test_the_alarm_rings_only_for_roles_rung_and_held() -> None:
    assert not views.alarms_for([_incoming("ringing", ["cgs", "cgs-1d"])], CCP)
    alarms = views.alarms_for([_incoming("ringing", ["cgs", "cgs-1d", "ccp-do"])], CCP)
    assert [a.as_roles for a in alarms] == [("ccp-do",)]
    assert not views.alarms_for([_incoming("answered", ["cgs", "ccp-do"])], CCP)
    outgoing = {**_incoming("ringing", ["ccp-do"]), "direction": "out"}
    assert not views.alarms_for([outgoing], CCP)
    cgs = views.Viewer("cgs-1", "CGS", ("cgs",), "ru", "")
    assert views.alarms_for([_incoming("delivered", [])], cgs)  # the role called


def test_a_step_ringing_several_roles_rings_each() -> None:
    call = _incoming("ringing", ["cgs,ccp-do"])
    assert views.rung_roles(call) == {"cgs", "ccp-do"}


def test_redirect_targets_stay_on_this_site() -> None:
    assert _safe_next("/conversations/ab") == "/conversations/ab"
    for bad in ("//evil.example/x", "https://evil.example", "/\\evil", "", None, "board"):
        assert _safe_next(bad) == "/board"


def test_alarm_titles_come_from_the_peer_report_and_our_directory() -> None:
    ru = parse_directory(directory_toml("RU-GS", 200.0), "ru.toml")
    call = _incoming("ringing", ["cgs"])
    desks = [{"party": "US-JS", "role": "nmcc-do", "titles": {"en": "NMCC duty officer"},
              "staffed": True, "callers": ["ccp-do"]}]
    titles = views.role_titles(call, desks, ru, "ru")
    assert titles == {"nmcc-do@US-JS": "NMCC duty officer",  # no Russian title given
                      "cgs@RU-GS": "Начальник Генерального штаба"}
    assert views.role_titles(call, [], ru, "en") == {"cgs@RU-GS": "Chief of the General Staff"}


def _alarm(cause: str, first_at: str, count: int = 1) -> AlarmStatus:
    kind, _, subject = cause.partition(":")
    return AlarmStatus(cause, kind, subject or None, f"{cause} happened", first_at,
                       first_at, count)


def _task(name: str, state: str, error: str | None = None) -> TaskStatus:
    return TaskStatus(name, state, "2026-11-15T15:40:00.000+00:00", 1 if error else 0, error)


def test_the_banner_shows_standing_alarms_oldest_first_and_tasks_down() -> None:
    later = _alarm("clock-skew:RU-GS", "2026-11-15T16:00:00.000+00:00")
    earlier = _alarm("log-equivocation:PL-GS", "2026-11-15T15:50:00.000+00:00")
    tasks = [_task("timers", "running"), _task("notifier", "restarting", "OSError: x"),
             _task("sender-RU-GS", "stopped")]
    banner = views.banner(tasks, [later, earlier])
    assert [a.cause for a in banner.alarms] == [earlier.cause, later.cause]
    assert [t.name for t in banner.down] == ["notifier"]
    assert views.banner([], []).alarms == ()


def test_the_banner_version_changes_with_what_it_shows_and_only_then() -> None:
    alarm = _alarm("clock-skew:RU-GS", "2026-11-15T16:00:00.000+00:00")
    down = _task("notifier", "restarting", "OSError: x")
    version = views.banner([down], [alarm]).version
    assert views.banner([down, _task("timers", "running")], [alarm]).version == version
    assert views.banner([down], [replace(alarm, count=2)]).version != version
    assert views.banner([down], [replace(alarm, first_at="2026-11-15T17:00:00.000+00:00")]
                        ).version != version  # cleared and raised again
    assert views.banner([replace(down, last_error="OSError: y")], [alarm]).version != version
    assert views.banner([], [alarm]).version != version
    assert views.banner([down], []).version != version


def test_status_times_convert_to_milliseconds_for_the_formatter() -> None:
    at = 1_763_221_200_123
    assert views.ms_of(iso(at)) == at
    assert views.ms_of(None) is None


def test_clock_offsets_read_with_their_sign_unit_and_margin() -> None:
    assert i18n.Formatter("en").offset(120, 3) == "+120 ms \u00b1 3 ms"
    assert i18n.Formatter("en").offset(-1250, 13) == "-1,250 ms \u00b1 13 ms"
    assert i18n.Formatter("en").offset(0, 1) == "0 ms \u00b1 1 ms"
    assert i18n.Formatter("en").offset(None, None) == i18n.NO_VALUE
    assert i18n.Formatter("ru").offset(120, 3) == "+120 мс \u00b1 3 мс"
    # Arabic: the sign carries a left-to-right mark so it stays with its number
    assert i18n.Formatter("ar").offset(120, 3) == "\u200e+120 ملي ث \u00b1 3 ملي ث"
