"""Debian's chromium driven by Playwright, as the console's operators would use it.

Playwright's own browser download does not work here and is never attempted: the tests
launch the system's ``/usr/bin/chromium`` (``.ci/run`` installs it). A missing browser is
a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from hotline.accounts.totp import STEP, code_at, step_at
from tests.e2e.test_cli import as_json, hotline
from tests.nodes import NodeProcess

CHROMIUM = os.environ.get("HOTLINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery staple"
#: Where the screenshots go: the README's come from a run with
#: HOTLINE_SCREENSHOTS=docs/screenshots; otherwise a temporary folder, so that a test run
#: never changes the working tree.
SCREENSHOTS = Path(os.environ.get("HOTLINE_SCREENSHOTS")
                   or tempfile.mkdtemp(prefix="hotline-screenshots-"))


@contextmanager
def chromium() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def add_operator(node: NodeProcess, operator: str) -> str:
    """An account made with the CLI, as an administrator would; returns its TOTP secret."""
    result = hotline("operator", "add", operator, "--dir", str(node.dir),
                     "--password-stdin", "--json", stdin=PASSWORD + "\n")
    return str(as_json(result)["secret"])


def fresh_code(secret: str, used: set[str]) -> str:
    """A TOTP code the node has not seen yet (a code is good once, and never one of a step
    at or before the last accepted). The node takes the next step's code too (a tolerance
    of one step either way), so only a third log-in within one 30 s step waits."""
    while True:
        now = step_at(time.time())
        for step in (now, now + 1):
            code = code_at(secret, step * STEP)
            if step > _LAST_STEP.get(secret, -1) and code not in used:
                used.add(code)
                _LAST_STEP[secret] = step
                return code
        time.sleep(STEP - time.time() % STEP + 0.05)


#: Codes already spent per secret, across tests: a code is refused the second time.
_SPENT: dict[str, set[str]] = {}
#: The last step whose code was spent, per secret (the node refuses steps up to it)
_LAST_STEP: dict[str, int] = {}
#: Live console sessions per (node URL, operator, language), kept from a closed context
_SESSIONS: dict[tuple[str, str, str], list[Any]] = {}


def wrong_code(secret: str) -> str:
    """Six digits that are not the code of this step or its neighbours."""
    now = time.time()
    valid = {code_at(secret, now + d) for d in (-STEP, 0, STEP)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


class Operator:
    """One operator's browser context on one node."""

    def __init__(self, browser: Browser, node: NodeProcess, operator: str, secret: str,
                 lang: str = "en", viewport: dict[str, int] | None = None) -> None:
        self.node = node
        self.operator = operator
        self.secret = secret
        self.used = _SPENT.setdefault(secret, set())
        self.context: BrowserContext = browser.new_context(
            locale={"en": "en-GB", "ar": "ar", "ru": "ru-RU", "uk": "uk-UA",
                    "pl": "pl-PL"}[lang],
            viewport=viewport or {"width": 1280, "height": 900})
        self.page: Page = self.context.new_page()
        self.lang = lang
        self.console_errors: list[str] = []
        self.page.on("console", lambda m: self.console_errors.append(m.text)
                     if m.type == "error" else None)

    def open_login(self) -> Page:
        self.page.goto(f"{self.node.url}/login?lang={self.lang}")
        return self.page

    def login(self, code: str | None = None, *, fresh: bool = False) -> Page:
        """Log in through the form, or, when this operator already has a live session in
        this language on this node from an earlier test (and neither ``code`` nor
        ``fresh`` asks for the form), carry that session into this context as a browser
        keeping its cookies would. A TOTP code is good once, so a second log-in through
        the form waits for the next 30 s step: that wait was most of the console tests'
        time. A session the node no longer honours (logged out, operator removed) lands
        on the log-in page, and the form is used."""
        key = (self.node.url, self.operator, self.lang)
        kept = _SESSIONS.get(key)
        if code is None and not fresh and kept:
            self.context.add_cookies(kept)  # type: ignore[arg-type]
            self.page.goto(f"{self.node.url}/board")
            if self.page.url == f"{self.node.url}/board":
                return self.page
            _SESSIONS.pop(key, None)
            self.context.clear_cookies()
        page = self.open_login()
        page.fill("#operator", self.operator)
        page.fill("#password", PASSWORD)
        page.fill("#code", code or fresh_code(self.secret, self.used))
        page.click("button[type=submit]")
        return page

    def csrf(self) -> str:
        return str(self.page.get_attribute("input[name=csrf]", "value"))

    def close(self) -> None:
        key = (self.node.url, self.operator, self.lang)
        cookies = self.context.cookies()
        if any(c["name"].endswith("session") for c in cookies):
            _SESSIONS[key] = list(cookies)  # for the next test's log-in (see login)
        else:
            _SESSIONS.pop(key, None)
        self.context.close()


def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``check`` until it returns a truthy value (an assertion helper for state that
    arrives over the network; never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}: last {last!r}")


def po_translation(lang: str, msgid: str) -> str:
    """The catalogue's translation of ``msgid`` (to check labels without hard-coding)."""
    from hotline.console.i18n import translations

    return str(translations(lang).gettext(msgid))


WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def wcag_violations(page: Page) -> str:
    """axe-core's WCAG 2.2 A/AA audit of the page as it is now: '' when it passes, else a
    readable report. (axe runs through the DevTools protocol, so the console's CSP, which
    would refuse an injected script, does not need loosening.)"""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_TAGS},
                                       "resultTypes": ["violations"]})
    return results.generate_report() if results.violations_count else ""


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    return path


def compact(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


__all__ = ["Operator", "add_operator", "chromium", "compact", "eventually", "fresh_code", "json",
           "po_translation", "screenshot", "wcag_violations", "wrong_code"]
