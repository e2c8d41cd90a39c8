"""The FastAPI application of one node: routes under /api/v1, the WebSocket hub, limits,
optional CORS, the OpenAPI document at /api/v1/openapi.json with browsable /docs and /redoc
(vendored, so they work offline), and the web dashboard at /."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gridtokenx import __version__
from gridtokenx.api import dashboard, docs, errors
from gridtokenx.api.hub import Hub
from gridtokenx.api.latency import RequestLatency
from gridtokenx.api.limits import Limits, TokenBuckets
from gridtokenx.api.routes import (
    admin,
    auction,
    audit,
    certificates,
    chain,
    explorer,
    governance,
    households,
    market,
    registry,
    status,
    stream,
    supply,
    surveillance,
    txs,
)
from gridtokenx.api.settings import ApiSettings
from gridtokenx.node.runtime import Node
from gridtokenx.surveillance.follower import Follower

PREFIX = "/api/v1"
_log = logging.getLogger(__name__)


def create_app(
    node: Node, settings: ApiSettings | None = None, buckets: TokenBuckets | None = None
) -> FastAPI:
    """Build the API over a running (or about to run) node and register its hub as a
    commit listener. The app must be served on the node's own event loop."""
    settings = settings or ApiSettings()
    app = FastAPI(
        title="GridTokenX node API",
        version=__version__,
        description="Submit signed transactions and read the ledger of one GridTokenX node. "
        "Amounts are integers (Wh, satang); addresses are gtx... text; bytes are hex.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,  # served by api/docs.py from vendored files, not a CDN
        redoc_url=None,
    )
    errors.install(app)
    hub = Hub(node, settings.ws_queue, settings.ws_max_subscriptions)
    app.state.surveillance = None
    if settings.surveillance:
        follower = Follower(node.app.state, settings.surveillance_settings, node.app.committed_txs)
        try:
            follower.catch_up(node.app.store)
        except LookupError as exc:  # an old store without receipts: follow from now on
            _log.warning("surveillance follows from the next height: %s", exc)
            follower.start_at(node.app.store.height() + 1)
        node.add_commit_listener(follower.on_commit)
        follower.subscribe(hub.on_alerts)
        app.state.surveillance = follower
    node.add_commit_listener(hub.on_commit)
    app.state.hub = hub
    app.state.node = node
    app.state.settings = settings
    routed = (txs, chain, registry, market, supply, stream, governance, audit, certificates,
              status, admin, explorer, households, surveillance,
              auction)  # fmt: skip
    for module in routed:
        app.include_router(module.router, prefix=PREFIX)
    dashboard.install(app)
    docs.install(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type"],
        )
    limits = buckets or TokenBuckets(settings.rate_per_second, settings.rate_burst)
    app.add_middleware(Limits, buckets=limits, max_body=settings.max_body_bytes)
    app.add_middleware(RequestLatency, histogram=node.metrics.api_latency, prefix=PREFIX)
    return app
