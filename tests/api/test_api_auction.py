"""The day-ahead auction end to end on a real one-validator node (test_api_harness): curves
placed through the SDK, the book read over the API and the CLI, then block time moved past
the gate and the node clears the auction by itself (node/auction_clearer.py: HiGHS in a
worker thread, the certificate submitted as EGAT's transaction), which the API, the SDK's
typed results and the WebSocket `auction` topic all show. Bad input gets the error shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner
from websockets.sync.client import connect

from gridtokenx.cli.main import app
from gridtokenx.client import Client
from gridtokenx.client.results import AuctionBook, AuctionResult
from gridtokenx.node import keystore
from gridtokenx.wire import tx
from tests.api.test_api import error_of
from tests.api.test_api_harness import T0, Cast, LocalNode, running_cast

V1 = "/api/v1"
GATE = T0 + 4 * 3600  # 12:00 Bangkok on 1 January: the gate of 2 January's intervals
T = T0 + 86_400  # 08:00 Bangkok on 2 January
pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNode, Client, Cast]]:
    with running_cast(tmp_path_factory.mktemp("auction")) as running:
        yield running


def _curve(side: tx.Side, *steps: tuple[int, int]) -> tx.PlaceAuctionCurve:
    return tx.PlaceAuctionCurve(side, "BKK", T, tuple(tx.CurveStep(p, q) for p, q in steps))


def test_an_auction_clears_on_the_node_after_its_gate(
    live: tuple[LocalNode, Client, Cast],
) -> None:
    node, api, cast = live
    api.send_and_wait(cast.home, _curve(tx.Side.SELL, (200, 600), (350, 600)))
    receipt = api.send_and_wait(cast.office, _curve(tx.Side.BUY, (400, 800), (300, 800)))
    assert receipt.events[0]["kind"] == "auction_curve_placed"
    book = api.auction_book("BKK", T)
    assert isinstance(book, AuctionBook) and book.status == "OPEN" and book.gate == GATE
    assert [(lv.price, lv.quantity_wh) for lv in book.demand] == [(400, 800), (300, 800)]
    assert [(lv.price, lv.quantity_wh) for lv in book.supply] == [(200, 600), (350, 600)]
    # The home's meter is solar: its offer is renewable; no bid is renewable-only.
    assert book.renewable_supply == book.supply and book.renewable_demand == []
    assert [(c.side, c.renewable, c.renewable_only) for c in book.curves] == [
        ("SELL", True, False), ("BUY", False, False),
    ]  # fmt: skip
    cli = CliRunner().invoke(
        app, ["query", "auction", str(T), "--zone", "BKK", "--json", "--node", node.url]
    )
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output)["supply"][0] == {"price": 200, "quantity_wh": 600}

    url = node.url.replace("http://", "ws://") + V1 + "/ws"
    with connect(url) as socket:
        socket.send(json.dumps({"op": "subscribe", "topic": "auction"}))
        assert json.loads(socket.recv(timeout=15))["type"] == "subscribed"
        node.advance(GATE - node.time + 60)
        seen: list[dict[str, Any]] = []
        while not any(m.get("event") == "auction_cleared" for m in seen):
            seen.append(json.loads(socket.recv(timeout=30)))
    cleared = next(m for m in seen if m.get("event") == "auction_cleared")
    assert cleared["interval"] == T and cleared["by"] == "EGAT" and cleared["trades"] >= 1

    result = api.auction_result(T)
    assert isinstance(result, AuctionResult) and result.cleared_by == "EGAT"
    # The 400 bid (800 Wh) takes the 200 offer's 600 Wh and 200 Wh of the 350 offer, which
    # is accepted in part and so sets the price; the 300 bid is below it and rejected.
    assert result.price("BKK") == 350 and result.welfare_satang == 130
    # Renewable energy is not short (no renewable-only bid): both prices are equal.
    bkk = next(z for z in result.zones if z.zone == "BKK")
    assert bkk.renewable_price == 350 and bkk.renewable_price_exact == "350/1"
    assert api.auction_book("BKK", T).status == "CLEARED"
    trades = [api.trade(i) for i in result.trades]
    assert sum(t.quantity_wh for t in trades) == 800
    assert {t.price for t in trades} == {350}


def test_auction_routes_refuse_bad_input(live: tuple[LocalNode, Client, Cast]) -> None:
    node = live[0]
    with httpx.Client(base_url=node.url + V1, timeout=10) as http:
        error_of(http.get(f"/auction/results/{T + 900}"), 404, "NOT_FOUND")
        error_of(http.get(f"/auction/book/XYZ/{T}"), 404, "NOT_FOUND")
        error_of(http.get(f"/auction/book/BKK/{T + 1}"), 422, "INVALID_REQUEST")
        error_of(http.get("/auction/book/bkk/1"), 422, "INVALID_REQUEST")


def test_the_cli_places_a_bid(live: tuple[LocalNode, Client, Cast], tmp_path: Path) -> None:
    node, api, cast = live
    later = T + 86_400  # 3 January: its gate is still ahead
    key_file = tmp_path / "office.key"
    keystore.save_insecure_dev_key(key_file, cast.office)
    result = CliRunner().invoke(
        app,
        ["tx", "auction", "bid", "BKK", str(later), "4.5THB/kWh:1kWh", "320satang/kWh:500Wh",
         "--renewable-only", "--key", str(key_file), "--allow-insecure", "--node", node.url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    book = api.auction_book("BKK", later)
    assert [(lv.price, lv.quantity_wh) for lv in book.demand] == [(450, 1_000), (320, 500)]
    assert book.renewable_demand == book.demand and book.curves[0].renewable_only
