"""Attribution queries in the console, in a real browser on two real nodes: the callee's
alarm shows the question with four answer buttons and a details field; the asker's board
shows the status and the callee's verified answer without reloading."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import Operator, add_operator, chromium, eventually
from tests.calls import us_and_ru
from tests.nodes import nodes_on

pytestmark = pytest.mark.timeout(240)
QUESTION = "Did forces under your command fire towards Przewodow at 15:40?"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with nodes_on("sqlite", tmp_path_factory.mktemp("queries")) as make:
        us, ru = us_and_ru(make)
        taken = ru.api("POST", "/api/v1/roster", json={"operator": "ccp-1", "role": "ccp-do"})
        assert taken.status_code == 200, taken.text
        yield {"us": us, "ru": ru, "secrets": {"nmcc-1": add_operator(us, "nmcc-1"),
                                               "ccp-1": add_operator(ru, "ccp-1")}}


def test_callee_answers_unknown_from_the_alarm_asker_sees_it_verified(
        pair: dict[str, Any]) -> None:
    with chromium() as browser:
        us = Operator(browser, pair["us"], "nmcc-1", pair["secrets"]["nmcc-1"])
        ru = Operator(browser, pair["ru"], "ccp-1", pair["secrets"]["ccp-1"])
        try:
            us_page, ru_page = us.login(), ru.login()
            expect(us_page).to_have_url(f"{us.node.url}/board")
            expect(ru_page).to_have_url(f"{ru.node.url}/board")
            asked = pair["us"].api("POST", "/api/v1/queries", json={
                "to": "cgs@RU-GS", "as": "nmcc-do", "question": QUESTION,
                "deadline": "30m"})
            assert asked.status_code == 201, asked.text
            query_id = asked.json()["id"]
            alarm = ru_page.locator("#alarm")
            expect(alarm).to_be_visible(timeout=30000)
            assert alarm.get_attribute("data-call") == query_id
            expect(alarm.locator(".query-question")).to_have_text(QUESTION)
            buttons = alarm.locator("form.query-form button[name=answer]")
            expect(buttons).to_have_count(4)
            assert [buttons.nth(i).get_attribute("value") for i in range(4)] == \
                ["yes", "no", "unknown", "will-not-answer"]
            # the plain answer and decline of a call are not offered for a query
            expect(alarm.locator("form.decline-form")).to_have_count(0)
            # wait until the duty officer's role is rung, then answer as it
            eventually(lambda: alarm.locator("input[name=as]").get_attribute("value")
                       == "ccp-do" or None, 15, "the alarm to ring ccp-do")
            details = "No launch by our forces is known to this desk."
            ru_page.fill("#query-details", details)
            alarm.locator("button[value=unknown]").click()
            expect(ru_page.locator("#alarm")).to_have_count(0, timeout=15000)

            query = eventually(lambda: (lambda b: b if b["query"]["status"] == "answered"
                                        else None)(
                pair["us"].api("GET", f"/api/v1/queries/{query_id}").json()), 15,
                "the answer to reach US-JS")
            assert (query["query"]["answer"], query["query"]["answered_by"]) == \
                ("unknown", "ccp-1")
            item = us_page.locator(f"li.call[data-call='{query_id}'] .query")
            expect(item).to_have_attribute("data-status", "answered", timeout=15000)
            expect(item.locator(".query-answer")).to_contain_text("Unknown")
            expect(item.locator(".query-answer .verified")).to_be_visible()
            expect(item.locator(".query-details")).to_have_text(details)
            assert not us.console_errors
            assert not ru.console_errors
        finally:
            us.close()
            ru.close()
