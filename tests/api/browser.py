"""What the browser tests share beside their fixtures (tests/api/conftest.py): where
Debian's chromium is, and the one rule for which console errors fail a page."""

from __future__ import annotations

import shutil

from playwright.sync_api import ConsoleMessage, Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Not the page's fault: a live feed's socket closing as the test ends, and a request that
# Chromium aborted because an address came or went on the host (the namespace tests in
# tests/devnet add and remove bridges beside these; api.js sends such a request again, and
# test_a_request_the_network_dropped_is_sent_again proves that it does).
BROWSER_NOISE = ("WebSocket", "net::ERR_NETWORK_CHANGED")


def record_problems(page: Page, also_expected: tuple[str, ...] = ()) -> list[str]:
    """The console errors and script errors `page` will show, in a list to assert empty."""
    problems: list[str] = []
    expected = BROWSER_NOISE + also_expected

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not any(e in message.text for e in expected):
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems
