"""The validator set as ledger state: who votes, with what power, who is jailed, and which
set signs which height.

Consensus reads the set for a height from here, so every validator agrees on it. A change
(a jailing now; governance adds, removes and unjails later) is decided in the block at
height H and takes effect at height H + 2: the block at H + 1 is already being agreed by
the old set while H is executed, so the first height a new set can sign is H + 2.

Equivocation evidence (two signed votes by one validator for different blocks at the same
height, round and type) jails the validator: it stops counting from the activation height
until governance restores it.
"""

from __future__ import annotations

from typing import Final

import msgspec

from gridtokenx import codec, crypto
from gridtokenx.chain import chain_info
from gridtokenx.consensus.messages import Evidence
from gridtokenx.consensus.validators import Validator, ValidatorSet
from gridtokenx.context import BlockContext, Event
from gridtokenx.state import Overlay, State

SET_KEY: Final = b"vset"
ACTIVATION_DELAY: Final = 2
EVIDENCE_MAX_AGE: Final = 10_000  # heights after which evidence is too old to act on


class Member(msgspec.Struct, frozen=True, array_like=True):
    address: bytes
    public_key: bytes
    power: int
    jailed: bool = False


class Sets(msgspec.Struct, frozen=True, array_like=True):
    """The set in force and, if a change was decided, the next one and its first height."""

    current: tuple[Member, ...]
    next: tuple[Member, ...] = ()
    next_from: int = 0  # 0: no change pending


class InvalidEvidence(ValueError):
    pass


def install(view: Overlay, members: list[tuple[bytes, int]]) -> None:
    """The genesis set from (public key, power) pairs; zero power means not a validator."""
    chosen = sorted(
        (Member(crypto.address_of(pk), pk, power) for pk, power in members if power > 0),
        key=lambda m: m.address,
    )
    view.put(SET_KEY, Sets(tuple(chosen)))


def _sets(view: State | Overlay) -> Sets:
    sets = view.get(SET_KEY, Sets)
    if sets is None:
        raise RuntimeError("state has no validator set")
    return sets


def for_height(view: State | Overlay, height: int) -> ValidatorSet:
    """The set that signs `height` (callers ask for the next height after each commit)."""
    sets = _sets(view)
    members = sets.next if sets.next_from and height >= sets.next_from else sets.current
    chosen = [Validator(m.address, m.public_key, m.power) for m in members if not m.jailed]
    return ValidatorSet(tuple(sorted(chosen, key=lambda v: v.address)))


def set_hash(validators: ValidatorSet) -> bytes:
    """Committed in every block header: which set the block was signed by."""
    return crypto.tagged_hash(
        b"GridTokenX/validator-set",
        codec.encode([(v.address, v.public_key, v.power) for v in validators.validators]),
    )


def apply_evidence(view: Overlay, ctx: BlockContext, evidence: Evidence) -> list[Event]:
    """Check equivocation evidence and jail the validator from height + ACTIVATION_DELAY."""
    a, b = evidence.first, evidence.second
    if a.validator != b.validator:
        raise InvalidEvidence("the two votes are by different validators")
    if (a.height, a.round, a.type) != (b.height, b.round, b.type):
        raise InvalidEvidence("the votes are not for the same height, round and type")
    if a.block_id == b.block_id:
        raise InvalidEvidence("the votes agree: that is not equivocation")
    if not 0 < a.height <= ctx.height or ctx.height - a.height > EVIDENCE_MAX_AGE:
        raise InvalidEvidence("evidence is from the future or too old")
    sets = _sets(view)
    pending = sets.next if sets.next_from else sets.current
    member = next((m for m in sets.current if m.address == a.validator), None)
    if member is None:
        raise InvalidEvidence("the signer is not a validator")
    if any(m.address == a.validator and m.jailed for m in pending):
        raise InvalidEvidence("the validator is already jailed")
    chain_id = chain_info(view).chain_id
    for vote in (a, b):
        if not crypto.verify(member.public_key, vote.signing_bytes(chain_id), vote.signature):
            raise InvalidEvidence("a vote's signature does not verify")
    jailed = tuple(
        msgspec.structs.replace(m, jailed=True) if m.address == a.validator else m for m in pending
    )
    if not any(not m.jailed for m in jailed):
        raise InvalidEvidence("jailing would leave no validator")
    starts = ctx.height + ACTIVATION_DELAY
    view.put(SET_KEY, msgspec.structs.replace(sets, next=jailed, next_from=starts))
    return [Event("validator_jailed", {"validator": a.validator, "from_height": starts})]


def end_block(view: Overlay, ctx: BlockContext) -> None:
    """Promote a decided change when its first height is the next one."""
    sets = _sets(view)
    if sets.next_from and sets.next_from <= ctx.height + 1:
        view.put(SET_KEY, Sets(sets.next))
