"""Blocks: the header every validator signs off on, and executing a block against the state.

Heights are pipelined, as CometBFT does with its application hash: a header commits to the
transactions (an RFC 6962 Merkle root of their encodings) and to the state root **before**
them, the root after the previous height (`Header.state_root`; the genesis root at height
1). Validators therefore vote on a proposal after cheap checks only (`screen`: structure,
signatures, senders, nonces, fees, evidence) and execute it once, after it is decided
(`commit`). The next block's header carries the root that execution reached, so every
validator still agrees on every state: a node whose own root differs from the one a
certified block carries has diverged and halts before it signs anything at a later height.

A block may now hold a transaction that fails when it executes (the screen cannot run the
market's rules). It is recorded as failed, deterministically: its sender's nonce advances
and its fee is paid when the sender's THB covers it, its other effects are discarded, and
its receipt holds one `tx_failed` event with the ledger's code (`transition.apply_in_block`).
Signatures that the mempool verified on admission are not verified again (`verified`:
transaction hashes, which cover the signature).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from gridtokenx.ledger import accounts, chain_info, transition, validator_set
from gridtokenx.ledger.context import BlockContext, Event
from gridtokenx.ledger.state import State
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
    state_root: bytes  # after the previous height (the genesis state's at height 1)
    validators_hash: bytes
    evidence_hash: bytes


class Block(msgspec.Struct, frozen=True, array_like=True, dict=True):
    header: Header
    txs: tuple[bytes, ...]  # canonical encodings of signed transactions
    evidence: tuple[Evidence, ...] = ()  # equivocations to punish, applied before the txs

    def encode(self) -> bytes:
        return codec.encode(self)

    @functools.cached_property
    def hash(self) -> bytes:
        """Computed once per block (`dict=True` holds it; the header is frozen, so it
        cannot go stale): a node asks a block's hash several times a height (its screen,
        the ids it keeps, the commit), each an encoding of the header and a SHA-256."""
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


encode_events: Final[Callable[[list[Event]], bytes]] = codec.encode
"""A receipt's events as stored (the encoder's own method: one a committed transaction)."""


def decode_events(data: bytes) -> list[Event]:
    """Typed loosely: msgspec cannot decode a union of str and bytes, but MessagePack keeps
    them apart (str vs bin), so the untyped values come back as they went in."""
    return [Event(kind, attrs) for kind, attrs in _events.decode(data)]


def failure_of(events: list[Event]) -> str | None:
    """The ledger's code when a committed transaction failed (`transition.TX_FAILED`)."""
    for event in events:
        if event.kind == transition.TX_FAILED:
            return str(event.attrs["code"])
    return None


@dataclass(frozen=True)
class StoredReceipt:
    """Where a committed transaction is and what it did."""

    height: int
    index: int
    events: list[Event]

    @property
    def failed(self) -> str | None:
        """The ledger's code when the transaction failed as it executed, else None."""
        return failure_of(self.events)


def tx_ids(block: Block) -> tuple[bytes, ...]:
    """The ids of a block's transactions (`tx.hash_of`), in order. A node asks for them
    several times per block (its signatures, the screen, the compact form it announces,
    execution and receipts): `chain.application.Application.tx_ids` keeps them."""
    return tuple(tx.hash_of(raw) for raw in block.txs)


def tx_root(txs: tuple[bytes, ...]) -> bytes:
    return merkle.merkle_root(list(txs))


def evidence_root(evidence: tuple[Evidence, ...]) -> bytes:
    return merkle.merkle_root([codec.encode(e) for e in evidence])


def _apply_evidence(state: State, ctx: BlockContext, evidence: Evidence) -> list[Event]:
    view = state.overlay()
    events = validator_set.apply_evidence(view, ctx, evidence)
    view.commit()
    return events


# --- the cheap checks a vote rests on ------------------------------------------------------
Known = Callable[[bytes], tx.SignedTransaction | None] | None
"""Transactions this node decoded already, by hash (the mempool's): the hash covers the
bytes, so the object is the one decoding would give."""


