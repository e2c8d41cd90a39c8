"""A node among faulty peers, in one process on 127.0.0.1: forged consensus messages are
caught before anything is relayed or executed and cost the sender its connection; a
proposal's transactions are verified off the event loop; transactions a node acknowledged
while cut off, or before it restarted, reach the chain once peers connect."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from prometheus_client import generate_latest

from gridtokenx.chain.blocks import Header
from gridtokenx.chain.compact import CompactBlock, CompactCommit, CompactProposal, compact_proposal
from gridtokenx.ledger import genesis
from gridtokenx.node.runtime import Node
from gridtokenx.p2p.gossip import Gossip, Kind, Outcome
from gridtokenx.storage.store import open_application
from gridtokenx.wire import codec
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.votes import (
    NIL,
    Proposal,
    Vote,
    VoteType,
    sign_proposal,
    sign_vote,
)
from tests.node.test_node import CHAIN, FAST, GENESIS_TIME, KEYS, _network, _registrations
from tests.p2p.rogues import eventually, sent

SPEC = genesis.devnet(CHAIN, GENESIS_TIME, KEYS)


def _node(tmp_path: Path, key: PrivateKey, name: str) -> Node:
    return Node(key, open_application(SPEC, tmp_path / name), FAST, clock=lambda: GENESIS_TIME + 10)


class _Listener:
    """A plain gossip peer that records what reaches it."""

    def __init__(self, label: str) -> None:
        self.heard: list[tuple[Kind, bytes]] = []
        self.gossip = Gossip(PrivateKey.from_dev_label(f"node-faults/{label}"), self._take)

    async def _take(self, kind: Kind, payload: bytes, peer: bytes) -> bool:
        self.heard.append((kind, payload))
        return True

    def of(self, kind: Kind) -> list[bytes]:
        return [payload for k, payload in self.heard if k is kind]


def test_forged_consensus_messages_are_not_relayed_and_ban_their_sender(tmp_path: Path) -> None:
    """EGAT's node (not started: it stays at height 1, round 0) has a watcher, an honest
    peer and three forgers. A correctly signed vote is relayed to the watcher. A vote with
    a bad signature, a proposal from the round's proposer with a bad signature and a commit
    whose certificate does not verify are not relayed, are never executed, and each bans
    its sender at once. (Before, all three were relayed to every peer; the proposal was
    executed before its signature was looked at; no sender lost anything.)"""
    node = _node(tmp_path, KEYS["EGAT"], "EGAT")
    validators = node.core.validators
    mea = KEYS["MEA"]
    good = sign_vote(mea, CHAIN, Vote(1, 0, VoteType.PREVOTE, NIL, mea.address))
    forged_vote = msgspec.structs.replace(good, round=1, signature=bytes(64))
    proposer = validators.proposer(1, 0)
    bogus = CompactBlock(Header(CHAIN, 1, 0, b"", proposer, b"", b"", b"", b""), ())
    forged_proposal = CompactProposal(1, 0, bogus, -1, proposer, bytes(64))
    forged_commit = CompactCommit(1, bogus, (forged_vote,))
    checked: list[bytes] = []

    def spy(height: int, raw: bytes, *args: object, **kwargs: object) -> bool:
        checked.append(raw)
        return False

    node.app.check_block = spy  # type: ignore[method-assign]

    async def scenario() -> None:
        watcher, honest = _Listener("watcher"), _Listener("honest")
        forgers = [_Listener(f"forger/{i}") for i in range(3)]
        try:
            port = await node.gossip.listen()
            for peer in (watcher, honest, *forgers):
                await peer.gossip.dial("127.0.0.1", port, expect=KEYS["EGAT"].address)
            await eventually(lambda: len(node.gossip.peers) == 5)
            await sent(honest.gossip.publish(Kind.VOTE, codec.encode(good)))
            await eventually(lambda: watcher.of(Kind.VOTE) == [codec.encode(good)])
            sends = [
                (Kind.VOTE, forged_vote),
                (Kind.PROPOSAL, forged_proposal),
                (Kind.COMMIT, forged_commit),
            ]
            for forger, (kind, message) in zip(forgers, sends, strict=True):
                await sent(forger.gossip.publish(kind, codec.encode(message)))
            ids = [f.gossip.key.address for f in forgers]
            await eventually(lambda: not any(i in node.gossip.peers for i in ids), 5)
            assert all(node.gossip.banned(i) for i in ids)
            await asyncio.sleep(0.3)  # a relayed forgery would have reached the watcher
            assert watcher.of(Kind.VOTE) == [codec.encode(good)]
            assert watcher.of(Kind.PROPOSAL) == watcher.of(Kind.COMMIT) == []
            assert checked == []  # the forged proposal's block was never executed
            assert honest.gossip.key.address in node.gossip.peers
            scraped = generate_latest(node.metrics.registry).decode()
            assert 'gridtokenx_p2p_disconnects_total{reason="banned"} 3.0' in scraped
            assert 'gridtokenx_p2p_send_queue_bytes{lane="consensus"}' in scraped
        finally:
            for peer in (watcher, honest, *forgers):
                await peer.gossip.close()
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_proposals_transactions_are_verified_off_the_event_loop(tmp_path: Path) -> None:
    """The round's proposer builds a block of transactions EGAT's mempool never saw (they
    were relayed to it, so its compact proposal rebuilds, but never admitted). Their
    signatures are verified in the mempool's thread pool, never by the synchronous path
    that would hold the event loop (here made to fail loudly); the block is valid."""
    node = _node(tmp_path, KEYS["EGAT"], "EGAT")
    proposer_key = next(
        k for k in KEYS.values() if k.address == node.core.validators.proposer(1, 0)
    )
    proposer_app = open_application(SPEC, tmp_path / "proposer")
    for raw in _registrations(30):
        proposer_app.submit(raw)
        node.recent.add([raw])
    block = proposer_app.build_block(1, GENESIS_TIME + 10, proposer_key.address)
    proposer_app.close()
    proposal = sign_proposal(proposer_key, CHAIN, Proposal(1, 0, block, -1, proposer_key.address))

    def on_the_loop(raws: list[bytes]) -> list[bool]:
        raise AssertionError(f"{len(raws)} signatures verified on the event loop")

    node.app.mempool.verify = on_the_loop  # type: ignore[method-assign]

    async def scenario() -> None:
        try:
            compact = codec.encode(compact_proposal(proposal))
            outcome = await node._on_message(Kind.PROPOSAL, compact, b"\x01" * 20)
            assert outcome is Outcome.RELAY  # relayed once its signature checks, then tried
            await eventually(lambda: 0 in node.core.proposals, 10)
            assert node.core.proposals[0] == proposal
            assert node.core.valid[proposal.block_id] is True
        finally:
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def _receipts(nodes: list[Node], hashes: list[bytes]) -> bool:
    return all(n.app.receipt(h) is not None for n in nodes for h in hashes)


@pytest.mark.parametrize("restart", [False, True], ids=["partition", "restart"])
def test_transactions_acknowledged_while_cut_off_reach_the_chain(
    tmp_path: Path, restart: bool
) -> None:
    """A full node with no peers acknowledges three transactions (they are pending in its
    mempool and its store). When it gets peers, after the partition or after a restart, it
    sends them on, and they commit. Before, nothing re-announced them: pending forever."""

    async def scenario() -> None:
        validators = await _network(tmp_path)
        full_key = PrivateKey.from_dev_label("node-faults/full")
        full = _node(tmp_path, full_key, "full")
        try:
            for node in validators:
                await node.start()
            await full.start()
            hashes = [await full.submit(raw) for raw in _registrations(3)]
            await asyncio.sleep(1.0)
            assert not any(v.app.mempool.knows(h) for v in validators for h in hashes)
            if restart:
                await full.stop()  # the transactions wait in its store's pool
                full = _node(tmp_path, full_key, "full")
                assert all(full.app.mempool.status(h) == "pending" for h in hashes)
                await full.start()
            for v in validators:
                port = v.gossip._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                await full.gossip.dial("127.0.0.1", port, expect=v.key.address)
            await eventually(lambda: _receipts(validators, hashes), 30)
            await eventually(lambda: _receipts([full], hashes), 30)
        finally:
            await full.stop()
            for node in validators:
                await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_pending_transactions_that_waited_too_long_are_sent_again_with_a_backoff(
    tmp_path: Path,
) -> None:
    from gridtokenx.node.runtime import STALE_TX_S

    node = _node(tmp_path, PrivateKey.from_dev_label("node-faults/lonely"), "lonely")

    async def scenario() -> None:
        peer = _Listener("peer")
        try:
            port = await node.gossip.listen()
            await peer.gossip.dial("127.0.0.1", port)
            await eventually(lambda: len(node.gossip.peers) == 1)
            (raw,) = _registrations(1)
            await node.submit(raw)
            await eventually(lambda: len(peer.of(Kind.TX)) == 1)  # relayed on admission
            now = asyncio.get_running_loop().time()
            for later in (1.0, STALE_TX_S + 1, STALE_TX_S + 2, 3 * STALE_TX_S + 2):
                node._rebroadcast_stale(now + later)  # sent again at 11 s and 32 s only
            # The same frame three times: the peer's mesh takes it once and drops the
            # copies as seen (a peer that lost it, or restarted, takes the copy).
            frame = len(codec.encode([int(Kind.TX), codec.encode([raw])]))
            await eventually(lambda: peer.gossip.stats.received["tx"] == 3 * frame)
            await asyncio.sleep(0.2)
            assert peer.gossip.stats.received["tx"] == 3 * frame
            assert peer.of(Kind.TX) == [codec.encode([raw])]
        finally:
            await peer.gossip.close()
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_look_for_stale_transactions_stops_once_a_pass_is_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look walks the pool oldest first and stops at STALE_PER_PASS due: an overloaded
    pool of tens of thousands was walked whole every STALE_CHECK_S for at most that many
    sent. The next look takes the next ones while the first wait out their backoff."""
    from gridtokenx.node import runtime

    node = _node(tmp_path, PrivateKey.from_dev_label("node-faults/stale-pass"), "stale-pass")
    monkeypatch.setattr(runtime, "STALE_PER_PASS", 2)
    raws = _registrations(5)

    async def scenario() -> None:
        try:
            for raw in raws:
                await node.submit(raw)
            mempool, reached, sent = node.app.mempool, list[bytes](), list[bytes]()
            oldest = mempool.oldest

            def counted() -> Iterator[tuple[bytes, bytes]]:
                for tx_hash, raw in oldest():
                    reached.append(raw)
                    yield tx_hash, raw

            monkeypatch.setattr(mempool, "oldest", counted)
            monkeypatch.setattr(node, "_relay", lambda due, *_: sent.extend(due))
            now = asyncio.get_running_loop().time()
            node._rebroadcast_stale(now + runtime.STALE_TX_S + 1)
            assert sent == raws[:2] and reached == raws[:2]
            node._rebroadcast_stale(now + runtime.STALE_TX_S + 2)
            assert sent == raws[:4]
        finally:
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_the_block_time_allowance_is_dropped_where_no_honest_proposer_waits(
    tmp_path: Path,
) -> None:
    """The core's propose timeout is propose_ms + block_ms, because a proposer with nothing
    to include waits the block time. Where it cannot have waited (a later round, or this
    node holds transactions ready, which gossip gave the proposer too) the driver fires
    block_ms sooner, so a proposer that is down costs half as long under load."""
    from gridtokenx.consensus import core

    key = PrivateKey.from_dev_label("node-faults/timeouts")
    app = open_application(SPEC, tmp_path / "timeouts")
    timeouts = core.Timeouts(propose_ms=2000, prevote_ms=500, precommit_ms=500)
    node = Node(key, app, timeouts, clock=lambda: GENESIS_TIME + 10, block_interval=1.0)

    def delay(step: core.Step, round: int) -> float:
        timeout = core.ScheduleTimeout(1, round, step, timeouts.of(step, round))
        return node._timeout_delay(timeout)

    async def scenario() -> None:
        try:
            assert delay(core.Step.PROPOSE, 0) == 2.0  # nothing to include: the proposer waits
            assert delay(core.Step.PROPOSE, 1) == 2.25 - 1.0  # later rounds propose at once
            assert delay(core.Step.PREVOTE, 0) == 0.5  # only the propose step has the allowance
            (raw,) = _registrations(1)
            await node.submit(raw)
            assert node.app.mempool.has_ready(node.app.nonce_of)
            assert delay(core.Step.PROPOSE, 0) == 1.0
        finally:
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_an_absent_proposers_turn_is_not_waited_out_in_full(tmp_path: Path) -> None:
    """NEPO's node is never started. Once it has signed nothing for ABSENT_AFTER heights,
    every running node waits only ABSENT_PROPOSE_S at NEPO's turns to propose, instead of
    the whole propose timeout; a proposer that is running still gets the whole timeout.
    (Before, each of a dead validator's turns cost its full propose timeout, 1 s and more
    on the devnet, which made EGAT's outages the soak's longest stalls.)"""
    from gridtokenx.consensus import core
    from gridtokenx.node.presence import ABSENT_AFTER, ABSENT_PROPOSE_S

    timeouts = core.Timeouts(propose_ms=3000, prevote_ms=200, precommit_ms=200)
    nepo = KEYS["NEPO"].address
    waits: list[tuple[int, bytes, float]] = []  # (height, proposer, delay)

    async def scenario() -> None:
        nodes = await _network(tmp_path, timeouts)
        for node in nodes:
            chosen = node._timeout_delay

            def record(t: core.ScheduleTimeout, node: Node = node, chosen=chosen) -> float:  # type: ignore[no-untyped-def]
                delay = chosen(t)
                if t.step is core.Step.PROPOSE:
                    proposer = node.core.validators.proposer(t.height, t.round)
                    waits.append((t.height, proposer, delay))
                return delay

            node._timeout_delay = record  # type: ignore[method-assign]
        try:
            for node in nodes:
                await node.start()
            for _ in range(1200):  # bounded: 60 s
                late = [w for w in waits if w[1] == nepo and w[0] > ABSENT_AFTER + 1]
                if len(late) >= 2 * len(nodes) and min(n.app.height for n in nodes) >= 12:
                    break
                await asyncio.sleep(0.05)
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 90))
    cut = [d for h, p, d in waits if p == nepo and h > ABSENT_AFTER + 1]
    live = [d for _, p, d in waits if p != nepo]
    assert len(cut) >= 8, waits
    assert cut == [ABSENT_PROPOSE_S] * len(cut)
    assert live and min(live) > 1.0  # the running proposers' turns keep their whole timeout


