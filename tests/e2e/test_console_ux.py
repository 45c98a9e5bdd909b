"""The operator's first hour in the console (issue 15, items 1-7), in English and Arabic,
in Debian's chromium against a real US-JS/RU-GS pair.

Each test places its own calls and ends them, so the order does not matter. Direction
and time formatting are checked from what the browser computes and from text typed into
the fields, not from the HTML.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from hotline.console.i18n import Formatter
from hotline.console.views import ms_of
from tests.browser import (
    Operator,
    add_operator,
    chromium,
    compact,
    eventually,
    fresh_code,
    po_translation,
)
from tests.calls import place, us_and_ru, wait_for_event, wait_for_state
from tests.nodes import NodeProcess, nodes_on

pytestmark = pytest.mark.timeout(300)
LANGS = ["en", "ar"]
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
MIXED = "US-JS: سقط صاروخ قرب الحدود الساعة 15:40"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with nodes_on("sqlite", tmp_path_factory.mktemp("console-ux")) as make:
        us, ru = us_and_ru(make)
        taken = ru.api("POST", "/api/v1/roster", json={"operator": "ccp-1", "role": "ccp-do"})
        assert taken.status_code == 200, taken.text
        secrets = {"nmcc-1": add_operator(us, "nmcc-1"), "ccp-1": add_operator(ru, "ccp-1"),
                   "cjcs-1": add_operator(us, "cjcs-1")}
        yield {"us": us, "ru": ru, "secrets": secrets}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _op(browser: Browser, pair: dict[str, Any], side: str, operator: str,
        lang: str) -> Operator:
    return Operator(browser, pair[side], operator, pair["secrets"][operator], lang)


def _calls(node: NodeProcess) -> list[dict[str, Any]]:
    return list(node.api("GET", "/api/v1/calls").json()["calls"])


def _end_active(node: NodeProcess) -> None:
    for call in _calls(node):
        if call["direction"] == "out" and call["state"] in ("placed", "delivered",
                                                              "ringing", "undeliverable"):
            node.api("POST", f"/api/v1/calls/{call['id']}/cancel")


def _direction(page: Page, selector: str) -> str:
    """The computed direction of the first match (polled: a live refresh may replace the
    element while it is read, which reads as '')."""
    return str(eventually(lambda: page.locator(selector).first.evaluate(
        "e => e.isConnected ? getComputedStyle(e).direction : ''"), 10, selector))


@pytest.mark.parametrize("lang", LANGS)
def test_a_placed_call_shows_at_once_and_a_second_one_is_asked_for(
        browser: Browser, pair: dict[str, Any], lang: str) -> None:
    us_node = pair["us"]
    _end_active(us_node)
    us = _op(browser, pair, "us", "nmcc-1", lang)
    try:
        page = us.login()
        expect(page).to_have_url(f"{us_node.url}/board")
        button = page.locator("button.desk-button[data-address='cgs@RU-GS']")
        page.locator("#call-reason").press_sequentially("radar track over Przewodow")
        before = {c["id"] for c in _calls(us_node)}
        button.click()
        placed = page.locator("li.call[data-just-placed=yes]")
        expect(placed).to_be_visible(timeout=5000)
        call_id = placed.get_attribute("data-call")
        assert call_id
        assert call_id not in before
        expect(page.locator("#call-reason")).to_have_value("")
        expect(placed).to_be_in_viewport()

        # the same desk again while the call rings: asked, nothing placed
        button.click()
        confirm = page.locator("#flash .confirm-call")
        expect(confirm).to_be_visible(timeout=5000)
        expect(confirm).to_contain_text("cgs@RU-GS")
        to_cgs = [c for c in _calls(us_node) if c["callee"] == "cgs@RU-GS"
                  and c["id"] not in before]
        assert [c["id"] for c in to_cgs] == [call_id]
        # the server asks too, whoever posts
        r = page.request.post(f"{us_node.url}/board/call",
                              form={"to": "cgs@RU-GS", "as": "nmcc-do", "csrf": us.csrf()},
                              headers={"Origin": us_node.url}, max_redirects=0)
        assert r.status == 409
        assert len([c for c in _calls(us_node) if c["id"] not in before]) == 1
        confirm.locator("button.confirm-again").click()
        eventually(lambda: len([c for c in _calls(us_node) if c["id"] not in before]) == 2,
                   10, "the confirmed second call")
        expect(page.locator("li.call[data-just-placed=yes]")).not_to_have_attribute(
            "data-call", call_id)
        expect(page.locator("#flash .confirm-call")).to_have_count(0)
        assert not us.console_errors
    finally:
        us.close()
        _end_active(us_node)


@pytest.mark.parametrize("lang", LANGS)
def test_desks_are_grouped_by_party_and_stay_put(browser: Browser, pair: dict[str, Any],
                                                lang: str) -> None:
    us_node, _ru_node = pair["us"], pair["ru"]
    us = _op(browser, pair, "us", "nmcc-1", lang)
    ru = _op(browser, pair, "ru", "ccp-1", lang)
    try:
        page = us.login()
        expect(page.locator("section.party-desks[data-party='RU-GS']")).to_be_visible()
        groups = page.locator("section.party-desks")
        parties = [groups.nth(i).get_attribute("data-party") for i in range(groups.count())]
        assert parties == sorted(parties), parties
        ru_group = page.locator("section.party-desks[data-party='RU-GS']")
        expect(ru_group.locator("h3")).to_contain_text("RU-GS")
        addresses = ru_group.locator("button.desk-button").evaluate_all(
            "bs => bs.map(b => b.dataset.address)")
        assert addresses == sorted(addresses, key=lambda a: a.split("@")[0]), addresses
        assert all(a.endswith("@RU-GS") for a in addresses)
        sizes = page.locator("button.desk-button").first.evaluate(
            """b => [parseFloat(getComputedStyle(b.querySelector('.desk-party')).fontSize),
                     parseFloat(getComputedStyle(b.querySelector('.desk-title')).fontSize),
                     getComputedStyle(b.querySelector('.desk-party')).fontWeight]""")
        assert sizes[0] >= sizes[1], sizes
        assert int(sizes[2]) >= 700, sizes
        order = page.locator("button.desk-button").evaluate_all(
            "bs => bs.map(b => b.dataset.address)")
        staffed_before = page.locator("form.desk.staffed").count()
        # staffing changes (ccp-1 opens a console: the CCP duty desk is staffed)
        ru.login()
        page.evaluate("window.__same = true")
        eventually(lambda: page.locator("form.desk.staffed").count() != staffed_before
                   or page.locator("form.desk.staffed button[data-address='ccp-do@RU-GS']"
                                   ).count() == 1, 20, "a staffing change on the board")
        expect(page.locator("form.desk.staffed button[data-address='ccp-do@RU-GS']")
               ).to_have_count(1, timeout=20000)
        assert page.locator("button.desk-button").evaluate_all(
            "bs => bs.map(b => b.dataset.address)") == order
        assert page.evaluate("window.__same") is True
        assert us_node.party == "US-JS"
    finally:
        us.close()
        ru.close()


@pytest.mark.parametrize("lang", LANGS)
def test_call_steps_name_the_title_the_role_and_who_was_rung(
        browser: Browser, pair: dict[str, Any], lang: str) -> None:
    us_node, ru_node = pair["us"], pair["ru"]
    _end_active(us_node)
    call_id = place(us_node, "cgs@RU-GS", "nmcc-do", f"steps {lang}")
    wait_for_event(us_node, call_id, "ringing", "ccp-do")
    us = _op(browser, pair, "us", "nmcc-1", lang)
    ru = _op(browser, pair, "ru", "ccp-1", lang)
    try:
        page = us.login()
        call = page.locator(f"li.call[data-call='{call_id}']")
        rings = call.locator("li.step[data-state='ringing']")
        # cgs, cgs-1d, then the CCP duty desk, rung again until someone answers
        eventually(lambda: rings.count() >= 3, 15, "three rings on the board")
        nobody = po_translation(lang, "no one on duty")
        assert nobody != "no one on duty" or lang == "en"
        first = rings.nth(0)
        expect(first.locator(".step-role")).to_have_text("cgs")
        cgs_title = {"en": "Chief of the General Staff", "ar": "رئيس هيئة الأركان العامة"}[lang]
        expect(first.locator(".step-title")).to_have_text(cgs_title)
        expect(first.locator(".step-who")).to_have_text(nobody)
        last = call.locator("li.step[data-state='ringing']").filter(
            has=page.locator(".step-role", has_text="ccp-do")).first
        expect(last.locator(".step-role")).to_have_text("ccp-do")
        expect(last.locator(".step-who")).to_contain_text("ccp-1")
        expect(last.locator(".step-title")).not_to_be_empty()

        # the callee's side: the call, once answered, with our own titles
        answered = ru_node.api("POST", f"/api/v1/calls/{call_id}/answer",
                               json={"as": "ccp-do", "operator": "ccp-1"})
        assert answered.status_code == 200, answered.text
        ru_page = ru.login()
        theirs = ru_page.locator(f"ol.calls.incoming li.call[data-call='{call_id}']")
        expect(theirs).to_be_visible(timeout=10000)
        ru_rings = theirs.locator("li.step[data-state='ringing']")
        eventually(lambda: ru_rings.count() >= 3, 10, "the rings on the callee's board")
        expect(ru_rings.nth(0).locator(".step-title")).to_have_text(cgs_title)
        expect(ru_rings.nth(0).locator(".step-who")).to_have_text(nobody)
        expect(ru_rings.filter(has=ru_page.locator(".step-role", has_text="ccp-do")).first
               .locator(".step-who")).to_contain_text("ccp-1")
        # the API keeps its fields
        history = wait_for_state(us_node, call_id, "answered")["history"]
        for entry in history:
            assert {"state", "role", "signed_by", "verified"} <= set(entry)
    finally:
        us.close()
        ru.close()


def _digits(code: str, lang: str) -> str:
    return code.translate(ARABIC_INDIC) if lang == "ar" else \
        code.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))


@pytest.mark.parametrize("lang", LANGS)
def test_times_are_formatted_and_codes_in_other_digits_are_read(
        browser: Browser, pair: dict[str, Any], lang: str) -> None:
    us_node = pair["us"]
    us = _op(browser, pair, "us", "cjcs-1", lang)
    try:
        page = us.open_login()
        page.fill("#operator", us.operator)
        page.fill("#password", "correct horse battery staple")
        code = fresh_code(us.secret, us.used)
        page.locator("#code").press_sequentially(_digits(code, lang))
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{us_node.url}/board", timeout=10000)
        # not counted as a failure: the log holds this log-in as a success
        last = us_node.query("SELECT entry FROM log_entries WHERE kind = 'login' "
                             "ORDER BY idx DESC LIMIT 1")
        assert '"outcome":"ok"' in str(last[0][0]), last
        assert "cjcs-1" in str(last[0][0]), last

        page.goto(us_node.url + "/links")
        cell = page.locator("tr[data-party='RU-GS'] td.last-receipt time")
        status = eventually(lambda: next(
            (p for p in us_node.api("GET", "/api/v1/status").json()["peers"]
             if p["party"] == "RU-GS" and p.get("last_receipt_at")), None), 30,
            "a receipt from RU-GS")
        page.reload()
        text = compact(cell.inner_text())
        assert not re.search(r"\d{4}-\d{2}-\d{2}T|\+00:00", text), text
        assert text != "\u2013"
        expected = Formatter(lang).datetime(ms_of(status["last_receipt_at"]))
        # the same formatter as every other time (within the refresh's seconds)
        assert text[:8] == compact(expected)[:8], (text, expected)
        assert _direction(page, "tr[data-party='RU-GS'] td.last-receipt time") == \
            ("rtl" if lang == "ar" else "ltr")
    finally:
        us.close()


def _conversation(pair: dict[str, Any], reason: str) -> str:
    us_node, ru_node = pair["us"], pair["ru"]
    _end_active(us_node)
    call_id = place(us_node, "ccp-do@RU-GS", "nmcc-do", reason)
    wait_for_state(ru_node, call_id, "delivered", "ringing")
    answered = ru_node.api("POST", f"/api/v1/calls/{call_id}/answer",
                           json={"as": "ccp-do", "operator": "ccp-1"})
    assert answered.status_code == 200, answered.text
    eventually(lambda: us_node.api("GET", f"/api/v1/conversations/{call_id}"
                                   ).status_code == 200, 15, "the conversation at US-JS")
    return call_id


@pytest.mark.parametrize("lang", LANGS)
def test_user_text_takes_its_direction_from_its_script(
        browser: Browser, pair: dict[str, Any], lang: str) -> None:
    conv_id = _conversation(pair, MIXED)
    us_node, ru_node = pair["us"], pair["ru"]
    us = _op(browser, pair, "us", "nmcc-1", lang)
    ru = _op(browser, pair, "ru", "ccp-1", lang)
    try:
        page = us.login()
        reason = f"li.call[data-call='{conv_id}'] .call-reason"
        expect(page.locator(reason)).to_have_text(MIXED)
        assert _direction(page, reason) == "rtl"
        page.goto(f"{us_node.url}/conversations/{conv_id}")
        page.locator("#say-text").press_sequentially(MIXED)
        page.click("form.say button[type=submit]")
        mine = page.locator("li.message.mine p.text", has_text="15:40")
        expect(mine).to_have_count(1, timeout=10000)
        assert _direction(page, "li.message.mine p.text") == "rtl"
        page.locator("#say-text").press_sequentially("Radar shows nothing at 15:40")
        page.click("form.say button[type=submit]")
        latin = page.locator("li.message.mine p.text", has_text="Radar shows")
        expect(latin).to_have_count(1, timeout=10000)
        assert _direction(page, "li.message.mine p.text:has-text('Radar shows')") == "ltr"
        # the other side shows it the same way
        ru_page = ru.login()
        ru_page.goto(f"{ru_node.url}/conversations/{conv_id}")
        theirs = ru_page.locator("li.message.theirs p.text", has_text="صاروخ")
        expect(theirs).to_have_count(1, timeout=15000)
        assert _direction(ru_page, "li.message.theirs p.text:has-text('صاروخ')") == "rtl"
    finally:
        us.close()
        ru.close()


@pytest.mark.parametrize("lang", LANGS)
def test_receipt_buttons_turn_into_a_done_state(browser: Browser, pair: dict[str, Any],
                                                lang: str) -> None:
    conv_id = _conversation(pair, f"receipts {lang}")
    us_node, ru_node = pair["us"], pair["ru"]
    said = ru_node.api("POST", f"/api/v1/conversations/{conv_id}/messages",
                       json={"as": "ccp-do", "operator": "ccp-1", "text": "RU: checking"})
    assert said.status_code == 201, said.text
    us = _op(browser, pair, "us", "nmcc-1", lang)
    try:
        page = us.login()
        page.goto(f"{us_node.url}/conversations/{conv_id}")
        msg = page.locator("li.message.theirs", has_text="RU: checking")
        expect(msg).to_be_visible(timeout=15000)
        read = msg.locator("form:has(input[value=read]) button")
        expect(read).to_have_text(po_translation(lang, "Mark as read"))
        read.click()
        expect(msg.locator(".receipt-done[data-done=read]")).to_be_visible(timeout=10000)
        expect(msg.locator("form:has(input[value=read])")).to_have_count(0)
        msg.locator("form:has(input[value=acknowledged]) button").click()
        expect(msg.locator(".receipt-done[data-done=acknowledged]")).to_be_visible(
            timeout=10000)
        expect(msg.locator(".receipt-actions form")).to_have_count(0)
        page.reload()
        expect(msg.locator(".receipt-actions form")).to_have_count(0)
    finally:
        us.close()


@pytest.mark.parametrize("lang", LANGS)
def test_audit_filters_pages_words_and_dates_its_verification(
        browser: Browser, pair: dict[str, Any], lang: str) -> None:
    us_node = pair["us"]
    while int(us_node.query("SELECT size FROM log_state")[0][0]) < 80:  # two pages at least
        extra = place(us_node, "cgs@RU-GS", "nmcc-do", "to fill the log")
        wait_for_event(us_node, extra, "delivered")
        us_node.api("POST", f"/api/v1/calls/{extra}/cancel")
        wait_for_state(us_node, extra, "cancelled")
    call_id = place(us_node, "cgs@RU-GS", "nmcc-do", f"audit {lang}")
    wait_for_event(us_node, call_id, "delivered")
    us = _op(browser, pair, "us", "nmcc-1", lang)
    other = _op(browser, pair, "us", "cjcs-1", lang)
    try:
        page = us.login()
        page.goto(us_node.url + "/audit")
        rows = page.locator("table.audit tbody tr")
        expect(rows).to_have_count(50)
        words = rows.locator("td.words").all_inner_texts()
        assert not [w for w in words if w.lstrip().startswith("{")], words[:3]
        first_idx = int(rows.first.get_attribute("data-idx") or 0)
        page.click("a.older")
        expect(rows.first).not_to_have_attribute("data-idx", str(first_idx))
        assert int(rows.first.get_attribute("data-idx") or 0) < first_idx - 49

        page.goto(us_node.url + "/audit")
        page.select_option("#f-kind", "login")
        page.locator("#f-operator").press_sequentially("nmcc-1")
        page.click("form.filters button")
        expect(rows.first).to_be_visible()
        assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.kind)")) == {"login"}
        assert all("nmcc-1" in t for t in rows.locator("td.words").all_inner_texts())

        page.goto(us_node.url + "/audit")
        page.locator("#f-call").press_sequentially(call_id)
        page.click("form.filters button")
        expect(rows.first).to_be_visible()
        subjects = rows.locator("td:nth-child(4)").all_inner_texts()
        assert subjects
        assert {compact(s) for s in subjects} == {call_id}
        page.goto(us_node.url + "/audit?since=2099-01-01T00:00")
        expect(page.locator("p.empty")).to_be_visible()
        refused = page.goto(us_node.url + "/audit?since=yesterday")
        assert refused is not None
        assert refused.status == 422
        expect(page.locator("main")).to_contain_text("since is not a date and time")

        # verification: dated, and flagged as old once the log has grown
        page.goto(us_node.url + "/audit")
        page.click("form[action='/audit/verify'] button")
        when = page.locator("#verification .verification-when")
        expect(when).to_be_visible(timeout=15000)
        at = int(page.locator("#verification .verification").get_attribute("data-at") or 0)
        expect(when).to_contain_text(Formatter(lang).datetime(at)[:6])
        expect(page.locator("#verification .notice.stale")).to_have_count(0)
        other_page = other.login(fresh=True)  # a new log-in by the form: the log grows
        other_page.goto(us_node.url + "/audit")
        expect(other_page.locator("#verification .verification-when")).to_be_visible()
        expect(other_page.locator("#verification .notice.stale")).to_be_visible()
    finally:
        us.close()
        other.close()
        _end_active(us_node)
