"""Surveillance served by a real node: two funded accounts trade energy round in a circle,
the interval settles at its deadline, and the node's follower raises a wash-trading alert
that the REST route (with its filters), the SDK and the WebSocket topic all show, with the
trades and the funding transfer as evidence by hash and height."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from websockets.sync.client import connect

from gridtokenx.api import ApiSettings
from gridtokenx.cli.main import app
from gridtokenx.client import ApiError, Client
from gridtokenx.surveillance import SurveillanceSettings
from gridtokenx.surveillance.settings import load
from gridtokenx.wire import tx
from tests.api.test_api_harness import (
    INTERVAL,
    LocalNode,
    build_cast,
    solar_farm,
    text,
)
from tests.api.test_api_ws import send, until, ws_url

pytestmark = pytest.mark.process
runner = CliRunner()


def circle(node: LocalNode, api: Client) -> dict[str, Any]:
    """Two funded solar farms trade 5 kWh each way in one interval; block time then passes
    the interval's settlement deadline (nobody reports, so the deadline settles it)."""
    cast = build_cast(api)
    a, _ = solar_farm(api, "ring-a", "BKK")
    b, _ = solar_farm(api, "ring-b", "BKK")
    api.send_and_wait(cast.custodian, tx.IssueThb(a.address, 500_000))
    api.send_and_wait(a, tx.Transfer(tx.Asset.THB, b.address, 200_000))  # funding
    start = (node.time // INTERVAL + 3) * INTERVAL
    ioc = tx.TimeInForce.IMMEDIATE_OR_CANCEL
    for seller, buyer in ((a, b), (b, a)):
        api.send_and_wait(seller, tx.PlaceOrder(tx.Side.SELL, "BKK", start, 5_000, 300))
        api.send_and_wait(buyer, tx.PlaceOrder(tx.Side.BUY, "BKK", start, 5_000, 300, tif=ioc))
    return {"node": node, "api": api, "a": a, "b": b, "start": start}


def settle(node: LocalNode, api: Client, start: int) -> None:
    settled_by = start + INTERVAL + 7_200 + 1
    node.advance(settled_by - node.time)
    deadline = time.monotonic() + 30
    while api.health()["latest_time"] < settled_by:
        assert time.monotonic() < deadline, "block time did not reach the deadline"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def circled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    path = tmp_path_factory.mktemp("surveil")
    with LocalNode(path / "data") as node, node.client() as api:
        found = circle(node, api)
        with connect(ws_url(node)) as socket:
            send(socket, op="subscribe", topic="surveillance")
            assert until(socket, lambda m: True)["topic"] == "surveillance"
            settle(node, api, found["start"])
            found["pushed"] = until(socket, lambda m: m["type"] == "alert", seconds=30)
        yield found


def test_the_circle_is_alerted_with_its_evidence(circled: dict[str, Any]) -> None:
    api: Client = circled["api"]
    page = api.get("/surveillance/alerts", detector="wash_trading")
    assert page["total"] == 1 and page["height"] >= page["items"][0]["height"]
    [alert] = page["items"]
    assert set(alert["accounts"]) == {text(circled["a"]), text(circled["b"])}
    assert alert["interval"] == circled["start"] and alert["score"] == 10_000
    kinds = sorted(e["kind"] for e in alert["evidence"])
    assert kinds == ["trade", "trade", "transfer"]
    for e in alert["evidence"]:  # each piece is a committed transaction at that height
        assert api.get(f"/txs/{e['tx_hash']}")["height"] == e["height"]
    assert circled["pushed"]["id"] == alert["id"]  # the WebSocket pushed the same alert


def test_filters_and_the_typed_sdk_result(circled: dict[str, Any]) -> None:
    api: Client = circled["api"]
    typed = api.surveillance_alerts(account=circled["a"], min_score=5_000)
    # the pair also held the whole zone's volume at prices above the buyers' cap
    assert sorted(a.detector for a in typed.items) == ["market_power", "wash_trading"]
    assert typed.items[0].evidence[0].height > 0 and len(typed.settings_digest) == 16
    assert api.surveillance_alerts(detector="spoofing").total == 0
    assert api.surveillance_alerts(limit=1, offset=1).items[0].id == typed.items[1].id
    assert api.surveillance_alerts(interval_to=circled["start"] - INTERVAL).total == 0
    assert api.surveillance_alerts(zone="CEN").total == 0
    with pytest.raises(ApiError) as bad:
        api.surveillance_alerts(min_score=10_001)
    assert bad.value.status == 422
    with pytest.raises(ApiError):
        api.get("/surveillance/alerts", detector="front_running")


def test_a_node_with_surveillance_off_answers_404(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("off")
    settings = ApiSettings(rate_per_second=10_000, rate_burst=10_000, surveillance=False)
    with LocalNode(path / "data", settings) as node, node.client() as api:
        with pytest.raises(ApiError) as off:
            api.surveillance_alerts()
        assert off.value.status == 404


def test_the_command_line_scans_a_stopped_store_and_the_erc_export_carries_the_alerts(
    tmp_path: Path,
) -> None:
    with LocalNode(tmp_path / "data") as node, node.client() as api:
        found = circle(node, api)
        settle(node, api, found["start"])
        online = api.surveillance_alerts()
    data = str(tmp_path / "data")
    run = runner.invoke(app, ["surveillance", "scan", "--data", data, "--json"])
    assert run.exit_code == 0, run.output
    scanned = json.loads(run.output)
    assert sorted(a["id"] for a in scanned["items"]) == sorted(a.id for a in online.items)
    assert {a["detector"] for a in scanned["items"]} == {"wash_trading", "market_power"}
    strict = tmp_path / "strict.toml"
    strict.write_text("[wash]\nmin_cycle_wh = 20000\n[market_power]\nhhi_threshold = 10000\n")
    run = runner.invoke(app, ["surveillance", "scan", "--data", data, "--settings", str(strict),
                              "--out", str(tmp_path / "alerts.json")])  # fmt: skip
    assert run.exit_code == 0 and "0 alerts" in run.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[wash]\nmin_cycle = 1\n")
    run = runner.invoke(app, ["surveillance", "scan", "--data", data, "--settings", str(bad)])
    assert run.exit_code == 2 and "min_cycle" in run.output
    out = tmp_path / "export"
    run = runner.invoke(app, ["report", "export", "--data", data, "--out", str(out)])
    assert run.exit_code == 0, run.output
    exported = json.loads((out / "surveillance_alerts.json").read_text())
    assert {a["id"] for a in exported["alerts"]} == {a.id for a in online.items}
    run = runner.invoke(app, ["report", "verify", "--data", data, "--export", str(out)])
    assert run.exit_code == 0, run.output


def test_the_default_settings_print_as_toml_that_loads_back() -> None:
    run = runner.invoke(app, ["surveillance", "settings"])
    assert run.exit_code == 0
    assert load(run.output) == SurveillanceSettings()
