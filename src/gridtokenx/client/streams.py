"""The WebSocket stream protocol both clients speak: where it is, how to subscribe, and
which messages are events, typed. The node acknowledges each subscription (`subscribed`),
answers a bad one with `error`, and ends the stream with `lagged` when the subscriber fell
too far behind; a caller iterating a subscription wants the events alone, so
acknowledgements are consumed here and the other two are raised as `StreamError`.

Each event is a dataclass, as the reads are (client/results.py), checked by msgspec on
arrival: `BlockEvent`, `TxEvent` (a `Receipt`), `TradeEvent`, `BookEvent` (a `Book`),
`HaltEvent`, `CertificateEvent` and `GovernanceEvent`; a message type this SDK does not
know yet (a newer node's) arrives as `OtherEvent` rather than ending the stream. They
still answer `event["field"]` and `event["type"]`, as the dicts yielded before did."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final

import msgspec
import orjson

from gridtokenx.client.errors import BAD_RESPONSE
from gridtokenx.client.models import JSON, PREFIX, Receipt, StreamError
from gridtokenx.client.results import Book, Record


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + (
        f"{PREFIX}/ws"
    )


def subscriptions(topics: Iterable[JSON]) -> list[str]:
    return [orjson.dumps({"op": "subscribe", **t}).decode() for t in topics]


class StreamEvent(Record):
    """A message the node pushed after a commit; `type` is its name on the wire."""

    TYPE: ClassVar[str] = ""

    @property
    def type(self) -> str:
        return self.TYPE

    def __getitem__(self, name: str) -> Any:
        return self.type if name == "type" else super().__getitem__(name)


@dataclass(frozen=True)
class BlockEvent(StreamEvent):
    """Topic `blocks`: a block was committed."""

    TYPE: ClassVar[str] = "block"
    height: int
    hash: str
    time: int
    proposer: str
    tx_count: int


@dataclass(frozen=True)
class TxEvent(StreamEvent, Receipt):
    """Topic `tx`: the transaction's receipt on subscribing, then once it is final
    (`status` pending, committed, dropped, or unknown if the node never saw it)."""

    TYPE: ClassVar[str] = "tx"


@dataclass(frozen=True)
class TradeEvent(StreamEvent):
    """Topic `trades`: one trade (`trade` is its id; `GET /trades/{id}` has the rest)."""

    TYPE: ClassVar[str] = "trade"
    trade: int
    interval: int
    buyer: str
    seller: str
    buyer_zone: str
    seller_zone: str
    quantity_wh: int
    price: int  # satang per kWh
    loss_bp: int
    height: int


@dataclass(frozen=True)
class BookEvent(StreamEvent, Book):
    """Topic `book`: the book's depth on subscribing, then whenever it changes."""

    TYPE: ClassVar[str] = "book"


@dataclass(frozen=True)
class HaltEvent(StreamEvent):
    """Topic `halts`: a zone halted (`halted` true) or resumed."""

    TYPE: ClassVar[str] = "halt"
    zone: str
    halted: bool
    by: str
    reason: str
    height: int


@dataclass(frozen=True)
class TaggedEvent(StreamEvent):
    """A ledger event forwarded whole: its kind as `event` and its attributes in `attrs`
    (which differ by kind; `event["id"]` reads one as the flat message did)."""

    event: str
    height: int
    attrs: JSON = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        try:
            return super().__getitem__(name)
        except KeyError:
            if name in self.attrs:
                return self.attrs[name]
            raise


@dataclass(frozen=True)
class CertificateEvent(TaggedEvent):
    """Topic `certificates`: certificate_issued, _transferred or _retired; `attrs` has
    `id`, `owner`, `wh`, `avoided_g`, `from`, `to`, `beneficiary` as the kind has them."""

    TYPE: ClassVar[str] = "certificate"

    @property
    def id(self) -> int:
        return int(self.attrs["id"])


@dataclass(frozen=True)
class GovernanceEvent(TaggedEvent):
    """Topic `governance`: proposal_submitted, vote_cast, proposal_passed, vote_delegated,
    ...; `attrs` as the ledger emitted them (`id` is the proposal's, where there is one)."""

    TYPE: ClassVar[str] = "governance"

    @property
    def id(self) -> int | None:
        found = self.attrs.get("id")
        return None if found is None else int(found)


@dataclass(frozen=True)
class OtherEvent(StreamEvent):
    """A message of a type this SDK does not know (a newer node's), as sent."""

    name: str
    data: JSON

    @property
    def type(self) -> str:
        return self.name

    def __getitem__(self, name: str) -> Any:
        return self.data[name]


KINDS: Final[dict[str, type[StreamEvent]]] = {
    kind.TYPE: kind
    for kind in (
        BlockEvent,
        TxEvent,
        TradeEvent,
        BookEvent,
        HaltEvent,
        CertificateEvent,
        GovernanceEvent,
    )
}


def event(message: JSON) -> StreamEvent | None:
    """The message as its typed event; None for an acknowledgement; `StreamError` for a
    refused subscription, the end of a lagging stream, or an event of the wrong shape
    (code BAD_RESPONSE)."""
    name = str(message.get("type"))
    if name == "subscribed":
        return None
    if name == "error":
        raise StreamError(str(message.get("code")), str(message.get("message")))
    if name == "lagged":
        raise StreamError("LAGGED", str(message.get("message")))
    kind = KINDS.get(name)
    if kind is None:
        return OtherEvent(name, message)
    body = {k: v for k, v in message.items() if k != "type"}
    if issubclass(kind, TaggedEvent):
        tagged = {f.name for f in fields(kind)} - {"attrs"}
        body = {**{k: body.pop(k) for k in tagged if k in body}, "attrs": body}
    try:
        return msgspec.convert(body, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        raise StreamError(BAD_RESPONSE, f"not a {kind.__name__}: {exc}") from None
