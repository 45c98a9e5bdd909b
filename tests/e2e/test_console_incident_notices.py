"""A notification sent on an incident from the console (docs/notifications.md,
docs/incidents.md), in a real browser: PL-GS's operator picks the incident in the form
(no recipient ticked); US-JS, a member, receives it, and its operator reads the entry on
the incident's timeline in Ukrainian, one click from the notification itself."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import Operator, add_operator, chromium, wcag_violations
from tests.calls import apply_scenario
from tests.nodes import link, nodes_on, wait_until

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _fill(page: Page) -> None:
    page.select_option("select[name='f.event']", "missile-impact")
    page.fill("input[name='f.event_time.at']", "2022-11-15T15:40")
    page.fill("input[name='f.event_time.zone']", "Europe/Warsaw")
    page.fill("input[name='f.place.name']", "Przewodów")
    page.fill("input[name='f.place.lat']", "50.47")
    page.fill("input[name='f.place.lon']", "23.93")
    page.fill("input[name='f.killed']", "2")
    page.select_option("select[name='f.urgency']", "Immediate")
    page.select_option("select[name='f.severity']", "Severe")
    page.select_option("select[name='f.certainty']", "Observed")
    page.select_option("select[name='f.confidence']", "high")
    page.select_option("select[name='lang']", "pl")


def test_a_notification_sent_on_an_incident_is_on_every_members_timeline(
        browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> None:
    with nodes_on("sqlite", tmp_path_factory.mktemp("incident-notices")) as make:
        pl, us = make("PL-GS"), make("US-JS")
        link(pl, us)
        for node in (pl, us):
            apply_scenario(node)
            node.start()
        opened = pl.api("POST", "/api/v1/incidents",
                        json={"title": "Przewodów impact", "parties": ["US-JS"]})
        assert opened.status_code == 201, opened.text
        iid = opened.json()["id"]
        wait_until(lambda: us.api("GET", f"/api/v1/incidents/{iid}").status_code == 200,
                   30, what="the invitation at US")
        us.api("POST", f"/api/v1/incidents/{iid}/accept")
        wait_until(lambda: us.api("GET", f"/api/v1/incidents/{iid}").json()["state"]
                   == "member", 30, what="US to join")

        ops = Operator(browser, pl, "opsdo-1", add_operator(pl, "opsdo-1"), "pl")
        try:
            page = ops.login()
            page.goto(f"{pl.url}/notifications/new?template=incident-notification")
            expect(page.locator("#notice-incident")).to_contain_text("Przewodów impact")
            assert wcag_violations(page) == ""
            page.select_option("#notice-incident", iid)
            _fill(page)
            page.click("form.notice-form button[type=submit]")
            expect(page).to_have_url(re.compile(r".*/notifications/[0-9a-f]{32}$"))
            notice_id = page.url.rsplit("/", 1)[1]
        finally:
            ops.close()
        sent = pl.api("GET", f"/api/v1/notifications/{notice_id}").json()
        assert sent["recipients"] == ["US-JS"]
        assert sent["fields"]["incident"] == iid

        def on_us_timeline() -> bool:
            entries = us.api("GET", f"/api/v1/incidents/{iid}").json()["entries"]
            return any(e["type"] == "notification" and e["notice"] for e in entries)
        wait_until(on_us_timeline, 30, what="the notification on US's timeline")

        nmcc = Operator(browser, us, "nmcc-1", add_operator(us, "nmcc-1"), "uk")
        try:
            page = nmcc.login()
            page.goto(f"{us.url}/incidents/{iid}")
            shown = page.locator(".entry-notice")
            expect(shown).to_contain_text("Повідомлення про інцидент")
            expect(shown).to_contain_text("Загиблі")
            expect(shown).to_contain_text("падіння ракети")
            assert wcag_violations(page) == ""
            shown.locator("a").click()
            expect(page).to_have_url(f"{us.url}/notifications/{notice_id}")
        finally:
            nmcc.close()
