"""The WebSocket stream protocol both clients speak: where it is, how to subscribe, and the
message after which the node stops sending (a subscriber that fell too far behind)."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from gridtokenx.client.models import JSON, PREFIX


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + (
        f"{PREFIX}/ws"
    )


def subscriptions(topics: Iterable[JSON]) -> list[str]:
    return [orjson.dumps({"op": "subscribe", **t}).decode() for t in topics]


def lagged(message: JSON) -> bool:
    """The node's last message to a subscriber that could not keep up."""
    return message.get("type") == "lagged"
