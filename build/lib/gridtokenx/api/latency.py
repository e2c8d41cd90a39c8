"""API request latency for the node's Prometheus registry, as plain ASGI middleware.

Requests are labelled by their route's template (`/api/v1/accounts/{address}`), never the
raw path: a client walking through every address must not make a series per address.
The router writes the matched route into the request's scope, so the template is read
after the request has been served; a request that matched no route (refused by the rate
limit before routing, or a path that does not exist) is labelled "unmatched". FastAPI
(0.165) puts the route as its router declared it there, without the prefix the router was
included under, so the API's prefix is put back: the label is the path a client sees. The
middleware sits outside the limits, so a 429 or 413 is counted as well. WebSockets are not
timed: their duration is the subscription's, not a latency.
"""

from __future__ import annotations

import time
from typing import Final

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED: Final = "unmatched"


def route_of(scope: Scope, prefix: str = "") -> str:
    """The template of the route that served the request (its mount's path for static
    files), under `prefix` when the request was; or UNMATCHED."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str) or not path:
        return UNMATCHED
    under = prefix and str(scope.get("path", "")).startswith(prefix + "/")
    return prefix + path if under and not path.startswith(prefix + "/") else path


class RequestLatency:
    """Times each HTTP request into `histogram` (method, route, status); routers included
    under `prefix` (the API's /api/v1) are labelled with it."""

    def __init__(self, app: ASGIApp, histogram: Histogram, prefix: str = "") -> None:
        self.app, self.histogram, self.prefix = app, histogram, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless a response starts: an exception is a server error
        began = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.histogram.labels(
                scope["method"], route_of(scope, self.prefix), str(status)
            ).observe(time.perf_counter() - began)
