"""Committed blocks as surveillance reads them: from a node's commit listener or its store.

The node hands its listeners (height, block bytes, receipts, end-of-block events); a
stopped node's store (or a checkpoint) holds the same per height. Both become a
`CommittedBlock`, so a follower started late replays the store and then listens, and gets
exactly the alerts a follower that ran from genesis got."""

from __future__ import annotations

from collections.abc import Sequence

from gridtokenx.chain import blocks
from gridtokenx.chain.blocks import Receipt
from gridtokenx.ledger.context import Event
from gridtokenx.ledger.market import queries
from gridtokenx.ledger.state import State
from gridtokenx.storage.store import Store
from gridtokenx.surveillance.tape import CommittedBlock, CommittedTx, TradeOrders

__all__ = ["CommittedBlock", "from_commit", "from_store", "trade_orders"]
from gridtokenx.wire import tx


def from_commit(
    height: int,
    block: bytes,
    receipts: list[Receipt],
    end_events: list[Event],
    signed: Sequence[tx.SignedTransaction] | None = None,
) -> CommittedBlock:
    """`signed`: the block's transactions as the node decoded them to execute it
    (`Application.committed_txs`), so that a follower on a node does not decode every
    transaction a second time; None decodes them here."""
    decoded = blocks.decode(block)
    if signed is None or len(signed) != len(decoded.txs):
        signed = [tx.decode(raw) for raw in decoded.txs]
    txs = []
    for stx, receipt in zip(signed, receipts, strict=True):
        txs.append(CommittedTx(receipt.tx_hash, stx.tx.sender_address, stx.tx.body,
                               receipt.events))  # fmt: skip
    return CommittedBlock(height, decoded.header.time, decoded.hash, txs, end_events)


def from_store(store: Store, height: int) -> CommittedBlock:
    """One stored height; a height stored without receipts is an error, never skipped."""
    stored = store.block(height)
    end = store.block_events(height)
    if stored is None or end is None:
        raise LookupError(f"the store holds no complete block at height {height}")
    decoded = blocks.decode(stored[0])
    receipts = []
    for raw in decoded.txs:
        tx_hash = tx.hash_of(raw)
        found = store.receipt(tx_hash)
        if found is None:
            raise LookupError(f"the receipt of tx {tx_hash.hex()} at height {height} is lost")
        receipts.append(Receipt(tx_hash, found.events))
    return from_commit(height, stored[0], receipts, end)


def trade_orders(state: State) -> TradeOrders:
    """Order ids of a trade from the market's records (they never change once written)."""

    def lookup(trade_id: int) -> tuple[int, int] | None:
        found = queries.trade(state, trade_id)
        return None if found is None else (found.buy_order, found.sell_order)

    return lookup
