"""Compact proposals between real nodes in one process on 127.0.0.1: a node rebuilds the
block from what it holds and fetches exactly the transactions it lacks from the peer that
sent the proposal; an answer that is not what was asked costs its sender score, and the
next peer is asked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from gridtokenx.chain import compact
from gridtokenx.chain.compact import CompactProposal, compact_proposal
from gridtokenx.chain.mempool import Mempool
from gridtokenx.node import compact_blocks
from gridtokenx.node.compact_blocks import FETCH_TRIES, Answer, Fetcher, RecentTxs
from gridtokenx.node.runtime import Node
from gridtokenx.p2p.gossip import PENALTY, START_SCORE, Gossip, Kind, Outcome
from gridtokenx.wire import codec, tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.votes import Proposal, sign_proposal
from tests.node.test_node import CHAIN, GENESIS_TIME, KEYS, _registrations
from tests.node.test_node_faults import _node
from tests.p2p.rogues import eventually

_ids = msgspec.msgpack.Decoder(list[bytes])
HELD = 12  # of the block's 30 transactions, the receiver holds the first HELD


def _setup(tmp_path: Path) -> tuple[Node, Node, Proposal, list[bytes]]:
    """EGAT and the proposer of height 1 round 0 (both not started: they stay at height 1).
    The proposer holds 30 registrations and proposes them; EGAT holds the first HELD."""
    egat = _node(tmp_path, KEYS["EGAT"], "EGAT")
    address = egat.core.validators.proposer(1, 0)
    code, key = next((c, k) for c, k in KEYS.items() if k.address == address)
    assert code != "EGAT"
    proposer = _node(tmp_path, key, code)
    proposer.gossip.on_connect = None  # it would send its pending transactions to EGAT
    raws = _registrations(30)
    for raw in raws:
        proposer.app.submit(raw)
    for raw in raws[:HELD]:
        egat.app.submit(raw)
    block = proposer.app.build_block(1, GENESIS_TIME + 10, key.address)
    proposal = sign_proposal(key, CHAIN, Proposal(1, 0, block, -1, key.address))
    return egat, proposer, proposal, raws


def _spy_requests(node: Node) -> list[list[bytes]]:
    """The ids of every TXS_REQUEST `node` sends."""
    asked: list[list[bytes]] = []
    send_to = node.gossip.send_to

    def spy(peer: bytes, kind: Kind, payload: bytes) -> bool:
        if kind is Kind.TXS_REQUEST:
            asked.append(_ids.decode(payload))
        return send_to(peer, kind, payload)

    node.gossip.send_to = spy  # type: ignore[method-assign]
    return asked


def test_a_node_lacking_some_transactions_fetches_exactly_those(tmp_path: Path) -> None:
    egat, proposer, proposal, raws = _setup(tmp_path)
    asked = _spy_requests(egat)

    async def scenario() -> None:
        try:
            port = await egat.gossip.listen()
            await proposer.gossip.dial("127.0.0.1", port, expect=KEYS["EGAT"].address)
            await eventually(lambda: len(egat.gossip.peers) == 1)
            payload = codec.encode(compact_proposal(proposal))
            assert len(payload) < len(codec.encode(proposal)) / 2
            proposer.gossip.publish(Kind.PROPOSAL, payload)
            await eventually(lambda: 0 in egat.core.proposals, 10)
            assert egat.core.proposals[0] == proposal  # the very block, whole
            assert asked == [[tx.hash_of(raw) for raw in raws[HELD:]]]
            assert egat.fetcher.fetched == len(raws) - HELD
            assert not egat.fetcher.pending
            await eventually(lambda: egat.core.valid.get(proposal.block_id) is True, 10)
        finally:
            await proposer.stop()
            await egat.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


class _Rogue:
    """A peer that relays the proposal and answers every fetch with the wrong transactions."""

    def __init__(self, wrong: list[bytes]) -> None:
        self.wrong = wrong
        self.gossip = Gossip(PrivateKey.from_dev_label("compact/rogue"), self._take)

    async def _take(self, kind: Kind, payload: bytes, peer: bytes) -> bool:
        if kind is Kind.TXS_REQUEST:
            count = len(_ids.decode(payload))
            self.gossip.send_to(peer, Kind.TXS, codec.encode(self.wrong[:count]))
        return True


def test_a_wrong_answer_is_refused_costs_its_sender_and_the_next_peer_is_asked(
    tmp_path: Path,
) -> None:
    """The rogue sends the (genuine) compact proposal first, so it is asked first; its
    answer has the right count of real transactions, not the ones asked for. EGAT refuses
    it (the proposal stays incomplete), takes score from the rogue, and asks the proposer,
    whose answer completes the block."""
    egat, proposer, proposal, raws = _setup(tmp_path)
    rogue = _Rogue(raws[:HELD] * 3)
    asked = _spy_requests(egat)

    async def scenario() -> None:
        try:
            port = await egat.gossip.listen()
            await rogue.gossip.dial("127.0.0.1", port, expect=KEYS["EGAT"].address)
            await proposer.gossip.dial("127.0.0.1", port, expect=KEYS["EGAT"].address)
            await eventually(lambda: len(egat.gossip.peers) == 2)
            rogue.gossip.publish(Kind.PROPOSAL, codec.encode(compact_proposal(proposal)))
            await eventually(lambda: 0 in egat.core.proposals, 10)
            assert egat.core.proposals[0] == proposal
            missing = [tx.hash_of(raw) for raw in raws[HELD:]]
            assert asked == [missing, missing]  # the rogue, then the proposer
            assert egat.gossip.scores[rogue.gossip.key.address] == START_SCORE - PENALTY
            assert egat.gossip.scores[proposer.key.address] == START_SCORE
            assert egat.fetcher.fetched == len(missing)  # the wrong ones were not counted
        finally:
            await rogue.gossip.close()
            await proposer.stop()
            await egat.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


# --- the fetcher alone (sans I/O) ----------------------------------------------------------
def _compact(tmp_path: Path) -> tuple[CompactProposal, bytes, list[bytes], Proposal]:
    egat, proposer, proposal, raws = _setup(tmp_path)
    egat.app.close()
    proposer.app.close()
    message = compact_proposal(proposal)
    return message, codec.encode(message), raws, proposal


def test_a_compact_block_rebuilds_to_the_very_bytes_the_proposer_signed(tmp_path: Path) -> None:
    message, _, raws, proposal = _compact(tmp_path)
    held = {tx.hash_of(r): r for r in raws}
    assert message.block.tx_ids == tuple(held)
    rebuilt = compact.assemble(message.block, held.get)
    assert rebuilt == proposal.block and message.whole(rebuilt) == proposal
    lacking = {k: v for k, v in held.items() if k != message.block.tx_ids[3]}
    assert compact.assemble(message.block, lacking.get) is None
    assert compact.missing(message.block, lacking.get) == [message.block.tx_ids[3]]


def test_the_fetcher_asks_the_sources_then_other_peers_and_gives_up_after_its_tries(
    tmp_path: Path,
) -> None:
    message, payload, raws, _ = _compact(tmp_path)
    known = {tx.hash_of(r): r for r in raws[:HELD]}
    peers = [bytes([i]) * 20 for i in range(1, 7)]
    fetcher = Fetcher(known.get, lambda got: known.update((tx.hash_of(r), r) for r in got),
                      lambda: peers[2:])  # fmt: skip
    whole, first = fetcher.offer(message, payload, peers[0])
    assert whole is None and first is not None and first.peer == peers[0]
    assert list(first.ids) == [tx.hash_of(r) for r in raws[HELD:]]
    assert fetcher.offer(message, payload, peers[1]) == (None, None)  # a second source
    verdict, done, second = fetcher.answered(peers[0], [])  # cannot supply
    assert verdict is Answer.CANNOT and not done and second is not None
    assert second.peer == peers[1]  # the other source before any other peer
    third = fetcher.expired(second.key, second.attempt)  # no answer in time
    assert third is not None and third.peer == peers[2]
    assert fetcher.expired(second.key, second.attempt) is None  # that attempt is over
    verdict, done, fourth = fetcher.answered(peers[2], raws[: len(third.ids)])
    assert verdict is Answer.WRONG and fourth is not None and fourth.peer == peers[3]
    assert fetcher.answered(peers[5], raws)[0] is Answer.UNASKED
    assert fetcher.expired(fourth.key, fourth.attempt) is None  # FETCH_TRIES asked: given up
    assert not fetcher.pending and fetcher.given_up == 1
    assert FETCH_TRIES == 4


def test_an_answer_completes_the_message_with_every_source(tmp_path: Path) -> None:
    message, payload, raws, proposal = _compact(tmp_path)
    known = {tx.hash_of(r): r for r in raws[:HELD]}
    fetcher = Fetcher(known.get, lambda got: known.update((tx.hash_of(r), r) for r in got),
                      lambda: [])  # fmt: skip
    _, request = fetcher.offer(message, payload, b"\x01" * 20)
    fetcher.offer(message, payload, b"\x02" * 20)
    assert request is not None
    verdict, done, again = fetcher.answered(b"\x01" * 20, raws[HELD:])
    assert verdict is Answer.TAKEN and again is None and fetcher.fetched == len(raws) - HELD
    assert [(w.payload, w.sources) for w in done] == [(payload, (b"\x01" * 20, b"\x02" * 20))]
    assert done[0].block == proposal.block  # the proposer's very bytes


def test_a_node_answers_a_fetch_all_or_nothing_and_refuses_a_malformed_one(
    tmp_path: Path,
) -> None:
    """The answering side: every transaction asked, in order, from the mempool and the
    recent ones; an empty answer when one is missing; a request with an id that is not 32
    bytes costs the asker score (no honest node sends one)."""
    egat, proposer, _, raws = _setup(tmp_path)
    egat.recent.add([raws[-1]])  # relayed, not admitted: held all the same
    answers: list[list[bytes]] = []

    def spy(peer: bytes, kind: Kind, payload: bytes) -> bool:
        assert kind is Kind.TXS
        answers.append(_ids.decode(payload))
        return True

    egat.gossip.send_to = spy  # type: ignore[method-assign]
    asker = b"\x05" * 20

    async def scenario() -> None:
        try:
            held = [raws[3], raws[0], raws[-1]]
            ask = codec.encode([tx.hash_of(r) for r in held])
            assert await egat._on_message(Kind.TXS_REQUEST, ask, asker) is Outcome.RELAY
            lacking = codec.encode([tx.hash_of(raws[0]), tx.hash_of(raws[HELD])])
            assert await egat._on_message(Kind.TXS_REQUEST, lacking, asker) is Outcome.RELAY
            assert answers == [held, []]
            short = codec.encode([b"\x01" * 31])
            assert await egat._on_message(Kind.TXS_REQUEST, short, asker) is Outcome.INVALID
            unasked = codec.encode(raws[:2])  # an answer to nothing: ignored, not held
            assert await egat._on_message(Kind.TXS, unasked, asker) is Outcome.RELAY
            assert egat.fetcher.fetched == 0 and len(answers) == 2
        finally:
            await proposer.stop()
            await egat.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_transactions_arriving_by_gossip_complete_a_proposal_being_fetched(
    tmp_path: Path,
) -> None:
    """The peer that sent the compact proposal never answers the fetch; the missing
    transactions then arrive from it as an ordinary batch, and the proposal is complete
    with them, though no answer ever came."""
    egat, proposer, proposal, raws = _setup(tmp_path)
    silent = Gossip(PrivateKey.from_dev_label("compact/silent"), _ignore)

    async def scenario() -> None:
        try:
            port = await egat.gossip.listen()
            await silent.dial("127.0.0.1", port, expect=KEYS["EGAT"].address)
            await eventually(lambda: len(egat.gossip.peers) == 1)
            silent.publish(Kind.PROPOSAL, codec.encode(compact_proposal(proposal)))
            await eventually(lambda: len(egat.fetcher.pending) == 1)
            silent.publish(Kind.TX, codec.encode(raws[HELD:]))
            # Without the batch it never would: the silent peer is the only one to ask.
            await eventually(lambda: 0 in egat.core.proposals, 10)
            assert egat.core.proposals[0] == proposal and egat.fetcher.fetched == 0
        finally:
            await silent.close()
            await proposer.stop()
            await egat.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


async def _ignore(kind: Kind, payload: bytes, peer: bytes) -> bool:
    return True


def test_a_copy_of_a_recent_transaction_gets_its_id_without_hashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A peer's or client's copy of a transaction held here is looked up by its bytes;
    one forgotten (past the count) is hashed again, and both maps forget together."""
    raws = [bytes([i]) * 40 for i in range(6)]
    recent = RecentTxs(count=4)
    recent.add(raws)
    hashed: list[bytes] = []
    real = tx.hash_of
    monkeypatch.setattr(compact_blocks.tx, "hash_of", lambda raw: hashed.append(raw) or real(raw))
    copies = [bytes(bytearray(raw)) for raw in raws]  # new objects, as a decoded batch's
    assert recent.ids_of(copies) == [real(raw) for raw in raws]
    assert hashed == raws[:2]  # the two forgotten
    assert len(recent._ids) == len(recent) == 4


def test_a_relay_is_remembered_past_two_peers_full_pools_of_others() -> None:
    """A proposal may name a transaction relayed while two peers' pools, each at its
    `Mempool.max_txs`, filled with others: at twice the saturation rate proposals named
    relays of 15-30 s before, and with 40,000 remembered each was fetched again."""
    first = b"\x01" * 170
    recent = RecentTxs()
    recent.add([first])
    pool = Mempool(CHAIN)
    later = 2 * pool.max_txs
    pool.close()
    recent.add([i.to_bytes(4) * 42 for i in range(later)], [i.to_bytes(32) for i in range(later)])
    assert recent.get(tx.hash_of(first)) == first
