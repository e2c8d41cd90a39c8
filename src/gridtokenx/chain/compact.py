"""Compact blocks: a block as its header, its transactions' ids and its evidence.

Every node already holds most of a proposal's transactions: they reached its mempool by
gossip before the proposer put them in a block. Sending them again inside the proposal and
again inside the certified block was most of what a height cost on the wire (1,000
transactions: about 150 KB per message per peer). A compact block carries 32 bytes per
transaction instead; the receiver puts the block back together from its mempool and a small
cache of recent transactions (`node.compact_blocks`) and asks the peer that sent it for the
rest.

The rebuilt bytes are the block's bytes: the encoding is canonical (`wire.codec`), so
`encode(Block(header, txs, evidence))` is what the proposer encoded, and the block id a
proposal's signature and a certificate's precommits cover is computed from them. A
compact block whose transactions are not the ones the proposer signed therefore fails the
same signature check a whole one would. Nothing about consensus changes: the core only ever
sees whole blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from gridtokenx.chain.blocks import MAX_BLOCK_TXS, Block, Header, tx_ids
from gridtokenx.chain.blocks import decode as decode_block
from gridtokenx.wire import tx
from gridtokenx.wire.votes import Commit, Evidence, Proposal, Vote

ID_SIZE: Final = 32


class CompactBlock(msgspec.Struct, frozen=True, array_like=True):
    """`[header, tx ids, evidence]`: a block with `tx.hash_of` of each transaction in its
    place (the id covers the signature, so it names exactly one encoding)."""

    header: Header
    tx_ids: tuple[bytes, ...]
    evidence: tuple[Evidence, ...] = ()

    def check(self) -> None:
        """Raises ValueError for a shape no honest node sends (before any lookup)."""
        if len(self.tx_ids) > MAX_BLOCK_TXS:
            raise ValueError(f"{len(self.tx_ids)} transactions exceed {MAX_BLOCK_TXS}")
        if any(len(i) != ID_SIZE for i in self.tx_ids):
            raise ValueError("a transaction id is not 32 bytes")


class CompactProposal(msgspec.Struct, frozen=True, array_like=True):
    """A `Proposal` with its block compact: what gossip kind PROPOSAL carries. The signature
    is the proposal's own, over the whole block's id."""

    height: int
    round: int
    block: CompactBlock
    valid_round: int
    proposer: bytes
    signature: bytes

    def whole(self, block: bytes) -> Proposal:
        return Proposal(self.height, self.round, block, self.valid_round, self.proposer,
                        self.signature)  # fmt: skip


class CompactCommit(msgspec.Struct, frozen=True, array_like=True):
    """A `Commit` with its block compact: what gossip kind COMMIT carries."""

    height: int
    block: CompactBlock
    certificate: tuple[Vote, ...]

    def whole(self, block: bytes) -> Commit:
        return Commit(self.height, block, self.certificate)


Compact = CompactProposal | CompactCommit
Lookup = Callable[[bytes], bytes | None]
"""A transaction's canonical bytes by its id, or None when this node does not hold it:
only bytes whose id (`tx.hash_of`) is that id."""


TxIds = Callable[[Block], Sequence[bytes]]
"""A block's transaction ids (`chain.blocks.tx_ids`), or a node's memory of them."""


def compact(raw: bytes, ids: TxIds = tx_ids) -> tuple[CompactBlock, tuple[bytes, ...]]:
    """A block's compact form and its transactions (to remember them)."""
    block = decode_block(raw)
    return CompactBlock(block.header, tuple(ids(block)), block.evidence), block.txs


def compact_proposal(proposal: Proposal, ids: TxIds = tx_ids) -> CompactProposal:
    block, _ = compact(proposal.block, ids)
    return CompactProposal(proposal.height, proposal.round, block, proposal.valid_round,
                           proposal.proposer, proposal.signature)  # fmt: skip


def compact_commit(commit: Commit) -> CompactCommit:
    return CompactCommit(commit.height, compact(commit.block)[0], commit.certificate)


def missing(block: CompactBlock, lookup: Lookup) -> list[bytes]:
    """The ids this node does not hold, in block order, without repeats."""
    return list(dict.fromkeys(i for i in block.tx_ids if lookup(i) is None))


def gather(block: CompactBlock, lookup: Lookup) -> tuple[bytes, ...] | None:
    """The block's transactions, or None while one is missing. Each hashes to the id it
    was found by (a node's `Lookup` holds transactions by the ids it computed), so the
    block's ids need not be hashed again (`Application.keep_ids`)."""
    txs: list[bytes] = []
    for tx_id in block.tx_ids:
        raw = lookup(tx_id)
        if raw is None:
            return None
        txs.append(raw)
    return tuple(txs)


def whole(block: CompactBlock, txs: tuple[bytes, ...]) -> Block:
    return Block(block.header, txs, block.evidence)


def assemble(block: CompactBlock, lookup: Lookup) -> bytes | None:
    """The whole block's bytes, or None while a transaction is missing."""
    txs = gather(block, lookup)
    return None if txs is None else whole(block, txs).encode()


def matches(asked: Sequence[bytes], answer: Sequence[bytes]) -> bool:
    """Whether `answer` is exactly the transactions `asked` names, in order."""
    return len(asked) == len(answer) and all(
        tx.hash_of(raw) == tx_id for tx_id, raw in zip(asked, answer, strict=True)
    )
