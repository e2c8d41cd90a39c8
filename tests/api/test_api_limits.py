"""The API's edges: per-client token buckets, the body size cap (declared or streamed),
CORS off by default and on for configured origins, binding to 127.0.0.1, and what one
connection may cost: header and body deadlines, keep-alive, the header size cap and the
connection cap (slowloris)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from gridtokenx.api import ApiSettings, serve
from gridtokenx.api.limits import TokenBuckets
from tests.api.test_api_harness import LocalNode


def test_token_buckets_allow_a_burst_then_the_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2, burst=3, clock=lambda: now[0])
    assert [buckets.allow("a") for _ in range(4)] == [True, True, True, False]
    assert buckets.allow("b")  # another client has its own bucket
    now[0] = 0.5  # one token back at 2 per second
    assert buckets.allow("a") and not buckets.allow("a")
    now[0] = 100.0  # never more than the burst
    assert [buckets.allow("a") for _ in range(4)] == [True, True, True, False]


def test_settings_refuse_nonsense() -> None:
    assert ApiSettings().host == "127.0.0.1" and ApiSettings().cors_origins == ()
    with pytest.raises(ValueError):
        ApiSettings(rate_per_second=0)
    with pytest.raises(ValueError):
        ApiSettings(max_body_bytes=0)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[LocalNode]:
    settings = ApiSettings(
        rate_per_second=0.01, rate_burst=12, max_body_bytes=1000,
        cors_origins=("http://dashboard.test",),
    )  # fmt: skip
    with LocalNode(tmp_path / "data", settings) as node:
        yield node


def test_limits_cors_and_binding(edge: LocalNode) -> None:
    assert edge.api is not None
    bound = {s.getsockname()[0] for srv in edge.api.server.servers for s in srv.sockets}
    assert bound == {"127.0.0.1"}
    with httpx.Client(base_url=edge.url + "/api/v1", timeout=10) as http:
        plain = http.get("/health")
        assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
        allowed = http.get("/health", headers={"origin": "http://dashboard.test"})
        assert allowed.headers["access-control-allow-origin"] == "http://dashboard.test"
        other = http.get("/health", headers={"origin": "http://evil.test"})
        assert "access-control-allow-origin" not in other.headers
        big = http.post("/txs", json={"tx": "00" * 600})
        assert big.status_code == 413 and big.json()["error"]["code"] == "BODY_TOO_LARGE"

        def chunks() -> Iterator[bytes]:
            yield b'{"tx": "'
            yield b"00" * 600
            yield b'"}'

        streamed = http.post("/txs", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "BODY_TOO_LARGE"
        codes = [http.get("/health").status_code for _ in range(10)]
        assert codes[-1] == 429 and codes.count(200) <= 8
        limited = http.get("/health")
        assert limited.json()["error"]["code"] == "RATE_LIMITED"
    ws = edge.url.replace("http://", "ws://") + "/api/v1/ws"
    with pytest.raises((InvalidStatus, ConnectionClosed)), connect(ws, open_timeout=5) as socket:
        socket.recv(timeout=5)


def test_a_port_in_use_is_an_error_for_the_caller(edge: LocalNode) -> None:
    assert edge.api is not None and edge.loop is not None and edge.node is not None
    taken = ApiSettings(port=edge.api.port)

    async def second() -> None:
        assert edge.node is not None
        await serve(edge.node, taken)

    future = asyncio.run_coroutine_threadsafe(second(), edge.loop)
    with pytest.raises(OSError):
        future.result(10)
    assert httpx.get(edge.url + "/api/v1/chain").status_code == 200  # the first one serves on


# --- connections: what a client that never finishes may cost (api/connections.py) ---------
SLOW = 120  # connections that stop half-way through a request
PARTIALS = (
    b"",  # connects and says nothing
    b"GE",  # half a request line
    b"GET /api/v1/health HTTP/1.1\r\n",  # a request line, no headers
    b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # half a header
    b"POST /api/v1/txs HTTP/1.1\r\nHost: x\r\ncontent-length: 100\r\n\r\n" + b'{"tx": "',
)  # the last one's headers are complete and its body is not: the body deadline


def _raw(node: LocalNode, first: bytes = b"") -> socket.socket:
    assert node.api is not None
    conn = socket.create_connection(("127.0.0.1", node.api.port), timeout=5)
    if first:
        conn.sendall(first)
    return conn


def _closed_by_server(conn: socket.socket, deadline: float) -> bool:
    """Whether the server closed `conn` (read to its end, or reset) before `deadline`."""
    try:
        while True:
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            if not conn.recv(65_536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _server_connections(node: LocalNode) -> int:
    assert node.api is not None
    server = node.api.server
    return node.on_loop(lambda: len(server.server_state.connections))


def _until_connections(node: LocalNode, count: int, seconds: float = 10) -> int:
    """The server's open connections once they are `count` (accepting takes a moment), or
    when `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while (seen := _server_connections(node)) != count and time.monotonic() < deadline:
        time.sleep(0.02)
    return seen


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[LocalNode]:
    settings = ApiSettings(rate_per_second=10_000, rate_burst=10_000, header_timeout=1.0,
                           body_timeout=1.0, keep_alive=1)  # fmt: skip
    with LocalNode(tmp_path / "data", settings) as node:
        yield node


def test_half_sent_requests_are_closed_and_others_are_served_meanwhile(strict: LocalNode) -> None:
    """Slowloris: connections that stop half-way through their request (or never start it)
    are closed once their header or body deadline passes, a trickle of bytes does not
    extend it, and a normal request is answered all the while."""
    began = time.monotonic()
    slow = [_raw(strict, PARTIALS[i % len(PARTIALS)]) for i in range(SLOW)]
    trickler = _raw(strict, b"GET /api/v1/health HTTP/1.1\r\n")
    try:
        with httpx.Client(base_url=strict.url + "/api/v1", timeout=5) as http:
            assert http.get("/health").status_code == 200
            assert _until_connections(strict, SLOW + 2) == SLOW + 2  # all open, httpx's too
            cut = False
            while not cut and time.monotonic() - began < 10:  # a header byte every 0.1 s
                try:
                    trickler.sendall(b"X")
                    time.sleep(0.1)
                except OSError:
                    cut = True
            assert cut and time.monotonic() - began < 5  # the 1 s deadline, not the trickle
            assert http.get("/health").status_code == 200
        deadline = time.monotonic() + 10
        assert all(_closed_by_server(conn, deadline) for conn in slow)
        assert time.monotonic() - began < 6
        assert _until_connections(strict, 0) == 0
    finally:
        for conn in (*slow, trickler):
            conn.close()


def test_an_idle_kept_alive_connection_is_closed(strict: LocalNode) -> None:
    conn = _raw(strict, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    with conn:
        conn.settimeout(5)
        assert conn.recv(65_536).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        assert _closed_by_server(conn, answered + 5)
        assert 0.5 < time.monotonic() - answered < 4  # keep_alive=1


def test_a_websocket_outlives_the_header_deadline(strict: LocalNode) -> None:
    """The header deadline ends with the headers: a subscription lives on."""
    ws = strict.url.replace("http://", "ws://") + "/api/v1/ws"
    with connect(ws, open_timeout=5) as sock:
        sock.send(orjson.dumps({"op": "subscribe", "topic": "blocks"}).decode())
        heights = []
        deadline = time.monotonic() + 3.5  # several header and body deadlines
        while time.monotonic() < deadline:
            message = orjson.loads(sock.recv(timeout=5))
            if message.get("type") == "block":
                heights.append(message["height"])
        assert len(heights) > 10 and heights == sorted(heights)


def test_oversized_headers_are_refused_with_431(tmp_path: Path) -> None:
    settings = ApiSettings(rate_per_second=10_000, rate_burst=10_000, max_header_bytes=4096)
    with LocalNode(tmp_path / "data", settings) as node:
        with _raw(node, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n") as conn:
            with contextlib.suppress(OSError):  # the server may close while we still send
                for _ in range(64):
                    conn.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
            conn.settimeout(5)
            answer = conn.recv(65_536)
            assert answer.startswith(b"HTTP/1.1 431"), answer
            assert b"HEADERS_TOO_LARGE" in answer
        assert httpx.get(node.url + "/api/v1/health").status_code == 200  # large enough


def test_connections_beyond_the_cap_get_503_at_once(tmp_path: Path) -> None:
    cap = 8
    settings = ApiSettings(rate_per_second=10_000, rate_burst=10_000, max_connections=cap,
                           header_timeout=30)  # fmt: skip
    with LocalNode(tmp_path / "data", settings) as node:
        held = [_raw(node) for _ in range(cap)]
        try:
            assert _until_connections(node, cap) == cap
            asked = time.monotonic()
            with _raw(node, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n") as extra:
                extra.settimeout(5)
                answer = extra.recv(65_536)
                assert answer.startswith(b"HTTP/1.1 503"), answer
                assert b"TOO_MANY_CONNECTIONS" in answer
                head = answer.split(b"\r\n\r\n", 1)[0].lower().split(b"\r\n")
                assert b"retry-after: 1" in head  # when to come back, as a 429 says
                assert _closed_by_server(extra, time.monotonic() + 5)
            assert time.monotonic() - asked < 2
            assert _server_connections(node) == cap  # the refused one was never counted
        finally:
            for conn in held:
                conn.close()
        assert _until_connections(node, 0) == 0
        assert httpx.get(node.url + "/api/v1/health").status_code == 200