class Screen:
    """What a block's transactions must satisfy before a validator votes for it, checked
    against the state before the block without running any transaction: each decodes, is
    for this chain, carries a good signature, comes from an existing account with its next
    nonce (counting the sender's earlier transactions in the block), and offers the
    minimum fee unless its sender is exempt. Together these make a transaction's envelope
    hold when it executes, so every transaction in a valid block consumes its nonce:
    whether it then succeeds only decides its effects, never whether it counts."""

    def __init__(
        self, state: State, ctx: BlockContext, verified: Container[bytes], known: Known = None
    ) -> None:
        self._view = state.overlay()  # read only: never committed
        self._ctx = ctx
        self._verified = verified
        self._known = known
        self._chain_id = chain_info.chain_info(self._view).chain_id
        self._min_fee = chain_info.params(self._view).min_fee_satang
        self._next: dict[bytes, int] = {}
        self.decoded: list[tx.SignedTransaction] = []
        self.ids: list[bytes] = []  # of those that passed, in order

    def admit(self, raw: bytes, tx_hash: bytes | None = None) -> str | None:
        """None and the transaction counted when it passes, else the ledger's code.
        `tx_hash`: its id, when the caller has it (`tx.hash_of(raw)`)."""
        if tx_hash is None:
            tx_hash = tx.hash_of(raw)
        stx = None if self._known is None else self._known(tx_hash)
        if stx is None:
            try:
                stx = tx.decode(raw)
            except ValueError as exc:
                return getattr(exc, "code", "MALFORMED")
        t = stx.tx
        if t.chain_id != self._chain_id:
            return errors.WrongChainId.code
        if tx_hash not in self._verified and not stx.signature_valid():
            return errors.InvalidSignature.code
        sender = t.sender_address
        expected = self._next.get(sender)
        if expected is None:
            account = accounts.get_account(self._view, sender)
            if account is None:
                return errors.UnknownSender.code
            expected = account.nonce
        if t.nonce != expected:
            return (errors.NonceReplayed if t.nonce < expected else errors.NonceGap).code
        if t.fee < self._min_fee and not transition.fee_exempt(
            self._view, self._ctx, sender, t.body
        ):
            return errors.FeeTooLow.code
        self._next[sender] = expected + 1
        self.decoded.append(stx)
        self.ids.append(tx_hash)
        return None


def _screen_evidence(
    state: State, ctx: BlockContext, evidence: Sequence[Evidence], strict: bool
) -> list[Evidence]:
    """The evidence that still proves something, tried in order and rolled back; with
    `strict` (a proposal to vote on) any that does not makes the block invalid."""
    if not evidence:
        return []
    kept: list[Evidence] = []
    state.begin()
    try:
        for index, item in enumerate(evidence):
            try:
                _apply_evidence(state, ctx, item)
            except validator_set.InvalidEvidence as exc:
                if strict:
                    raise InvalidBlock(f"evidence {index} is invalid: {exc}") from None
                continue
            kept.append(item)
    finally:
        state.rollback()
    return kept


