"""Duty schedules in the console, in a real browser (Debian's chromium) against a real
RU-GS node: the page names the holder the API names, shows the gap its directory has,
and taking a shift makes the operator the holder for the console and the API alike. A
take in a role the operator does not hold is refused and changes nothing.

The directory is the scenario's, with ``ccp-do``'s 12-hour watch (Europe/Moscow, UTC+3
all year) ended three hours from now and a ``relief`` layer from five hours from now: a
two-hour gap, accepted in the file (``accept_gaps = true``) so the node raises no alarm.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from hotline.scenario import directory_toml
from tests.browser import (
    Operator,
    add_operator,
    chromium,
    po_translation,
    screenshot,
    wcag_violations,
)
from tests.calls import SPEED, apply_toml
from tests.e2e.test_console import NO_HORIZONTAL_SCROLL, _every_focus_is_visible
from tests.nodes import NodeProcess, nodes_on, wait_until

pytestmark = pytest.mark.timeout(240)

MOSCOW = ZoneInfo("Europe/Moscow")
OFFICERS = ("ccp-1", "ccp-2", "ccp-3")


def _local(at: datetime) -> str:
    """``at`` as a Moscow wall-clock time to the minute (``2026-11-30T19:47``)."""
    return at.astimezone(MOSCOW).strftime("%Y-%m-%dT%H:%M")


def _ms(local: str) -> int:
    return int(datetime.fromisoformat(local).replace(tzinfo=MOSCOW).timestamp() * 1000)


def _directory(gap_from: str, gap_until: str) -> str:
    text = directory_toml("RU-GS", SPEED, 5000)
    schedule = (
        '[schedules.ccp-do]\nzone = "Europe/Moscow"\naccept_gaps = true\n\n'
        '[[schedules.ccp-do.layers]]\nname = "watch"\n'
        'participants = ["ccp-1", "ccp-2", "ccp-3", "ccp-4"]\nturn = "12h"\n'
        f'handover = "08:00"\nstart = 2024-01-01\nend = "{gap_from}"\n\n'
        '[[schedules.ccp-do.layers]]\nname = "relief"\n'
        'participants = ["ccp-3", "ccp-4"]\nturn = "12h"\n'
        f'handover = "08:00"\nstart = "{gap_until}"\n\n')
    changed, count = re.subn(r"\[schedules\.ccp-do\].*?(?=\[chains\.)", schedule, text,
                             count=1, flags=re.S)
    assert count == 1, "the scenario's ccp-do schedule was not found"
    return changed


@pytest.fixture(scope="module")
def ru(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    now = datetime.now(UTC)
    gap_from, gap_until = _local(now + timedelta(hours=3)), _local(now + timedelta(hours=5))
    with nodes_on("sqlite", tmp_path_factory.mktemp("schedule")) as make:
        node = make("RU-GS")
        apply_toml(node, _directory(gap_from, gap_until))
        node.start()
        secrets = {op: add_operator(node, op) for op in OFFICERS}
        yield {"node": node, "secrets": secrets, "gap": (gap_from, gap_until)}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _who(node: NodeProcess, role: str, at_ms: int | None = None) -> list[str]:
    query = "" if at_ms is None else f"?at_ms={at_ms}"
    r = node.api("GET", f"/api/v1/schedules/{role}/who{query}")
    assert r.status_code == 200, r.text
    return list(r.json()["holders"])


def _overrides(node: NodeProcess) -> list[Any]:
    return list(node.query("SELECT id, role, operator, from_ms, until_ms "
                           "FROM schedule_overrides ORDER BY id"))


def _shown_holders(page: Page) -> list[str]:
    value = page.locator("p.on-duty-now").get_attribute("data-holders") or ""
    return [h for h in value.split(",") if h]


def _passes_wcag(page: Page, what: str) -> None:
    report = wcag_violations(page)
    assert not report, f"{what}: {report}"


def test_english_page_shows_holder_and_gap_and_a_window_covers_the_gap(
        browser: Browser, ru: dict[str, Any]) -> None:
    node = ru["node"]
    gap_from, gap_until = ru["gap"]
    op = Operator(browser, node, "ccp-1", ru["secrets"]["ccp-1"], "en")
    try:
        page = op.login()
        expect(page).to_have_url(f"{node.url}/board")
        page.click(f"nav a:has-text('{po_translation('en', 'Duty schedules')}')")
        expect(page).to_have_url(f"{node.url}/schedules")
        entry = page.locator("li[data-role='ccp-do']")
        expect(entry).to_contain_text("1 gap in the next 14 days")
        expect(entry.locator(".on-duty-now")).to_contain_text(_who(node, "ccp-do")[0])
        _passes_wcag(page, "schedules (en)")
        entry.locator("h2 a").click()
        expect(page).to_have_url(f"{node.url}/schedules/ccp-do")

        # one answer to who is on duty: the page's holder is the API's
        assert _shown_holders(page) == _who(node, "ccp-do")
        expect(page.locator(".zone-note")).to_contain_text("Europe/Moscow")
        gap = page.locator("tr.shift.gap")
        expect(gap).to_have_count(1)
        assert int(gap.get_attribute("data-from") or 0) == _ms(gap_from)
        assert int(gap.get_attribute("data-until") or 0) == _ms(gap_until)
        # shown in Moscow time, and marked by a word and a symbol, not only by colour
        expect(gap.locator("td.when").first).to_contain_text(gap_from[-5:])
        expect(gap.locator("td.when").last).to_contain_text(gap_until[-5:])
        expect(gap).to_contain_text("⚠ Gap: nobody on duty")
        expect(page.locator(".gap-summary")).to_contain_text(
            f"Nobody on duty from {_localised_time(gap_from)}")
        assert _who(node, "ccp-do", _ms(gap_from) + 60_000) == []
        screenshot(page, "schedule-en")
        _passes_wcag(page, "schedule (en)")

        # ccp-1 covers the first hour of the gap, in Moscow time; the second stays a gap
        middle = _local(datetime.fromisoformat(gap_from).replace(tzinfo=MOSCOW)
                        + timedelta(hours=1))
        before = len(_overrides(node))
        page.fill("#shift-from", gap_from)
        page.fill("#shift-until", middle)
        page.click("form.take-window button[type=submit]")
        expect(page).to_have_url(f"{node.url}/schedules/ccp-do?done=taken")
        expect(page.locator(".notice.ok")).to_be_visible()
        covered = page.locator(f"tr.shift[data-from='{_ms(gap_from)}']")
        assert covered.get_attribute("data-holders") == "ccp-1"
        assert covered.get_attribute("data-kind") == "override"
        expect(covered).to_contain_text("Override by ccp-1")
        gap = page.locator("tr.shift.gap")
        expect(gap).to_have_count(1)
        assert int(gap.get_attribute("data-from") or 0) == _ms(middle)
        assert int(gap.get_attribute("data-until") or 0) == _ms(gap_until)
        rows = _overrides(node)
        assert len(rows) == before + 1
        assert tuple(rows[-1][1:]) == ("ccp-do", "ccp-1", _ms(gap_from), _ms(middle))
        assert _who(node, "ccp-do", _ms(gap_from) + 60_000) == ["ccp-1"]
        assert _who(node, "ccp-do", _ms(middle) + 60_000) == []
        assert _shown_holders(page) == _who(node, "ccp-do")
        assert not op.console_errors
    finally:
        op.close()


def _localised_time(local: str) -> str:
    """What the page writes for a Moscow wall-clock time, in English."""
    from hotline.console.i18n import Formatter

    return Formatter("en").zoned(_ms(local), "Europe/Moscow")


def test_arabic_take_the_current_watch(browser: Browser, ru: dict[str, Any]) -> None:
    """An officer not on watch takes the current watch from the page, right to left; an
    override made meanwhile by the administrator shows up on the open page."""
    node = ru["node"]
    holder = _who(node, "ccp-do")
    taker = next(o for o in OFFICERS if o not in holder)
    op = Operator(browser, node, taker, ru["secrets"][taker], "ar")
    try:
        page = op.login()
        expect(page).to_have_url(f"{node.url}/board")
        page.goto(f"{node.url}/schedules/ccp-do")
        expect(page.locator("html")).to_have_attribute("dir", "rtl")
        expect(page.locator("h1")).to_contain_text(
            po_translation("ar", "Duty schedule: %(title)s").split("%")[0].strip())
        assert _shown_holders(page) == _who(node, "ccp-do") == holder
        gap = page.locator("tr.shift.gap")
        expect(gap).to_have_count(1)
        assert int(gap.get_attribute("data-until") or 0) == _ms(ru["gap"][1])
        expect(gap).to_contain_text("⚠ " + po_translation("ar", "Gap: nobody on duty"))
        _passes_wcag(page, "schedule (ar)")
        screenshot(page, "schedule-ar")

        page.click("form.take-watch button[value=current]")
        expect(page).to_have_url(f"{node.url}/schedules/ccp-do?done=taken")
        expect(page.locator("p.on-duty-now")).to_have_attribute("data-holders", taker)
        assert _who(node, "ccp-do") == [taker]
        now_row = page.locator("tr.shift:has(.now-mark)")
        assert now_row.get_attribute("data-kind") == "override"
        expect(now_row).to_contain_text(
            po_translation("ar", "Override by %(who)s") % {"who": taker})
        _passes_wcag(page, "schedule after taking a watch (ar)")

        # an override made elsewhere (the administrator, over the API) fills the rest of
        # the gap: the open page shows it without being reloaded
        page.evaluate("window.__sameDocument = true")
        gap = page.locator("tr.shift.gap")
        start, end = (int(gap.get_attribute(a) or 0) for a in ("data-from", "data-until"))
        made = node.api("POST", "/api/v1/roster", json={
            "operator": "ccp-3", "role": "ccp-do", "from_ms": start, "until_ms": end})
        assert made.status_code == 200, made.text
        expect(page.locator("tr.shift.gap")).to_have_count(0, timeout=25000)
        expect(page.locator(f"tr.shift[data-from='{start}']")).to_have_attribute(
            "data-holders", "ccp-3")
        expect(page.locator("#schedule-view .no-gaps")).to_be_visible()
        assert page.evaluate("window.__sameDocument") is True
        assert not op.console_errors
    finally:
        op.close()


def test_a_take_in_a_role_not_held_is_refused_and_changes_nothing(
        browser: Browser, ru: dict[str, Any]) -> None:
    """ccp-2 holds ccp-do only: the page and the take of ``cgs`` are refused (403), the
    refusal says why, leaves one security-log line, and no override is stored. (In
    Ukrainian, at 200 % zoom: the schedule pages do not scroll sideways and show the
    focus wherever it goes.)"""
    node = ru["node"]
    op = Operator(browser, node, "ccp-2", ru["secrets"]["ccp-2"], "uk",
                  viewport={"width": 640, "height": 450})
    try:
        page = op.login()
        expect(page).to_have_url(f"{node.url}/board")
        for path in ("/schedules/ccp-do", "/schedules"):
            page.goto(node.url + path)
            assert page.evaluate(NO_HORIZONTAL_SCROLL), f"{path} scrolls sideways at 200 %"
            _every_focus_is_visible(page, path)
            _passes_wcag(page, f"{path} at 200 % (uk)")
        expect(page.locator("li[data-role]")).to_have_count(1)  # ccp-do only
        csrf = op.csrf()
        before, cgs_before = _overrides(node), _who(node, "cgs")
        seen = len(node.log_lines("hotline.security:"))
        r = page.request.post(f"{node.url}/schedules/cgs/take",
                              form={"csrf": csrf, "when": "current"},
                              headers={"Origin": node.url}, max_redirects=0)
        assert r.status == 403
        assert po_translation("uk", "You do not hold that role, so you cannot act in it. "
                                    "Nothing was changed.") in unescape(r.text())
        lines = wait_until(lambda: node.log_lines("hotline.security:")[seen:] or None, 10,
                           what="the refusal's security-log line")
        assert len(lines) == 1, lines
        assert "cgs" in lines[0]
        assert "ccp-2" in lines[0]
        assert _overrides(node) == before
        assert _who(node, "cgs") == cgs_before
        r = page.request.get(f"{node.url}/schedules/cgs")
        assert r.status == 403
    finally:
        op.close()
