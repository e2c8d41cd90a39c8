"""What the browser tests share beside their fixtures (tests/api/conftest.py): where
Debian's chromium is, and the one rule for which console errors fail a page."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.conftest import host_network

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Debian chromium, open while no namespace test changes the host's network
    (`host_network`: the two would otherwise race, and a page's requests fail)."""
    with host_network(changes_it=False), sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


# Not the page's fault: a live feed's socket closing as the test ends.
BROWSER_NOISE = ("WebSocket",)


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
