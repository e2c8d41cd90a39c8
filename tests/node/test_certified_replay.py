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
import pytest

from gridtokenx.chain import blocks
from gridtokenx.consensus.core import Timeouts
from gridtokenx.devnet.homes import devnet_genesis
from gridtokenx.ledger import genesis, validator_set
from gridtokenx.node import runtime
from gridtokenx.node.block_sync import SYNC_RUN
from gridtokenx.node.runtime import Node
from gridtokenx.p2p.gossip import Outcome
from gridtokenx.storage.store import open_application
from gridtokenx.wire import errors, tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.votes import Commit, Vote, VoteType, block_id, sign_vote
from tests.node.test_node import CHAIN, GENESIS_TIME, KEYS, _registrations
from tests.node.test_node_faults import SPEC

SYNC_CHAIN = "gridtokenx-quiet-sync"
T0 = 1_767_225_600
SYNC_SPEC = devnet_genesis(SYNC_CHAIN, T0, ("EGAT",))
EGAT = genesis.dev_keys()["EGAT"]


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


def test_block_sync_asks_on_by_itself_when_its_peers_are_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer answers a run with SYNC_RUN_BYTES at most: here a few blocks an answer, from a
    server that sends nothing else (no votes at a tip to set the node asking again). The
    rest of each run is asked again after SYNC_RETRY_S by the node itself; it used to wait
    for ever once the blocks it had were applied."""
    monkeypatch.setattr(runtime, "SYNC_RUN_BYTES", 1000)  # a few blocks an answer
    top = 2 * SYNC_RUN + 5
    chain = open_application(SYNC_SPEC, tmp_path / "server")
    try:
        for height in range(1, top + 1):
            raw = chain.build_block(height, T0 + height, EGAT.address)
            vote = Vote(height, 0, VoteType.PRECOMMIT, block_id(raw), EGAT.address)
            chain.commit(height, raw, (sign_vote(EGAT, SYNC_CHAIN, vote),))
    finally:
        chain.close()

    async def scenario() -> int:
        slow = Timeouts(60_000, 60_000, 60_000)
        server = Node(PrivateKey.from_dev_label("quiet/server"),
                      open_application(SYNC_SPEC, tmp_path / "server"), slow)  # fmt: skip
        node = Node(PrivateKey.from_dev_label("quiet/node"),
                    open_application(SYNC_SPEC, tmp_path / "node"), slow)  # fmt: skip
        try:
            port = await server.gossip.listen()
            await node.start()
            await node.gossip.dial("127.0.0.1", port, expect=server.key.address)
            node._catch_up(top, server.key.address)  # what a proposal of its would show
            deadline = asyncio.get_running_loop().time() + 60
            while node.app.height < top and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            return node.app.height
        finally:
            await node.stop()
            await server.stop()

    assert asyncio.run(scenario()) == top
