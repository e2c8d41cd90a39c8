"""Four validators as asyncio nodes on 127.0.0.1 in one process: consensus over the
encrypted gossip network, blocks built from gossiped transactions, committed to RocksDB,
identical state on every node. (Separate processes and kill -9 come with `node start`.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import msgspec

from gridtokenx.consensus.core import Action, Persistent, Step, Timeouts
from gridtokenx.ledger import genesis
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.node.runtime import Node
from gridtokenx.p2p.gossip import START_SCORE, Gossip, Kind
from gridtokenx.storage.store import open_application
from gridtokenx.wire import codec, tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.votes import NIL, Vote, VoteType, sign_vote

CHAIN = "gridtokenx-node-test"
GENESIS_TIME = 1_767_225_600
KEYS = genesis.dev_keys()
RUNNING = ("EGAT", "MEA", "PEA", "ERC")  # NEPO (6,000 of 39,000) stays offline
FAST = Timeouts(propose_ms=400, prevote_ms=200, precommit_ms=200, increment_ms=100)


def _registrations(count: int) -> list[bytes]:
    sb = Sandbox(chain_id=CHAIN, genesis_time=GENESIS_TIME)
    mea = sb.authority("MEA")
    out = []
    for i in range(count):
        who = PrivateKey.from_dev_label(f"node-test/home/{i}")
        body = tx.RegisterParticipant(who.address, "BKK", tx.ParticipantKind.HOUSEHOLD, f"h{i}")
        out.append(sb.sign(mea, body).encode())
        sb.submit(mea, body)
    return out


async def _network(
    tmp_path: Path,
    timeouts: Timeouts = FAST,
    block_interval: float = 0.0,
    clock: Callable[[], float] = lambda: GENESIS_TIME + 10,
    codes: tuple[str, ...] = RUNNING,
    min_block_gap: float = 0.0,
    build_budget: float = 0.25,
) -> list[Node]:
    spec = genesis.devnet(CHAIN, GENESIS_TIME, KEYS)
    nodes = [
        Node(
            KEYS[code],
            open_application(spec, tmp_path / code),
            timeouts,
            clock=clock,
            block_interval=block_interval,
            min_block_gap=min_block_gap,
            build_budget=build_budget,
        )
        for code in codes
    ]
    ports = [await n.gossip.listen() for n in nodes]
    for i, node in enumerate(nodes):
        for j in range(i + 1, len(nodes)):
            await node.gossip.dial("127.0.0.1", ports[j], expect=KEYS[codes[j]].address)
    for _ in range(100):  # bounded wait for the full mesh
        if all(len(n.gossip.peers) == len(nodes) - 1 for n in nodes):
            break
        await asyncio.sleep(0.02)
    return nodes


def test_validators_started_before_genesis_time_wait_for_it(tmp_path: Path) -> None:
    """Operators start their nodes before the ceremony's genesis time: they connect, and
    nobody proposes until the time comes (before, the first validator up ran the chain
    with every block stamped at genesis time). Then the chain starts at once."""

    async def scenario() -> None:
        now = [float(GENESIS_TIME - 30)]
        nodes = await _network(tmp_path, clock=lambda: now[0])
        try:
            for node in nodes:
                await node.start()
            assert all(n.genesis_in() == 30 for n in nodes)
            await asyncio.sleep(1.5)  # FAST rounds: several heights' time, were they on
            assert [n.app.height for n in nodes] == [0] * len(nodes)
            assert all(len(n.gossip.peers) == len(nodes) - 1 for n in nodes)  # connected
            now[0] = GENESIS_TIME + 1
            for _ in range(600):  # bounded: 30 s
                if all(n.app.height >= 2 for n in nodes):
                    break
                await asyncio.sleep(0.05)
            assert min(n.app.height for n in nodes) >= 2
            assert all(n.genesis_in() == 0 for n in nodes)
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_four_validators_commit_blocks_over_the_network(tmp_path: Path) -> None:
    async def scenario() -> None:
        nodes = await _network(tmp_path)
        try:
            for node in nodes:
                await node.start()
            txs = _registrations(12)
            for raw in txs:
                await nodes[1].submit(raw)  # into MEA's node, gossiped to the others
            for _ in range(600):  # bounded: 30 s
                if all(n.app.height >= 4 for n in nodes):
                    break
                await asyncio.sleep(0.05)
            heights = [n.app.height for n in nodes]
            assert min(heights) >= 4, heights
            assert all(n.halted is None for n in nodes)
            common = min(heights)
            blocks_at = [n.app.store.block(common) for n in nodes]
            assert all(b == blocks_at[0] for b in blocks_at)
            roots = {n.app.state.root() for n in nodes if n.app.height == common}
            assert len(roots) == 1
            registered = nodes[0].app.state.scan(b"part/")
            assert len(list(registered)) == 12  # every gossiped transaction was committed
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_decided_heights_timeouts_are_cancelled_not_left_to_fire(tmp_path: Path) -> None:
    """Each height's consensus timeouts (a propose timeout of 400 ms here, far longer than
    a height takes) are cancelled when the height is decided: none fires for a height that
    has passed. Before, about two a height fired later, each a loop callback into the core
    that changed nothing: part of the fixed CPU a height costs."""

    async def scenario() -> None:
        nodes = await _network(tmp_path)
        stale: list[tuple[int, int]] = []  # (the timeout's height, the node's)
        for node in nodes:
            node.core.on_timeout = _noting_stale(node, stale)  # type: ignore[method-assign]
        try:
            for node in nodes:
                await node.start()
            for _ in range(600):  # bounded: 30 s
                if all(n.app.height >= 8 for n in nodes):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # past the last decided height's propose timeout
            assert min(n.app.height for n in nodes) >= 8
            assert all(n.halted is None for n in nodes)
            assert stale == []
            assert all(len(n._timeouts) <= 8 for n in nodes)  # this height's only
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def _noting_stale(node: Node, stale: list[tuple[int, int]]) -> Callable[..., list[Action]]:
    original = node.core.on_timeout

    def on_timeout(height: int, round: int, step: Step) -> list[Action]:
        if height < node.core.height:
            stale.append((height, node.core.height))
        return original(height, round, step)

    return on_timeout


async def _committed_within(nodes: list[Node], hashes: list[bytes], seconds: float) -> float:
    """Seconds until every node holds a receipt for every hash (`seconds` if never)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < seconds:
        if all(n.app.receipt(h) is not None for n in nodes for h in hashes):
            return loop.time() - start
        await asyncio.sleep(0.01)
    return seconds


