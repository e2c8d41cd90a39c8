"""WebSocket fan-out of what each commit did: blocks, transaction outcomes, trades, book
changes per zone and interval, zone halts, certificate issues, transfers and retirements,
and governance events (proposals submitted, votes, tallies, executions).

The node calls `Hub.on_commit` synchronously after every commit (a commit listener), so
everything here is non-blocking: each client has a bounded queue filled with
`put_nowait`. A client whose queue overflows is not waited for: its queue is replaced by a
single `lagged` message, it gets nothing more, and its connection is closed once that
message is out (or after a short grace, if it is not reading at all). Consensus never
waits for a client."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel, Field, ValidationError

from gridtokenx.api import views
from gridtokenx.api.errors import ApiError
from gridtokenx.chain import blocks
from gridtokenx.chain.blocks import Receipt
from gridtokenx.ledger.context import Event
from gridtokenx.node.runtime import Node
from gridtokenx.surveillance import Alert

Message = dict[str, Any]
LAGGED: Final[Message] = {"type": "lagged", "message": "too slow: messages were dropped"}
_HALT_EVENTS: Final = {"zone_halted": True, "zone_resumed": False}
_CERTIFICATE_EVENTS: Final = frozenset(
    {"certificate_issued", "certificate_transferred", "certificate_retired"}
)


def _is_auction(kind: str) -> bool:
    """Curves placed, amended, cancelled; an auction cleared or cancelled at its deadline."""
    return kind.startswith("auction_")


def _is_governance(kind: str) -> bool:
    """Proposal life-cycle and voting events, including kinds later versions add."""
    return kind.startswith(("proposal_", "vote_"))


_ids = itertools.count(1)


class Request(BaseModel):
    """A client's message: subscribe to or unsubscribe from one topic."""

    op: Literal["subscribe", "unsubscribe"]
    topic: Literal[
        "blocks",
        "trades",
        "halts",
        "tx",
        "book",
        "certificates",
        "governance",
        "surveillance",
        "auction",
    ]
    hash: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")  # topic tx
    zone: str | None = Field(None, pattern=r"^[A-Z]{2,8}$")  # topic book
    interval: int | None = Field(None, ge=0, le=2**63 - 1)  # topic book


@dataclass(eq=False)
class Client:
    """One connection's subscriptions and outbox."""

    limit: int
    id: int = field(default_factory=lambda: next(_ids))
    outbox: list[Message] = field(default_factory=list)
    topics: set[str] = field(default_factory=set)
    txs: set[bytes] = field(default_factory=set)
    books: set[tuple[str, int]] = field(default_factory=set)
    lagged: bool = False

    def subscriptions(self) -> int:
        return len(self.topics) + len(self.txs) + len(self.books)


