"""Validators behind sentries whose links appear after the first messages went out: a
sentry floods a message once, when it first sees it, so what it relayed before its other
links existed must reach a peer that connects later some other way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from gridtokenx.consensus.core import Timeouts
from gridtokenx.ledger import genesis
from gridtokenx.node.runtime import HEARD_BYTES, HEARD_MAX, Node
from gridtokenx.p2p.connection import PeerSettings
from gridtokenx.p2p.gossip import Kind
from gridtokenx.storage.store import open_application
from gridtokenx.wire.crypto import PrivateKey

CHAIN = "gridtokenx-sentry-links"
GENESIS_TIME = 1_767_225_600
KEYS = genesis.dev_keys()
RUNNING = ("EGAT", "MEA", "PEA", "ERC")  # NEPO (6,000 of 39,000) stays offline
FAST = Timeouts(propose_ms=300, prevote_ms=200, precommit_ms=200, increment_ms=100)


async def _until(check: Callable[[], bool], seconds: float) -> bool:
    for _ in range(int(seconds / 0.05)):  # bounded
        if check():
            return True
        await asyncio.sleep(0.05)
    return False


def test_sentries_linked_after_round_zero_began_still_carry_it(tmp_path: Path) -> None:
    """Each validator connects to its sentry and starts; round 0's proposal and nil
    prevotes reach the sentries while they know no one else, and the validators wait for
    prevotes that only the sentries can bring. Then the sentries connect to each other
    (at load 20, a namespace devnet's sentries came up seconds after their validators).
    The chain must go on: before, each sentry dropped its validator's re-sent messages as
    seen, the sentries had nothing to send each other, and height 1 never committed."""

    async def scenario() -> None:
        spec = genesis.devnet(CHAIN, GENESIS_TIME, KEYS)

        def node(key: PrivateKey, name: str, hides: PrivateKey | None = None) -> Node:
            """`hides`: the validator this node is the sentry of (it keeps its address
            private, and so takes the consensus topic)."""
            app = open_application(spec, tmp_path / name)
            private = () if hides is None else (hides.address.hex(),)
            return Node(key, app, FAST, clock=lambda: GENESIS_TIME + 10,
                        peer_settings=PeerSettings(private_peer_ids=private))  # fmt: skip

        validators = [node(KEYS[code], code) for code in RUNNING]
        sentry_keys = [PrivateKey.from_dev_label(f"sentry-links/{c}") for c in RUNNING]
        sentries = [
            node(k, f"{c}-sentry", KEYS[c]) for k, c in zip(sentry_keys, RUNNING, strict=True)
        ]
        everyone = validators + sentries
        try:
            ports = [await s.gossip.listen() for s in sentries]
            for validator, port, key in zip(validators, ports, sentry_keys, strict=True):
                await validator.gossip.dial("127.0.0.1", port, expect=key.address)
            assert await _until(lambda: all(len(v.gossip.peers) == 1 for v in validators), 5)
            for n in everyone:
                await n.start()
            await asyncio.sleep(1.5)  # round 0's propose timeout passed: all prevoted
            assert [v.app.height for v in validators] == [0] * len(validators)
            for i, sentry in enumerate(sentries):
                for j in range(i + 1, len(sentries)):
                    await sentry.gossip.dial("127.0.0.1", ports[j], expect=sentry_keys[j].address)
            assert await _until(lambda: all(len(s.gossip.peers) == 4 for s in sentries), 5)
            committed = await _until(lambda: all(v.app.height >= 2 for v in validators), 15)
            assert committed, [v.app.height for v in validators]
        finally:
            for n in everyone:
                await n.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_what_a_node_keeps_for_later_peers_is_bounded_and_newest(tmp_path: Path) -> None:
    """A proposer may sign a large block for each of its rounds: the node keeps the newest
    of the height's relayed messages within HEARD_MAX and HEARD_BYTES, and none after a
    commit."""
    spec = genesis.devnet(CHAIN, GENESIS_TIME, KEYS)
    node = Node(KEYS["EGAT"], open_application(spec, tmp_path / "n"), FAST)
    try:
        for i in range(HEARD_MAX + 10):
            node._keep_heard(Kind.VOTE, i.to_bytes(4))
        kept = [int.from_bytes(p) for _, p in node._heard]
        assert kept == list(range(10, HEARD_MAX + 10))
        big = bytes(HEARD_BYTES // 3)
        for _ in range(4):
            node._keep_heard(Kind.PROPOSAL, big)
        assert node._heard_bytes == sum(len(p) for _, p in node._heard) <= HEARD_BYTES
        assert [k for k, _ in node._heard] == [Kind.PROPOSAL] * 3
    finally:
        node.app.close()
