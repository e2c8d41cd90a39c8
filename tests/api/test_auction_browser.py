"""The dashboard's day-ahead auction panel in a real headless Chromium (Debian's, through
Playwright), against a real one-validator node (test_api_harness) that clears the auction
by itself once block time passes the gate: the page shows the zone's demand and supply step
curves, then, live, the clearing price line and the result, and each zone's auction price
on the map, where the 1 % BKK-CEN link's loss separates Bangkok's price from Central's."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from playwright.sync_api import Browser

from gridtokenx.client import Client
from gridtokenx.wire import tx
from tests.api.browser import CHROMIUM
from tests.api.test_api_harness import T0, Cast, LocalNode, running_cast, solar_farm

GATE = T0 + 4 * 3600  # 12:00 Bangkok on 1 January
T = T0 + 86_400  # 08:00 Bangkok on 2 January
WAIT_MS = 20_000

pytestmark = [
    pytest.mark.process,
    pytest.mark.browser,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed"),
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNode, Client, Cast]]:
    with running_cast(tmp_path_factory.mktemp("auction-browser")) as running:
        yield running


def _curve(side: tx.Side, zone: str, *steps: tuple[int, int]) -> tx.PlaceAuctionCurve:
    return tx.PlaceAuctionCurve(side, zone, T, tuple(tx.CurveStep(p, q) for p, q in steps))


def test_the_auction_panel_shows_curves_then_the_clearing_and_zone_prices(
    live: tuple[LocalNode, Client, Cast], browser: Browser
) -> None:
    node, api, cast = live
    # Central, licensed, 10 MW, not renewable; the home's rooftop solar in Bangkok is, and a
    # renewable-only bid there takes it: renewable energy is short, its price separates.
    farm, _ = solar_farm(api, "auction-browser", kind=tx.MeterKind.COGENERATION)
    api.send_and_wait(farm, _curve(tx.Side.SELL, "CEN", (250, 5_000)))
    api.send_and_wait(cast.office, _curve(tx.Side.BUY, "BKK", (400, 2_000), (200, 1_000)))
    api.send_and_wait(cast.home, _curve(tx.Side.SELL, "BKK", (300, 500)))
    green = msgspec.structs.replace(_curve(tx.Side.BUY, "BKK", (450, 500)), renewable_only=True)
    api.send_and_wait(cast.office, green)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{node.url}/?zone=BKK&interval={T}")
        page.wait_for_selector("body[data-auction='OPEN']", state="attached", timeout=WAIT_MS)
        assert page.get_attribute("#auction-chart path.demand", "d")
        assert page.get_attribute("#auction-chart path.supply", "d")
        assert "3 curves" in page.inner_text("#auction-result")
        node.advance(GATE - node.time + 60)  # the node clears it; the page hears it live
        page.wait_for_selector("body[data-auction='CLEARED']", state="attached", timeout=WAIT_MS)
        line = page.wait_for_selector("#auction-chart line.clearing", state="attached")
        assert line.get_attribute("data-price") == "25000/99"  # 250 / 0.99
        assert "Cleared by EGAT at 2.53 THB/kWh in BKK" in page.inner_text("#auction-result")
        assert "Renewable energy: 3.00 THB/kWh." in page.inner_text("#auction-result")
        green_line = page.wait_for_selector("#auction-chart line.renewable", state="attached")
        assert green_line.get_attribute("data-renewable-price") == "300/1"
        page.wait_for_selector("[data-zone-price='CEN']", timeout=WAIT_MS)
        assert page.text_content("[data-zone-price='CEN']") == "2.50 THB"
        assert page.text_content("[data-zone-price='BKK']") == "2.53 THB"
    finally:
        page.close()
    assert not errors, errors
