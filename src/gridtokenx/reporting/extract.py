"""Reading events back out of a node's store, height by height, as report rows.

Every event comes from the stored block and its stored receipts (`Store.receipt`,
`Store.block_events`), the same bytes every node committed. A gap (a pruned height, a
height stored before receipts were kept, a receipt that disagrees with its block) is an
error, never a silently shorter report."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from gridtokenx.chain import blocks
from gridtokenx.ledger import chain_info
from gridtokenx.ledger.context import Event, EventValue
from gridtokenx.reporting import schema
from gridtokenx.storage.store import Store
from gridtokenx.wire import crypto, tx

Value = int | str | None
Row = dict[str, Value]


class ReportError(RuntimeError):
    """The store cannot back the requested report (bad range, missing data)."""


@dataclass(frozen=True)
class Located:
    """One event with everything that places it on the chain."""

    height: int
    time: int
    block_hash: bytes
    tx_hash: bytes | None  # None: an end-of-block event
    tx_index: int | None
    sender: bytes | None
    event_index: int
    event: Event

    @property
    def key(self) -> tuple[int, str, int]:
        """Identifies the event within the chain: a row's identity in an export."""
        return (self.height, "" if self.tx_hash is None else self.tx_hash.hex(), self.event_index)


def open_store(path: Path) -> Store:
    """Open a stopped node's store or a checkpoint, with a clear error otherwise."""
    if not (path / "CURRENT").is_file():
        raise ReportError(f"{path} is not a GridTokenX store (no RocksDB CURRENT file)")
    try:
        return Store(path)
    except Exception as exc:  # rocksdict raises a bare Exception, e.g. for a held lock
        raise ReportError(f"cannot open {path} ({exc}); is its node still running?") from None


def check_range(store: Store, first: int, last: int) -> None:
    if first < 1 or last < first:
        raise ReportError(f"height range {first}..{last} is empty or starts below 1")
    if last > store.height():
        raise ReportError(f"height {last} is above the store's height {store.height()}")
    if first < store.pruned_below():
        raise ReportError(f"heights below {store.pruned_below()} are pruned from this store")


def block_at(store: Store, height: int) -> blocks.Block:
    stored = store.block(height)
    if stored is None:
        raise ReportError(f"the store holds no block at height {height}")
    return blocks.decode(stored[0])


def heights_for_times(store: Store, start: int, end: int) -> tuple[int, int]:
    """The heights whose block time lies in [start, end] (block times never decrease),
    found by bisection: O(log height) block reads."""
    low, top = max(store.pruned_below(), 1), store.height()

    def first_at_or_after(when: int) -> int:
        lo, hi = low, top + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if block_at(store, mid).header.time >= when:
                hi = mid
            else:
                lo = mid + 1
        return lo

    first, last = first_at_or_after(start), first_at_or_after(end + 1) - 1
    if start > end or first > last:
        raise ReportError(f"no block has a time in {start}..{end}")
    return first, last


def settlement_height(store: Store, interval: int) -> int:
    """The height whose end of block settled `interval` (its `interval_settled` event, with
    the zone reports beside it): the first block at or after the interval's end, then
    forward until the settlement, which waits for readings at most the governed deadline.
    Cost: a bisection of block times, then one end-of-block read per height scanned."""
    interval_seconds = chain_info.params(store).interval_seconds
    if interval % interval_seconds:
        raise ReportError(f"{interval} is not the start of an interval ({interval_seconds} s)")
    try:
        height, _ = heights_for_times(store, interval + interval_seconds, 2**63 - 1)
    except ReportError:
        raise ReportError(f"no block after interval {interval} ended is stored") from None
    for at in range(height, store.height() + 1):
        for event in store.block_events(at) or ():
            if event.kind == "interval_settled" and event.attrs.get("interval") == interval:
                return at
    raise ReportError(f"interval {interval} is not settled in this store")


def walk(store: Store, first: int, last: int) -> Iterator[Located]:
    """Every event of heights first..last in chain order: each transaction's receipt in
    block order, then the block's end-of-block events. Cost: one block read, one receipt
    read per transaction and one end-of-block read per height."""
    for height in range(first, last + 1):
        block = block_at(store, height)
        at = (height, block.header.time, block.hash)
        for index, raw in enumerate(block.txs):
            tx_hash = tx.hash_of(raw)
            receipt = store.receipt(tx_hash)
            if receipt is None or (receipt.height, receipt.index) != (height, index):
                raise ReportError(f"the receipt of tx {tx_hash.hex()} at height {height} is lost")
            sender = tx.decode(raw).tx.sender_address
            for n, event in enumerate(receipt.events):
                yield Located(*at, tx_hash, index, sender, n, event)
        end = store.block_events(height)
        if end is None:
            raise ReportError(f"height {height} was stored without receipts")
        for n, event in enumerate(end):
            yield Located(*at, None, None, None, n, event)


def text(value: EventValue) -> str:
    """Addresses as gtx... text, other bytes as hex: what people and the API read."""
    if isinstance(value, bytes):
        return crypto.address_to_text(value) if len(value) == crypto.ADDRESS_SIZE else value.hex()
    return str(value)


def row(kind: str, found: Located) -> Row:
    """The export row of one event. Missing str attributes are "" and missing int ones
    None, so CSV (where both are an empty cell) and Parquet read back alike."""
    out: Row = {
        "height": found.height,
        "time": found.time,
        "block_hash": found.block_hash.hex(),
        "row_kind": schema.ROW_END_BLOCK if found.tx_hash is None else schema.ROW_TX,
        "tx_hash": "" if found.tx_hash is None else found.tx_hash.hex(),
        "tx_index": found.tx_index,
        "sender": "" if found.sender is None else text(found.sender),
        "event_index": found.event_index,
        "event": found.event.kind,
    }
    types = dict(schema.KINDS[kind][1])
    other: dict[str, int | str] = {}
    for name, type_ in types.items():
        out[name] = None if type_ == "int" else ""
    for name, value in sorted(found.event.attrs.items()):
        if name in types and (types[name] == "int") == isinstance(value, int):
            out[name] = value if isinstance(value, int) else text(value)
        else:
            other[name] = value if isinstance(value, int) else text(value)
    out[schema.OTHER] = orjson.dumps(other, option=orjson.OPT_SORT_KEYS).decode() if other else ""
    return out


def extract(store: Store, first: int, last: int) -> dict[str, list[Row]]:
    """The rows of every report kind for heights first..last, in chain order."""
    check_range(store, first, last)
    rows: dict[str, list[Row]] = {kind: [] for kind in schema.KINDS}
    for found in walk(store, first, last):
        kind = schema.KIND_OF_EVENT.get(found.event.kind)
        if kind is not None:
            rows[kind].append(row(kind, found))
    return rows
