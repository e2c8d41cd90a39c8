"""The validator set as ledger state: who votes, with what power, who is jailed, and which
set signs which height.

Consensus reads the set for a height from here, so every validator agrees on it. A change
(jailing by evidence; adding, re-weighting, removing and unjailing by a passed governance
proposal, never by one authority's transaction) is decided in the block at height H and
takes effect at height H + 2: the block at H + 1 is already being agreed by the old set
while H is executed, so the first height a new set can sign is H + 2.

Because every decision waits two heights, up to two stages can be pending at once: one
decided in the previous block (in force from H + 1) and one decided in this block (from
H + 2). A decision always applies on top of the newest stage, so nothing decided earlier
is lost or delayed, and decisions in the same block merge into one stage.

Equivocation evidence (two signed votes by one validator for different blocks at the same
height, round and type) jails the validator: it stops counting from the activation height
until a governance vote unjails it.
"""

from __future__ import annotations

import functools
from typing import Final

import msgspec
import nacl.bindings

from gridtokenx.ledger import registry
from gridtokenx.ledger.chain_info import chain_info
from gridtokenx.ledger.context import BlockContext, Event
from gridtokenx.ledger.state import Overlay, Records, State
from gridtokenx.wire import codec, crypto, errors
from gridtokenx.wire.tx import MAX_TOTAL_POWER
from gridtokenx.wire.validators import Validator, ValidatorSet
from gridtokenx.wire.votes import Evidence

SET_KEY: Final = b"vset"
ACTIVATION_DELAY: Final = 2
EVIDENCE_MAX_AGE: Final = 10_000  # heights after which evidence is too old to act on


class Member(msgspec.Struct, frozen=True, array_like=True):
    address: bytes
    public_key: bytes
    power: int
    jailed: bool = False
    accountable_from: int = 0
    """First height of the current term (joining or unjailing). Evidence from before it is
    refused: otherwise the offence that was pardoned could be replayed to jail it again."""


class Stage(msgspec.Struct, frozen=True, array_like=True):
    """The whole set as it will be from `from_height` on (not a diff: lookups stay O(1))."""

    from_height: int
    members: tuple[Member, ...]


class Sets(msgspec.Struct, frozen=True, array_like=True):
    """The set in force and the decided changes, oldest first (at most ACTIVATION_DELAY)."""

    current: tuple[Member, ...]
    pending: tuple[Stage, ...] = ()


class InvalidEvidence(ValueError):
    pass


def install(view: Overlay, members: list[tuple[bytes, int]]) -> None:
    """The genesis set from (public key, power) pairs; zero power means not a validator."""
    chosen = sorted(
        (Member(crypto.address_of(pk), pk, power) for pk, power in members if power > 0),
        key=lambda m: m.address,
    )
    view.put(SET_KEY, Sets(tuple(chosen)))


def _sets(view: Records) -> Sets:
    sets = view.get(SET_KEY, Sets)
    if sets is None:
        raise RuntimeError("state has no validator set")
    return sets


def validator_sets(view: State | Overlay) -> Sets:
    """The set in force and the decided changes waiting for their activation height."""
    return _sets(view)


def _newest(sets: Sets) -> tuple[Member, ...]:
    """The set every stage decided so far adds up to: new decisions apply on top of it."""
    return sets.pending[-1].members if sets.pending else sets.current


def _decide(view: Overlay, ctx: BlockContext, members: tuple[Member, ...]) -> int:
    """Record `members` as the set from ctx.height + ACTIVATION_DELAY; return that height.

    A stage already decided in this block is replaced (its changes are in `members`,
    which was built on top of it); a stage decided in the previous block stays and takes
    effect a height earlier."""
    sets = _sets(view)
    starts = ctx.height + ACTIVATION_DELAY
    kept = tuple(s for s in sets.pending if s.from_height < starts)
    ordered = tuple(sorted(members, key=lambda m: m.address))
    view.put(SET_KEY, Sets(sets.current, (*kept, Stage(starts, ordered))))
    return starts


def for_height(view: Records, height: int) -> ValidatorSet:
    """The set that signs `height` (callers ask for the next height after each commit; a
    node's store answers too, for the heights its committed state has decided)."""
    sets = _sets(view)
    members = sets.current
    for stage in sets.pending:
        if height >= stage.from_height:
            members = stage.members
    return _validator_set(members)


@functools.lru_cache(maxsize=16)
def _validator_set(members: tuple[Member, ...]) -> ValidatorSet:
    """Built once per distinct set: building precomputes the proposer rotation, which has
    total power / gcd(powers) entries, and consensus asks for the set several times per
    height. Members are frozen, so a cached set can never go stale."""
    chosen = [Validator(m.address, m.public_key, m.power) for m in members if not m.jailed]
    return ValidatorSet(tuple(sorted(chosen, key=lambda v: v.address)))


@functools.lru_cache(maxsize=16)
def set_hash(validators: ValidatorSet) -> bytes:
    """Committed in every block header: which set the block was signed by. Remembered
    for the last few sets (a set is frozen, and equal sets hash alike): a node asks it
    three times a height, building or checking the block and recording the history of
    sets after the commit, each an encoding and a SHA-256 of the whole set."""
    return crypto.tagged_hash(
        b"GridTokenX/validator-set",
        codec.encode([(v.address, v.public_key, v.power) for v in validators.validators]),
    )


