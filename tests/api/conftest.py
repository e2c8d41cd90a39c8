"""Fixtures the browser tests share: one headless Debian chromium per test module, driven
by Playwright (which never downloads a browser of its own here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.api.browser import chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched
