"""The dashboard end to end in a real headless Chromium (Debian's `chromium`, driven by
Playwright with its executable path pointed at it; Playwright's own browsers are never
downloaded): a devnet of two validator processes with their APIs on 127.0.0.1, the page
loads and follows the chain live over the WebSocket, and a crossing buy and sell placed
through the SDK show up as a trade without a reload; so do a renewable energy certificate
(a licensed 10 MW solar farm's 1 MWh reading) and a governance proposal with its votes. A
second page whose WebSocket is refused falls back to polling and still sees the next trade.
The browser is the shared one of tests/api/conftest.py.

The devnet's clock runs at SPEED chain seconds per wall second from 10:00 Bangkok time
today, so a meter's first 15-minute interval ends within seconds (a reading needs its
interval to have ended) and the whole test stays inside one local day. The screenshot is kept as
docs/dashboard.png when GRIDTOKENX_UPDATE_SCREENSHOT=1 (to a temporary file otherwise,
so a test run leaves the tree clean). Processes and the browser are always stopped."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute

from gridtokenx.client import Client
from gridtokenx.devnet.homes import init_devnet
from gridtokenx.ledger import genesis
from gridtokenx.node.home import read_config
from gridtokenx.wire import tx
from gridtokenx.wire.crypto import PrivateKey
from tests.api.browser import CHROMIUM, record_problems
from tests.api.test_api_harness import MWH, next_reading, solar_farm
from tests.client.test_client_devnet import _start, _stop, _wait_ready
from tests.conftest import free_base_port

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
UPDATE_SCREENSHOT = "GRIDTOKENX_UPDATE_SCREENSHOT"  # =1: refresh docs/dashboard.png
VALIDATORS = ("EGAT", "MEA")
KEYS = genesis.dev_keys()
WAIT_MS = 15_000  # longest wait for any one thing on the page
SPEED = 60  # chain seconds per wall second: a 15-minute interval lasts 15 s
AHEAD = 40  # intervals between now and the one traded: 10 chain hours, 10 wall minutes

pytestmark = [
    pytest.mark.process,
    pytest.mark.browser,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="chromium is not installed (Debian: apt-get install -y chromium)",
    ),
]


class Market:
    """A Bangkok household with rooftop solar that sells and an office that buys with THB
    from a licensed custodian, registered through the SDK."""

    def __init__(self, api: Client) -> None:
        self.api = api
        self.home = PrivateKey.from_dev_label("dashboard-test/home")
        self.office = PrivateKey.from_dev_label("dashboard-test/office")
        custodian = PrivateKey.from_dev_label("dashboard-test/custodian")
        meter = PrivateKey.from_dev_label("dashboard-test/meter")
        P = tx.ParticipantKind
        mea, pea = KEYS["MEA"], KEYS["PEA"]
        self.farm = PrivateKey.from_dev_label("dashboard-test/farm")
        farm_meter = PrivateKey.from_dev_label("dashboard-test/farm/meter")
        pending = [
            api.send(mea, tx.RegisterParticipant(self.home.address, "BKK", P.HOUSEHOLD, "Malee")),
            api.send(mea, tx.RegisterParticipant(self.office.address, "BKK", P.BUSINESS, "T77")),
            api.send(mea, tx.RegisterParticipant(custodian.address, "BKK", P.CUSTODIAN, "Bank")),
            api.send(
                mea,
                tx.RegisterMeter(
                    meter.public_key, self.home.address, "BKK", tx.MeterKind.SOLAR, 5000
                ),
            ),
            api.send(pea, tx.RegisterParticipant(self.farm.address, "CEN", P.HOUSEHOLD, "Farm")),
        ]
        pending.append(
            api.send(
                pea,
                tx.RegisterMeter(
                    farm_meter.public_key, self.farm.address, "CEN", tx.MeterKind.SOLAR, 5000
                ),
            )
        )
        for tx_hash in pending:
            api.wait(tx_hash)
        expiry = int(time.time()) + 365 * 86_400
        licence = tx.GrantLicence(custodian.address, tx.LicenceKind.CUSTODIAN, expiry)
        api.send_and_wait(KEYS["ERC"], licence)
        api.send_and_wait(custodian, tx.IssueThb(self.office.address, 100_000))
        self.interval = (api.health()["latest_time"] // 900 + AHEAD) * 900

    def cross(self, quantity_wh: int, sell_price: int) -> tuple[int, dict[str, int]]:
        """A resting ask, then a bid above it for part of it: one trade. Returns the trade
        id and what the ask leaves in the book."""
        sell = tx.PlaceOrder(tx.Side.SELL, "BKK", self.interval, 2 * quantity_wh, sell_price)
        self.api.send_and_wait(self.home, sell)
        buy = tx.PlaceOrder(tx.Side.BUY, "BKK", self.interval, quantity_wh, sell_price + 20)
        receipt = self.api.send_and_wait(self.office, buy)
        trade = next(e for e in receipt.events if e["kind"] == "trade")["attrs"]
        assert trade["quantity_wh"] == quantity_wh and trade["price"] == sell_price
        return int(trade["trade"]), {"price": sell_price, "quantity_wh": quantity_wh}

    def import_from_central(self, quantity_wh: int) -> None:
        """A Central ask cheap enough, after the interconnector's loss, to beat Bangkok's:
        the office's bid takes energy across the BKK-CEN link."""
        sell = tx.PlaceOrder(tx.Side.SELL, "CEN", self.interval, quantity_wh, 250)
        self.api.send_and_wait(self.farm, sell)
        buy = tx.PlaceOrder(tx.Side.BUY, "BKK", self.interval, quantity_wh, 285)
        receipt = self.api.send_and_wait(self.office, buy)
        trade = next(e for e in receipt.events if e["kind"] == "trade")["attrs"]
        assert trade["seller_zone"] == "CEN" and trade["quantity_wh"] == quantity_wh


