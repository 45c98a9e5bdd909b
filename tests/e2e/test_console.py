"""The operator console in a real browser (Debian's chromium) against real node processes.

One US-JS/RU-GS pair serves the module; each test places its own call, so they do not
depend on each other's state. The English and Arabic flows save the screenshots the
README shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from hotline.log.merkle import leaf_hash
from hotline.protocol import canonical
from hotline.protocol.checkpoint import make_checkpoint
from tests.browser import (
    Operator,
    add_operator,
    chromium,
    compact,
    eventually,
    fresh_code,
    po_translation,
    screenshot,
    wcag_violations,
    wrong_code,
)
from tests.calls import apply_scenario, us_and_ru
from tests.nodes import NodeProcess, link, nodes_on

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with nodes_on("sqlite", tmp_path_factory.mktemp("console")) as make:
        us, ru = us_and_ru(make)
        pl = make("PL-GS")
        link(us, pl)
        apply_scenario(pl)
        pl.start()
        # ccp-1 takes the watch (an override), whoever the rotation has on it now
        taken = ru.api("POST", "/api/v1/roster", json={"operator": "ccp-1", "role": "ccp-do"})
        assert taken.status_code == 200, taken.text
        secrets = {"nmcc-1": add_operator(us, "nmcc-1"), "ccp-1": add_operator(ru, "ccp-1"),
                   "cjcs-1": add_operator(us, "cjcs-1"), "dcd-1": add_operator(ru, "dcd-1")}
        yield {"us": us, "ru": ru, "pl": pl, "secrets": secrets}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _operators(browser: Browser, pair: dict[str, Any], lang: str
               ) -> tuple[Operator, Operator]:
    us = Operator(browser, pair["us"], "nmcc-1", pair["secrets"]["nmcc-1"], lang)
    ru = Operator(browser, pair["ru"], "ccp-1", pair["secrets"]["ccp-1"], lang)
    return us, ru


def _calls(node: NodeProcess) -> list[dict[str, Any]]:
    return list(node.api("GET", "/api/v1/calls").json()["calls"])


def _call_flow(us: Operator, ru: Operator, lang: str, reason: str) -> str:
    """US calls cgs@RU-GS from the call board by keyboard; after escalation RU's alarm
    shows and is answered by keyboard; the US page follows every step without reloading;
    one message each way appears live. Returns the call id."""
    us_page, ru_page = us.login(), ru.login()
    expect(us_page).to_have_url(f"{us.node.url}/board")
    expect(ru_page).to_have_url(f"{ru.node.url}/board")
    us_page.evaluate("window.__sameDocument = true")
    button = us_page.locator("button.desk-button[data-address='cgs@RU-GS']")
    expect(button).to_be_visible()
    # ccp-1's open console keeps the duty officer's desk staffed, as US-JS sees it
    expect(us_page.locator("form.desk.staffed button[data-address='ccp-do@RU-GS']")
           ).to_be_visible(timeout=15000)
    us_page.fill("#call-reason", reason)
    button.focus()
    outline = us_page.evaluate(
        "() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused desk button shows no focus ring"
    before = {c["id"] for c in _calls(us.node)}
    us_page.keyboard.press("Enter")
    call_id = eventually(lambda: next((c["id"] for c in _calls(us.node)
                                       if c["id"] not in before), None), 10, "the new call")
    expect(us_page.locator(f"li.call[data-call='{call_id}']")).to_be_visible(timeout=5000)

    alarm = ru_page.locator("#alarm")
    expect(alarm).to_be_visible(timeout=30000)
    expect(alarm).to_have_attribute("role", "alertdialog")
    assert alarm.get_attribute("data-call") == call_id
    expect(alarm).to_contain_text(reason)
    expect(alarm).to_contain_text("nmcc-do@US-JS")
    # the roles' titles in the operator's language: the caller's from US-JS's desk report
    expect(alarm.locator(".alarm-titles")).to_contain_text(
        {"en": "NMCC duty officer", "ar": "الضابط المناوب في مركز القيادة العسكرية الوطني"
         }[lang])
    answer = ru_page.locator("#alarm button.answer")
    expect(answer).to_be_focused()
    sound = eventually(lambda: ru_page.evaluate("document.body.dataset.sound")
                       if ru_page.evaluate("document.body.dataset.sound") in ("on", "blocked")
                       else None, 10, "the alarm sound to start (or report being blocked)")
    if sound == "on":  # headless chromium lets it play; a blocked one shows a button
        assert ru_page.evaluate("document.getElementById('alarm-sound').paused") is False
    else:
        expect(ru_page.locator("#sound-enable")).to_be_visible()
    screenshot(ru_page, f"alarm-{lang}")
    _passes_wcag(ru_page, f"alarm ({lang})")
    # the US page meanwhile shows the escalation as it happens
    eventually(lambda: _rung(us_page, call_id)[:3] == ["cgs", "cgs-1d", "ccp-do"], 15,
               "the US board to show the three rings")
    ru_page.keyboard.press("Enter")  # "Answer" has the focus
    expect(ru_page).to_have_url(f"{ru.node.url}/conversations/{call_id}", timeout=10000)
    expect(ru_page.locator("#alarm")).to_have_count(0)

    call_li = us_page.locator(f"li.call[data-call='{call_id}']")
    expect(call_li).to_have_attribute("data-state", "answered", timeout=15000)
    steps = call_li.locator("li.step")
    states = [steps.nth(i).get_attribute("data-state") for i in range(steps.count())]
    assert states[:2] == ["placed", "delivered"], states
    assert states[-1] == "answered", states
    assert list(dict.fromkeys(_rung(us_page, call_id))) == ["cgs", "cgs-1d", "ccp-do"]
    assert all(steps.nth(i).get_attribute("data-verified") == "yes"
               for i in range(steps.count()))
    assert "ccp-1" in compact(steps.last.inner_text())
    assert us_page.evaluate("window.__sameDocument") is True, "the board was reloaded"
    screenshot(us_page, f"call-board-{lang}")
    _passes_wcag(us_page, f"call board ({lang})")

    # one message each way, live on the other side
    us_page.click(f"li.call[data-call='{call_id}'] a.button")
    expect(us_page).to_have_url(f"{us.node.url}/conversations/{call_id}")
    us_page.evaluate("window.__sameDocument = true")
    ru_page.evaluate("window.__sameDocument = true")
    us_page.fill("#say-text", f"US: {reason} — not a Russian missile?")
    us_page.click("form.say button[type=submit]")
    ru_msg = ru_page.locator("li.message.theirs").first
    expect(ru_msg).to_contain_text("not a Russian missile?", timeout=15000)
    ru_page.fill("#say-text", "RU: not ours; checking radar data")
    ru_page.click("form.say button[type=submit]")
    expect(us_page.locator("li.message.theirs").first).to_contain_text(
        "checking radar data", timeout=15000)
    ru_msg.locator("form:has(input[value=acknowledged]) button").click()
    us_mine = us_page.locator("li.message.mine").first
    expect(us_mine.locator("li[data-receipt=acknowledged]")).to_have_count(1, timeout=15000)
    expect(us_mine.locator("li[data-receipt=delivered]")).to_have_count(1)
    assert us_page.evaluate("window.__sameDocument") is True
    assert ru_page.evaluate("window.__sameDocument") is True
    screenshot(us_page, f"conversation-{lang}")
    _passes_wcag(us_page, f"conversation ({lang})")
    return call_id


def _passes_wcag(page: Page, what: str) -> None:
    report = wcag_violations(page)
    assert not report, f"{what}: {report}"


def _rung(page: Page, call_id: str) -> list[str]:
    """The roles of the ringing steps the page shows for a call, in order."""
    return [compact(t) for t in page.locator(
        f"li.call[data-call='{call_id}'] li.step[data-state='ringing'] .step-role"
    ).all_inner_texts()]


def test_english_call_from_the_board_answered_from_the_alarm(browser: Browser,
                                                             pair: dict[str, Any]) -> None:
    us, ru = _operators(browser, pair, "en")
    try:
        call_id = _call_flow(us, ru, "en", "Przewodow explosion")
        call = next(c for c in _calls(pair["us"]) if c["id"] == call_id)
        assert call["state"] == "answered"
        placed = call["history"][0]
        assert (placed["state"], placed["operator"]) == ("placed", "nmcc-1")
        assert not us.console_errors
        assert not ru.console_errors
        # a conference: US adds PL-GS from the conversation page
        page = us.page
        page.select_option("#add-party", "PL-GS")
        page.click("form.add-member button")
        expect(page.locator("p.members")).to_contain_text("PL-GS")
        conv = eventually(lambda: pair["pl"].api("GET", f"/api/v1/conversations/{call_id}")
                          if pair["pl"].api("GET", f"/api/v1/conversations/{call_id}"
                                            ).status_code == 200 else None, 15,
                          "PL-GS to join the conversation")
        assert set(conv.json()["members"]) == {"US-JS", "RU-GS", "PL-GS"}
    finally:
        us.close()
        ru.close()


def test_arabic_console_is_right_to_left_and_works(browser: Browser,
                                                   pair: dict[str, Any]) -> None:
    us, ru = _operators(browser, pair, "ar")
    try:
        page = us.open_login()
        _passes_wcag(page, "login (ar)")
        html = page.locator("html")
        expect(html).to_have_attribute("dir", "rtl")
        expect(html).to_have_attribute("lang", "ar")
        label = po_translation("ar", "Log in")
        assert label != "Log in"
        expect(page.locator("button[type=submit]")).to_have_text(label)
        _call_flow(us, ru, "ar", "Przewodow")
        page = us.page
        expect(page.locator("nav a[aria-current=page]")).to_have_text(
            po_translation("ar", "Conversations"))
        # a Latin identifier inside Arabic text is isolated left-to-right
        bdi = page.locator("bdi[dir=ltr]", has_text="RU-GS").first
        expect(bdi).to_be_visible()
        # the layout is mirrored: the navigation starts on the right
        box = page.locator("header .brand").bounding_box()
        assert box is not None
        assert box["x"] > 640
    finally:
        us.close()
        ru.close()


def test_refusals_change_nothing_and_say_why(browser: Browser, pair: dict[str, Any]) -> None:
    """Another US operator (cjcs-1, who holds only cjcs): a wrong second factor, a POST
    without the CSRF token, one from another site and one in a role not held are each
    refused with a clear message, and nothing is placed; another role's conversation is
    not found. A script in a message (nmcc-1's, in its own conversation) is text."""
    us_node, ru_node = pair["us"], pair["ru"]
    us = Operator(browser, us_node, "cjcs-1", pair["secrets"]["cjcs-1"], "en")
    try:
        page = us.login(code=wrong_code(us.secret))
        expect(page).to_have_url(f"{us_node.url}/login?lang=en")
        expect(page.locator("#login-error")).to_have_text(
            "⚠ " + po_translation("en", "Wrong operator, password or code."))
        assert not [c for c in us.context.cookies() if c["name"].endswith("session")]

        page = us.login()
        expect(page).to_have_url(f"{us_node.url}/board")
        csrf = us.csrf()
        calls_before = len(_calls(us_node))
        form = {"to": "cgs@RU-GS", "as": "cjcs", "reason": "refused"}

        r = page.request.post(f"{us_node.url}/board/call", form=form,
                              headers={"Origin": us_node.url}, max_redirects=0)
        assert r.status == 403
        assert po_translation("en", _NO_TOKEN) in unescape(r.text())

        r = page.request.post(f"{us_node.url}/board/call", form={**form, "csrf": csrf},
                              headers={"Origin": "http://evil.example"}, max_redirects=0)
        assert r.status == 403
        assert "This request came from another site. Nothing was changed." in unescape(r.text())

        r = page.request.post(f"{us_node.url}/board/call",
                              form={**form, "as": "nmcc-do", "csrf": csrf},
                              headers={"Origin": us_node.url}, max_redirects=0)
        assert r.status == 403
        assert "You do not hold that role, so you cannot act in it. Nothing was changed." \
            in unescape(r.text())

        assert len(_calls(us_node)) == calls_before
        assert not [c for c in _calls(ru_node) if c["reason"] == "refused"]
        # T17: nmcc-do's conversation is not cjcs-1's to read or write in
        conv = us_node.api("GET", "/api/v1/conversations").json()["conversations"][0]
        r = page.request.get(f"{us_node.url}/conversations/{conv['id']}")
        assert r.status == 404
        r = page.request.post(f"{us_node.url}/conversations/{conv['id']}/say",
                              form={"as": "cjcs", "text": "not mine", "csrf": csrf},
                              headers={"Origin": us_node.url}, max_redirects=0)
        assert r.status == 404
    finally:
        us.close()
    nmcc = Operator(browser, us_node, "nmcc-1", pair["secrets"]["nmcc-1"], "en")
    try:
        _script_is_text(nmcc.login(), us_node)
    finally:
        nmcc.close()


_NO_TOKEN = ("This form did not carry this console's security token (it may have expired). "
             "Nothing was changed; reload the page and try again.")


def _script_is_text(page: Page, node: NodeProcess) -> None:
    conversations = node.api("GET", "/api/v1/conversations").json()["conversations"]
    assert conversations, "the call flow tests open a conversation first"
    page.goto(f"{node.url}/conversations/{conversations[0]['id']}")
    attack = ('<script>window.__pwned = 1</script>'
              '<img src="x" onerror="window.__pwned = 2">')
    page.fill("#say-text", attack)
    page.click("form.say button[type=submit]")
    shown = page.locator("li.message.mine p.text", has_text="window.__pwned = 2")
    expect(shown).to_have_count(1, timeout=10000)
    assert shown.inner_text() == attack
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("li.message img").count() == 0
    policy = page.request.get(f"{node.url}/board").headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy


NO_HORIZONTAL_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth + 1"


def test_usable_by_keyboard_at_200_percent_zoom(browser: Browser, pair: dict[str, Any]) -> None:
    """A 640 px wide window is what a 1280 px screen shows at 200 % zoom: nothing may need
    horizontal scrolling, and the alarm is declined with the keyboard alone."""
    us_node, ru_node = pair["us"], pair["ru"]
    ru = Operator(browser, ru_node, "dcd-1", pair["secrets"]["dcd-1"], "uk",
                  viewport={"width": 640, "height": 450})
    try:
        page = ru.login(fresh=True)  # by the form: the audit page below shows this log-in
        expect(page).to_have_url(f"{ru_node.url}/board")
        expect(page.locator("html")).to_have_attribute("lang", "uk")
        for path in ("/board", "/conversations", "/links", "/audit", "/account"):
            page.goto(ru_node.url + path)
            assert page.evaluate(NO_HORIZONTAL_SCROLL), f"{path} scrolls sideways at 200 %"
            _every_focus_is_visible(page, path)
            _passes_wcag(page, f"{path} at 200 %")
        _links_audit_and_account(page, ru_node, ru)

        placed = us_node.api("POST", "/api/v1/calls", json={
            "to": "dcd@RU-GS", "as": "nmcc-do", "reason": "zoom and keyboard"})
        assert placed.status_code == 201, placed.text
        call_id = placed.json()["id"]
        alarm = page.locator("#alarm")
        expect(alarm).to_be_visible(timeout=15000)
        assert page.evaluate(NO_HORIZONTAL_SCROLL)
        expect(page.locator("#alarm button.answer")).to_be_focused()
        # declining without a reason is refused inside the alarm, which stays up
        page.click("button.decline")
        expect(page.locator("#alarm-error")).to_contain_text(
            po_translation("pl", "Please give a reason the caller will read. Nothing was "
                                 "changed."))
        expect(alarm).to_be_visible()
        assert next(c for c in _calls(ru_node) if c["id"] == call_id)["state"] in (
            "delivered", "ringing")
        page.locator("#alarm button.answer").focus()
        for _ in range(6):  # Tab from "Answer" to the decline reason
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "decline-reason":
                break
        page.keyboard.type("not my desk: call the CCP duty officer")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "decline"
        page.keyboard.press("Enter")
        expect(alarm).to_have_count(0, timeout=10000)
        eventually(lambda: page.evaluate("document.getElementById('alarm-sound').paused"), 5,
                   "the alarm sound to stop")

        def declined() -> dict[str, Any] | None:
            call = next(c for c in _calls(us_node) if c["id"] == call_id)
            return call if call["state"] == "declined" else None
        call = eventually(declined, 15, "the decline to reach US-JS")
        last = call["history"][-1]
        assert (last["state"], last["operator"], last["verified"]) == (
            "declined", "dcd-1", True)
        assert last["reason"] == "not my desk: call the CCP duty officer"
    finally:
        ru.close()


def _every_focus_is_visible(page: Page, path: str) -> None:
    """Tab through the page: every element that takes the focus shows a focus ring."""
    page.locator("body").focus()
    for _ in range(25):
        page.keyboard.press("Tab")
        ring = page.evaluate("""() => { const e = document.activeElement;
            if (!e || e === document.body) return 'none';
            const s = getComputedStyle(e);
            return s.outlineStyle === 'none' ? 'none' : s.outlineWidth; }""")
        tag = page.evaluate("document.activeElement.outerHTML.slice(0, 80)")
        if tag.startswith("<body"):
            break
        assert ring != "none", f"{path}: no visible focus on {tag}"
        assert float(ring.rstrip("px")) >= 2, f"{path}: thin focus ring on {tag}"


def _links_audit_and_account(page: Page, node: NodeProcess, op: Operator) -> None:
    """Link health names the peer and its state; the audit log shows this operator's
    log-in and verifies on demand; the authenticator app is re-enrolled from a QR code;
    the language switches for the session."""
    page.goto(node.url + "/links")
    row = page.locator("tr[data-party='US-JS']")
    expect(row).to_be_visible()
    assert row.get_attribute("data-state") in ("idle", "sending")
    page.goto(node.url + "/audit")
    expect(page.locator("tr[data-kind='login']", has_text=op.operator).first).to_be_visible()
    page.click("form[action='/audit/verify'] button")
    expect(page.locator("#verification .notice.ok")).to_be_visible(timeout=15000)

    page.goto(node.url + "/account")
    page.click("form[action='/account/totp'] button")
    expect(page.locator("figure.qr svg")).to_be_visible()
    secret = page.locator("figure.qr code").inner_text().strip()
    assert secret != op.secret
    page.fill("#totp-code", wrong_code(secret))
    page.click("form[action='/account/totp/confirm'] button")
    expect(page.locator("#main .notice.error")).to_be_visible()  # refused, old app kept
    page.goto(node.url + "/account")
    page.click("form[action='/account/totp'] button")
    secret = page.locator("figure.qr code").inner_text().strip()
    page.fill("#totp-code", fresh_code(secret, set()))
    page.click("form[action='/account/totp/confirm'] button")
    expect(page).to_have_url(f"{node.url}/account?done=totp")
    op.secret = secret
    op.used = set()

    page.select_option("#lang-select", "pl")
    page.click("form[action='/account/language'] button")
    expect(page.locator("html")).to_have_attribute("lang", "pl")
    expect(page.locator("nav a[aria-current=page]")).to_have_text(
        po_translation("pl", "Account"))
    page.goto(node.url + "/board")


def test_an_alarm_shows_at_once_in_every_open_console_of_the_party(
        browser: Browser, pair: dict[str, Any]) -> None:
    """US-JS presents RU-GS a checkpoint of its log that contradicts one RU-GS has
    cosigned (equivocation: a real alarm, refused and kept as evidence). Every console of
    RU-GS already open shows it at once, without a reload: ccp-1's in Arabic, right to
    left, and cgs-1's (another role) on the link-health page, which also shows the clock
    offset per peer and the background tasks. The banner passes the WCAG audit and stays
    under the incoming-call alarm. Runs last: a witness's alarm stands until cleared."""
    us_node, ru_node = pair["us"], pair["ru"]
    ar = Operator(browser, ru_node, "ccp-1", pair["secrets"]["ccp-1"], "ar")
    en = Operator(browser, ru_node, "cgs-1", add_operator(ru_node, "cgs-1"), "en")
    try:
        ar_page, en_page = ar.login(), en.login()
        expect(ar_page).to_have_url(f"{ru_node.url}/board")
        expect(en_page).to_have_url(f"{ru_node.url}/board")
        en_page.goto(ru_node.url + "/links")
        pages = (ar_page, en_page)
        for page in pages:
            expect(page.locator("body[data-live=yes]")).to_have_count(1, timeout=10000)
            expect(page.locator("#banner-slot .health")).to_have_count(0)
            page.evaluate("""() => { window.__sameDocument = true; window.__alarmEvents = 0;
                document.body.addEventListener('hl-alarm', () => window.__alarmEvents++); }""")

        cosigned = eventually(lambda: ru_node.query(
            "SELECT size FROM log_checkpoints WHERE origin = 'US-JS' AND witness = 'RU-GS' "
            "ORDER BY size DESC"), 30, "RU-GS to cosign a checkpoint of US-JS's log")
        size = int(cosigned[0][0])
        forged = make_checkpoint("US-JS", size, leaf_hash(b"another history"), 1,
                                 us_node.private_keys())
        answer = httpx.post(ru_node.url + "/federation/v1/checkpoints", timeout=10,
                            content=canonical.encode({"checkpoint": forged,
                                                      "from_size": size, "proof": []}))
        assert answer.status_code == 409
        assert answer.json()["error"] == "equivocation"

        for page, lang in ((ar_page, "ar"), (en_page, "en")):
            item = page.locator("#banner-slot li.health-alarm[data-kind='log-equivocation']")
            expect(item).to_be_visible(timeout=5000)
            expect(item).to_contain_text(po_translation(lang, "The peer signed two "
                                                              "different logs"))
            expect(item.locator("bdi[dir=ltr]", has_text="US-JS").first).to_be_visible()
            expect(item).to_contain_text(f"US-JS signed two different roots for size {size}")
            assert page.evaluate("window.__alarmEvents") >= 1, "not from the event stream"
            assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
            _passes_wcag(page, f"alarm banner ({lang})")
        expect(ar_page.locator("html")).to_have_attribute("dir", "rtl")
        # mirrored: the banner's red stripe (its inline start) is on the right
        stripe = ar_page.evaluate("""() => { const s = getComputedStyle(
            document.querySelector('#banner-slot .health'));
            return [s.direction, s.borderRightWidth, s.borderLeftWidth]; }""")
        assert stripe[0] == "rtl"
        assert float(stripe[1][:-2]) > float(stripe[2][:-2]), stripe

        # link health: the clock offset measured per peer, and every background task
        offset = en_page.locator("tr[data-party='US-JS'] td.offset")
        eventually(lambda: re.fullmatch(r"[+-]?[\d,]+ ms ± [\d,]+ ms",
                                        offset.inner_text().strip()), 15,
                   "US-JS's clock offset to be measured")
        for task in ("clock-watch", "timers", "checkpointer", "sender-US-JS"):
            expect(en_page.locator(f"tr[data-task='{task}']")).to_have_attribute(
                "data-state", "running")

        # an incoming call still takes the whole screen, over the banner
        placed = us_node.api("POST", "/api/v1/calls", json={
            "to": "ccp-do@RU-GS", "as": "nmcc-do", "reason": "alarm over the banner"})
        assert placed.status_code == 201, placed.text
        expect(ar_page.locator("#alarm")).to_be_visible(timeout=15000)
        expect(ar_page.locator("#alarm button.answer")).to_be_focused()
        def on_top() -> bool:
            found = ar_page.evaluate("""() => { const r = document.querySelector(
                '#banner-slot .health').getBoundingClientRect();
                const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
                return [Boolean(hit && hit.closest('#alarm')),
                        document.getElementById('banner-slot').inert]; }""")
            return bool(found == [True, True])
        # the page makes the rest inert just after the dialog shows: poll, with a deadline
        eventually(on_top, 5, "the call's alarm over an inert banner")
        cancelled = us_node.api("POST", f"/api/v1/calls/{placed.json()['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        expect(ar_page.locator("#alarm")).to_have_count(0, timeout=15000)
        expect(ar_page.locator("#banner-slot .health")).to_be_visible()
        eventually(lambda: ar_page.evaluate("!document.getElementById('banner-slot').inert"),
                   5, "the banner to take the focus again once the alarm is gone")
        assert not ar.console_errors
        assert not en.console_errors
    finally:
        ar.close()
        en.close()
