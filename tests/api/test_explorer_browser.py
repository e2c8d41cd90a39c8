"""The explorer's block, transaction and address pages and the household page in a real
headless Chromium (Debian's `chromium` driven by Playwright, as in
test_dashboard_browser.py), against a real one-validator node holding the committed day of
test_api_explorer: a household that bought from a solar farm and sold to an office, both
metered and settled by the chain.

Each page is checked against the API's own answer (hashes, balances, the bill's
figures), the search box is driven as a user would, and every page is measured at a
phone's 375 px for sideways overflow. With GRIDTOKENX_UPDATE_SCREENSHOT=1 the pages are
kept as docs/explorer-*.png and docs/household*.png (a temporary directory otherwise)."""

from __future__ import annotations

import csv
import datetime
import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route

from gridtokenx.client import Client
from tests.api.browser import CHROMIUM, record_problems
from tests.api.test_api_explorer import Day, day_of, trade_day
from tests.api.test_api_harness import EGAT, Cast, LocalNode, running_cast, text
from tests.api.test_dashboard_browser import UPDATE_SCREENSHOT

DOCS = Path(__file__).resolve().parents[2] / "docs"
WAIT_MS = 15_000
PHONE = {"width": 375, "height": 740}

pytestmark = [
    pytest.mark.process,
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="chromium is not installed (Debian: apt-get install -y chromium)",
    ),
]

Live = tuple[LocalNode, Client, Cast, Day]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with running_cast(tmp_path_factory.mktemp("explorer-browser")) as (node, api, cast):
        yield node, api, cast, trade_day(node, api, cast)


