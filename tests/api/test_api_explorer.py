"""The explorer's and the household page's routes against a real one-validator node
(test_api_harness) with real committed data: a household that buys from a solar farm and
sells to an office in one interval, meters both, and is settled by the chain.

The household's bill is checked against the ledger's own accounting: its THB balance
moved by exactly minus the bill's net, and its tariff bill and buy-back are what the
zone's settlement report holds (the household is the only party there with import)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from gridtokenx.client import Client, Receipt
from gridtokenx.wire import crypto, tx
from tests.api.test_api import error_of, wait_until
from tests.api.test_api_harness import (
    INTERVAL,
    MEA,
    Cast,
    LocalNode,
    running_cast,
    solar_farm,
    text,
)

V1 = "/api/v1"
HOME_IMPORT_WH = 700
HOME_EXPORT_WH = 800

pytestmark = pytest.mark.process


def read_meter(
    node: LocalNode, api: Client, meter: crypto.PrivateKey, import_wh: int, export_wh: int
) -> Receipt:
    """The meter's next interval read with the given energy, once block time passed its end."""
    record = api.get(f"/meters/{text(meter)}")
    last = record["last_interval"]
    start = record["first_interval"] if last < 0 else last + INTERVAL
    reading = tx.MeterReading(
        start, record["import_register_wh"] + import_wh, record["export_register_wh"] + export_wh
    )
    ends = start + INTERVAL
    node.advance(max(0, ends - node.time))
    deadline = time.monotonic() + 20
    while api.health()["latest_time"] < ends:
        assert time.monotonic() < deadline, "block time did not pass the interval's end"
        time.sleep(0.05)
    return api.send_and_wait(meter, reading)


def read_until(
    node: LocalNode, api: Client, meter: crypto.PrivateKey, interval: int, energy: tuple[int, int]
) -> None:
    """Empty readings up to `interval`, then `energy` (import, export) in it."""
    while True:
        last = api.get(f"/meters/{text(meter)}")["last_interval"]
        start = api.get(f"/meters/{text(meter)}")["first_interval"] if last < 0 else last + INTERVAL
        if start == interval:
            read_meter(node, api, meter, *energy)
            return
        assert start < interval, "the meter is past the interval"
        read_meter(node, api, meter, 0, 0)


@dataclass
class Day:
    """What the scenario did, for the assertions (API and browser tests alike)."""

    interval: int
    home: str
    buy_trade: int
    sell_trade: int
    buy_tx: str
    thb_before: int
    home_txs: tuple[str, ...]  # sent by the household after `thb_before`: their fees count


def trade_day(node: LocalNode, api: Client, cast: Cast) -> Day:
    """The household buys 400 Wh from a Bangkok solar farm at 2.50 THB/kWh and sells 600 Wh
    to the office at 3.00 in one interval, then both meters report and it settles."""
    api.send_and_wait(cast.custodian, tx.IssueThb(cast.home.address, 50_000))
    # MEA buys back unsold export: with no THB it would owe it as a debt instead.
    api.send_and_wait(cast.custodian, tx.IssueThb(MEA.address, 50_000))
    farm, farm_meter = solar_farm(api, "explorer-farm", zone="BKK")
    thb_before = api.get(f"/accounts/{text(cast.home)}")["thb_satang"]
    interval = (api.health()["latest_time"] // INTERVAL + 2) * INTERVAL
    api.send_and_wait(farm, tx.PlaceOrder(tx.Side.SELL, "BKK", interval, 400, 250))
    bought = api.send_and_wait(cast.home, tx.PlaceOrder(tx.Side.BUY, "BKK", interval, 400, 260))
    offered = api.send_and_wait(cast.home, tx.PlaceOrder(tx.Side.SELL, "BKK", interval, 1_000, 300))
    sold = api.send_and_wait(cast.office, tx.PlaceOrder(tx.Side.BUY, "BKK", interval, 600, 320))

    def trade_id(receipt: Receipt) -> int:
        return int(next(e for e in receipt.events if e["kind"] == "trade")["attrs"]["trade"])

    read_until(node, api, farm_meter, interval, (0, 400))
    read_until(node, api, cast.meter, interval, (HOME_IMPORT_WH, HOME_EXPORT_WH))
    wait_until(lambda: api.get(f"/settlements/{interval}")["status"] == "SETTLED")
    sent = (bought.hash, offered.hash)
    return Day(
        interval, text(cast.home), trade_id(bought), trade_id(sold), bought.hash, thb_before, sent
    )


@pytest.fixture(scope="module")
def scenario(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalNode, Client, Cast, Day]]:
    with running_cast(tmp_path_factory.mktemp("explorer")) as (node, api, cast):
        yield node, api, cast, trade_day(node, api, cast)


@pytest.fixture(scope="module")
def http(scenario: tuple[LocalNode, Client, Cast, Day]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=scenario[0].url + V1, timeout=10) as client:
        yield client


def day_of(http: httpx.Client, time_: int) -> str:
    offset = http.get("/chain").json()["params"]["tariffs"]["utc_offset_seconds"]
    return time.strftime("%Y%m%d", time.gmtime(time_ + offset))


