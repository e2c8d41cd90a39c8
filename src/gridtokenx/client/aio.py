"""`AsyncClient`: the SDK over httpx.AsyncClient, running every entry of the endpoint table
(client.endpoints) as a coroutine method, plus what is not a request: waiting for finality
on the WebSocket, and the streams."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

from gridtokenx.client.endpoints import Api, Call, Finished, Op, Reply, as_flow
from gridtokenx.client.models import (
    JSON,
    PREFIX,
    FinalityTimeout,
    Receipt,
    StreamError,
    checked,
    final,
)
from gridtokenx.client.retries import Retry
from gridtokenx.client.streams import StreamEvent, TxEvent, event, subscriptions, ws_url
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import Body


class AsyncClient(Api):
    """The asyncio SDK: the same methods as `Client`, awaited."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
        retry: Retry | None = None,
    ) -> None:
        """`verify` and `retry`: as `Client`'s."""
        super().__init__(base_url, retry)
        self._http = httpx.AsyncClient(base_url=self.base_url + PREFIX, timeout=timeout,
                                       transport=transport, verify=verify)  # fmt: skip

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _request(self, call: Call[Any]) -> Any:
        attempt = 0
        while True:
            response = await self._http.request(
                call.method, call.path, params=call.query(), json=call.body
            )
            if (wait := self._retry_delay(call, response, attempt)) is None:
                return call.decode(checked(response))
            await asyncio.sleep(wait)
            attempt += 1

    async def _run(self, op: Op[Any]) -> Any:
        flow, reply = as_flow(op), Reply()
        while not isinstance(step := reply.resume(flow), Finished):
            reply = await Reply.of_awaited(self._request(step))
        return step.value

    def _bind_async(self, build: Callable[..., Op[Any]]) -> Callable[..., Any]:
        async def method(*args: Any, **kwargs: Any) -> Any:
            return await self._run(build(self, *args, **kwargs))

        return method

    async def wait(self, tx_hash: str, timeout: float = 30.0, poll: float = 0.2) -> Receipt:
        """Wait for the commit on the WebSocket (polling once more at the deadline, or when
        the stream ends early)."""
        try:
            async with asyncio.timeout(timeout):
                async for message in self.subscribe({"topic": "tx", "hash": tx_hash}):
                    if isinstance(message, TxEvent) and message.status != "pending":
                        break
        except (TimeoutError, StreamError):
            pass
        receipt = final(await self.tx(tx_hash))
        if receipt is None:
            raise FinalityTimeout(tx_hash, timeout)
        return receipt

    async def send_and_wait(
        self,
        key: PrivateKey,
        body: Body,
        fee: int = 0,
        timeout: float = 30.0,
        *,
        check: bool = True,
    ) -> Receipt:
        """`send` (checked unless `check=False`), then `wait` for the commit."""
        return await self.wait(await self.send(key, body, fee, check=check), timeout)

    async def subscribe(self, *topics: JSON) -> AsyncIterator[StreamEvent]:
        """Events for the topics, as `Client.subscribe` (acknowledgements consumed; a
        refused topic or a lagging stream raises `StreamError`)."""
        async with connect(ws_url(self.base_url)) as socket:
            for request in subscriptions(topics):
                await socket.send(request)
            async for text in socket:
                found = event(orjson.loads(text))
                if found is not None:
                    yield found