def _certificate(api: Client) -> int:
    """A licensed solar farm's first reading of 1 MWh: one certificate. Returns its id."""
    _, meter = solar_farm(api, "dashboard-test")
    reading = next_reading(api, meter, MWH)
    deadline = time.monotonic() + 60
    while api.health()["latest_time"] < reading.interval_start + 900:
        assert time.monotonic() < deadline, "the meter's interval did not end in time"
        time.sleep(0.2)
    receipt = api.send_and_wait(meter, reading)
    issued = [e["attrs"]["id"] for e in receipt.events if e["kind"] == "certificate_issued"]
    assert len(issued) == 1
    return int(issued[0])


def _propose(api: Client, title: str) -> int:
    change = (tx.ParamChange("min_fee_satang", 1),)
    body = tx.SubmitProposal(tx.ProposalKind.PARAMETER, change, title)
    receipt = api.send_and_wait(KEYS["EGAT"], body)
    return int(next(e["attrs"]["id"] for e in receipt.events if e["kind"] == "proposal_submitted"))


def _height(page: Page) -> int:
    return int(page.inner_text("#height"))


def _trade_row(page: Page, trade_id: int) -> str:
    row = page.locator(f'#trades tr[data-trade-id="{trade_id}"]')
    row.wait_for(timeout=WAIT_MS)
    return row.inner_text()


