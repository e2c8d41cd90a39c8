"""Blocks: the header every validator signs off on, and executing a block against the state.

A block's header commits to the transactions (an RFC 6962 Merkle root of their encodings)
and to the state after executing them (the state root), so validators that precommit a
block agree on the resulting state too, and a syncing node can check a snapshot. A block is
valid only if every transaction in it applies: the proposer includes only transactions
that apply in order, and a validator that finds one that does not, or a different state
root, prevotes nil.

Execution is trial-then-keep: `propose` and `validate` execute inside `State.begin()`, keep
the net writes (`Executed`) and always roll back; `commit` of the same block replays those
writes, so a validator executes each block once, and a block it never tried (block sync)
is executed in full. Signatures that the mempool verified on admission are not verified
again (`verified`: transaction hashes, which cover the signature).
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from gridtokenx.ledger import transition, validator_set
from gridtokenx.ledger.context import BlockContext, Event
from gridtokenx.ledger.state import State, Trial
from gridtokenx.wire import codec, crypto, errors, merkle, tx
from gridtokenx.wire.votes import Evidence

BLOCK_DOMAIN: Final = b"GridTokenX/block/v1"
MAX_BLOCK_TXS: Final = 10_000
MAX_CLOCK_DRIFT: Final = 5  # seconds a proposal's time may differ from a validator's clock


class Header(msgspec.Struct, frozen=True, array_like=True):
    chain_id: str
    height: int
    time: int  # unix seconds, the only clock the ledger sees; never decreases
    prev_hash: bytes  # 32 zero bytes for height 1
    proposer: bytes  # validator address
    tx_root: bytes
    state_root: bytes  # after executing this block's transactions and end of block
    validators_hash: bytes
    evidence_hash: bytes


class Block(msgspec.Struct, frozen=True, array_like=True):
    header: Header
    txs: tuple[bytes, ...]  # canonical encodings of signed transactions
    evidence: tuple[Evidence, ...] = ()  # equivocations to punish, applied before the txs

    def encode(self) -> bytes:
        return codec.encode(self)

    @property
    def hash(self) -> bytes:
        return crypto.tagged_hash(BLOCK_DOMAIN, codec.encode(self.header))


_decoder: Final = msgspec.msgpack.Decoder(Block)


def decode(data: bytes) -> Block:
    return _decoder.decode(data)


class InvalidBlock(ValueError):
    pass


@dataclass(frozen=True)
class Receipt:
    tx_hash: bytes
    events: list[Event]


_events: Final = msgspec.msgpack.Decoder(list[tuple[str, dict[str, Any]]])


def encode_events(events: list[Event]) -> bytes:
    return codec.encode(events)


def decode_events(data: bytes) -> list[Event]:
    """Typed loosely: msgspec cannot decode a union of str and bytes, but MessagePack keeps
    them apart (str vs bin), so the untyped values come back as they went in."""
    return [Event(kind, attrs) for kind, attrs in _events.decode(data)]


@dataclass(frozen=True)
class StoredReceipt:
    """Where a committed transaction is and what it did."""

    height: int
    index: int
    events: list[Event]


def tx_root(txs: tuple[bytes, ...]) -> bytes:
    return merkle.merkle_root(list(txs))


def evidence_root(evidence: tuple[Evidence, ...]) -> bytes:
    return merkle.merkle_root([codec.encode(e) for e in evidence])


def _apply_evidence(state: State, ctx: BlockContext, evidence: Evidence) -> list[Event]:
    view = state.overlay()
    events = validator_set.apply_evidence(view, ctx, evidence)
    view.commit()
    return events


@dataclass(frozen=True)
class Executed:
    """A block executed on trial and rolled back, kept so that its commit can replay the
    writes instead of executing every transaction a second time."""

    block_hash: bytes
    height: int
    writes: Trial
    receipts: list[Receipt]
    end_events: list[Event]
    root: bytes


def _execute(
    state: State, header: Header, txs: tuple[bytes, ...], evidence: tuple[Evidence, ...],
    verified: Container[bytes],
) -> tuple[list[Receipt], list[Event]]:  # fmt: skip
    ctx = BlockContext(header.height, header.time)
    punished: list[Event] = []
    for index, item in enumerate(evidence):
        try:
            punished += _apply_evidence(state, ctx, item)
        except validator_set.InvalidEvidence as exc:
            raise InvalidBlock(f"evidence {index} is invalid: {exc}") from None
    receipts = []
    for index, raw in enumerate(txs):
        try:
            receipts.append(_apply(state, ctx, raw, verified))
        except (errors.Rejection, ValueError) as exc:
            raise InvalidBlock(f"transaction {index} does not apply: {exc}") from None
    return receipts, punished + transition.end_block(state, ctx)


def _apply(state: State, ctx: BlockContext, raw: bytes, verified: Container[bytes]) -> Receipt:
    """One transaction of a block; its signature is checked unless `verified` holds it."""
    tx_hash = tx.hash_of(raw)
    events = transition.apply(state, tx.decode(raw), ctx, check_signature=tx_hash not in verified)
    return Receipt(tx_hash, events)


def propose(
    state: State,
    chain_id: str,
    height: int,
    time: int,
    prev_hash: bytes,
    proposer: bytes,
    validators_hash: bytes,
    candidates: list[bytes],
    evidence: list[Evidence] | None = None,
    verified: Container[bytes] = (),
    stop: Callable[[], bool] | None = None,
    skipped: list[tuple[bytes, str]] | None = None,
) -> tuple[Block, Executed]:
    """Build a block from candidate transactions: keep those that apply, in order, and
    compute the resulting state root. The state is left as it was; the execution is
    returned for the commit (`verified`: hashes whose signatures were checked already).
    `stop` is asked every 32 candidates whether the block is big enough (a time budget:
    which transactions a proposer includes is its choice, not part of consensus).
    `skipped` collects (hash, rejection code) of candidates that did not apply."""
    ctx = BlockContext(height, time)
    state.begin()
    try:
        proofs = []
        punished: list[Event] = []
        for item in evidence or []:
            try:
                punished += _apply_evidence(state, ctx, item)
            except validator_set.InvalidEvidence:
                continue  # already punished, or not provable: leave it out
            proofs.append(item)
        included: list[bytes] = []
        receipts: list[Receipt] = []

        def attempt(raws: list[bytes]) -> list[tuple[bytes, bytes, str]]:
            """Apply what applies, in order; return the rest as (raw, hash, code)."""
            failed = []
            for number, raw in enumerate(raws):
                if stop is not None and number % 32 == 31 and stop():
                    break
                try:
                    receipt = _apply(state, ctx, raw, verified)
                except (errors.Rejection, ValueError) as exc:
                    failed.append((raw, tx.hash_of(raw), getattr(exc, "code", "MALFORMED")))
                    continue
                included.append(raw)
                receipts.append(receipt)
            return failed

        # A second pass gives a transaction that needs another sender's from later in
        # the same block (a licence for a participant registered in it) its chance.
        failed = attempt(candidates[:MAX_BLOCK_TXS])
        if failed and len(included) < MAX_BLOCK_TXS:
            failed = attempt([raw for raw, _, _ in failed][: MAX_BLOCK_TXS - len(included)])
        if skipped is not None:  # the mempool drops what keeps failing
            skipped.extend((tx_hash, code) for _, tx_hash, code in failed)
        end_events = punished + transition.end_block(state, ctx)
        root = state.root()
        writes = state.trial()
    finally:
        state.rollback()
    txs = tuple(included)
    header = Header(
        chain_id, height, time, prev_hash, proposer, tx_root(txs), root, validators_hash,
        evidence_root(tuple(proofs)),
    )  # fmt: skip
    block = Block(header, txs, tuple(proofs))
    return block, Executed(block.hash, height, writes, receipts, end_events, root)


def check_header(
    block: Block, chain_id: str, height: int, prev_hash: bytes, prev_time: int
) -> None:
    h = block.header
    if h.chain_id != chain_id:
        raise InvalidBlock(f"block is for chain {h.chain_id!r}")
    if h.height != height:
        raise InvalidBlock(f"expected height {height}, got {h.height}")
    if h.prev_hash != prev_hash:
        raise InvalidBlock("block does not extend the last committed block")
    if h.time < prev_time:
        raise InvalidBlock("block time must not go back")
    if h.tx_root != tx_root(block.txs):
        raise InvalidBlock("transaction root does not match the transactions")
    if h.evidence_hash != evidence_root(block.evidence):
        raise InvalidBlock("evidence hash does not match the evidence")
    if len(block.txs) > MAX_BLOCK_TXS:
        raise InvalidBlock("too many transactions")


def trial(state: State, block: Block, verified: Container[bytes] = ()) -> Executed:
    """Execute the block and roll back, keeping what it did."""
    state.begin()
    try:
        receipts, end_events = _execute(state, block.header, block.txs, block.evidence, verified)
        root = state.root()
        writes = state.trial()
    finally:
        state.rollback()
    return Executed(block.hash, block.header.height, writes, receipts, end_events, root)


def check_time(block_time: int, now: int, prev_time: int, drift: int = MAX_CLOCK_DRIFT) -> None:
    """A proposal's time against this validator's clock (unix seconds): within
    `MAX_CLOCK_DRIFT` of `now`, or equal to the previous block's time (a chain whose time is
    slightly ahead of this clock waits for it rather than running further ahead).

    Honest validators with clocks within the drift accept each other's blocks; a proposer
    cannot backdate a block into a market interval whose gate has closed, nor run the
    chain's clock ahead. Certified blocks (sync) are not checked against the clock: the
    validators that signed them did. `drift` is MAX_CLOCK_DRIFT except on an accelerated
    demo devnet, where it scales with the clock's speed (chain seconds per wall second)."""
    if block_time > now + drift and block_time != prev_time:
        raise InvalidBlock(f"block time {block_time} is more than {drift} s ahead")
    if block_time < now - drift:
        raise InvalidBlock(f"block time {block_time} is more than {drift} s behind")