# --- the household's day ---------------------------------------------------------------------
def test_the_households_bill_is_what_the_chain_settled(
    scenario: tuple[LocalNode, Client, Cast, Day], http: httpx.Client
) -> None:
    _, _, _, day = scenario
    view = http.get(f"/households/{day.home}", params={"day": day_of(http, day.interval)})
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["participant"]["name"] == "Somchai" and body["participant"]["kind"] == "HOUSEHOLD"
    assert [m["owner"] for m in body["meters"]] == [day.home]
    assert {t["id"] for t in body["trades"]} == {day.buy_trade, day.sell_trade}
    names = {t["id"]: (t["seller_name"], t["buyer_name"]) for t in body["trades"]}
    assert names[day.sell_trade] == ("Somchai", "Office")
    assert names[day.buy_trade] == ("explorer-farm", "Somchai")
    lines = {line["interval"]: line for line in body["bill"]["lines"]}
    line = lines[day.interval]
    assert line["status"] == "SETTLED" and line["on_chain"] is True
    assert (line["import_wh"], line["export_wh"]) == (HOME_IMPORT_WH, HOME_EXPORT_WH)
    assert (line["bought_wh"], line["sold_wh"], line["delivered_wh"]) == (400, 600, 600)
    assert line["p2p_earned_satang"] == 600 * 300 // 1000
    bought = http.get(f"/trades/{day.buy_trade}").json()
    assert line["received_wh"] == 400 * (10_000 - bought["loss_bp"]) // 10_000
    report = http.get(f"/settlements/{day.interval}").json()["reports"]["BKK"]
    assert line["tou_satang"] == report["utility_bills_satang"] > 0
    assert line["buyback_satang"] == report["buyback_satang"] > 0  # 200 Wh exported unsold
    assert line["tariff_only_satang"] == (HOME_IMPORT_WH * line["tariff_msat_per_kwh"] // 1_000_000)
    # Every satang the household paid or earned that day moved its THB balance, beside
    # the fees of the two orders it signed.
    thb_after = http.get(f"/accounts/{day.home}").json()["thb_satang"]
    fees = sum(http.get(f"/txs/{h}/body").json()["fee"] for h in day.home_txs)
    assert thb_after - day.thb_before == -body["bill"]["totals"]["net_satang"] - fees
    totals = body["bill"]["totals"]
    assert totals["saved_satang"] == (
        totals["tariff_only_satang"] - totals["tou_satang"] - totals["p2p_paid_satang"]
    )
    # The readings of the day, the interval's one with the metered energy.
    ours = [r for r in body["readings"] if r["interval_start"] == day.interval]
    assert ours[0]["import_wh"] == HOME_IMPORT_WH and ours[0]["export_wh"] == HOME_EXPORT_WH


def test_a_day_without_activity_has_no_lines_and_bad_input_is_refused(
    scenario: tuple[LocalNode, Client, Cast, Day], http: httpx.Client
) -> None:
    _, _, cast, day = scenario
    empty = http.get(f"/households/{day.home}", params={"day": "20250101"}).json()
    assert empty["bill"]["lines"] == [] and empty["trades"] == []
    assert empty["bill"]["totals"]["net_satang"] == 0
    error_of(http.get(f"/households/{day.home}", params={"day": "20261340"}), 422,
             "INVALID_REQUEST")  # fmt: skip
    error_of(http.get("/households/gtxnotanaddress"), 422, "INVALID_REQUEST")
    stranger = crypto.address_to_text(crypto.PrivateKey.from_dev_label("nobody").address)
    error_of(http.get(f"/households/{stranger}"), 404, "NOT_FOUND")
    # Without a day, the latest block's: the scenario's day.
    latest = http.get(f"/households/{text(cast.home)}").json()
    assert latest["day"] == int(day_of(http, http.get("/health").json()["latest_time"]))


# --- transactions and addresses --------------------------------------------------------------
def test_a_committed_transaction_is_shown_decoded(
    scenario: tuple[LocalNode, Client, Cast, Day], http: httpx.Client
) -> None:
    _, _, _, day = scenario
    found = http.get(f"/txs/{day.buy_tx}/body").json()
    assert found["status"] == "committed" and found["kind"] == "PlaceOrder"
    assert found["sender"] == day.home and found["sender_name"] == "Somchai"
    assert found["body"]["side"] == "BUY" and found["body"]["quantity_wh"] == 400
    block = http.get(f"/blocks/{found['height']}").json()
    assert block["hash"] == found["block_hash"] and block["txs"][found["index"]] == day.buy_tx
    assert found["time"] == block["header"]["time"]
    assert any(e["kind"] == "trade" for e in found["events"])
    error_of(http.get(f"/txs/{'ab' * 32}/body"), 404, "NOT_FOUND")
    error_of(http.get("/txs/xyz/body"), 422, "INVALID_REQUEST")


def test_an_addresses_transactions_page_newest_first_through_every_block(
    scenario: tuple[LocalNode, Client, Cast, Day], http: httpx.Client
) -> None:
    _, _, cast, day = scenario
    seen: list[dict[str, object]] = []
    before = None
    for _ in range(50):
        params = {"limit": 3} if before is None else {"limit": 3, "before": before}
        page = http.get(f"/accounts/{day.home}/txs", params=params)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        before = page.json()["next"]
        if before is None:
            break
    assert before is None, "the pages did not reach the first block"
    heights = [int(str(item["height"])) for item in seen]
    assert heights == sorted(heights, reverse=True)
    kinds = {str(item["kind"]) for item in seen}
    # Its registration (signed by MEA, naming it), its meter's, its orders and its THB.
    assert {"RegisterParticipant", "RegisterMeter", "PlaceOrder", "IssueThb"} <= kinds
    assert day.buy_tx in {item["hash"] for item in seen}
    assert any(item["sender"] == text(MEA) and item["sender_name"] == "MEA" for item in seen)
    # The meter's own readings are its transactions, not the household's.
    assert "MeterReading" not in kinds
    meter = http.get(f"/accounts/{text(cast.meter)}/txs", params={"limit": 100}).json()
    assert {item["kind"] for item in meter["items"]} >= {"MeterReading", "RegisterMeter"}
    error_of(http.get(f"/accounts/{day.home}/txs", params={"before": "x"}), 422,
             "INVALID_REQUEST")  # fmt: skip
