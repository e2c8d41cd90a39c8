"""`--follow`: rows printed as their blocks commit, read from the node's WebSocket stream
(api/routes/stream.py; topics `blocks`, `trades`, `book`), like `tail -f`.

It runs until Ctrl-C, which ends it with exit 0 (stopping is what the user asked for, not
a failure), or until a bound: `--count N` rows, or `--timeout S` seconds, which scripts and
tests use. With --json each message is one line of JSON as the node sent it (JSON Lines).
A node that drops a subscriber that fell behind (`lagged`), or closes the stream, ends
the command with an error: rows would otherwise be missing without a word.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Final

import orjson
import typer
from rich.console import RenderableType

from gridtokenx.cli.args import option, zone
from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.render import columns_table, console
from gridtokenx.cli.units import unix_time
from gridtokenx.cli.views import (
    BLOCK_COLUMNS,
    TRADE_COLUMNS,
    block_row,
    book_view,
    from_stream,
    trade_row,
)

if TYPE_CHECKING:
    from gridtokenx.cli.names import Names
    from gridtokenx.client import Client

Message = dict[str, Any]
FOLLOW_OPTIONS: Final[tuple[inspect.Parameter, ...]] = (
    option(
        "follow",
        False,
        Annotated[
            bool,
            typer.Option("--follow", "-f", help="print new rows as blocks commit, until Ctrl-C"),
        ],
    ),
    option(
        "count",
        None,
        Annotated[
            int | None,
            typer.Option(
                min=1, help="with --follow: stop after this many rows", show_default=False
            ),
        ],
    ),
    option(
        "timeout",
        None,
        Annotated[
            float | None,
            typer.Option(
                min=0.1, help="with --follow: stop after this many seconds", show_default=False
            ),
        ],
    ),
)


@dataclass(frozen=True)
class Bounds:
    """When a follow stops by itself: after `count` rows or `seconds` (None: never)."""

    count: int | None = None
    seconds: float | None = None

    @classmethod
    def of(cls, count: int | None, seconds: float | None, following: bool) -> Bounds:
        if not following and (count is not None or seconds is not None):
            raise BadInput("--count and --timeout bound --follow: add --follow")
        return cls(count, seconds)


def messages(api: Client, topics: list[Message], seconds: float | None) -> Iterator[Message]:
    """The node's messages for `topics` (its `subscribed` acknowledgements too) until
    `seconds` pass; ended with Refused when the node drops or closes the stream."""
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
    from websockets.sync.client import connect

    from gridtokenx.client.streams import subscriptions, ws_url

    url = ws_url(api.base_url)
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        with connect(url, open_timeout=10) as socket:
            for request in subscriptions(topics):
                socket.send(request)
            while True:
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    return
                try:
                    message: Message = orjson.loads(socket.recv(wait))
                except TimeoutError:
                    return
                kind = message.get("type")
                if kind == "error":
                    raise Refused(str(message.get("code")), str(message.get("message")))
                if kind == "lagged":
                    why = "the node stopped the stream: this reader fell behind; run it again"
                    raise Refused("LAGGED", why)
                yield message
    except ConnectionClosed as exc:
        raise Refused("STREAM_CLOSED", f"{url}: the node closed the stream ({exc})") from None
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        raise Refused("UNREACHABLE", f"{url}: {exc or type(exc).__name__}") from None


def stream(
    api: Client,
    topics: list[Message],
    json_out: bool,
    bounds: Bounds,
    show: Callable[[Message, bool], RenderableType | None],
) -> None:
    """Print what `show` makes of each message (None: not a row, e.g. a filtered one), the
    first with its header; --json prints the messages that make rows, one per line. Once
    the node has acknowledged every topic, one line on stderr says the follow has begun
    (nothing committed after it is missed)."""
    shown = acknowledged = 0
    try:
        for message in messages(api, topics, bounds.seconds):
            if message.get("type") == "subscribed":
                acknowledged += 1
                if acknowledged == len(topics):
                    print("following; Ctrl-C to stop", file=sys.stderr, flush=True)
                continue
            drawn = show(message, shown == 0)
            if drawn is None:
                continue
            shown += 1
            if json_out:
                print(orjson.dumps(message).decode(), flush=True)
            else:
                console.print(drawn)
                console.file.flush()
            if bounds.count is not None and shown >= bounds.count:
                return
    except KeyboardInterrupt:
        return  # Ctrl-C is how a follow is meant to end
    except BrokenPipeError:
        # the reader went away (`... --follow | head -3`): as quiet an end as Ctrl-C
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def rows(
    columns: Any, row: Callable[[Message], list[str]], title: str
) -> Callable[[Message, bool], RenderableType]:
    return lambda message, first: columns_table(
        columns, [row(message)], title if first else "", stream=True
    )


def follow_trades(
    api: Client,
    names: Names,
    json_out: bool,
    bounds: Bounds,
    interval: str | None = None,
    zone_code: str | None = None,
    limit: int = 50,
    after: str | None = None,
) -> None:
    """New trades as they commit, in the buyer's or seller's `zone` and for one delivery
    `interval` if given."""
    if after is not None:
        raise BadInput("--after pages back through past trades; it does not go with --follow")
    start = None if interval is None else unix_time(interval)
    code = None if zone_code is None else zone(zone_code)
    draw = rows(TRADE_COLUMNS, lambda m: trade_row(from_stream(m), names), "new trades")

    def show(message: Message, first: bool) -> RenderableType | None:
        if message.get("type") != "trade":
            return None
        if start is not None and message["interval"] != start:
            return None
        if code is not None and code not in (message["buyer_zone"], message["seller_zone"]):
            return None
        return draw(message, first)

    stream(api, [{"topic": "trades"}], json_out, bounds, show)


def follow_blocks(
    api: Client,
    names: Names,
    json_out: bool,
    bounds: Bounds,
    limit: int = 20,
    after: str | None = None,
) -> None:
    """New blocks as they commit."""
    if after is not None:
        raise BadInput("--after pages back through past blocks; it does not go with --follow")
    draw = rows(BLOCK_COLUMNS, lambda m: block_row(m, names), "new blocks")
    stream(
        api,
        [{"topic": "blocks"}],
        json_out,
        bounds,
        lambda m, first: draw(m, first) if m.get("type") == "block" else None,
    )


def follow_book(
    api: Client,
    names: Names,
    json_out: bool,
    bounds: Bounds,
    zone_code: str,
    interval: str,
    levels: int = 20,
) -> None:
    """The book now, then again each time a block changes it (the node sends the whole
    depth, at most 50 levels a side; `levels` cuts it as the REST read does)."""
    code, start = zone(zone_code), unix_time(interval)
    api.get(f"/book/{code}/{start}", levels=1)  # an unknown zone is refused before streaming

    def show(message: Message, first: bool) -> RenderableType | None:
        if message.get("type") != "book":
            return None
        cut = {**message, "bids": message["bids"][:levels], "asks": message["asks"][:levels]}
        return book_view(cut)

    topic = {"topic": "book", "zone": code, "interval": start}
    stream(api, [topic], json_out, bounds, show)
