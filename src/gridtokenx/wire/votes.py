"""Consensus messages and their signatures.

A vote or proposal is signed over a domain tag, the chain id and its canonical encoding, so
a signature can never be replayed on another chain or as another kind of message.
"""

from __future__ import annotations

from enum import IntEnum
from functools import lru_cache
from typing import Final

import msgspec

from gridtokenx.wire import codec, crypto

VOTE_DOMAIN: Final = b"GridTokenX/vote/v1"
PROPOSAL_DOMAIN: Final = b"GridTokenX/proposal/v1"
NIL: Final = b""
"""The block id of a vote for nothing (the paper's nil)."""


class VoteType(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


class Vote(msgspec.Struct, frozen=True, array_like=True):
    height: int
    round: int
    type: VoteType
    block_id: bytes  # NIL for nil
    validator: bytes  # address
    signature: bytes = b""

    def signing_bytes(self, chain_id: str) -> bytes:
        body = (self.height, self.round, int(self.type), self.block_id, self.validator)
        return VOTE_DOMAIN + b"\x00" + codec.encode((chain_id, *body))


class Proposal(msgspec.Struct, frozen=True, array_like=True):
    height: int
    round: int
    block: bytes  # the proposed value, opaque to consensus (an encoded block)
    valid_round: int  # the paper's validRound: -1, or the round the block got a polka in
    proposer: bytes
    signature: bytes = b""

    @property
    def block_id(self) -> bytes:
        return block_id(self.block)

    def signing_bytes(self, chain_id: str) -> bytes:
        body = (self.height, self.round, self.block_id, self.valid_round, self.proposer)
        return PROPOSAL_DOMAIN + b"\x00" + codec.encode((chain_id, *body))


class Evidence(msgspec.Struct, frozen=True, array_like=True):
    """Two votes by one validator for different blocks at the same height, round and type."""

    first: Vote
    second: Vote


class Commit(msgspec.Struct, frozen=True, array_like=True):
    """A decided block with its certificate: the precommits of more than 2/3 of the power.
    What block sync sends; gossip announces a decision with the block compact
    (`chain.compact.CompactCommit`), and a proposal likewise."""

    height: int
    block: bytes
    certificate: tuple[Vote, ...]


@lru_cache(maxsize=4)
def block_id(block: bytes) -> bytes:
    """The id votes name a block by. Remembered for the last few blocks: the consensus
    core asks a proposal's id each time a rule is tried (about 30 times a height), and
    hashing the whole block each time cost up to a millisecond a call for a block of
    thousands of transactions. A bytes object keeps its own hash once computed, so asking
    again for the same block is a dictionary lookup."""
    return crypto.tagged_hash(b"GridTokenX/block-id", block)


def sign_vote(key: crypto.PrivateKey, chain_id: str, vote: Vote) -> Vote:
    return msgspec.structs.replace(vote, signature=key.sign(vote.signing_bytes(chain_id)))


def sign_proposal(key: crypto.PrivateKey, chain_id: str, proposal: Proposal) -> Proposal:
    return msgspec.structs.replace(proposal, signature=key.sign(proposal.signing_bytes(chain_id)))