def screen(
    state: State,
    block: Block,
    verified: Container[bytes] = (),
    known: Known = None,
    ids: Sequence[bytes] | None = None,
) -> list[tx.SignedTransaction]:
    """The checks a validator votes on (the state is the one before the block): its state
    root is this node's, then the evidence and every transaction pass (`Screen`). Returns
    the decoded transactions, for the commit. `ids`: the transactions' ids, when the
    caller has them (`tx_ids`). Raises InvalidBlock."""
    root = state.root()
    if block.header.state_root != root:
        raise InvalidBlock(
            f"state root {block.header.state_root.hex()} is not this node's {root.hex()}"
        )
    ctx = BlockContext(block.header.height, block.header.time)
    _screen_evidence(state, ctx, block.evidence, strict=True)
    checks = Screen(state, ctx, verified, known)
    hashes = tx_ids(block) if ids is None else ids
    for index, (raw, tx_hash) in enumerate(zip(block.txs, hashes, strict=True)):
        if (code := checks.admit(raw, tx_hash)) is not None:
            raise InvalidBlock(f"transaction {index} is refused: {code}")
    return checks.decoded


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
    known: Known = None,
    ids: list[bytes] | None = None,
    hashes: Sequence[bytes] | None = None,
) -> tuple[Block, list[tx.SignedTransaction]]:
    """Build a block from candidate transactions: those that pass the screen, in order,
    with the state root before them, and return it with them decoded (for the commit).
    Nothing is executed, so building costs the checks only. `stop` is asked every 32
    candidates whether the block is big enough (a time budget: which transactions a
    proposer includes is its choice, not part of consensus).
    `skipped` collects (hash, code) of candidates that did not pass, `ids` the ids of the
    block's transactions (`tx_ids`, without hashing them again); `hashes`: the candidates'
    ids, when the caller has them (the mempool's), so that none is hashed here."""
    ctx = BlockContext(height, time)
    proofs = _screen_evidence(state, ctx, evidence or [], strict=False)
    checks = Screen(state, ctx, verified, known)
    included: list[bytes] = []
    for number, raw in enumerate(candidates[:MAX_BLOCK_TXS]):
        if stop is not None and number % 32 == 31 and stop():
            break
        tx_hash = tx.hash_of(raw) if hashes is None else hashes[number]
        if (code := checks.admit(raw, tx_hash)) is None:
            included.append(raw)
        elif skipped is not None:  # the mempool drops what keeps failing
            skipped.append((tx_hash, code))
    txs = tuple(included)
    if ids is not None:
        ids += checks.ids
    header = Header(
        chain_id, height, time, prev_hash, proposer, tx_root(txs), state.root(),
        validators_hash, evidence_root(tuple(proofs)),
    )  # fmt: skip
    return Block(header, txs, tuple(proofs)), checks.decoded


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


def _execute(
    state: State, block: Block, verified: Container[bytes],
    decoded: Sequence[tx.SignedTransaction] | None, ids: Sequence[bytes] | None,
) -> tuple[list[Receipt], list[Event]]:  # fmt: skip
    header = block.header
    ctx = BlockContext(header.height, header.time)
    punished: list[Event] = []
    for index, item in enumerate(block.evidence):
        try:
            punished += _apply_evidence(state, ctx, item)
        except validator_set.InvalidEvidence as exc:
            raise InvalidBlock(f"evidence {index} is invalid: {exc}") from None
    if decoded is None or len(decoded) != len(block.txs):
        decoded = [tx.decode(raw) for raw in block.txs]
    transition.read_senders_ahead(state, decoded)
    receipts = []
    for tx_hash, stx in zip(tx_ids(block) if ids is None else ids, decoded, strict=True):
        events = transition.apply_in_block(state, stx, ctx, check_signature=tx_hash not in verified)
        receipts.append(Receipt(tx_hash, events))
    return receipts, punished + transition.end_block(state, ctx)


def commit(
    state: State,
    block: Block,
    verified: Container[bytes] = (),
    decoded: Sequence[tx.SignedTransaction] | None = None,
    ids: Sequence[bytes] | None = None,
) -> tuple[list[Receipt], list[Event]]:
    """Execute a decided block: first its state root against this node's (a difference
    means this node has diverged from the validators that certified the block: it must
    stop, not continue), then every transaction, recording failures (module docstring).
    `decoded`: the block's transactions as the screen decoded them, so each is decoded
    once; `ids` their ids (`tx_ids`), so each is hashed once. The state is left as it
    was when anything is wrong."""
    root = state.root()
    if block.header.state_root != root:
        raise RuntimeError(
            f"height {block.header.height}: this node disagrees with the certified block "
            f"(its state root is {root.hex()}, the block carries "
            f"{block.header.state_root.hex()}); halting rather than continuing on a "
            "divergent state"
        )
    state.begin()
    try:
        receipts, end_events = _execute(state, block, verified, decoded, ids)
        state.root()
    except (InvalidBlock, ValueError) as exc:
        state.rollback()
        raise RuntimeError(
            f"height {block.header.height}: the certified block does not execute here "
            f"({exc}); halting rather than continuing on a divergent state"
        ) from None
    except BaseException:
        state.rollback()
        raise
    state.release()
    return receipts, end_events