def test_a_block_proposed_again_after_its_polka_is_not_judged_by_its_age(tmp_path: Path) -> None:
    """A fresh proposal (valid round -1) dated more than MAX_CLOCK_DRIFT before this node's
    clock is invalid. The same block proposed again with a valid round had a polka (more
    than 2/3 judged it timely) and is checked without its time, as CometBFT's
    proposer-based timestamps do: judged by its age it could never be prevoted again once
    a height outlasted the drift, and the validators locked on it stopped the chain."""
    late = GENESIS_TIME + 60
    node = Node(KEYS["EGAT"], open_application(SPEC, tmp_path / "egat"), FAST, clock=lambda: late)
    builder = open_application(SPEC, tmp_path / "builder")
    by_address = {k.address: k for k in KEYS.values()}
    try:
        rounds = [
            r for r in range(8) if node.core.validators.proposer(1, r) != KEYS["EGAT"].address
        ]
        fresh_round, again_round = rounds[:2]

        def proposal(round: int, valid_round: int) -> Proposal:
            signer = by_address[node.core.validators.proposer(1, round)]
            block = builder.build_block(1, GENESIS_TIME + 10, signer.address)
            return sign_proposal(
                signer, CHAIN, Proposal(1, round, block, valid_round, signer.address)
            )

        fresh = proposal(fresh_round, -1)
        again = msgspec.structs.replace(proposal(again_round, fresh_round), block=fresh.block)
        again = sign_proposal(by_address[again.proposer], CHAIN, again)

        async def scenario() -> tuple[bool | None, bool | None]:
            try:
                await node._check(fresh)
                first = node.core.valid.get(fresh.block_id)
                node.core.valid.clear()  # as a node that never saw the fresh proposal
                await node._check(again)
                return first, node.core.valid.get(again.block_id)
            finally:
                await node.stop()

        assert asyncio.run(asyncio.wait_for(scenario(), 30)) == (False, True)
    finally:
        builder.close()