async def _proposer_after(nodes: list[Node], height: int) -> Node:
    """The proposer of round 0 of the next height, once every node committed `height`."""
    for _ in range(600):  # bounded: 30 s
        if all(n.app.height >= height for n in nodes):
            break
        await asyncio.sleep(0.01)
    assert all(n.app.height == height for n in nodes)
    address = nodes[0].app.validators(height + 1).proposer(height + 1, 0)
    return next(n for n in nodes if n.key.address == address)


def test_the_proposer_is_woken_by_a_batch_as_by_a_single_submit(tmp_path: Path) -> None:
    """Empty blocks come every 10 s; transactions admitted by the next proposer's own node
    must be proposed at once, whichever way they came in (`submit` or a batch through
    `admit`, as the API's batch route does), not when the empty-block timer fires. The
    others' propose timeout allows for the timer, so no round change can hide a proposer
    that slept through its transactions."""
    block_s = 10.0
    slow = Timeouts(propose_ms=int(block_s * 1000) + 5_000, prevote_ms=200, precommit_ms=200)

    async def scenario() -> None:
        nodes = await _network(tmp_path, slow, block_interval=block_s)
        try:
            for node in nodes:
                await node.start()  # block 1 (empty) at once: no commit to wait after
            txs = _registrations(5)
            single = await (await _proposer_after(nodes, 1)).submit(txs[0])
            single_s = await _committed_within(nodes, [single], block_s)
            admissions = await (await _proposer_after(nodes, 2)).admit(txs[1:])
            assert all(a.accepted for a in admissions), admissions
            batch = [a.tx_hash for a in admissions if a.tx_hash is not None]
            batch_s = await _committed_within(nodes, batch, block_s)
            assert all(n.app.height == 3 for n in nodes)  # one block each, no empty one
            assert single_s < block_s / 2, single_s
            assert batch_s < block_s / 2, (batch_s, single_s)
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_the_proposer_waits_for_its_block_to_fill_unless_a_full_block_is_ready(
    tmp_path: Path,
) -> None:
    """With `min_block_gap` a proposer with a few transactions ready waits that long after
    its commit for more (fewer, fuller heights while the backlog is light); with a block's
    worth ready (`Application.block_limit`: 64 here, the least) it proposes at once, since
    waiting would add nothing to the block and only slow the chain under overload."""
    gap_s, block_s = 4.0, 20.0
    slow = Timeouts(propose_ms=int(block_s * 1000) + 5_000, prevote_ms=200, precommit_ms=200)

    async def after_commit(nodes: list[Node], height: int) -> tuple[Node, float]:
        """The next proposer and the loop time it carried out its commit of `height`."""
        proposer = await _proposer_after(nodes, height)
        return proposer, proposer._last_commit

    async def scenario() -> None:
        nodes = await _network(tmp_path, slow, block_interval=block_s, min_block_gap=gap_s,
                               build_budget=0.001)  # fmt: skip
        loop = asyncio.get_running_loop()
        try:
            for node in nodes:
                await node.start()  # block 1 (empty) at once: no commit to wait after
            txs = _registrations(65)
            proposer, committed_at = await after_commit(nodes, 1)
            few = await proposer.admit(txs[:1])
            assert await _committed_within(nodes, [few[0].tx_hash or b""], 2 * gap_s) < 2 * gap_s
            assert loop.time() - committed_at >= gap_s * 0.9  # it waited for more
            proposer, committed_at = await after_commit(nodes, 2)
            assert proposer.app.block_limit(proposer.build_budget) == 64
            full = await proposer.admit(txs[1:])
            assert all(a.accepted for a in full), full
            for _ in range(400):  # bounded: 4 s
                if all(n.app.height >= 3 for n in nodes):
                    break
                await asyncio.sleep(0.01)
            assert loop.time() - committed_at < gap_s / 2  # proposed at once
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_a_grid_update_cuts_the_proposers_wait_short(tmp_path: Path) -> None:
    """A proposer holding a trading transaction waits `min_block_gap` for more, but a grid
    update that arrives during the wait is proposed at once, with what waited: grid updates
    must reach every validator within 200 ms, and the gap alone was half of that."""
    gap_s, block_s = 4.0, 20.0
    slow = Timeouts(propose_ms=int(block_s * 1000) + 5_000, prevote_ms=200, precommit_ms=200)
    sb = Sandbox(chain_id=CHAIN, genesis_time=GENESIS_TIME)
    status = tx.TransmissionStatus(GENESIS_TIME + 10, 50_020,
                                   (tx.LinkStatus("BKK", "CEN", 600_000, 0),))  # fmt: skip
    grid_update = sb.sign(sb.authority("EGAT"), status).encode()

    async def scenario() -> None:
        nodes = await _network(tmp_path, slow, block_interval=block_s, min_block_gap=gap_s)
        loop = asyncio.get_running_loop()
        try:
            for node in nodes:
                await node.start()  # block 1 (empty) at once
            proposer = await _proposer_after(nodes, 1)
            committed_at = proposer._last_commit
            (trade,) = await proposer.admit(_registrations(1))
            await asyncio.sleep(0.5)
            assert all(n.app.height == 1 for n in nodes)  # the trade waits for the gap
            (grid,) = await proposer.admit([grid_update])
            assert trade.accepted and grid.accepted and proposer.app.mempool.priority_waiting
            hashes = [trade.tx_hash or b"", grid.tx_hash or b""]
            assert await _committed_within(nodes, hashes, gap_s) < gap_s / 2  # not waited out
            assert loop.time() - committed_at < gap_s * 0.75
            assert not proposer.app.mempool.priority_waiting  # it left with its block
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 90))


