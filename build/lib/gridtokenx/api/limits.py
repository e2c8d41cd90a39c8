"""Per-client rate limits and a request body cap, as plain ASGI middleware so they act
before FastAPI parses anything: a flood or an oversized body costs the node a dictionary
lookup, not a JSON parse. A limited request gets 429 with `Retry-After`: the whole seconds
until the client's bucket holds a token again (rounded up, so a client that waits that long
is served), as RFC 9110 asks of a 429."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridtokenx.api.errors import BODY_TOO_LARGE, RATE_LIMITED, body

MAX_CLIENTS: Final = 10_000  # buckets kept; the least recently seen client is forgotten


class TokenBuckets:
    """A token bucket per client key, on an injected clock (tests replay without sleeping)."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def allow(self, key: str) -> bool:
        return self.take(key) == 0

    def take(self, key: str) -> float:
        """Spend one of the client's tokens: 0 when it had one, else the seconds until it
        will (nothing is spent then)."""
        now = self.clock()
        tokens, then = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)
        if len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return 0.0 if allowed else (1 - tokens) / self.rate


class Limits:
    def __init__(self, app: ASGIApp, buckets: TokenBuckets, max_body: int) -> None:
        self.app, self.buckets, self.max_body = app, buckets, max_body
        self._too_large = f"request bodies are at most {max_body} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if wait := self.buckets.take(client[0] if client else "unknown"):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            seconds = max(1, math.ceil(wait))
            why = f"too many requests from this client; retry after {seconds} s"
            await _reply(send, 429, RATE_LIMITED, why, [(b"retry-after", b"%d" % seconds)])
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _reply(send, 413, BODY_TOO_LARGE, self._too_large)
            return
        # Read the body before the app sees it (at most `max_body` bytes are held), so a
        # streamed body without a length is cut off as soon as it passes the cap.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:
                await _reply(send, 413, BODY_TOO_LARGE, self._too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # a disconnect, when the app waits for one
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


async def _reply(
    send: Send, status: int, code: str, message: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    payload: Any = orjson.dumps(body(code, message))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
