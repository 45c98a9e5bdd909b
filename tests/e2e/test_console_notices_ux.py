"""The kinds of issue 15's console items, on the notification and incident pages, in a
real browser against two real nodes: numbers typed with Arabic-Indic digits in the
notification form (item 4), receipt buttons that turn into a line saying what was done
(item 7), and user text laid out in the direction of its script (item 5)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import Operator, add_operator, chromium, eventually, po_translation
from tests.calls import apply_scenario
from tests.nodes import link, nodes_on

pytestmark = pytest.mark.timeout(240)

#: an Arabic sentence that starts with a Latin party id (issue 15, item 5)
ARABIC = "US-JS: سقط صاروخ قرب الحدود الساعة 15:40"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with nodes_on("sqlite", tmp_path_factory.mktemp("notices-ux")) as make:
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


def test_notification_form_reads_arabic_indic_digits(
        browser: Browser, pair: dict[str, Any]) -> None:
    """Latitude, longitude, radius and a count typed with Arabic-Indic digits and the
    Arabic decimal separator are read as the numbers they are; what is signed and sent
    carries ASCII digits."""
    us_node = pair["us"]
    us = Operator(browser, us_node, "nmcc-1", pair["secrets"]["nmcc-1"], "ar")
    try:
        page = us.login()
        expect(page).to_have_url(f"{us_node.url}/board")
        page.goto(f"{us_node.url}/notifications/new?template=incident-notification")
        page.check("input[name='to.PL-GS']")
        page.select_option("select[name='f.event']", "missile-impact")
        page.fill("input[name='f.event_time.at']", "2022-11-15T15:40")
        page.fill("input[name='f.event_time.zone']", "Europe/Warsaw")
        page.fill("input[name='f.place.name']", "Przewodów")
        # typed key by key, as an Arabic keyboard gives them
        lat, lon = "\u0665\u0660\u066b\u0664\u0667", "\u0662\u0663\u066b\u0669\u0663"
        page.locator("input[name='f.place.lat']").press_sequentially(lat)  # 50.47
        page.locator("input[name='f.place.lon']").press_sequentially(lon)  # 23.93
        page.locator("input[name='f.place.radius_km']").press_sequentially("\u0665")
        page.locator("input[name='f.killed']").press_sequentially("\u0662")
        page.select_option("select[name='f.urgency']", "Immediate")
        page.select_option("select[name='f.severity']", "Severe")
        page.select_option("select[name='f.certainty']", "Observed")
        page.select_option("select[name='f.confidence']", "high")
        page.fill("textarea[name='f.description']", "انفجار في مخزن حبوب")
        page.click("form.notice-form button[type=submit]")
        expect(page).to_have_url(re.compile(r".*/notifications/[0-9a-f]{32}$"))
        notice_id = page.url.rsplit("/", 1)[1]
        body = us_node.api("GET", f"/api/v1/notifications/{notice_id}").json()
        assert body["fields"]["place"] == {"name": "Przewodów", "lat": "50.47",
                                           "lon": "23.93", "radius_km": "5"}
        assert body["fields"]["killed"] == 2
    finally:
        us.close()


def test_receipt_buttons_turn_into_what_was_done(
        browser: Browser, pair: dict[str, Any]) -> None:
    """After *Mark as read* that button is gone and a line says it was done; after
    *Acknowledge* neither button is left, and a line says so."""
    pl_node, us_node = pair["pl"], pair["us"]
    sent = us_node.api("POST", "/api/v1/notifications", json={
        "template": "incident-notification", "to": ["PL-GS"], "lang": "en", "as": "nmcc-do",
        "fields": {"event": "missile-impact",
                   "event_time": {"at": "2022-11-15T15:40:00+01:00",
                                  "zone": "Europe/Warsaw"},
                   "place": {"name": "Przewodów", "lat": "50.47", "lon": "23.93"},
                   "urgency": "Immediate", "severity": "Severe", "certainty": "Observed",
                   "confidence": "high", "killed": 2}})
    assert sent.status_code in (200, 201), sent.text
    notice_id = sent.json()["id"]
    eventually(lambda: pl_node.api("GET", f"/api/v1/notifications/{notice_id}")
               .status_code == 200, 30, "the notification on PL-GS")
    pl = Operator(browser, pl_node, "opsdo-1", pair["secrets"]["opsdo-1"], "en")
    try:
        page = pl.login()
        expect(page).to_have_url(f"{pl_node.url}/board")
        page.goto(f"{pl_node.url}/notifications/{notice_id}")
        read = page.locator(".receipt-actions button", has_text="Mark as read")
        ack = page.locator(".receipt-actions button", has_text="Acknowledge")
        expect(read).to_have_count(1)
        read.click()
        expect(page.locator("[data-done=read]")).to_have_text(
            re.compile(po_translation("en", "Marked as read")))
        expect(read).to_have_count(0)
        expect(ack).to_have_count(1)
        ack.click()
        expect(page.locator("[data-done=acknowledged]")).to_be_visible()
        expect(page.locator(".receipt-actions button")).to_have_count(0)
        # the audit log says it in words, not as "name: value" fields (issue 15, item 6)
        page.goto(f"{pl_node.url}/audit?kind=notice-receipt")
        words = page.locator("tr[data-kind=notice-receipt] td.words")
        expect(words.first).to_have_text(
            f"PL-GS marked notification {notice_id} “acknowledged”")
        page.goto(f"{pl_node.url}/audit?kind=notice")
        expect(page.locator("tr[data-kind=notice] td.words").first).to_have_text(
            f"Notification {notice_id} (incident-notification) from US-JS")
    finally:
        pl.close()


def test_incident_and_notification_text_take_the_direction_of_their_script(
        browser: Browser, pair: dict[str, Any]) -> None:
    """An Arabic incident title, timeline entry and notification free text that start
    with a Latin party id are laid out right to left (computed style), in an English
    console too."""
    us_node = pair["us"]
    opened = us_node.api("POST", "/api/v1/incidents",
                         json={"title": ARABIC, "parties": ["PL-GS"]})
    assert opened.status_code == 201, opened.text
    iid = opened.json()["id"]
    added = us_node.api("POST", f"/api/v1/incidents/{iid}/entries",
                        json={"kind": "fact", "text": ARABIC, "confidence": "high"})
    assert added.status_code in (200, 201), added.text
    sent = us_node.api("POST", "/api/v1/notifications", json={
        "template": "incident-notification", "to": ["PL-GS"], "lang": "ar", "as": "nmcc-do",
        "fields": {"event": "missile-impact",
                   "event_time": {"at": "2022-11-15T15:40:00+01:00",
                                  "zone": "Europe/Warsaw"},
                   "place": {"name": "US-JS: مخزن حبوب", "lat": "50.47", "lon": "23.93"},
                   "urgency": "Immediate", "severity": "Severe", "certainty": "Observed",
                   "confidence": "high", "killed": 2, "description": ARABIC}})
    assert sent.status_code in (200, 201), sent.text
    notice_id = sent.json()["id"]
    us = Operator(browser, us_node, "nmcc-1", pair["secrets"]["nmcc-1"], "en")
    rtl = "e => getComputedStyle(e).direction"
    try:
        page = us.login()
        expect(page).to_have_url(f"{us_node.url}/board")
        page.goto(f"{us_node.url}/incidents")
        title = page.locator(f"a[href='/incidents/{iid}'] span")
        assert title.evaluate(rtl) == "rtl"
        page.goto(f"{us_node.url}/incidents/{iid}")
        assert page.locator("h1 span").evaluate(rtl) == "rtl"
        entry = page.locator("table.timeline tbody span", has_text="سقط").first
        assert entry.evaluate(rtl) == "rtl"
        page.goto(f"{us_node.url}/notifications/{notice_id}")
        assert page.locator("tr[data-field=description] .free-text").evaluate(rtl) == "rtl"
        assert page.locator("tr[data-field=place] .place-name").evaluate(rtl) == "rtl"
    finally:
        us.close()


def test_a_notification_form_sent_twice_sends_once(
        browser: Browser, pair: dict[str, Any]) -> None:
    """Under stress an operator goes Back and presses Send again: the second send of the
    same form shows the notification the first one sent, saying nothing was sent again
    (issue 15, item 1: a second action must not silently repeat the first)."""
    us_node = pair["us"]
    us = Operator(browser, us_node, "nmcc-1", pair["secrets"]["nmcc-1"], "en")

    def sent() -> int:
        return int(us_node.query("SELECT count(*) FROM notices")[0][0])
    try:
        page = us.login()
        expect(page).to_have_url(f"{us_node.url}/board")
        page.goto(f"{us_node.url}/notifications/new?template=link-test")
        page.check("input[name='to.PL-GS']")
        page.fill("input[name='f.sent_at.at']", "2026-11-30T06:00")
        page.fill("input[name='f.sequence']", "7")
        form = page.locator("form.notice-form")
        filled = {name: form.locator(f"input[name='{name}']").input_value()
                  for name in ("csrf", "once", "template", "as")}
        before = sent()
        page.click("form.notice-form button[type=submit]")
        expect(page).to_have_url(re.compile(r".*/notifications/[0-9a-f]{32}$"))
        first = page.url.rsplit("/", 1)[1]
        assert sent() == before + 1
        # the same form sent again (as Back + Send does), field for field
        again = page.request.post(f"{us_node.url}/notifications/send", form={
            **filled, "to.PL-GS": "1", "f.sent_at.at": "2026-11-30T06:00",
            "f.sent_at.zone": "UTC", "f.sequence": "7", "lang": "en"},
            headers={"origin": us_node.url})
        assert again.ok, again.status
        assert again.url.startswith(f"{us_node.url}/notifications/{first}"), again.url
        assert "Nothing was sent again" in again.text()
        assert sent() == before + 1
    finally:
        us.close()


def test_an_incident_entry_form_sent_twice_adds_one_entry(
        browser: Browser, pair: dict[str, Any]) -> None:
    """The same kind on the incident page: Back and Add again does not put the entry on
    every member's timeline twice."""
    us_node = pair["us"]
    opened = us_node.api("POST", "/api/v1/incidents",
                         json={"title": "Przewodow impact", "parties": []})
    assert opened.status_code == 201, opened.text
    iid = opened.json()["id"]
    us = Operator(browser, us_node, "nmcc-1", pair["secrets"]["nmcc-1"], "en")

    def entries() -> int:
        body = us_node.api("GET", f"/api/v1/incidents/{iid}").json()
        return sum(e["type"] == "fact" for e in body["entries"])
    try:
        page = us.login()
        expect(page).to_have_url(f"{us_node.url}/board")
        page.goto(f"{us_node.url}/incidents/{iid}")
        form = page.locator("form.add-entry")
        filled = {name: form.locator(f"input[name='{name}']").input_value()
                  for name in ("csrf", "once")}
        page.select_option("#entry-kind", "fact")
        page.fill("#entry-text", "Explosion at a grain dryer")
        page.click("form.add-entry button[type=submit]")
        expect(page.locator("table.timeline")).to_contain_text("Explosion at a grain dryer")
        assert entries() == 1
        again = page.request.post(f"{us_node.url}/incidents/{iid}/entries", form={
            **filled, "kind": "fact", "text": "Explosion at a grain dryer"},
            headers={"origin": us_node.url})
        assert again.ok, again.status
        assert "Nothing was added again" in again.text()
        assert entries() == 1
    finally:
        us.close()
