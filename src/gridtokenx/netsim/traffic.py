"""What the simulated network carries, sized by the real encodings.

Message sizes come from encoding real signed transactions, blocks, votes and commits
(`wire`, `chain.blocks`), so the bandwidth the simulator charges is the bandwidth the node
would use. Proposals and certified blocks travel compact, as the node sends them
(`chain.compact`: the header and a 32-byte id per transaction, the transactions having
come on their own topic already); the whole certified block is kept for comparison.
The transaction mix is a market day's: a reading per meter per interval dominates, then
orders, their cancels and amends, transfers, and the distributors' status reports.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Final

from gridtokenx.chain import compact
from gridtokenx.chain.blocks import Block, Header
from gridtokenx.wire import codec, crypto, tx
from gridtokenx.wire.votes import Commit, Proposal, Vote, VoteType

CHAIN_ID: Final = "gridtokenx-netsim"
MIX: Final = (
    ("meter_reading", 0.55),
    ("place_order", 0.30),
    ("cancel_order", 0.05),
    ("amend_order", 0.03),
    ("transfer", 0.05),
    ("distribution_status", 0.02),
)
"""Share of each transaction kind in the market-day mix."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """Bytes of each simulated message (the gossip payload, before framing)."""

    block_txs: int
    proposal: int  # a compact proposal: the header and the transactions' ids
    vote: int
    commit: int  # the compact certified block: what every node receives
    whole_commit: int  # the certified block with its transactions, as sent before
    grid: int  # one grid-status transaction, as a batch of one
    tx_batch: int
    tx_batch_txs: int


def _samples() -> dict[str, bytes]:
    key = crypto.PrivateKey.from_dev_label("netsim/sample")
    to = crypto.PrivateKey.from_dev_label("netsim/to").address
    t0 = 1_767_225_600
    bodies: dict[str, tx.Body] = {
        "meter_reading": tx.MeterReading(t0, 123_456_789, 98_765_432),
        "place_order": tx.PlaceOrder(tx.Side.BUY, "BKK", t0 + 3600, 1_000, 450),
        "cancel_order": tx.CancelOrder(1_234_567),
        "amend_order": tx.AmendOrder(1_234_567, 2_000, 455),
        "transfer": tx.Transfer(tx.Asset.THB, to, 150_000),
        "distribution_status": tx.DistributionStatus(t0, "BKK", 4_200_000, 350_000),
    }
    return {
        name: tx.make(key, CHAIN_ID, 1_000 + i, body).encode()
        for i, (name, body) in enumerate(bodies.items())
    }


def market_day_txs(count: int) -> tuple[bytes, ...]:
    """`count` encoded transactions in the mix's proportions (the sizes are exact; the
    contents repeat, which encoding sizes do not care about)."""
    samples = _samples()
    out: list[bytes] = []
    for name, share in MIX:
        out += [samples[name]] * round(count * share)
    return tuple((out + [samples["meter_reading"]] * count)[:count])


def grid_update() -> bytes:
    """EGAT's transmission status: frequency, the interconnectors and the zones."""
    key = crypto.PrivateKey.from_dev_label("netsim/egat")
    zones = ("BKK", "CEN", "NTH", "NE", "STH", "EST", "WST")
    links = tuple(tx.LinkStatus(a, b, 1_500_000, 250_000) for a, b in itertools.pairwise(zones))
    balances = tuple(tx.ZoneBalance(z, 3_000_000, 2_900_000) for z in zones)
    body = tx.TransmissionStatus(1_767_225_600, 50_010, links, balances)
    return codec.encode([tx.make(key, CHAIN_ID, 7, body).encode()])


def sizes(tps: int, block_interval_s: float, tx_batches_per_s: float, validators: int) -> Sizes:
    """Message sizes for `tps` transactions a second in blocks every `block_interval_s`."""
    block_txs = max(1, round(tps * block_interval_s))
    txs = market_day_txs(block_txs)
    key = crypto.PrivateKey.from_dev_label("netsim/validator")
    zero = bytes(32)
    header = Header(CHAIN_ID, 1_000_000, 1_767_225_600, zero, key.address, zero, zero, zero, zero)
    block = codec.encode(Block(header, txs))
    vote = Vote(1_000_000, 0, VoteType.PRECOMMIT, zero, key.address, bytes(64))
    quorum = validators * 2 // 3 + 1
    commit = Commit(1_000_000, block, (vote,) * quorum)
    proposal = Proposal(1_000_000, 0, block, -1, key.address, bytes(64))
    batch_txs = max(1, round(tps / tx_batches_per_s))
    return Sizes(
        block_txs=block_txs,
        proposal=len(codec.encode(compact.compact_proposal(proposal))),
        vote=len(codec.encode(vote)),
        commit=len(codec.encode(compact.compact_commit(commit))),
        whole_commit=len(codec.encode(commit)),
        grid=len(grid_update()),
        tx_batch=len(codec.encode(list(market_day_txs(batch_txs)))),
        tx_batch_txs=batch_txs,
    )
