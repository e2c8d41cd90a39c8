"""WebSocket subscriptions against a real node: blocks, transaction outcomes, trades, book
changes, halts; bad requests answered without closing; a client that falls behind is told
`lagged` and dropped while the node keeps committing; a failing commit listener never
stops the node."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from gridtokenx.api import ApiSettings
from gridtokenx.api.hub import Hub
from gridtokenx.client import Client
from gridtokenx.wire import tx
from tests.api.test_api_harness import (
    EGAT,
    INTERVAL,
    Cast,
    LocalNode,
    build_cast,
    running_cast,
    signed,
)

Message = dict[str, Any]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNode, Client, Cast]]:
    with running_cast(tmp_path_factory.mktemp("ws")) as running:
        yield running


def ws_url(node: LocalNode) -> str:
    return node.url.replace("http://", "ws://") + "/api/v1/ws"


def send(socket: ClientConnection, **request: Any) -> None:
    socket.send(json.dumps(request))


def until(
    socket: ClientConnection, check: Callable[[Message], bool], seconds: float = 15
) -> Message:
    """The first message that passes `check` (bounded in time)."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no matching message in time")
        message: Message = json.loads(socket.recv(timeout=left))
        if check(message):
            return message


def hub_of(node: LocalNode) -> Hub:
    assert node.api is not None
    hub = node.api.server.config.app.state.hub
    assert isinstance(hub, Hub)
    return hub


def test_block_notifications_arrive_in_height_order(live: tuple[LocalNode, Client, Cast]) -> None:
    node, _, _ = live
    with connect(ws_url(node)) as socket:
        send(socket, op="subscribe", topic="blocks")
        assert until(socket, lambda m: True) == {"type": "subscribed", "topic": "blocks"}
        heights = [until(socket, lambda m: m["type"] == "block")["height"] for _ in range(3)]
        assert heights == sorted(heights) and len(set(heights)) == 3
        block = until(socket, lambda m: m["type"] == "block")
        assert block["proposer"].startswith("gtx") and len(block["hash"]) == 64
        send(socket, op="unsubscribe", topic="blocks")
        send(socket, op="subscribe", topic="halts")
        assert until(socket, lambda m: m["type"] == "subscribed")["topic"] == "halts"


def test_transaction_status_is_pushed_when_committed(live: tuple[LocalNode, Client, Cast]) -> None:
    node, api, cast = live
    nonce = api.balance(cast.office).nonce
    raw = signed(cast.office, nonce + 1, tx.Transfer(tx.Asset.THB, cast.home.address, 7))
    waiting = api.submit(raw)  # waits for the nonce before it
    with connect(ws_url(node)) as socket:
        send(socket, op="subscribe", topic="tx", hash=waiting)
        assert until(socket, lambda m: m["type"] == "tx") == {
            "type": "tx", "hash": waiting, "status": "pending"
        }  # fmt: skip
        first = api.submit(
            signed(cast.office, nonce, tx.Transfer(tx.Asset.THB, cast.home.address, 3))
        )
        done = until(socket, lambda m: m["type"] == "tx" and m["status"] != "pending")
        assert done["hash"] == waiting and done["status"] == "committed"
        assert done["events"][0]["kind"] == "transfer" and done["height"] >= 1
        # Asking about a transaction that is already final answers at once.
        send(socket, op="subscribe", topic="tx", hash=first)
        again = until(socket, lambda m: m["type"] == "tx")
        assert again["hash"] == first and again["status"] == "committed"
        send(socket, op="subscribe", topic="tx", hash="ab" * 32)
        assert until(socket, lambda m: m["type"] == "tx")["status"] == "unknown"


