"""Reading the market from the command line against a real one-validator node (the API
harness): tables with names, Bangkok times, kWh and THB; --json unchanged; balances with
what the market holds; `query trade ID`; and `--follow` streaming rows as blocks commit,
bounded by --count/--timeout and ended by Ctrl-C with exit 0 in a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from queue import Empty, Queue
from typing import IO, Any

import pytest

from gridtokenx.cli import render
from gridtokenx.client import ApiError
from tests.api.test_api_harness import INTERVAL, running_cast, text
from tests.cli.test_cli_client import Live, attrs, one_error_line

pytestmark = pytest.mark.process

ICT = timezone(timedelta(hours=7))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with running_cast(tmp_path_factory.mktemp("cli-market")) as (node, api, cast):
        yield Live(node, api, cast, tmp_path_factory.mktemp("keys"))


def next_interval(live: Live, ahead: int = 2) -> int:
    return int((live.api.health()["latest_time"] // INTERVAL + ahead) * INTERVAL)


def bangkok(unix: int) -> str:
    return datetime.fromtimestamp(unix, ICT).strftime("%Y-%m-%d %H:%M")


def baht(satang: int) -> str:
    return f"{satang // 100:,}.{satang % 100:02d}"


def wide(live: Live, *args: str) -> str:
    """A table at a width where no cell folds, so a value can be looked for whole (COLUMNS
    sets it for a process; in this one the console is already made)."""
    narrow = render.console.width
    render.console.width = 200
    try:
        result = live.run("query", *args)
    finally:
        render.console.width = narrow
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def trade(live: Live) -> dict[str, Any]:
    """Somchai sells 1.234 kWh at 3.45 THB/kWh; the office buys 0.5 kWh of it."""
    interval = next_interval(live)
    live.tx_json("home", "order", "place", "sell", "BKK", str(interval), "1.234kWh", "3.45THB/kWh")
    bought = live.tx_json(
        "office", "order", "place", "buy", "BKK", str(interval), "0.5kWh", "3.50THB/kWh"
    )
    return {"id": attrs(bought, "trade")["trade"], "interval": interval}


def test_trades_read_with_names_bangkok_times_kwh_and_thb(
    live: Live, trade: dict[str, Any]
) -> None:
    shown = wide(live, "trades", "--interval", str(trade["interval"]))
    row = next(line for line in shown.splitlines() if f" {trade['id']} " in line)
    assert "Somchai gtx" in row and "Office gtx" in row
    assert bangkok(trade["interval"]) in row
    assert "0.500" in row and "3.45" in row and "1.725" in row  # kWh, THB/kWh, THB exactly
    assert str(trade["interval"]) not in shown and "500 " not in row.replace("0.500", "")
    home = text(live.cast.home)
    assert home not in shown and f"{home[:8]}…{home[-6:]}" in row  # both ends of it
    # --json keeps the API's records exactly, for scripts
    records = live.query("trades", "--interval", str(trade["interval"]))
    assert records == live.api.get("/trades", interval=trade["interval"], limit=50)
    assert records["items"][0]["quantity_wh"] == 500 and records["items"][0]["price"] == 345


def test_orders_show_what_is_left_and_held_per_owner(live: Live, trade: dict[str, Any]) -> None:
    book = wide(live, "orders", "--zone", "BKK", "--interval", str(trade["interval"]))
    assert "0.734 of 1.234" in book and "Somchai gtx" in book
    mine = wide(live, "orders", "--account", text(live.cast.home))
    assert f"open orders of Somchai {text(live.cast.home)}" in mine
    one = live.query("orders", "--id", "1")
    assert one == live.api.get("/orders/1")  # --json unchanged


def test_query_trade_shows_both_orders_zones_losses_and_settlement(
    live: Live, trade: dict[str, Any]
) -> None:
    data = live.query("trade", str(trade["id"]))
    t = data["trade"]
    assert data["buy_order"]["id"] == t["buy_order"] and data["sell_order"]["id"] == t["sell_order"]
    assert data["buy_order"]["side"] == "BUY" and data["sell_order"]["side"] == "SELL"
    assert data["settlement"]["status"] == "OPEN" and t["settled"] is False
    shown = wide(live, "trade", str(trade["id"]))
    for expected in (
        f"Somchai {text(live.cast.home)} (BKK)",
        f"Office {text(live.cast.office)} (BKK)",
        f"{bangkok(trade['interval'])} Bangkok",
        "0.5 kWh",
        "3.45 THB/kWh",
        "1.725 THB",
        "unsettled (interval open)",
        "buy order",
        "sell order",
    ):
        assert expected in shown, expected
    one_error_line(live.run("query", "trade", "999999"), "NOT_FOUND", 1)
    one_error_line(live.run("query", "trade", "x"), "BAD_INPUT", 2)


def test_balance_shows_escrow_next_to_available(live: Live, trade: dict[str, Any]) -> None:
    office = text(live.cast.office)
    before = live.query("balance", office)
    held = before["escrow"]
    bought = live.api.get(f"/trades/{trade['id']}")
    assert held["thb_in_trades_satang"] >= bought["escrow_satang"] > 0
    resting = live.tx_json(
        "office", "order", "place", "buy", "BKK", str(trade["interval"]), "2kWh", "3THB/kWh"
    )
    order_id = attrs(resting, "order_accepted")["order"]
    order = live.api.get(f"/orders/{order_id}")
    during = live.query("balance", office)
    assert (
        during["escrow"]["thb_in_orders_satang"]
        == held["thb_in_orders_satang"] + (order["escrow_satang"])
    )
    # what left the balance is what the market holds: the total is unchanged
    total = during["thb_satang"] + during["escrow"]["thb_satang"]
    assert total == before["thb_satang"] + held["thb_satang"]
    shown = wide(live, "balance", office)
    assert "held by the market" in shown
    row = next(line for line in shown.splitlines() if "│ THB" in line)
    assert [baht(during["thb_satang"]), baht(during["escrow"]["thb_satang"]), baht(total)] == [
        cell.strip() for cell in row.split("│")[2:5]
    ]
    live.tx_json("office", "order", "cancel", str(order_id))
    after = live.query("balance", office)
    assert after["escrow"]["thb_in_orders_satang"] == held["thb_in_orders_satang"]
    seller = live.query("balance", text(live.cast.home))["escrow"]
    assert seller["offered_wh"] == 734 and seller["thb_satang"] == 0 and seller["grid_wh"] == 0
    with pytest.raises(ApiError) as bad:
        live.api.get("/accounts/gtx-typo/escrow")
    assert bad.value.code == "INVALID_REQUEST"


def test_blocks_table_and_follow_with_a_count(live: Live) -> None:
    shown = wide(live, "blocks", "--limit", "3")
    assert "EGAT gtx" in shown and "time (Bangkok)" in shown and "more: --after" in shown
    page = live.query("blocks", "--limit", "3")  # --json: the API's block summaries
    assert len(page["items"]) == 3 and {"height", "hash", "header", "tx_count"} <= set(
        page["items"][0]
    )
    result = live.run("query", "blocks", "--follow", "--count", "3", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [m["type"] for m in lines] == ["block"] * 3
    heights = [m["height"] for m in lines]
    assert heights == list(range(heights[0], heights[0] + 3))
    quiet = live.run("query", "trades", "--follow", "--timeout", "0.5")
    assert quiet.exit_code == 0 and quiet.stdout == ""


def test_follow_bounds_and_refusals(live: Live) -> None:
    one_error_line(live.run("query", "trades", "--count", "1"), "BAD_INPUT", 2)
    one_error_line(live.run("query", "blocks", "--timeout", "3"), "BAD_INPUT", 2)
    one_error_line(live.run("query", "trades", "--follow", "--after", "5"), "BAD_INPUT", 2)
    one_error_line(live.run("query", "book", "ZZ", "0", "--follow"), "NOT_FOUND", 1)
    closed = "http://127.0.0.1:9"
    result = live.run("query", "blocks", "--follow", "--node", closed)
    one_error_line(result, "UNREACHABLE", 1)


# --- --follow in a real process ------------------------------------------------------------
class Follower:
    """`gridtokenx query ... --follow` as a process, its output read line by line."""

    def __init__(self, live: Live, *args: str) -> None:
        command = [sys.executable, "-m", "gridtokenx", "query", *args, "--node", live.node.url]
        env = {**os.environ, "COLUMNS": "200"}
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.stdout: Queue[str] = Queue()
        self.stderr: Queue[str] = Queue()
        self.pumps = [
            threading.Thread(target=self._pump, args=(pipe, queue), daemon=True)
            for pipe, queue in (
                (self.process.stdout, self.stdout),
                (self.process.stderr, self.stderr),
            )
        ]
        for pump in self.pumps:
            pump.start()

    @staticmethod
    def _pump(pipe: IO[str] | None, queue: Queue[str]) -> None:
        assert pipe is not None
        for line in pipe:
            queue.put(line)

    def line(self, queue: Queue[str], seconds: float = 30) -> str:
        try:
            return queue.get(timeout=seconds)
        except Empty:
            raise AssertionError(f"no output within {seconds} s") from None

    def rest(self, queue: Queue[str]) -> str:
        """What is left in `queue` once the process has ended."""
        assert self.process.wait(30) is not None
        for pump in self.pumps:
            pump.join(10)
        lines = []
        while not queue.empty():
            lines.append(queue.get_nowait())
        return "".join(lines)

    def following(self) -> None:
        assert self.line(self.stderr).startswith("following")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait(30)


@pytest.fixture
def follower(live: Live) -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for f in started:
        f.stop()


def test_follow_trades_prints_a_trade_as_it_commits(live: Live, follower: list[Follower]) -> None:
    f = Follower(live, "trades", "--follow", "--json", "--count", "1", "--timeout", "60")
    follower.append(f)
    f.following()
    interval = next_interval(live, 3)
    live.tx_json("home", "order", "place", "sell", "BKK", str(interval), "1kWh", "3THB/kWh")
    bought = live.tx_json(
        "office", "order", "place", "buy", "BKK", str(interval), "250Wh", "3THB/kWh"
    )
    message = json.loads(f.line(f.stdout))
    assert message["type"] == "trade" and message["trade"] == attrs(bought, "trade")["trade"]
    assert message["quantity_wh"] == 250 and message["interval"] == interval
    assert f.process.wait(30) == 0  # --count 1 ended it


def test_follow_book_shows_it_then_each_change(live: Live, follower: list[Follower]) -> None:
    interval = next_interval(live, 4)
    f = Follower(live, "book", "BKK", str(interval), "--follow", "--count", "2")
    follower.append(f)
    f.following()
    first = [f.line(f.stdout) for _ in range(2)]
    assert f"BKK book, delivery {bangkok(interval)} Bangkok" in first[0]
    live.tx_json("home", "order", "place", "sell", "BKK", str(interval), "1.2kWh", "4.10THB/kWh")
    assert f.process.wait(60) == 0  # --count 2: the empty book, then the changed one
    changed = f.rest(f.stdout)
    assert "4.10" in changed and "1.200" in changed and "4.10" not in "".join(first)


def test_ctrl_c_ends_a_follow_with_exit_0(live: Live, follower: list[Follower]) -> None:
    f = Follower(live, "blocks", "--follow")
    follower.append(f)
    f.following()
    assert "new blocks" in f.line(f.stdout)  # the header, then rows
    assert "EGAT" in f.line(f.stdout) + f.line(f.stdout)
    f.process.send_signal(signal.SIGINT)
    assert f.process.wait(30) == 0
    leftover = f.rest(f.stderr)
    assert "error" not in leftover.lower() and "Traceback" not in leftover, leftover


def test_a_follow_piped_into_a_reader_that_stops_ends_quietly(live: Live) -> None:
    """`gridtokenx query blocks --follow --json | head -1`: the reader closes the pipe."""
    command = [sys.executable, "-m", "gridtokenx", "query", "blocks", "--follow", "--json"]
    process = subprocess.Popen(
        [*command, "--node", live.node.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        assert json.loads(process.stdout.readline())["type"] == "block"
        process.stdout.close()  # as `head -1` does once it has its line
        assert process.wait(30) == 0
        errors = process.stderr.read()
        assert "error" not in errors.lower() and "Traceback" not in errors, errors
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
