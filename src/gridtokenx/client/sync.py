"""`Client`: the SDK over httpx.Client, running every entry of the endpoint table
(client.endpoints) as a blocking method, plus what is not a request: waiting for finality
by polling, and the streams over a blocking WebSocket."""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
from websockets.sync.client import connect

from gridtokenx.client.endpoints import Api, Call, Finished, Op, Reply, as_flow
from gridtokenx.client.models import JSON, PREFIX, FinalityTimeout, Receipt, checked, final
from gridtokenx.client.retries import Retry
from gridtokenx.client.streams import StreamEvent, event, subscriptions, ws_url
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import Body


class Client(Api):
    """Synchronous SDK over one node's API."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
        retry: Retry | None = None,
    ) -> None:
        """`verify`: how an https node's certificate is checked (an `ssl.SSLContext` trusting
        a private CA, e.g. `ssl.create_default_context(cafile=...)`; default: public CAs).
        `retry`: when a 429 or 503 is asked again (client.retries; default `Retry()`)."""
        super().__init__(base_url, retry)
        self._http = httpx.Client(base_url=self.base_url + PREFIX, timeout=timeout,
                                  transport=transport, verify=verify)  # fmt: skip

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, call: Call[Any]) -> Any:
        attempt = 0
        while True:
            response = self._http.request(
                call.method, call.path, params=call.query(), json=call.body
            )
            if (wait := self._retry_delay(call, response, attempt)) is None:
                return call.decode(checked(response))
            time.sleep(wait)
            attempt += 1

    def _run(self, op: Op[Any]) -> Any:
        flow, reply = as_flow(op), Reply()
        while not isinstance(step := reply.resume(flow), Finished):
            reply = Reply.of(functools.partial(self._request, step))
        return step.value

    def _bind_sync(self, build: Callable[..., Op[Any]]) -> Callable[..., Any]:
        def method(*args: Any, **kwargs: Any) -> Any:
            return self._run(build(self, *args, **kwargs))

        return method

    def wait(self, tx_hash: str, timeout: float = 30.0, poll: float = 0.2) -> Receipt:
        """Poll until the transaction is committed (final: one-block finality)."""
        deadline = time.monotonic() + timeout
        while (receipt := final(self.tx(tx_hash))) is None:
            if time.monotonic() > deadline:
                raise FinalityTimeout(tx_hash, timeout)
            time.sleep(poll)
        return receipt

    def send_and_wait(
        self,
        key: PrivateKey,
        body: Body,
        fee: int = 0,
        timeout: float = 30.0,
        *,
        check: bool = True,
    ) -> Receipt:
        """`send` (checked unless `check=False`), then `wait` for the commit."""
        return self.wait(self.send(key, body, fee, check=check), timeout)

    def subscribe(self, *topics: JSON, timeout: float | None = None) -> Iterator[StreamEvent]:
        """Typed events for the topics (e.g. {"topic": "blocks"}: `BlockEvent`s;
        {"topic": "tx", "hash": h}: `TxEvent`s; client.streams), until the caller stops
        iterating; `timeout` bounds the wait for each message.
        Acknowledgements are not yielded; a refused topic or a stream the node ended
        because this subscriber lagged raises `StreamError`."""
        with connect(ws_url(self.base_url)) as socket:
            for request in subscriptions(topics):
                socket.send(request)
            while True:
                found = event(orjson.loads(socket.recv(timeout)))
                if found is not None:
                    yield found
