"""The dashboard stays on the traded day after the day ends, in a real headless Chromium
(the shared one of tests/api/conftest.py) against a real one-validator node: a demo's
accelerated clock runs on into the next, empty day, and a page opened then without
`interval=` in its address must still show the day that has trades, whichever zone the
address names (one without trades of its own included), and must not move with the
clock while it stays open."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from gridtokenx.client import Client
from gridtokenx.wire import tx
from tests.api.browser import CHROMIUM
from tests.api.test_api_harness import INTERVAL, T0, Cast, LocalNode, running_cast
from tests.api.test_dashboard_views import _open

BANGKOK = 7 * 3600
DAY = (T0 + BANGKOK) // 86_400 * 86_400 - BANGKOK  # 2026-01-01 00:00 in Bangkok
TRADED = DAY + 10 * 3600  # 10:00 on 2026-01-01, the day's only traded interval
NEXT_DAY = DAY + 86_400 + 2 * 3600  # 02:00 on 2026-01-02: the clock after the day

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="chromium is not installed (Debian: apt-get install -y chromium)",
    ),
]


@pytest.fixture(scope="module")
def after_the_day(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalNode, Client, Cast]]:
    """One Bangkok trade at 10:00 on the first day, then block time moved to 02:00 on the
    next day (nothing traded there)."""
    with running_cast(tmp_path_factory.mktemp("after-the-day")) as (node, api, cast):
        api.send_and_wait(cast.home, tx.PlaceOrder(tx.Side.SELL, "BKK", TRADED, 1_000, 300))
        bought = api.send_and_wait(cast.office, tx.PlaceOrder(tx.Side.BUY, "BKK", TRADED, 600, 320))
        assert [e.kind for e in bought.events].count("trade") == 1
        node.advance(NEXT_DAY - node.time)
        deadline = time.monotonic() + 20
        while api.health().latest_time < NEXT_DAY:
            assert time.monotonic() < deadline, "block time did not reach the next day"
            time.sleep(0.05)
        yield node, api, cast


@pytest.mark.parametrize(
    ("query", "zone"),
    [("", "BKK"), ("?zone=BKK", "BKK"), ("?zone=NTH", "NTH")],
    ids=["no-zone", "traded-zone", "zone-without-trades"],
)
def test_a_page_opened_after_the_day_shows_the_traded_day(
    after_the_day: tuple[LocalNode, Client, Cast], browser: Browser, query: str, zone: str
) -> None:
    node, api, _ = after_the_day
    now = api.health().latest_time
    assert now >= NEXT_DAY and api.get("/trades", interval=now // INTERVAL * INTERVAL + INTERVAL)[
        "items"
    ] == []  # fmt: skip
    page, problems = _open(browser, f"{node.url}/{query}")
    try:
        assert page.get_attribute("body", "data-interval") == str(TRADED)
        assert page.get_attribute("body", "data-selection") == f"{zone}-20260101-1000"
        assert page.input_value("#day") == "2026-01-01"
        assert f"interval={TRADED}" in page.url  # the view is bookmarkable as it is
        # Blocks keep coming on the next day's clock: the view does not follow them.
        height = int(page.inner_text("#height"))
        page.wait_for_function(
            "h => Number(document.getElementById('height').textContent) >= h",
            arg=height + 2,
            timeout=15_000,
        )
        assert page.get_attribute("body", "data-interval") == str(TRADED)
        assert problems == []
    finally:
        page.close()
