"""The API's edges: per-client token buckets, the body size cap (declared or streamed),
CORS off by default and on for configured origins, and binding to 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
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