def test_trades_book_changes_and_halts(live: tuple[LocalNode, Client, Cast]) -> None:
    node, api, cast = live
    now = api.health()["latest_time"]
    interval = (now // INTERVAL + 3) * INTERVAL
    with connect(ws_url(node)) as socket:
        send(socket, op="subscribe", topic="trades")
        send(socket, op="subscribe", topic="halts")
        send(socket, op="subscribe", topic="book", zone="BKK", interval=interval)
        empty = until(socket, lambda m: m["type"] == "book")
        assert empty["bids"] == [] and empty["asks"] == []
        api.send_and_wait(cast.home, tx.PlaceOrder(tx.Side.SELL, "BKK", interval, 800, 290))
        ask = until(socket, lambda m: m["type"] == "book")
        assert ask["asks"] == [{"price": 290, "quantity_wh": 800, "orders": 1}]
        api.send_and_wait(cast.office, tx.PlaceOrder(tx.Side.BUY, "BKK", interval, 300, 300))
        trade = until(socket, lambda m: m["type"] == "trade")
        assert trade["quantity_wh"] == 300 and trade["price"] == 290
        assert trade["buyer"] == api.balance(cast.office).address
        after = until(socket, lambda m: m["type"] == "book")
        assert after["asks"] == [{"price": 290, "quantity_wh": 500, "orders": 1}]
        api.send_and_wait(EGAT, tx.SetZoneHalt("NEA", True, "storm"))
        halt = until(socket, lambda m: m["type"] == "halt")
        assert halt["zone"] == "NEA" and halt["halted"] is True and halt["reason"] == "storm"
        api.send_and_wait(EGAT, tx.SetZoneHalt("NEA", False))
        assert until(socket, lambda m: m["type"] == "halt")["halted"] is False


def test_bad_requests_are_answered_and_the_connection_stays(
    live: tuple[LocalNode, Client, Cast],
) -> None:
    node, _, _ = live
    with connect(ws_url(node)) as socket:
        for bad in (
            "not json",
            json.dumps({"op": "subscribe", "topic": "weather"}),
            json.dumps({"op": "subscribe", "topic": "tx"}),
            json.dumps({"op": "subscribe", "topic": "tx", "hash": "xyz"}),
            json.dumps({"op": "subscribe", "topic": "book", "zone": "BKK"}),
            json.dumps({"op": "subscribe", "topic": "book", "zone": "bkk", "interval": 0}),
            "x" * 5000,
        ):
            socket.send(bad)
            error = until(socket, lambda m: True)
            assert error["type"] == "error" and error["code"] == "INVALID_REQUEST", bad
        socket.send(b"\x00binary")
        assert until(socket, lambda m: True)["code"] == "INVALID_REQUEST"
        send(socket, op="subscribe", topic="blocks")
        assert until(socket, lambda m: m["type"] == "subscribed")["topic"] == "blocks"


def test_a_client_that_falls_behind_is_told_and_dropped(tmp_path: Path) -> None:
    settings = ApiSettings(rate_per_second=1000, rate_burst=1000, ws_queue=2,
                           ws_max_subscriptions=3)  # fmt: skip
    with LocalNode(tmp_path / "data", settings) as node, node.client() as api:
        cast = build_cast(api)
        interval = (api.health()["latest_time"] // INTERVAL + 3) * INTERVAL
        for price in (300, 301, 302):  # three asks one buy will sweep
            api.send_and_wait(cast.home, tx.PlaceOrder(tx.Side.SELL, "BKK", interval, 200, price))
        with connect(ws_url(node)) as socket:
            for topic in ("trades", "halts"):
                send(socket, op="subscribe", topic=topic)
                until(socket, lambda m: m["type"] == "subscribed")
            send(socket, op="subscribe", topic="book", zone="BKK", interval=interval)
            until(socket, lambda m: m["type"] == "book")
            send(socket, op="subscribe", topic="blocks")
            assert until(socket, lambda m: True)["code"] == "TOO_MANY_SUBSCRIPTIONS"
            assert node.on_loop(lambda: len(hub_of(node).clients)) == 1
            # One transaction making three trades and a book change: four messages at once
            # for a queue of two, delivered while the client's pump cannot run in between.
            sweep = tx.PlaceOrder(tx.Side.BUY, "BKK", interval, 600, 302)
            assert len([e for e in api.send_and_wait(cast.office, sweep).events
                        if e["kind"] == "trade"]) == 3  # fmt: skip
            lagged = until(socket, lambda m: m["type"] == "lagged")
            assert "slow" in lagged["message"]
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(100):  # bounded: the server closes right after `lagged`
                    socket.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
        deadline = time.monotonic() + 10
        while node.on_loop(lambda: len(hub_of(node).clients)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert node.on_loop(lambda: len(hub_of(node).clients)) == 0
        height = api.health()["height"]
        deadline = time.monotonic() + 10
        while api.health()["height"] <= height + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.health()["height"] > height + 2  # the node went on committing


def test_a_failing_commit_listener_does_not_stop_the_node(
    live: tuple[LocalNode, Client, Cast],
) -> None:
    node, api, _ = live
    calls: list[int] = []

    def broken(height: int, block: bytes, receipts: object, events: object) -> None:
        calls.append(height)
        raise RuntimeError("listener bug")

    assert node.node is not None
    start = api.health()["height"]  # before the listener: it sees only later heights
    node.on_loop(lambda: node.node.add_commit_listener(broken))  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(calls) >= 3 and calls[0] > start, (start, calls)
    assert calls == list(range(calls[0], calls[0] + len(calls)))  # every height, in turn
    assert api.health()["height"] >= calls[2] and api.health()["halted"] is None