def _has_active(members: tuple[Member, ...]) -> bool:
    return any(not m.jailed for m in members)


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
    newest = _newest(sets)
    member = next((m for m in sets.current if m.address == a.validator), None)
    if member is None:
        raise InvalidEvidence("the signer is not a validator")
    if not any(m.address == a.validator for m in newest):
        raise InvalidEvidence("the validator is already leaving the set")
    if any(m.address == a.validator and m.jailed for m in newest):
        raise InvalidEvidence("the validator is already jailed")
    if any(m.address == a.validator and a.height < m.accountable_from for m in newest):
        raise InvalidEvidence("the votes are from before the validator's current term")
    chain_id = chain_info(view).chain_id
    for vote in (a, b):
        if not crypto.verify(member.public_key, vote.signing_bytes(chain_id), vote.signature):
            raise InvalidEvidence("a vote's signature does not verify")
    jailed = tuple(
        msgspec.structs.replace(m, jailed=True) if m.address == a.validator else m for m in newest
    )
    if not _has_active(jailed):
        raise InvalidEvidence("jailing would leave no validator")
    starts = _decide(view, ctx, jailed)
    return [Event("validator_jailed", {"validator": a.validator, "from_height": starts})]


def end_block(view: Overlay, ctx: BlockContext) -> None:
    """Promote the decided stages whose first height is the next one (or earlier)."""
    sets = _sets(view)
    due = [s for s in sets.pending if s.from_height <= ctx.height + 1]
    if due:
        later = tuple(s for s in sets.pending if s.from_height > ctx.height + 1)
        view.put(SET_KEY, Sets(due[-1].members, later))


# --- decisions of governance ----------------------------------------------------------------
# Only a passed proposal calls these (governance.py), at submission on a throw-away fork
# (so a change that could not execute is refused at once) and at execution. Each raises the
# Rejection of the first rule the change breaks and then changes nothing.


def _require_valid_key(public_key: bytes) -> None:
    """A key consensus could never verify a vote under would be a validator that can only
    ever count as absent; small-order and non-canonical points are refused too."""
    if len(public_key) != crypto.PUBLIC_KEY_SIZE or not (
        nacl.bindings.crypto_core_ed25519_is_valid_point(public_key)
    ):
        raise errors.InvalidValidatorKey("validator key is not a valid Ed25519 public key")


def _require_not_in_use(view: Overlay, address: bytes) -> None:
    """A validator key is a node key: reusing a participant's or meter's key would let one
    leaked secret both trade (or mint) and vote. Authorities' keys are allowed: they are the
    operators this chain is run by."""
    if view.get(registry.participant_key(address), registry.Participant) is not None:
        raise errors.ValidatorKeyInUse("validator key belongs to a registered participant")
    if view.get(registry.meter_key(address), registry.Meter) is not None:
        raise errors.ValidatorKeyInUse("validator key belongs to a registered meter")


def change_validator(
    view: Overlay, ctx: BlockContext, public_key: bytes, power: int
) -> list[Event]:
    """Add a validator, change its power, or remove it (power 0), from H + ACTIVATION_DELAY."""
    _require_valid_key(public_key)
    if not 0 <= power <= MAX_TOTAL_POWER:
        raise errors.PowerOutOfRange(f"power must be between 0 and {MAX_TOTAL_POWER}")
    address = crypto.address_of(public_key)
    newest = _newest(_sets(view))
    member = next((m for m in newest if m.address == address), None)
    if member is None and power == 0:
        raise errors.UnknownValidator("cannot remove a key that is not in the validator set")
    if member is not None and member.power == power:
        raise errors.ValidatorUnchanged(f"the validator already has power {power}")
    if member is None:
        _require_not_in_use(view, address)
    others = tuple(m for m in newest if m.address != address)
    starts = ctx.height + ACTIVATION_DELAY
    if power == 0:
        changed = others
    elif member is None:
        changed = (*others, Member(address, public_key, power, False, starts))
    else:
        changed = (*others, msgspec.structs.replace(member, power=power))
    total = sum(m.power for m in changed)
    if total > MAX_TOTAL_POWER and total > sum(m.power for m in newest):
        raise errors.TotalPowerTooHigh(f"total voting power would exceed {MAX_TOTAL_POWER}")
    if not _has_active(changed):
        raise errors.NoActiveValidator("the change would leave no validator that is not jailed")
    _decide(view, ctx, changed)
    if member is None:
        kind, attrs = "validator_added", {"power": power}
    elif power == 0:
        kind, attrs = "validator_removed", {}
    else:
        kind, attrs = "validator_power_changed", {"power": power, "previous": member.power}
    return [Event(kind, {"validator": address, **attrs, "from_height": starts})]


def unjail(view: Overlay, ctx: BlockContext, address: bytes) -> list[Event]:
    """Let a jailed validator count again from H + ACTIVATION_DELAY, at its old power."""
    newest = _newest(_sets(view))
    member = next((m for m in newest if m.address == address), None)
    if member is None:
        raise errors.UnknownValidator("address is not in the validator set")
    if not member.jailed:
        raise errors.ValidatorNotJailed("the validator is not jailed")
    starts = ctx.height + ACTIVATION_DELAY
    term = msgspec.structs.replace(member, jailed=False, accountable_from=starts)
    _decide(view, ctx, tuple(term if m is member else m for m in newest))
    return [Event("validator_unjailed", {"validator": address, "from_height": starts})]


RECORDS: Final[tuple[type[msgspec.Struct], ...]] = (Sets,)
"""The record types this context stores (`transition.RECORD_TYPES` gathers every context's)."""
