"""An auction for the next day's intervals clears on a running 4-validator devnet and
settles, with no manual step: `gridtokenx devnet --fund 2 --speed 900 --start 00:00` (four
validator processes on 127.0.0.1, the chain clock 900 times the wall clock from the next
Bangkok midnight, so the 12:00 gate is under a minute of wall time away), dev-1 offers and dev-2
bids in the first interval of the next Bangkok delivery day whose auction gate is still
ahead; after the gate the validators solve and submit the clearing themselves
(node/auction_clearer.py), every validator's API shows the same result, and the interval
settles at its deadline like any other (no meter reports: the seller's shortfall is
charged as imbalance)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gridtokenx.client import Client, GridTokenXError
from gridtokenx.devnet.processes import free_base_port
from gridtokenx.node import keystore
from gridtokenx.wire import tx

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]
SPEED = 900
DAY = 86_400
BANGKOK = 7 * 3600
GATE_LEAD = 12 * 3600  # AuctionParams.gate_lead_seconds


def _target(clock: int) -> tuple[int, int]:
    """(first interval of the next delivery day whose gate is at least an hour ahead, gate)."""
    midnight = (clock + BANGKOK) // DAY * DAY - BANGKOK + DAY
    while midnight - GATE_LEAD < clock + 3_600:
        midnight += DAY
    return midnight, midnight - GATE_LEAD


def _wait(until: float, what: str, probe: object) -> object:
    while time.time() < until:
        try:
            found = probe()  # type: ignore[operator]
        except GridTokenXError:
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within the time allowed")


def test_an_auction_clears_on_a_running_four_validator_devnet_and_settles(
    tmp_path: Path,
) -> None:
    base = free_base_port(4)
    env = dict(os.environ, COLUMNS="120")
    devnet = subprocess.Popen(
        [sys.executable, "-m", "gridtokenx", "devnet", "--fund", "2", "--speed", str(SPEED),
         "--start", "00:00", "--base-port", str(base)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        accounts = tmp_path / "devnet" / "accounts.json"
        _wait(time.time() + 120, "funded devnet", lambda: accounts.exists() or devnet.poll())
        assert devnet.poll() is None, devnet.communicate()[0]
        funded = json.loads(accounts.read_text())["participants"]
        seller, buyer = (
            keystore.load_key(Path(a["key_file"]) if Path(a["key_file"]).is_absolute()
                              else tmp_path / a["key_file"], "", allow_insecure=True)
            for a in funded[:2]
        )  # fmt: skip
        apis = [Client(f"http://127.0.0.1:{base + 200 + i}") for i in range(4)]
        api = apis[0]
        clock = int(api.get("/chain")["clock"])
        start, gate = _target(clock)
        offer = tx.PlaceAuctionCurve(tx.Side.SELL, "BKK", start, (tx.CurveStep(200, 1_000),))
        bid = tx.PlaceAuctionCurve(
            tx.Side.BUY, "BKK", start, (tx.CurveStep(400, 800), tx.CurveStep(150, 500))
        )
        for who, body in ((seller, offer), (buyer, bid)):
            receipt = api.send_and_wait(who, body, timeout=60)
            assert receipt.status == "committed", receipt
        assert api.auction_book("BKK", start).status == "OPEN"
        wall_to_gate = (gate - int(api.get("/chain")["clock"])) / SPEED
        result = _wait(time.time() + wall_to_gate + 90, "clearing",
                       lambda: api.auction_result(start))  # fmt: skip
        # One zone, the 400 bid (800 Wh) meets the 200 offer (1,000 Wh, accepted in part):
        # the offer sets the price; the 150 bid is below it.
        assert result.price("BKK") == 200  # type: ignore[attr-defined]
        assert {a.auction_result(start).welfare_satang for a in apis} == {160.0}
        trades = [api.trade(i) for i in result.trades]  # type: ignore[attr-defined]
        assert sum(t.quantity_wh for t in trades) == 800 and {t.price for t in trades} == {200}
        wall_to_settled = (start + 900 + 7_200 - int(api.get("/chain")["clock"])) / SPEED
        settled = _wait(
            time.time() + wall_to_settled + 90, "settlement",
            lambda: api.settlement(start).status == "SETTLED" and api.settlement(start),
        )  # fmt: skip
        assert settled.trade_count == len(trades)  # type: ignore[attr-defined]
        report = settled.reports["BKK"]  # type: ignore[attr-defined]
        assert report.shortfall_wh == 800  # nothing metered: all of the sale is imbalance
        for a in apis:
            a.close()
    finally:
        if devnet.poll() is None:
            os.killpg(devnet.pid, signal.SIGINT)
        try:
            out, _ = devnet.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(devnet.pid, signal.SIGKILL)
            out, _ = devnet.communicate()
    assert "Traceback" not in out, out