def validate(state: State, block: Block, verified: Container[bytes] = ()) -> Executed:
    """Execute the block on trial; raise InvalidBlock unless it reaches its state root."""
    executed = trial(state, block, verified)
    if executed.root != block.header.state_root:
        raise InvalidBlock("state root after execution differs from the header's")
    return executed


def commit(
    state: State,
    block: Block,
    verified: Container[bytes] = (),
    executed: Executed | None = None,
) -> tuple[list[Receipt], list[Event]]:
    """Execute a decided block for real, or replay its trial `executed` on this same state.
    A different state root here means this node has diverged from the validators that
    certified the block: it must stop, not continue."""
    state.begin()
    try:
        if executed is not None and executed.block_hash == block.hash:
            state.replay(executed.writes)
            receipts, end_events = executed.receipts, executed.end_events
        else:
            receipts, end_events = _execute(
                state, block.header, block.txs, block.evidence, verified
            )
        root = state.root()
        if root != block.header.state_root:
            raise InvalidBlock(f"computed {root.hex()}, certified {block.header.state_root.hex()}")
    except InvalidBlock as exc:
        state.rollback()
        raise RuntimeError(
            f"height {block.header.height}: this node disagrees with the certified block "
            f"({exc}); halting rather than continuing on a divergent state"
        ) from None
    state.release()
    return receipts, end_events