def test_the_dashboard_follows_a_devnet_live_and_shows_a_new_trade(
    tmp_path: Path, browser: Browser
) -> None:
    """`browser`: the shared headless chromium (tests/api/conftest.py)."""
    screenshot = DOCS_SCREENSHOT if os.environ.get(UPDATE_SCREENSHOT) else tmp_path / "d.png"
    base = free_base_port(len(VALIDATORS))
    now = int(time.time())
    ten_am = (now + 7 * 3600) // 86_400 * 86_400 - 7 * 3600 + 10 * 3600  # 10:00 in Bangkok
    homes = init_devnet(
        tmp_path, "gridtokenx-dashboard-test", ten_am, base, block_ms=300,
        validators=VALIDATORS, clock_origin=now, clock_speed=SPEED,
    )  # fmt: skip
    url = f"http://127.0.0.1:{read_config(homes[0]).api_port}"
    procs = [_start(h) for h in homes]
    problems: list[list[str]] = []  # one list per page

    try:
        with Client(url) as api:
            _wait_ready(api)
            market = Market(api)
            pages: list[Page] = []
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                pages.append(page)
                problems.append(record_problems(page))
                page.goto(f"{url}/?zone=BKK&interval={market.interval}")
                page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
                page.evaluate("window.sameDocument = true")  # gone if the page reloads
                # Live: the height climbs, pushed over the WebSocket.
                page.wait_for_selector("body[data-feed='live']", timeout=WAIT_MS)
                first = _height(page)
                assert first >= 1
                page.wait_for_function(
                    "h => Number(document.getElementById('height').textContent) > h",
                    arg=first + 2,
                    timeout=WAIT_MS,
                )
                authorities = page.locator("#validators tr[data-validator]")
                assert authorities.count() >= len(VALIDATORS)
                for code in VALIDATORS:
                    assert "signing" in page.inner_text(f'#validators tr[data-validator="{code}"]')
                assert page.locator("#zone-map g[data-zone]").count() == 7
                assert page.locator("#zone-map line[data-link]").count() >= 7
                assert "BKK" in page.inner_text("#book-title")
                # A crossing pair through the SDK: the trade and the book change appear.
                trade_id, left = market.cross(300, 290)
                row = _trade_row(page, trade_id)
                assert "0.3" in row and "2.90" in row and "BKK" in row
                ask = page.locator(f'#asks tr[data-price="{left["price"]}"]')
                page.wait_for_function(
                    "([p, q]) => document.querySelector(`#asks tr[data-price='${p}']`)"
                    "?.dataset.quantity === String(q)",
                    arg=[left["price"], left["quantity_wh"]],
                    timeout=WAIT_MS,
                )
                assert "0.3" in ask.inner_text()
                assert page.evaluate("window.sameDocument") is True
                page.wait_for_function(
                    "() => Number(document.body.dataset.pricedTrades) >= 1", timeout=WAIT_MS
                )
                assert re.search(r"[1-9][0-9]* trades", page.inner_text("#price-title"))
                page.wait_for_function(
                    "() => document.getElementById('traded-today').textContent === '0.3 kWh'",
                    timeout=WAIT_MS,
                )
                # Energy from Central: the map draws the flow on the BKK-CEN link.
                market.import_from_central(400)
                link = page.locator("#zone-map line[data-link='BKK-CEN']")
                page.wait_for_function(
                    "() => document.querySelector(\"#zone-map line[data-link='BKK-CEN']\")"
                    ".classList.contains('ok')",
                    timeout=WAIT_MS,
                )
                assert "used" in link.locator("title").text_content()
                assert "0.4 kWh → BKK" in (page.text_content("#zone-map") or "")
                # A certificate: the latest list and Central's total for today show it.
                cert_id = _certificate(api)
                cert_row = page.locator(f'#certificates tr[data-certificate-id="{cert_id}"]')
                cert_row.wait_for(timeout=WAIT_MS)
                assert "solar" in cert_row.inner_text() and "475" in cert_row.inner_text()
                page.wait_for_function(
                    "() => Number(document.querySelector(\"#cert-zones tr[data-zone='CEN']\")"
                    "?.dataset.issuedWh) >= 1000000",
                    timeout=WAIT_MS,
                )
                assert "MWh" in page.inner_text("#cert-issued")
                # A proposal, a vote on it, and a withdrawn one among the decided.
                pid = _propose(api, "Lower the minimum fee")
                proposal = page.locator(f'#proposals tr[data-proposal-id="{pid}"]')
                proposal.wait_for(timeout=WAIT_MS)
                assert "Lower the minimum fee" in proposal.inner_text()
                api.send_and_wait(KEYS["MEA"], tx.CastVote(pid, tx.VoteChoice.YES))
                page.wait_for_function(
                    "p => document.querySelector(`#proposals tr[data-proposal-id='${p}']`)"
                    "?.dataset.yes === '8000'",
                    arg=pid,
                    timeout=WAIT_MS,
                )
                assert "8000/0/0" in proposal.inner_text()
                withdrawn = _propose(api, "Withdrawn draft")
                api.send_and_wait(KEYS["EGAT"], tx.WithdrawProposal(withdrawn))
                decided = page.locator(f'#decided li[data-proposal-id="{withdrawn}"]')
                decided.wait_for(timeout=WAIT_MS)
                assert "withdrawn" in decided.inner_text()
                assert page.evaluate("window.sameDocument") is True
                page.wait_for_timeout(500)  # let the chart and map settle for the picture
                page.screenshot(path=str(screenshot), full_page=True)

                # Without the WebSocket the page polls, and still sees the next trade.
                polled = browser.new_page()
                pages.append(polled)
                problems.append(record_problems(polled))

                def refuse(socket: WebSocketRoute) -> None:
                    socket.close()

                polled.route_web_socket(re.compile(r".*/api/v1/ws$"), refuse)
                polled.goto(f"{url}/?zone=BKK&interval={market.interval}")
                polled.wait_for_selector("body[data-feed='polling']", timeout=WAIT_MS)
                before = _height(polled)
                second, _ = market.cross(200, 280)
                assert "0.2" in _trade_row(polled, second)
                assert _height(polled) > before
                assert polled.get_attribute("body", "data-feed") == "polling"
            finally:
                for opened in pages:
                    opened.close()
    finally:
        _stop(procs)
    assert [p for page_problems in problems for p in page_problems] == []
    assert screenshot.stat().st_size > 10_000
