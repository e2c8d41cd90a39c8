"""Following the validator set from genesis to a recent height without executing blocks,
the way a light client does, so a node that joins by state sync trusts a snapshot certified
by a set that governance has changed since genesis.

A node that joins knows only its genesis set. Every block header carries the hash of the
set that signed it (`validators_hash`), but not the set itself, and a set change is
decided by executing a governance proposal, which a joining node cannot do. So the serving
node sends, with its offer, a *hop* for every height at which the set changed: the first
block the new set signed, its commit certificate and the new set's members. The joiner
walks the hops from its genesis set and accepts hop i when

- the members hash to the block header's `validators_hash` (the block names its signers),
- the certificate carries precommits of more than two thirds of the new set's power (a
  valid commit of that block under that set), and
- validators of the set it already trusts, holding more than one third of that set's power,
  are among the signers: at least one of them is honest (fewer than a third of any set's
  power is faulty), so an honest validator of the trusted set vouches for the block and
  with it for the new set its header names.

The last rule is CometBFT's skipping verification (`VerifyCommitLightTrusting` with trust
level 1/3). Headers here do not carry the *next* set's hash, so there is no adjacent
verification to fall back on: a change that leaves less than a third of the old power among
the new set's signers in one step cannot be followed, and such a node block-syncs from
genesis, or its operator gives it a trusted recent block (`--trust-height/--trust-hash`).

A walk need not start at genesis (`walk`'s `anchor`): a node that trusts a block (its
operator's `--trust-hash`, or a restarting node's own last block) takes the set that block
names (`set_named`) and follows only the hops above it. A forged hop
needs the signatures of a third of a set the joiner already trusts. Like every light
client this trusts that the old sets' keys were not handed to an attacker after they
stopped validating (a long-range attack); CometBFT bounds that with a trusting period.
"""

from __future__ import annotations

from typing import Final

import msgspec

from gridtokenx.chain import blocks
from gridtokenx.consensus import core
from gridtokenx.ledger import validator_set
from gridtokenx.wire import crypto
from gridtokenx.wire.validators import Validator, ValidatorSet
from gridtokenx.wire.votes import Vote

MAX_HOPS: Final = 64  # set changes an offer may carry (each one a whole block)
_certificate: Final = msgspec.msgpack.Decoder(tuple[Vote, ...])


class Hop(msgspec.Struct, frozen=True, array_like=True):
    """The first block a new validator set signed, its commit certificate (the encoded
    votes, as stored) and the set's members as (address, public key, power)."""

    block: bytes
    certificate: bytes
    members: tuple[tuple[bytes, bytes, int], ...]


class Untrusted(ValueError):
    """A hop that does not follow from the set trusted before it (the message says why)."""


def set_of(members: tuple[tuple[bytes, bytes, int], ...]) -> ValidatorSet:
    """The set a hop names; raises `Untrusted` for members that do not make one."""
    if any(crypto.address_of(pk) != address for address, pk, _ in members):
        raise Untrusted("a member's address is not its public key's")
    try:
        return ValidatorSet(tuple(Validator(a, pk, power) for a, pk, power in members))
    except ValueError as exc:
        raise Untrusted(str(exc)) from None


def members_of(validators: ValidatorSet) -> tuple[tuple[bytes, bytes, int], ...]:
    return tuple((v.address, v.public_key, v.power) for v in validators.validators)


class Trusted:
    """The validator sets a walk of hops established: which set signs which height."""

    def __init__(self, first_set: ValidatorSet, first: int = 1) -> None:
        self.sets: list[tuple[int, ValidatorSet]] = [(first, first_set)]

    def for_height(self, height: int) -> ValidatorSet:
        """The set in force at `height` as far as the walk knows (the last hop at or below)."""
        found = self.sets[0][1]
        for start, validators in self.sets:
            if start <= height:
                found = validators
        return found

    def follow(self, chain_id: str, hop: Hop, upto: int) -> None:
        """Trust the hop's set from its block's height on; raises `Untrusted`."""
        try:
            header = blocks.decode(hop.block).header
            votes = _certificate.decode(hop.certificate)
        except msgspec.DecodeError:
            raise Untrusted("a hop does not decode") from None
        last, before = self.sets[-1]
        if header.chain_id != chain_id or not last < header.height <= upto:
            raise Untrusted(f"a hop at height {header.height} is out of order or range")
        new = set_of(hop.members)
        if validator_set.set_hash(new) != header.validators_hash:
            raise Untrusted(
                f"the set of the hop at {header.height} is not the one its header names"
            )
        if not core.check_commit(chain_id, new, header.height, hop.block, votes, crypto.verify):
            raise Untrusted(f"the hop at {header.height} has no valid certificate of its set")
        vouched = core.signed_power(chain_id, before, header.height, hop.block, votes,
                                    crypto.verify, strict=False) or 0  # fmt: skip
        if 3 * vouched <= before.total_power:
            raise Untrusted(f"the hop at {header.height} is signed by {vouched} of the "
                            f"{before.total_power} power trusted before it "
                            "(a third needed)")  # fmt: skip
        self.sets.append((header.height, new))


def hop_height(hop: Hop) -> int:
    try:
        return blocks.decode(hop.block).header.height
    except msgspec.DecodeError:
        raise Untrusted("a hop does not decode") from None


def walk(chain_id: str, genesis_set: ValidatorSet, hops: tuple[Hop, ...], upto: int,
         anchor: tuple[int, ValidatorSet] | None = None) -> Trusted:  # fmt: skip
    """Follow `hops` (oldest first, none above `upto`) from the genesis set, or from
    `anchor` (a height and the set signing it, trusted otherwise), skipping the hops at or
    below it; raises `Untrusted` at the first that does not follow."""
    if len(hops) > MAX_HOPS:
        raise Untrusted(f"{len(hops)} hops (at most {MAX_HOPS})")
    first, first_set = anchor or (1, genesis_set)
    trusted = Trusted(first_set, first)
    for hop in hops:
        if anchor is None or hop_height(hop) > first:
            trusted.follow(chain_id, hop, upto)
    return trusted


def set_named(header: blocks.Header, hops: tuple[Hop, ...], genesis_set: ValidatorSet,
              ) -> ValidatorSet:  # fmt: skip
    """The set a trusted header's `validators_hash` names, from an offer's history: the
    members of its last hop at or below the header (the genesis set when there is none).
    Nothing is verified but the hash: the trusted block vouches for its own signers.
    Raises `Untrusted` when the history names another set."""
    named = genesis_set
    for hop in hops:
        if hop_height(hop) <= header.height:
            named = set_of(hop.members)
    if validator_set.set_hash(named) != header.validators_hash:
        raise Untrusted(f"the validator history offered does not name the set the trusted "
                        f"block at {header.height} was signed by")  # fmt: skip
    return named