def _held(node: Node, tx_hash: bytes) -> bool:
    return node.app.mempool.status(tx_hash) in ("pending", "committed")


def test_transaction_batches_are_admitted_relayed_and_forgeries_cost_the_sender(
    tmp_path: Path,
) -> None:
    """A client peer sends one batch to EGAT's node: every node's mempool ends up holding
    the batch (EGAT relays what it admitted). A peer that sends forged signatures is
    disconnected after two batches; duplicates and a mixed batch are not held against it."""

    async def scenario() -> None:
        nodes = await _network(tmp_path)
        for node in nodes:
            await node.start()

        async def ignore(kind: Kind, payload: bytes, peer: bytes) -> bool:
            return True

        client = Gossip(PrivateKey.from_dev_label("node-test/client"), ignore)
        rogue = Gossip(PrivateKey.from_dev_label("node-test/rogue"), ignore)
        try:
            port = nodes[0].gossip._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            await client.dial("127.0.0.1", port)
            await rogue.dial("127.0.0.1", port)
            txs = _registrations(20)
            client.publish(Kind.TX, codec.encode(txs[:15]))
            client.publish(Kind.TX, codec.encode(txs[5:]))  # overlaps: duplicates
            hashes = [tx.hash_of(raw) for raw in txs]
            for _ in range(200):  # bounded: 10 s
                if all(_held(n, h) for n in nodes for h in hashes):
                    break
                await asyncio.sleep(0.05)
            assert all(_held(n, h) for n in nodes for h in hashes)
            egat = KEYS["EGAT"].address
            assert client.scores[egat] == START_SCORE and egat in client.peers
            forged = [
                tx.SignedTransaction(tx.decode(raw).tx, bytes(64)).encode()
                for raw in _registrations(23)[20:]
            ]
            rogue_id = rogue.key.address
            for i in range(2):  # two batches (a frame sent again is dropped as seen)
                rogue.publish(Kind.TX, codec.encode(forged[i:]))
                await asyncio.sleep(0.2)
            for _ in range(100):
                if rogue_id not in nodes[0].gossip.peers:
                    break
                await asyncio.sleep(0.05)
            assert rogue_id not in nodes[0].gossip.peers
            assert nodes[0].gossip.scores[rogue_id] <= 0
            assert not any(n.app.mempool.knows(tx.hash_of(f)) for n in nodes for f in forged)
            assert client.key.address in nodes[0].gossip.peers  # the honest client stays
        finally:
            await client.close()
            await rogue.close()
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_restarted_node_re_sends_the_votes_in_its_wal_to_peers_that_connect_later(
    tmp_path: Path,
) -> None:
    """EGAT's WAL says it prevoted in round 0, but the crash lost the vote on the way (a
    killed process's socket buffers go with it). Restarted, the node must send that very
    vote again, also to a peer that connects only after the restart (the regossip), and
    never a different prevote for the round: with two of four validators down, the others
    cannot reach a quorum without it."""
    key = KEYS["EGAT"]
    spec = genesis.devnet(CHAIN, GENESIS_TIME, KEYS)
    app = open_application(spec, tmp_path / "EGAT")
    logged = sign_vote(key, CHAIN, Vote(1, 0, VoteType.PREVOTE, NIL, key.address))
    app.store.save_wal(Persistent(1, 0, Step.PREVOTE, signed=(logged,)))

    async def scenario() -> None:
        node = Node(key, app, FAST, clock=lambda: GENESIS_TIME + 10)
        heard: list[Vote] = []

        async def collect(kind: Kind, payload: bytes, peer: bytes) -> bool:
            if kind is Kind.VOTE:
                heard.append(msgspec.msgpack.decode(payload, type=Vote))
            return True

        peer = Gossip(KEYS["MEA"], collect)
        try:
            port = await node.gossip.listen()
            await node.start()  # nobody is connected yet: the first broadcast reaches no one
            await peer.dial("127.0.0.1", port, expect=key.address)
            for _ in range(100):  # bounded: 5 s, the regossip runs every second
                if logged in heard:
                    break
                await asyncio.sleep(0.05)
            assert logged in heard
            round_0_prevotes = {
                v.block_id for v in heard if (v.round, v.type) == (0, VoteType.PREVOTE)
            }
            assert round_0_prevotes == {NIL}  # the logged vote, never a second one
            assert node.core.state.signed[0] == logged  # still in the WAL state
        finally:
            await peer.close()
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))
