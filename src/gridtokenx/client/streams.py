"""The WebSocket stream protocol both clients speak: where it is, how to subscribe, and
which messages are events. The node acknowledges each subscription (`subscribed`), answers
a bad one with `error`, and ends the stream with `lagged` when the subscriber fell too far
behind; a caller iterating a subscription wants the events alone, so acknowledgements are
consumed here and the other two are raised as `StreamError`."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from gridtokenx.client.models import JSON, PREFIX, StreamError


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + (
        f"{PREFIX}/ws"
    )


def subscriptions(topics: Iterable[JSON]) -> list[str]:
    return [orjson.dumps({"op": "subscribe", **t}).decode() for t in topics]


def event(message: JSON) -> JSON | None:
    """The message if it is an event; None for an acknowledgement; `StreamError` for a
    refused subscription or the end of a lagging stream."""
    kind = message.get("type")
    if kind == "subscribed":
        return None
    if kind == "error":
        raise StreamError(str(message.get("code")), str(message.get("message")))
    if kind == "lagged":
        raise StreamError("LAGGED", str(message.get("message")))
    return message
