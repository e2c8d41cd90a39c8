"""What one HTTP connection may cost the node, enforced below ASGI: a deadline for a
request's headers and one for its body, a cap on header bytes and a cap on open
connections.

ASGI middleware (`limits.py`) first sees a request once its headers are complete, so a
client that opens connections and sends its requests slowly, or never, would hold a file
descriptor each for as long as it liked (slowloris): uvicorn arms its keep-alive timer only
after a response, and httptools bounds neither the time nor the size of the headers. So the
node serves HTTP through `GuardedHttp`, uvicorn's httptools protocol with:

- a header deadline (`header_timeout`), from the connection's first moment or, on a
  kept-alive connection, from the first byte of the next request, absolute: trickling a
  byte at a time does not extend it. It ends when the headers are complete, so a WebSocket
  (upgraded at that point) lives as long as it likes, and a slow handler is not cut off;
- a body deadline (`body_timeout`), from the end of the headers to the end of the body;
- a header size cap (`max_header_bytes`): 431, then closed;
- a connection cap (`max_connections`, WebSockets included): a connection beyond it gets a
  503 at once (with `Retry-After`) and is closed, so it holds its descriptor for no longer
  than one write.

A connection past a deadline is closed without an answer (the client was not listening for
one); a handler waiting for its body sees the client disconnect. Idle kept-alive
connections are closed after `keep_alive` by uvicorn itself."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gridtokenx.api.errors import HEADERS_TOO_LARGE, TOO_MANY_CONNECTIONS, body
from gridtokenx.api.settings import ApiSettings

BUSY_RETRY_AFTER: Final = 1
"""Seconds a client refused for too many connections is told to wait (`Retry-After`, as
the rate limiter's 429 and a full mempool's say): connections end as their requests do,
so room comes back within about a second, and a client that retries at once only adds
to the crowd."""


def _reply(status: str, code: str, message: str, retry_after: int | None = None) -> bytes:
    """A complete response that closes the connection, written without the app."""
    payload = orjson.dumps(body(code, message))
    wait = "" if retry_after is None else f"retry-after: {retry_after}\r\n"
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{wait}"
        f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + payload


_BUSY: Final = _reply(
    "503 Service Unavailable",
    TOO_MANY_CONNECTIONS,
    "the node has as many API connections open as it serves; retry later",
    BUSY_RETRY_AFTER,
)
_TOO_LARGE: Final = _reply(
    "431 Request Header Fields Too Large",
    HEADERS_TOO_LARGE,
    "the request line and headers are too large",
)


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and caps above. `guarded` makes the
    subclass of one server, with that server's settings."""

    settings: ApiSettings = ApiSettings()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._awaiting_headers = True  # no request in progress, or its headers incomplete
        self._header_bytes = 0  # received since the request began, until its headers end
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.server_state.connections) >= self.settings.max_connections:
            self._refused = True
            transport.write(_BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._arm(self.settings.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._refused:  # uvicorn never saw it
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_headers:
            self._header_bytes += len(data)
            if self._deadline is None:  # a kept-alive connection's next request begins
                self._arm(self.settings.header_timeout)
        super().data_received(data)
        # Checked after parsing: a read that completes the headers may carry a body too.
        if self._awaiting_headers and self._header_bytes > self.settings.max_header_bytes:
            self._disarm()
            if not self.transport.is_closing():
                self.transport.write(_TOO_LARGE)
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._awaiting_headers, self._header_bytes = False, 0
        self._disarm()
        upgrading = self.parser.should_upgrade() and self._should_upgrade()
        if not upgrading:  # a WebSocket's protocol takes the connection from here
            self._arm(self.settings.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._awaiting_headers = True
        super().on_message_complete()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded(settings: ApiSettings) -> type[GuardedHttp]:
    """The protocol class for a server with `settings` (uvicorn builds one instance per
    connection from the class alone)."""

    class Guarded(GuardedHttp):
        pass

    Guarded.settings = settings
    return Guarded