@pytest.fixture(scope="module")
def http(live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{live[0].url}/api/v1", timeout=10) as client:
        yield client


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return DOCS if os.environ.get(UPDATE_SCREENSHOT) else tmp_path


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A desktop-sized page that fails the test on any script error or console error
    (but the browser's note of a 404: a search tries a hash as a transaction first)."""
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = record_problems(opened, also_expected=("status of 404",))
    try:
        yield opened
    finally:
        opened.close()
    assert problems == []


def visit(page: Page, url: str, route: str) -> None:
    """Open (or move to) an explorer route and wait until it has rendered."""
    if page.url.startswith(url):
        page.evaluate("r => { location.hash = r; }", route)
    else:
        page.goto(f"{url}/{route}")
    arrived(page, route)


def arrived(page: Page, route: str) -> None:
    page.wait_for_function(
        "r => document.getElementById('explorer').dataset.route === r", arg=route, timeout=WAIT_MS
    )
    assert page.locator("#explorer-error").count() == 0, page.inner_text("#explorer")


def test_block_tx_and_address_pages_show_what_the_api_holds(
    live: Live, http: httpx.Client, page: Page, shots: Path
) -> None:
    node, _, cast, day = live
    found = http.get(f"/txs/{day.buy_tx}/body").json()
    block = http.get(f"/blocks/{found['height']}").json()
    visit(page, node.url, f"#/block/{block['height']}")
    assert page.get_attribute("body", "data-view") == "explorer"
    assert page.locator("main").is_hidden()
    assert page.inner_text("#block-hash") == block["hash"]
    assert page.inner_text("#block-tx-count") == str(block["tx_count"])
    assert "EGAT" in page.inner_text("#block-proposer")
    tx_row = page.locator(f'#block-txs tr[data-tx="{day.buy_tx}"]')
    assert "PlaceOrder" in tx_row.inner_text()
    page.screenshot(path=str(shots / "explorer-block.png"), full_page=True)
    # Into the transaction by its link, then to its sender.
    tx_row.locator(f'a[href="#/tx/{day.buy_tx}"]').click()
    arrived(page, f"#/tx/{day.buy_tx}")
    assert page.inner_text("#tx-kind") == "PlaceOrder"
    assert page.inner_text("#tx-status") == "committed"
    assert page.get_attribute("#tx-sender", "data-address") == day.home
    assert page.inner_text("#tx-sender") == f"Somchai ({day.home})"
    assert page.inner_text("#tx-block") == str(found["height"])
    assert "BUY" in page.inner_text('#tx-body tr[data-field="side"]')
    assert page.locator('#tx-events tr[data-event="trade"]').count() == 1
    page.screenshot(path=str(shots / "explorer-tx.png"), full_page=True)
    page.locator("#tx-sender a").click()
    arrived(page, f"#/address/{day.home}")
    account = http.get(f"/accounts/{day.home}").json()
    assert "Somchai" in page.inner_text("#addr-participant")
    assert page.get_attribute("#addr-thb", "data-satang") == str(account["thb_satang"])
    assert page.get_attribute("#addr-grid", "data-wh") == str(account["grid_wh"])
    assert page.locator(f'#addr-meters tr[data-meter="{text(cast.meter)}"]').count() == 1
    # The list walks at most 1,000 blocks a page: on a loaded machine the node may have made
    # that many (empty) blocks since the trade before the page opened, so ask for older.
    row = page.locator(f'#addr-txs tr[data-tx="{day.buy_tx}"]')
    older = page.locator("section:has(#addr-txs) button.more")
    for _ in range(20):  # bounded
        if row.count() or not older.is_visible():
            break
        rows = page.locator("#addr-txs tr").count()
        older.click()
        page.wait_for_function(
            "n => document.querySelectorAll('#addr-txs tr').length !== n ||"
            " document.querySelector('section:has(#addr-txs) button.more').hidden",
            arg=rows, timeout=WAIT_MS,
        )  # fmt: skip
    assert row.count() == 1
    page.screenshot(path=str(shots / "explorer-address.png"), full_page=True)
    # Every explorer table downloads as the CSV of what it shows (tables.js).
    with page.expect_download() as info:
        page.click('button.csv[data-table="addr-txs"]')
    downloaded = Path(info.value.path()).read_text(encoding="utf-8-sig")
    shown = page.eval_on_selector_all(
        "#addr-txs tr", "rs => rs.map(r => [...r.cells].map(c => c.innerText.trim()))"
    )
    assert list(csv.reader(io.StringIO(downloaded))) == shown and len(shown) >= 2
    # The browser's back button retraces the links.
    page.go_back()
    arrived(page, f"#/tx/{day.buy_tx}")
    page.go_back()
    arrived(page, f"#/block/{block['height']}")


def test_a_request_the_network_dropped_is_sent_again(live: Live, browser: Browser) -> None:
    """The first two requests for the block fail as if the laptop had lost its network;
    the page asks again and shows the block, and the browser saw three requests for it.
    Nothing but the two dropped requests reaches the console."""
    node, _, _, _ = live
    page = browser.new_page()
    problems = record_problems(page, also_expected=("net::ERR_INTERNET_DISCONNECTED",))
    tries: list[str] = []

    def flaky(route: Route) -> None:
        tries.append(route.request.url)
        if len(tries) <= 2:
            route.abort("internetdisconnected")
        else:
            route.continue_()

    try:
        page.route("**/api/v1/blocks/2", flaky)
        visit(page, node.url, "#/block/2")
        assert page.inner_text("#block-height") == "2"
        assert len(tries) == 3
    finally:
        page.close()
    assert problems == []


def test_the_search_box_finds_heights_hashes_and_addresses(
    live: Live, http: httpx.Client, page: Page
) -> None:
    node, _, _, day = live
    block = http.get("/blocks/3").json()
    page.goto(node.url)
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)

    def search(query: str) -> None:
        page.fill("#search-box", query)
        page.click("#search button[type=submit]")

    search("3")
    arrived(page, "#/block/3")
    search(day.buy_tx)
    arrived(page, f"#/tx/{day.buy_tx}")
    search(block["hash"].upper())
    arrived(page, f"#/block/{block['hash']}")
    assert page.inner_text("#block-height") == "3"
    search(f"  {day.home} ")
    arrived(page, f"#/address/{day.home}")
    search("not a thing")
    page.wait_for_function(
        "() => document.getElementById('search-message').textContent.startsWith('Not found')",
        timeout=WAIT_MS,
    )
    search("ab" * 32)  # well formed, but nothing here has that hash
    page.wait_for_function(
        "() => document.getElementById('search-message').textContent.startsWith('Not found')",
        timeout=WAIT_MS,
    )
    assert page.url.endswith(f"#/address/{day.home}")  # a failed search goes nowhere
    # Back to the dashboard, and from its validators table into an address page.
    page.click("#explorer .back a")
    page.wait_for_function("() => !document.body.dataset.view", timeout=WAIT_MS)
    assert page.locator("main").is_visible()
    page.locator(f'#validators a[href="#/address/{text(EGAT)}"]').click()
    arrived(page, f"#/address/{text(EGAT)}")


def test_the_household_page_shows_the_bill_the_api_computed(
    live: Live, http: httpx.Client, page: Page, shots: Path
) -> None:
    node, _, _, day = live
    date = day_of(http, day.interval)
    view = http.get(f"/households/{day.home}", params={"day": date}).json()
    totals = view["bill"]["totals"]
    route = f"#/household/{day.home}?day={date}"
    visit(page, node.url, route)
    assert "Somchai" in page.inner_text("#hh-title")
    for key, element in (
        ("net_satang", "#hh-net"),
        ("tou_satang", "#hh-tou"),
        ("p2p_paid_satang", "#hh-p2p-paid"),
        ("p2p_earned_satang", "#hh-p2p-earned"),
        ("buyback_satang", "#hh-buyback"),
        ("tariff_only_satang", "#hh-tariff-only"),
        ("saved_satang", "#hh-saved"),
    ):
        assert page.get_attribute(element, "data-satang") == str(totals[key]), key
        assert page.inner_text(element) == f"{totals[key] / 100:.2f} THB", key
    assert page.get_attribute("#hh-import", "data-wh") == str(totals["import_wh"])
    line = next(x for x in view["bill"]["lines"] if x["interval"] == day.interval)
    bill_row = page.locator(f'#hh-bill tr[data-interval="{day.interval}"]')
    assert bill_row.get_attribute("data-net") == str(line["net_satang"])
    assert "settled" in bill_row.inner_text()
    assert f"{line['tou_satang'] / 100:.2f}" in bill_row.inner_text()
    sold_to = page.locator(f'#hh-trades tr[data-trade-id="{day.sell_trade}"]').inner_text()
    assert "sold" in sold_to and "Office" in sold_to  # the other party by its name
    bought_from = page.locator(f'#hh-trades tr[data-trade-id="{day.buy_trade}"]').inner_text()
    assert "bought" in bought_from and "explorer-farm" in bought_from
    assert page.locator(f'#hh-readings tr[data-interval="{day.interval}"]').count() == 1
    page.screenshot(path=str(shots / "household.png"), full_page=True)
    # The address page links here; the day picker moves to a day without activity.
    visit(page, node.url, f"#/address/{day.home}")
    page.locator("#addr-household a").click()
    arrived(page, f"#/household/{day.home}")
    page.click("#hh-prev")
    before = view["day"]
    page.wait_for_function(
        "r => (document.getElementById('explorer').dataset.route || '').endsWith(r)",
        arg="?day=" + str(_previous(before)),
        timeout=WAIT_MS,
    )
    assert page.locator("#hh-bill tbody tr[data-interval]").count() == 0
    assert page.get_attribute("#hh-net", "data-satang") == "0"


def _previous(yyyymmdd: int) -> int:
    day = str(yyyymmdd)
    date = datetime.date(int(day[:4]), int(day[4:6]), int(day[6:])) - datetime.timedelta(days=1)
    return date.year * 10_000 + date.month * 100 + date.day


def overflow(page: Page) -> int:
    """How far the page reaches past the viewport's right edge (CSS px)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def test_every_page_fits_a_phone(
    live: Live, http: httpx.Client, browser: Browser, shots: Path
) -> None:
    node, _, _, day = live
    found = http.get(f"/txs/{day.buy_tx}/body").json()
    phone = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        routes = (
            f"#/block/{found['height']}",
            f"#/tx/{day.buy_tx}",
            f"#/address/{day.home}",
            f"#/household/{day.home}?day={day_of(http, day.interval)}",
        )
        for route in routes:
            visit(phone, node.url, route)
            assert overflow(phone) <= 0, f"{route} is wider than the phone"
        phone.screenshot(path=str(shots / "household-phone.png"), full_page=True)
    finally:
        phone.close()
