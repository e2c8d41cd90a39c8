"""When both clients ask again (client.retries), against httpx's MockTransport: a 429 or
503 is retried after the node's Retry-After, a bounded number of times, for reads and
signed submissions only; a wait longer than the policy allows is not waited for; the
error then carries the wait the node asked for. The real node's 429 is in
test_typed_reads.py."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gridtokenx.client import NO_RETRY, ApiError, AsyncClient, Client, Retry
from gridtokenx.client.retries import retry_after
from gridtokenx.wire import tx
from tests.conftest import key

ALICE = key("sdk/alice")


class Crowded:
    """Answers `busy` errors (status, Retry-After) before answering normally."""

    def __init__(self, *busy: tuple[int, str | None]) -> None:
        self.busy = list(busy)
        self.paths: list[str] = []
        self.code = ""  # the busy answers' code (default: by status)

    def answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        self.paths.append(path)
        if self.busy:
            status, wait = self.busy.pop(0)
            headers = {"Retry-After": wait} if wait is not None else {}
            code = self.code or ("RATE_LIMITED" if status == 429 else "TOO_MANY_CONNECTIONS")
            return httpx.Response(status, headers=headers,
                                  json={"error": {"code": code, "message": "busy"}})  # fmt: skip
        if path == "/txs":
            return httpx.Response(202, json={"hash": "ab" * 32})
        if path == "/txs/batch":
            return httpx.Response(200, json={"results": []})
        return httpx.Response(200, json={"address": "gtx", "grid_wh": 1, "thb_satang": 2,
                                         "nonce": 3})  # fmt: skip


def on_both(node: Crowded, retry: Retry | None, use: Callable[[Any], Any]) -> list[Any]:
    """`use` on a Client, then (with the same busy answers again) on an AsyncClient."""
    busy = list(node.busy)
    mock = httpx.MockTransport(node.answer)
    with Client("http://node", transport=mock, retry=retry) as api:
        first = use(api)
    node.busy = busy

    async def run() -> Any:
        async with AsyncClient("http://node", transport=mock, retry=retry) as api:
            return await use(api)

    return [first, asyncio.run(run())]


def test_a_read_waits_out_429_and_503_and_gets_through() -> None:
    node = Crowded((429, "0"), (503, None), (429, "0"))
    fast = Retry(backoff=0.01)
    results = on_both(node, fast, lambda a: a.balance("gtx"))
    assert [b.nonce for b in results] == [3, 3]
    assert node.paths == ["/accounts/gtx"] * 8  # 4 tries on each client


def test_attempts_are_bounded_and_the_error_says_how_long_to_wait() -> None:
    node = Crowded(*[(429, "0")] * 10)
    with pytest.raises(ApiError) as limited:
        on_both(node, Retry(attempts=3), lambda a: a.balance("gtx"))
    assert (limited.value.code, limited.value.status, limited.value.retry_after) == (
        "RATE_LIMITED", 429, 0.0,
    )  # fmt: skip
    assert len(node.paths) == 3


def test_a_wait_beyond_max_wait_is_not_waited_for() -> None:
    node = Crowded((429, "120"))
    with pytest.raises(ApiError) as limited:
        on_both(node, Retry(max_wait=5), lambda a: a.balance("gtx"))
    assert limited.value.retry_after == 120.0 and len(node.paths) == 1


def test_no_retry_asks_once() -> None:
    node = Crowded((503, "0"))
    with pytest.raises(ApiError) as busy:
        on_both(node, NO_RETRY, lambda a: a.balance("gtx"))
    assert busy.value.code == "TOO_MANY_CONNECTIONS" and len(node.paths) == 1


def test_a_halted_nodes_503_is_not_retried() -> None:
    """NODE_HALTED is a 503 too, but the node stays halted until an operator restarts it:
    the error is raised at the first answer, however generous the policy."""
    signed = tx.make(ALICE, "chain", 0, tx.RedeemThb(1)).encode()
    generous = Retry(attempts=6, backoff=0.01)

    async def submit_async(mock: httpx.MockTransport) -> str:
        async with AsyncClient("http://node", transport=mock, retry=generous) as api:
            return await api.submit(signed)

    def submit_sync(mock: httpx.MockTransport) -> str:
        with Client("http://node", transport=mock, retry=generous) as api:
            return api.submit(signed)

    for submit in (submit_sync, lambda mock: asyncio.run(submit_async(mock))):
        node = Crowded((503, "0"), (503, "0"))
        node.code = "NODE_HALTED"
        with pytest.raises(ApiError) as halted:
            submit(httpx.MockTransport(node.answer))
        assert (halted.value.code, halted.value.status) == ("NODE_HALTED", 503)
        assert node.paths == ["/txs"]  # asked once
    assert Retry().delay(503, "0", 0, "NODE_HALTED") is None
    assert Retry().delay(503, "0", 0, "TOO_MANY_CONNECTIONS") == 0.0


def test_a_signed_submission_is_retried_but_a_batch_is_not() -> None:
    """The node deduplicates a transaction by hash, so submitting it again is safe; a batch
    answer lists each transaction's fate, so the SDK leaves retrying it to the caller."""
    signed = tx.make(ALICE, "chain", 0, tx.RedeemThb(1)).encode()
    node = Crowded((429, "0"))
    assert on_both(node, None, lambda a: a.submit(signed)) == ["ab" * 32] * 2
    assert node.paths == ["/txs"] * 4
    node = Crowded((429, "0"))
    with pytest.raises(ApiError):
        on_both(node, None, lambda a: a.submit_batch([signed]))
    assert node.paths == ["/txs/batch"]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("3") == 3.0 and retry_after(" 0 ") == 0.0
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
    seconds = retry_after(email.utils.format_datetime(later, usegmt=True))
    assert seconds is not None and 25 <= seconds <= 30
    assert retry_after(None) is None and retry_after("soon") is None
    assert Retry().delay(400, "0", 0) is None  # only 429 and 503
    assert Retry(backoff=0.5).delay(503, None, 2) == 2.0  # 0.5 x 2^2
    with pytest.raises(ValueError):
        Retry(attempts=0)