class Hub:
    def __init__(self, node: Node, queue: int = 256, max_subscriptions: int = 64) -> None:
        self.node = node
        self.queue = queue
        self.max_subscriptions = max_subscriptions
        self.clients: dict[int, Client] = {}
        self._waiting: dict[int, asyncio.Event] = {}  # set when a client has new mail
        self._books: dict[tuple[str, int], Message] = {}  # last depth sent per book

    # --- clients ---------------------------------------------------------------------------
    def join(self, wake: asyncio.Event) -> Client:
        client = Client(self.queue)
        self.clients[client.id] = client
        self._waiting[client.id] = wake
        return client

    def leave(self, client: Client) -> None:
        self.clients.pop(client.id, None)
        self._waiting.pop(client.id, None)
        live = {key for c in self.clients.values() for key in c.books}
        self._books = {k: v for k, v in self._books.items() if k in live}

    def take(self, client: Client) -> list[Message]:
        mail, client.outbox = client.outbox, []
        return mail

    def deliver(self, client: Client, message: Message) -> None:
        """Queue without waiting; an overflowing client is cut off with `lagged`."""
        if client.lagged:
            return
        if len(client.outbox) >= client.limit:
            client.lagged = True
            client.outbox = [LAGGED]
        else:
            client.outbox.append(message)
        self._waiting[client.id].set()

    # --- requests --------------------------------------------------------------------------
    def handle(self, client: Client, text: str) -> None:
        """Apply one client message; problems are answered, never raised."""
        try:
            request = Request.model_validate_json(text)
            self._apply(client, request)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            self.deliver(client, _error("INVALID_REQUEST", f"{where}: {first.get('msg')}"))
        except ApiError as exc:
            self.deliver(client, _error(exc.code, exc.message))

    def _apply(self, client: Client, r: Request) -> None:
        subscribe = r.op == "subscribe"
        if subscribe and client.subscriptions() >= self.max_subscriptions:
            raise ApiError(429, "TOO_MANY_SUBSCRIPTIONS", f"at most {self.max_subscriptions}")
        if r.topic == "tx":
            if r.hash is None:
                raise ApiError(422, "INVALID_REQUEST", "topic tx needs `hash`")
            tx_hash = bytes.fromhex(r.hash)
            if not subscribe:
                client.txs.discard(tx_hash)
            else:
                client.txs.add(tx_hash)
                self.deliver(client, {"type": "subscribed", "topic": "tx", "hash": r.hash})
                self._tx_now(client, tx_hash)
            return
        if r.topic == "book":
            if r.zone is None or r.interval is None:
                raise ApiError(422, "INVALID_REQUEST", "topic book needs `zone` and `interval`")
            key = (r.zone, r.interval)
            if not subscribe:
                client.books.discard(key)
                return
            client.books.add(key)
            self.deliver(client, {"type": "subscribed", "topic": "book", "zone": r.zone,
                                  "interval": r.interval})  # fmt: skip
            self.deliver(client, self._depth(key))
            return
        if subscribe:
            client.topics.add(r.topic)
            self.deliver(client, {"type": "subscribed", "topic": r.topic})
        else:
            client.topics.discard(r.topic)

    def _tx_now(self, client: Client, tx_hash: bytes) -> None:
        """A transaction already final when asked about is answered at once."""
        try:
            status = views.tx_status(self.node, tx_hash)
        except ApiError:
            status = {"hash": tx_hash.hex(), "status": "unknown"}
        if status["status"] != "pending":
            client.txs.discard(tx_hash)
        self.deliver(client, {"type": "tx", **status})

    def _depth(self, key: tuple[str, int]) -> Message:
        message = {"type": "book", **views.book_depth(self.node.app.state, *key)}
        self._books[key] = message
        return message

    # --- surveillance ------------------------------------------------------------------------
    def on_alerts(self, alerts: list[Alert]) -> None:
        """New surveillance alerts (the node's follower calls this inside a commit)."""
        messages = [{"type": "alert", **views.alert(a)} for a in alerts]
        for client in list(self.clients.values()):
            if "surveillance" in client.topics:
                self._each(client, messages)

    # --- commits ---------------------------------------------------------------------------
    def on_commit(
        self, height: int, block: bytes, receipts: list[Receipt], end_events: list[Event]
    ) -> None:
        if not self.clients:
            return
        header = blocks.decode(block).header
        summary = {
            "type": "block",
            "height": height,
            "hash": blocks.decode(block).hash.hex(),
            "time": header.time,
            "proposer": views.plain(header.proposer),
            "tx_count": len(receipts),
        }
        events = [e for r in receipts for e in r.events] + list(end_events)
        trades = [{"type": "trade", "height": height, **views.plain(e.attrs)}
                  for e in events if e.kind == "trade"]  # fmt: skip
        halts = [
            {"type": "halt", "height": height, "halted": _HALT_EVENTS[e.kind],
             **views.plain(e.attrs)}
            for e in events if e.kind in _HALT_EVENTS
        ]  # fmt: skip
        by_topic = {
            "trades": trades,
            "halts": halts,
            "certificates": _tagged(
                "certificate", height, events, _CERTIFICATE_EVENTS.__contains__
            ),
            "governance": _tagged("governance", height, events, _is_governance),
            "auction": _tagged("auction", height, events, _is_auction),
        }
        committed = {r.tx_hash for r in receipts}
        changed_books = self._changed_books()
        for client in list(self.clients.values()):
            if "blocks" in client.topics:
                self.deliver(client, summary)
            for topic, messages in by_topic.items():
                if topic in client.topics:
                    self._each(client, messages)
            for key in client.books:
                if key in changed_books:
                    self.deliver(client, changed_books[key])
            for tx_hash in list(client.txs):
                if tx_hash in committed or self.node.app.mempool.status(tx_hash) != "pending":
                    self._tx_now(client, tx_hash)

    def _changed_books(self) -> dict[tuple[str, int], Message]:
        changed = {}
        for key in {key for c in self.clients.values() for key in c.books}:
            before = self._books.get(key)
            now = self._depth(key)
            if before is None or before != now:
                changed[key] = now
        return changed

    def _each(self, client: Client, messages: Iterable[Message]) -> None:
        for message in messages:
            self.deliver(client, message)


def _tagged(
    kind: str, height: int, events: list[Event], wanted: Callable[[str], bool]
) -> list[Message]:
    """One message per wanted event: its kind as `event`, its attributes beside it."""
    return [
        {"type": kind, "height": height, "event": e.kind, **views.plain(e.attrs)}
        for e in events
        if wanted(e.kind)
    ]


def _error(code: str, message: str) -> Message:
    return {"type": "error", "code": code, "message": message}
