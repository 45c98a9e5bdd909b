"""The incident pages in a real browser (docs/incidents.md, docs/console.md): PL-GS opens
an incident with US-JS; US's operator accepts it from the page and sees the whole
history; adds an entry and a correction through the form, which PL's node receives; the
page passes the WCAG audit in English and Arabic; RU-GS's operator (linked, not in the
incident) finds nothing of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import Operator, add_operator, chromium, compact, wcag_violations
from tests.calls import apply_scenario
from tests.nodes import link, nodes_on, wait_until

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _entries(node: Any, iid: str) -> list[dict[str, Any]]:
    return list(node.api("GET", f"/api/v1/incidents/{iid}").json()["entries"])


def test_invitation_accepted_and_entries_added_from_the_console(
        browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> None:
    with nodes_on("sqlite", tmp_path_factory.mktemp("incidents")) as make:
        pl, us, ru = make("PL-GS"), make("US-JS"), make("RU-GS")
        link(pl, us)
        link(us, ru)
        for node in (pl, us, ru):
            apply_scenario(node)
            node.start()
        opened = pl.api("POST", "/api/v1/incidents",
                        json={"title": "Przewodów impact", "parties": ["US-JS"]})
        assert opened.status_code == 201, opened.text
        iid = opened.json()["id"]
        pl.api("POST", f"/api/v1/incidents/{iid}/entries",
               json={"kind": "fact", "text": "Explosion at Przewodów", "confidence": "high"})
        wait_until(lambda: us.api("GET", "/api/v1/incidents").json()["incidents"], 30,
                   what="the invitation at US")

        nmcc = Operator(browser, us, "nmcc-1", add_operator(us, "nmcc-1"), "en")
        try:
            page = nmcc.login()
            expect(page).to_have_url(f"{us.url}/board")
            page.click("nav a[href='/incidents']")
            expect(page.locator(".incident-list")).to_contain_text("Przewodów impact")
            expect(page.locator(".incident-list .invited")).to_be_visible()
            page.click(f"a[href='/incidents/{iid}']")
            page.click("button:has-text('Accept the invitation')")
            # the history comes from the opener: reload until it is here
            wait_until(lambda: us.api("GET", f"/api/v1/incidents/{iid}").json()["state"]
                       == "member", 30, what="US to join")
            page.reload()
            expect(page.locator("table.timeline")).to_contain_text("Explosion at Przewodów")
            assert wcag_violations(page) == ""

            page.select_option("#entry-kind", "assessment")
            page.fill("#entry-text", "Russian missile")
            page.select_option("#entry-confidence", "low")
            page.click("button:has-text('Add to the timeline')")
            expect(page.locator("table.timeline")).to_contain_text("Russian missile")
            wrong = next(e for e in _entries(us, iid) if e["text"] == "Russian missile")
            page.select_option("#entry-kind", "assessment")
            page.fill("#entry-text", "An air-defence interceptor")
            page.select_option("#entry-confidence", "moderate")
            page.select_option("#entry-corrects", wrong["id"])
            page.click("button:has-text('Add to the timeline')")
            corrected = page.locator(f"#entry-{wrong['id']}")
            expect(corrected).to_have_class("corrected")
            expect(corrected).to_contain_text("Russian missile")
            wait_until(lambda: {e["text"] for e in _entries(pl, iid)} >=
                       {"Russian missile", "An air-defence interceptor"}, 30,
                       what="both entries at PL")
            fix = next(e for e in _entries(pl, iid) if e["corrects"] == wrong["id"])
            assert fix["author"] == "US-JS"
            assert fix["confidence"] == "moderate"
        finally:
            nmcc.close()

        ccp = Operator(browser, ru, "ccp-1", add_operator(ru, "ccp-1"), "ar")
        try:
            page = ccp.login()
            page.goto(f"{ru.url}/incidents")
            assert "Przewodów" not in compact(page.content())
            assert wcag_violations(page) == ""
            response = page.goto(f"{ru.url}/incidents/{iid}")
            assert response is not None
            assert response.status == 404
            assert "Przewodów" not in page.content()
        finally:
            ccp.close()
