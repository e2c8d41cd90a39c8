"""Typed stream events and receipt events: `subscribe` yields one dataclass per message
type (client/streams.py), checked on arrival, and receipts and simulations carry typed
`Event`s; code written when both were dicts still reads them by key. Decoding is checked
message by message, and against a real node (tests/api/test_api_harness.py) every topic
is exercised: blocks, a transaction, a book, a trade, a halt, a certificate and a
governance event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest

from gridtokenx.client import (
    AsyncClient,
    BlockEvent,
    BookEvent,
    CertificateEvent,
    Event,
    GovernanceEvent,
    HaltEvent,
    OtherEvent,
    StreamError,
    StreamEvent,
    TradeEvent,
    TxEvent,
    to_json,
)
from gridtokenx.client.streams import event
from gridtokenx.wire import tx
from tests.api.test_api_harness import (
    EGAT,
    ERC,
    INTERVAL,
    MWH,
    Cast,
    LocalNode,
    produce,
    running_cast,
    solar_farm,
    text,
)

E = TypeVar("E", bound=StreamEvent)
ADDRESS = "gtx" + "q" * 38


# --- decoding, message by message ------------------------------------------------------------
def test_each_message_type_decodes_to_its_event() -> None:
    block = event({"type": "block", "height": 4, "hash": "ab" * 32, "time": 9, "proposer": ADDRESS,
                   "tx_count": 2})  # fmt: skip
    assert isinstance(block, BlockEvent) and (block.height, block.tx_count) == (4, 2)
    transfer = {"kind": "transfer", "attrs": {"amount": 5}}
    receipt = event({"type": "tx", "hash": "cd" * 32, "status": "committed", "height": 4,
                     "index": 0, "events": [transfer]})  # fmt: skip
    assert isinstance(receipt, TxEvent) and receipt.events == [Event("transfer", {"amount": 5})]
    unknown = event({"type": "tx", "hash": "cd" * 32, "status": "unknown"})
    assert isinstance(unknown, TxEvent) and unknown.height is None and unknown.events == []
    book = event({"type": "book", "zone": "BKK", "interval": 900, "bids": [],
                  "asks": [{"price": 290, "quantity_wh": 800, "orders": 1}]})  # fmt: skip
    assert isinstance(book, BookEvent) and book.asks[0].price == 290 and book.bids == []
    halt = event({"type": "halt", "height": 5, "halted": True, "zone": "NEA", "by": "EGAT",
                  "reason": "storm"})  # fmt: skip
    assert isinstance(halt, HaltEvent) and halt.halted and halt.by == "EGAT"
    cert = event({"type": "certificate", "height": 6, "event": "certificate_transferred",
                  "id": 3, "from": ADDRESS, "to": ADDRESS})  # fmt: skip
    assert isinstance(cert, CertificateEvent) and (cert.event, cert.id) == (
        "certificate_transferred", 3)  # fmt: skip
    assert cert.attrs == {"id": 3, "from": ADDRESS, "to": ADDRESS}
    vote = event({"type": "governance", "height": 7, "event": "vote_delegated",
                  "delegator": "ERC", "delegate": "MEA"})  # fmt: skip
    assert isinstance(vote, GovernanceEvent) and vote.id is None
    assert vote.attrs == {"delegator": "ERC", "delegate": "MEA"}


def test_events_still_read_by_key_as_the_dicts_did() -> None:
    cert = event({"type": "certificate", "height": 6, "event": "certificate_issued", "id": 1,
                  "owner": ADDRESS, "wh": MWH})  # fmt: skip
    assert cert is not None
    assert (cert["type"], cert["height"], cert["id"], cert.get("wh")) == (
        "certificate", 6, 1, MWH)  # fmt: skip
    assert cert.get("missing") is None
    with pytest.raises(KeyError):
        cert["missing"]
    block = event({"type": "block", "height": 4, "hash": "ab" * 32, "time": 9, "proposer": ADDRESS,
                   "tx_count": 0})  # fmt: skip
    assert block is not None and block.get("type") == "block" and block["tx_count"] == 0
    assert to_json(block) == {"height": 4, "hash": "ab" * 32, "time": 9, "proposer": ADDRESS,
                              "tx_count": 0}  # fmt: skip


def test_acknowledgements_are_consumed_and_refusals_raised() -> None:
    assert event({"type": "subscribed", "topic": "blocks"}) is None
    with pytest.raises(StreamError) as refused:
        event({"type": "error", "code": "INVALID_REQUEST", "message": "unknown topic"})
    assert refused.value.code == "INVALID_REQUEST"
    with pytest.raises(StreamError) as lagged:
        event({"type": "lagged", "message": "too slow"})
    assert lagged.value.code == "LAGGED"


def test_a_message_of_the_wrong_shape_is_a_bad_response() -> None:
    with pytest.raises(StreamError) as bad:
        event({"type": "block", "height": "four", "hash": "ab", "time": 9, "proposer": ADDRESS,
               "tx_count": 0})  # fmt: skip
    assert bad.value.code == "BAD_RESPONSE" and "BlockEvent" in bad.value.message
    with pytest.raises(StreamError):
        event({"type": "halt", "zone": "NEA"})  # fields missing


def test_a_newer_nodes_message_type_arrives_as_other_event() -> None:
    found = event({"type": "auction", "round": 2})
    assert isinstance(found, OtherEvent) and found.type == "auction" and found["round"] == 2


# --- against a real node ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNode, Any, Cast]]:
    with running_cast(tmp_path_factory.mktemp("streams")) as running:
        yield running


class Events:
    """A subscription read in order: `next(kind)` is the first event of `kind` not yet
    taken, kept from earlier reads or read now (within `seconds`)."""

    def __init__(self, stream: Iterator[StreamEvent]) -> None:
        self.stream, self.kept = stream, list[StreamEvent]()

    def next(self, kind: type[E], seconds: float = 20) -> E:
        deadline = time.monotonic() + seconds
        while True:
            for found in self.kept:
                if isinstance(found, kind):
                    self.kept.remove(found)
                    return found
            assert time.monotonic() < deadline, f"no {kind.__name__} in time"
            self.kept.append(next(self.stream))


@pytest.mark.process
def test_every_topic_yields_its_typed_events(live: tuple[LocalNode, Any, Cast]) -> None:
    node, api, cast = live
    interval = (node.time // INTERVAL + 3) * INTERVAL
    sell = api.send(cast.home, tx.PlaceOrder(tx.Side.SELL, "BKK", interval, 800, 290))
    topics = [{"topic": t} for t in ("blocks", "trades", "halts", "certificates", "governance")]
    book_topic = {"topic": "book", "zone": "BKK", "interval": interval}
    stream = api.subscribe(*topics, {"topic": "tx", "hash": sell}, book_topic, timeout=15)
    events = Events(stream)
    try:
        block = events.next(BlockEvent)
        assert block.height >= 1 and block.proposer == text(EGAT)
        receipt = events.next(TxEvent)
        if receipt.status == "pending":
            receipt = events.next(TxEvent)
        assert (receipt.hash, receipt.status) == (sell, "committed")
        assert isinstance(receipt.events[0], Event) and receipt.events[0].kind == "order_accepted"
        book = events.next(BookEvent)
        assert (book.zone, book.interval) == ("BKK", interval)

        buy = api.send_and_wait(cast.office, tx.PlaceOrder(tx.Side.BUY, "BKK", interval, 300, 300))
        assert all(isinstance(e, Event) for e in buy.events)
        trade = events.next(TradeEvent)
        assert (trade.quantity_wh, trade.price, trade.buyer) == (300, 290, text(cast.office))
        assert trade.trade in [e.attrs["trade"] for e in buy.events if e.kind == "trade"]

        api.send_and_wait(EGAT, tx.SetZoneHalt("NEA", True, "storm"))
        halt = events.next(HaltEvent)
        assert (halt.zone, halt.halted, halt.reason) == ("NEA", True, "storm")
        api.send_and_wait(EGAT, tx.SetZoneHalt("NEA", False))
        assert events.next(HaltEvent).halted is False

        api.send_and_wait(ERC, tx.DelegateVote("MEA"))
        vote = events.next(GovernanceEvent)
        assert vote.event == "vote_delegated" and vote.height >= block.height
        api.send_and_wait(ERC, tx.DelegateVote(""))
        assert events.next(GovernanceEvent).event == "vote_delegation_cleared"

        _farm, meter = solar_farm(api, "streams")
        produce(node, api, meter, MWH)
        issued = events.next(CertificateEvent)
        assert issued.event == "certificate_issued" and issued.attrs["wh"] == MWH
        assert issued.id >= 1 and issued.attrs["owner"] == text(_farm)
    finally:
        stream.close()  # type: ignore[attr-defined]


@pytest.mark.process
def test_simulations_and_the_async_stream_are_typed_too(live: tuple[LocalNode, Any, Cast]) -> None:
    node, api, cast = live
    verdict = api.check(cast.office, tx.Transfer(tx.Asset.THB, cast.home.address, 1))
    assert verdict.ok and verdict.events == [
        Event("transfer", verdict.events[0].attrs)
    ] and verdict.events[0].attrs["amount"] == 1  # fmt: skip

    async def first_block() -> StreamEvent:
        async with AsyncClient(node.url) as client:
            async for found in client.subscribe({"topic": "blocks"}):
                return found
        raise AssertionError("the stream ended")

    found = asyncio.run(asyncio.wait_for(first_block(), 20))
    assert isinstance(found, BlockEvent) and found.height >= 1
