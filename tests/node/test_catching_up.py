"""`Node.catching_up`, what `GET /api/v1/status` reports: a full node that joins a
validator many blocks late reads "catching up" while block sync fetches what it lacks,
and no longer once it is within a block of the validator; a peer's claimed heights are
forgotten when it leaves. Two in-process nodes over the real encrypted transport on
127.0.0.1; every wait is bounded and both nodes are always stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gridtokenx.consensus.core import Timeouts
from gridtokenx.devnet.homes import devnet_genesis
from gridtokenx.ledger import genesis
from gridtokenx.node.runtime import Node
from gridtokenx.storage.store import open_application
from gridtokenx.wire.crypto import PrivateKey

CHAIN = "gridtokenx-catching-up"
T0 = 1_767_225_600
AHEAD = 40  # blocks the validator commits before the full node appears


async def _until(check: object, seconds: float, every: float = 0.005) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(every)
    return False


def _validator_and_full_node(tmp_path: Path, label: str) -> tuple[Node, Node]:
    """EGAT's node, the one validator, and a full node with the dev key `label`; neither
    started."""
    spec = devnet_genesis(CHAIN, T0, ("EGAT",))
    timeouts = Timeouts(300, 200, 200)
    validator = Node(genesis.dev_keys()["EGAT"], open_application(spec, tmp_path / "v"),
                     timeouts, clock=lambda: T0 + 10)  # fmt: skip
    full = Node(PrivateKey.from_dev_label(label), open_application(spec, tmp_path / "f"),
                timeouts, clock=lambda: T0 + 10)  # fmt: skip
    return validator, full


def test_a_late_full_node_reads_catching_up_until_it_has_synced(tmp_path: Path) -> None:
    async def scenario() -> None:
        validator, full = _validator_and_full_node(tmp_path, "catching-up/full")
        try:
            port = await validator.gossip.listen()
            await validator.start()
            assert await _until(lambda: validator.app.height >= AHEAD, 30)
            validator.block_interval = 0.5  # slow down, so the full node can catch up
            assert not full.catching_up and full.peer_height == 0  # no peer: nothing known
            await full.gossip.listen()
            await full.start()
            await full.gossip.dial("127.0.0.1", port, expect=validator.key.address)
            seen: list[tuple[bool, int]] = []

            def synced() -> bool:
                seen.append((full.catching_up, full.app.height))
                return full.app.height >= validator.app.height and not full.catching_up

            assert await _until(synced, 30), (seen[-5:], validator.app.height)
            behind = [height for catching_up, height in seen if catching_up]
            assert behind and min(behind) < AHEAD - 1, seen[:5]  # read true while far behind
            assert full.peer_height >= AHEAD
            assert not validator.catching_up  # the full node shows it nothing higher
            await validator.gossip.close()  # the only peer leaves: its claims go with it
            assert await _until(lambda: full.peer_height == 0, 10)
            assert not full.catching_up
        finally:
            await full.stop()
            await validator.stop()

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_block_sync_fetches_runs_of_blocks_not_one_per_round_trip(tmp_path: Path) -> None:
    """A full node AHEAD blocks behind asks for runs of up to SYNC_RUN blocks: a handful of
    requests, where one per block made catching up a round trip per block (3 blocks/s under
    load, while the chain made 2.5)."""
    from gridtokenx.node.runtime import SYNC_RUN
    from gridtokenx.p2p.gossip import Kind

    async def scenario() -> tuple[int, int]:
        validator, full = _validator_and_full_node(tmp_path, "catching-up/runs")
        asked: list[int] = []
        send_to = full.gossip.send_to

        def counting(peer: bytes, kind: Kind, payload: bytes) -> bool:
            if kind is Kind.SYNC_REQUEST:
                asked.append(int.from_bytes(payload))
            return send_to(peer, kind, payload)

        full.gossip.send_to = counting  # type: ignore[method-assign]
        try:
            port = await validator.gossip.listen()
            await validator.start()
            assert await _until(lambda: validator.app.height >= AHEAD, 30)
            validator.block_interval = 1.0  # the tip moves slowly: the gap is sync's
            target = validator.app.height
            await full.gossip.listen()
            await full.start()
            await full.gossip.dial("127.0.0.1", port, expect=validator.key.address)
            assert await _until(lambda: full.app.height >= target, 30)
            return target, len([h for h in asked if h <= target])
        finally:
            await full.stop()
            await validator.stop()

    target, requests = asyncio.run(asyncio.wait_for(scenario(), 90))
    assert requests <= target // SYNC_RUN + 3, (requests, target)
