"""Formatted notifications in the console, in a real browser (Debian's chromium)
against two real nodes: PL-GS's duty officer fills the incident notification form (a
latitude out of range is refused naming the field, nothing sent), US-JS's duty officer
reads it in Arabic — right to left, with numbers, coordinates and party ids placed as
the browser lays them out — opens PL's Polish original with one click, and
acknowledges it: PL-GS holds the signed receipt."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import (
    Operator,
    add_operator,
    chromium,
    eventually,
    po_translation,
    screenshot,
    wcag_violations,
)
from tests.calls import apply_scenario
from tests.nodes import link, nodes_on

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with nodes_on("sqlite", tmp_path_factory.mktemp("notices")) as make:
        pl, us = make("PL-GS"), make("US-JS")
        link(pl, us)
        apply_scenario(pl)
        apply_scenario(us)
        pl.start()
        us.start()
        secrets = {"opsdo-1": add_operator(pl, "opsdo-1"),
                   "nmcc-1": add_operator(us, "nmcc-1")}
        yield {"pl": pl, "us": us, "secrets": secrets}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _box(page: Page, selector: str) -> dict[str, float]:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return dict(box)


#: the x of the first and of the last character of an element's text, as drawn
_CHAR_X = """e => {
  const t = e.firstChild, r = document.createRange();
  r.setStart(t, 0); r.setEnd(t, 1); const a = r.getBoundingClientRect().x;
  r.setStart(t, t.length - 1); r.setEnd(t, t.length); const b = r.getBoundingClientRect().x;
  return [a, b];
}"""


#: an element's text as drawn, left to right: its characters sorted by their x
_DRAWN = """e => {
  const t = e.firstChild, r = document.createRange(), out = [];
  for (let i = 0; i < t.length; i++) {
    if ("\\u2066\\u2068\\u2069".includes(t.data[i])) continue;
    r.setStart(t, i); r.setEnd(t, i + 1);
    out.push([r.getBoundingClientRect().x, t.data[i]]);
  }
  return out.sort((a, b) => a[0] - b[0]).map(c => c[1]).join("");
}"""


def _visible(text: str) -> str:
    """``text`` without the invisible bidi isolates the Arabic rendering puts around
    numbers, zones and names."""
    return text.translate({0x2066: None, 0x2068: None, 0x2069: None})


def _fill(page: Page, lat: str) -> None:
    page.check("input[name='to.US-JS']")
    page.select_option("select[name='f.event']", "missile-impact")
    page.fill("input[name='f.event_time.at']", "2022-11-15T15:40")
    page.fill("input[name='f.event_time.zone']", "Europe/Warsaw")
    page.fill("input[name='f.place.name']", "Przewodów")
    page.fill("input[name='f.place.lat']", lat)
    page.fill("input[name='f.place.lon']", "23.93")
    page.fill("input[name='f.killed']", "2")
    page.select_option("select[name='f.urgency']", "Immediate")
    page.select_option("select[name='f.severity']", "Severe")
    page.select_option("select[name='f.certainty']", "Observed")
    page.select_option("select[name='f.confidence']", "high")
    page.fill("textarea[name='f.description']",
              "Eksplozja na terenie suszarni zboża; zginęło dwóch mężczyzn.")
    page.select_option("select[name='lang']", "pl")


def test_sent_from_the_form_read_in_arabic_and_acknowledged(
        browser: Browser, pair: dict[str, Any]) -> None:
    pl_node, us_node = pair["pl"], pair["us"]
    pl = Operator(browser, pl_node, "opsdo-1", pair["secrets"]["opsdo-1"], "pl")
    us = Operator(browser, us_node, "nmcc-1", pair["secrets"]["nmcc-1"], "ar")
    try:
        page = pl.login()
        expect(page).to_have_url(f"{pl_node.url}/board")
        page.goto(f"{pl_node.url}/notifications/new?template=incident-notification")
        expect(page.locator("h2")).to_have_text("Powiadomienie o incydencie")
        assert wcag_violations(page) == ""
        _fill(page, "95")
        page.click("form.notice-form button[type=submit]")
        error = page.locator("#notice-error")
        expect(error).to_be_visible()
        expect(error).to_have_attribute("data-field", "place")
        expect(error).to_contain_text("'place'")
        expect(page.locator("fieldset.invalid[data-field=place]")).to_be_visible()
        assert pl_node.query("SELECT count(*) FROM notices")[0][0] == 0
        assert pl_node.query("SELECT count(*) FROM outbox WHERE type = 'notice'"
                             )[0][0] == 0
        # what was typed is kept: only the refused field is changed
        expect(page.locator("input[name='f.place.name']")).to_have_value("Przewodów")
        page.fill("input[name='f.place.lat']", "50.47")
        page.click("form.notice-form button[type=submit]")
        expect(page).to_have_url(re.compile(r".*/notifications/[0-9a-f]{32}$"))
        notice_id = page.url.rsplit("/", 1)[1]

        ar = us.login()
        expect(ar).to_have_url(f"{us_node.url}/board")
        eventually(lambda: us_node.api("GET", f"/api/v1/notifications/{notice_id}")
                   .status_code == 200, 30, "the notification on US-JS")
        ar.goto(f"{us_node.url}/notifications")
        ar.click(f"li[data-notice='{notice_id}'] a")
        article = ar.locator("#notice")
        expect(article).to_have_attribute("dir", "rtl")
        assert article.evaluate("e => getComputedStyle(e).direction") == "rtl"
        expect(ar.locator("#notice h1")).to_have_text("إخطار بحادث")
        # the label (start) is on the right, the value on its left
        label = _box(ar, "tr[data-field=killed] th")
        value = _box(ar, "tr[data-field=killed] td")
        assert label["x"] > value["x"]
        expect(ar.locator("tr[data-field=killed] td")).to_have_text("2")
        # coordinates in reading order: latitude first, so to the right of longitude
        lat, lon = _box(ar, "tr[data-field=place] .coord.lat"), _box(
            ar, "tr[data-field=place] .coord.lon")
        assert lat["x"] > lon["x"]
        shown_lat = ar.locator("tr[data-field=place] .coord.lat")
        assert _visible(shown_lat.inner_text()) == "50.47° شمالاً"
        # as drawn, left to right: the Arabic word for north (read after the number, so
        # on its left; glyphs of an RTL run come out in reverse), then the number with
        # its degree sign after it, as in any language
        drawn = shown_lat.evaluate(_DRAWN)
        assert drawn.endswith(" 50.47°"), drawn
        time_row = ar.locator("tr[data-field=event_time] td .value")
        # the zone and offset stay one left-to-right unit inside the brackets, left of
        # the time (a bracket of an RTL run is drawn mirrored: ")" shows as "(")
        assert ")Europe/Warsaw، UTC+01:00( 15:40" in time_row.evaluate(_DRAWN)
        # a party id inside Arabic text stays one left-to-right word, in its own box
        party = ar.locator("#notice .from bdi", has_text="PL-GS")
        expect(party).to_have_text("ops-do@PL-GS")
        assert party.evaluate("e => getComputedStyle(e).direction") == "ltr"
        assert party.evaluate("e => getComputedStyle(e).unicodeBidi") == "isolate"
        # its first character is drawn left of its last (not mirrored into
        # "PL-GS@ops-do"), and the whole id after the Arabic label, i.e. to its left
        first, last = party.evaluate(_CHAR_X)
        assert first < last
        assert _box(ar, "#notice .from-label")["x"] > _box(ar, "#notice .from bdi")["x"]
        # free text: shown as written, marked not translated, in its own direction
        free = ar.locator("tr[data-field=description] .free-text")
        expect(free).to_have_attribute("lang", "pl")
        assert free.evaluate("e => getComputedStyle(e).direction") == "ltr"
        expect(ar.locator("tr[data-field=description] .not-translated")).to_have_text(
            "غير مترجَم")
        screenshot(ar, "notification-ar")
        assert wcag_violations(ar) == ""

        ar.click("#show-original")
        expect(article).to_have_attribute("lang", "pl")
        assert article.evaluate("e => getComputedStyle(e).direction") == "ltr"
        expect(ar.locator("#notice h1")).to_have_text("Powiadomienie o incydencie")
        expect(ar.locator("tr[data-field=place] .coord.lat")).to_have_text("50,47° N")
        ar.goto(f"{us_node.url}/notifications/{notice_id}")

        ar.click(f"button:has-text('{po_translation('ar', 'Acknowledge')}')")
        expect(ar.locator("li[data-receipt=acknowledged]")).to_have_count(1)

        def acknowledged() -> bool:
            body = pl_node.api("GET", f"/api/v1/notifications/{notice_id}").json()
            return any(r["receipt"] == "acknowledged" and r["verified"]
                       and r["operator"] == "nmcc-1" for r in body["receipts"])
        eventually(acknowledged, 30, "PL-GS to hold the signed acknowledgement")
        page.goto(f"{pl_node.url}/notifications/{notice_id}")
        expect(page.locator("li[data-receipt=acknowledged][data-party='US-JS']")
               ).to_be_visible()
    finally:
        pl.close()
        us.close()


def test_a_form_without_a_recipient_is_shown_again_naming_it_with_what_was_typed(
        browser: Browser, pair: dict[str, Any]) -> None:
    """Forgetting to tick a recipient is a field refused like any other: the form comes
    back naming "To", with everything typed kept, and nothing is sent."""
    pl_node = pair["pl"]
    pl = Operator(browser, pl_node, "opsdo-1", pair["secrets"]["opsdo-1"], "pl")
    try:
        page = pl.login()
        expect(page).to_have_url(f"{pl_node.url}/board")
        before = pl_node.query("SELECT count(*) FROM notices")[0][0]
        page.goto(f"{pl_node.url}/notifications/new?template=incident-notification")
        _fill(page, "50.47")
        page.uncheck("input[name='to.US-JS']")
        page.click("form.notice-form button[type=submit]")
        error = page.locator("#notice-error")
        expect(error).to_be_visible()
        expect(error).to_have_attribute("data-field", "to")
        expect(page.locator("fieldset.invalid[data-field=to]")).to_be_visible()
        expect(page.locator("textarea[name='f.description']")).to_have_value(
            "Eksplozja na terenie suszarni zboża; zginęło dwóch mężczyzn.")
        assert pl_node.query("SELECT count(*) FROM notices")[0][0] == before
    finally:
        pl.close()
