"""Replaying certified blocks trusts the certificate for the transactions' signatures.

The block below carries a transaction whose signature does not verify. No honest validator
precommits such a block (its screen refuses it), so a real chain never certifies one; the
test has every validator sign it to show what a node that checked the certificate does:
it executes the block without verifying the signatures again, where an application left
to verify them itself records the transaction as failed. A block whose certificate does
not check is not executed at all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from gridtokenx.chain import blocks
from gridtokenx.ledger import validator_set
from gridtokenx.node.runtime import Node
from gridtokenx.p2p.gossip import Outcome
from gridtokenx.storage.store import open_application
from gridtokenx.wire import errors, tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.votes import Commit, Vote, VoteType, block_id, sign_vote
from tests.node.test_node import CHAIN, GENESIS_TIME, KEYS, _registrations
from tests.node.test_node_faults import SPEC


def _block_with_a_bad_signature(tmp_path: Path) -> tuple[bytes, bytes, tuple[Vote, ...]]:
    """Height 1 with three registrations, the second one's signature broken (the block
    built as a proposer that skipped the check would), and every validator's precommit."""
    raws = _registrations(3)
    stx = tx.decode(raws[1])
    bad = msgspec.structs.replace(stx, signature=bytes(64)).encode()
    assert not tx.decode(bad).signature_valid()
    app = open_application(SPEC, tmp_path / "builder")
    try:
        height, validators = 1, app.validators(1)
        block, _ = blocks.propose(
            app.state, CHAIN, height, GENESIS_TIME + 10, app.last_hash,
            validators.proposer(height, 0), validator_set.set_hash(validators),
            [raws[0], bad, raws[2]], verified=_Everything(),
        )  # fmt: skip
    finally:
        app.close()
    raw = block.encode()
    certificate = tuple(sorted(
        (sign_vote(key, CHAIN, Vote(1, 0, VoteType.PRECOMMIT, block_id(raw), key.address))
         for key in KEYS.values()), key=lambda v: v.validator))  # fmt: skip
    return raw, tx.hash_of(bad), certificate


class _Everything:
    def __contains__(self, item: object) -> bool:
        return True


def test_a_certified_block_executes_without_its_signatures_checked_again(tmp_path: Path) -> None:
    raw, bad_hash, certificate = _block_with_a_bad_signature(tmp_path)

    # An application asked to verify the signatures itself fails the broken one.
    verifying = open_application(SPEC, tmp_path / "verifying")
    try:
        verifying.commit(1, raw, certificate)
        receipt = verifying.store.receipt(bad_hash)
        assert receipt is not None and receipt.failed == errors.InvalidSignature.code
    finally:
        verifying.close()

    async def follow(certificate: tuple[Vote, ...], folder: str) -> tuple[Outcome, int, str | None]:
        app = open_application(SPEC, tmp_path / folder)
        node = Node(PrivateKey.from_dev_label("replay/follower"), app, clock=lambda: GENESIS_TIME)
        try:
            outcome = await node._on_commit(Commit(1, raw, certificate))
            receipt = node.app.store.receipt(bad_hash)
            return outcome, node.app.height, None if receipt is None else receipt.failed
        finally:
            await node.stop()

    # A node that checked the certificate takes the validators' word for them.
    outcome, height, failed = asyncio.run(follow(certificate, "follower"))
    assert (outcome, height, failed) == (Outcome.RELAY, 1, None)

    # Without a quorum's signatures nothing is executed, and the sender is named forged.
    short = certificate[:2]  # two of the four equal validators: not more than 2/3
    outcome, height, failed = asyncio.run(follow(short, "refused"))
    assert (outcome, height, failed) == (Outcome.FORGED, 0, None)
