"""The console's link health page in a real browser: per link its health, the current
endpoint, the last good test, a round-trip sparkline (inline SVG) and the peer's
staffed desks, in the operator's language."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import Operator, add_operator, chromium, po_translation
from tests.calls import apply_scenario, wait_for_desks
from tests.nodes import link, nodes_on, wait_until

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with nodes_on("sqlite", tmp_path_factory.mktemp("linkhealth")) as make:
        us, ru = make("US-JS"), make("RU-GS")
        # tests often; judged leniently, so that a machine busy with other tests does not
        # turn the link "degraded" while the page is read (judging has its own tests)
        us.configure("health", test_every_seconds=0.5, test_timeout_seconds=60,
                     degraded_rtt_ms=60_000)
        link(us, ru)
        apply_scenario(us)
        apply_scenario(ru)
        us.start()
        ru.start()
        wait_for_desks(us, "RU-GS")
        secret = add_operator(us, "nmcc-1")
        yield {"us": us, "ru": ru, "secret": secret}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.mark.parametrize("lang", ["en", "uk"])
def test_the_link_health_page_shows_state_endpoint_and_sparkline(
        browser: Browser, pair: dict[str, Any], lang: str) -> None:
    us, ru = pair["us"], pair["ru"]
    wait_until(lambda: len([r for _, r in us.peer_status("RU-GS")["rtt_last_hour"]
                            if r is not None]) >= 3, 30, what="three answered link tests")
    wait_until(lambda: us.peer_status("RU-GS")["health"] == "up", 30, what="the link up")
    operator = Operator(browser, us, "nmcc-1", pair["secret"], lang)
    try:
        page = operator.login()
        page.goto(us.url + "/links")
        row = page.locator("tr[data-party='RU-GS']")
        expect(row).to_have_attribute("data-health", "up")
        expect(row.locator("td.health .badge")).to_contain_text(po_translation(lang, "Up"))
        expect(row.locator("td.endpoint")).to_contain_text(ru.url)
        expect(row.locator("td.last-good-test time")).not_to_have_text("\u2013")
        spark = row.locator("td.rtt svg.sparkline")
        expect(spark).to_be_visible()
        expect(spark.locator("polyline")).to_have_count(1)
        assert len(spark.locator("polyline").get_attribute("points").split()) >= 2
        expect(row.locator("td.desks")).not_to_have_text(po_translation(lang,
                                                                        "No desk report yet"))
        expect(page.locator("table.links thead")).to_contain_text(
            po_translation(lang, "Current endpoint"))
        assert not operator.console_errors, operator.console_errors
    finally:
        operator.close()
