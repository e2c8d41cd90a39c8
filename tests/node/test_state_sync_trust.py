"""State sync on a chain whose validator set governance has changed since genesis.

Five real applications run under the consensus simulator. Two governance votes replace
half of the genesis power (ERC by NEPO, then PEA by a new key), so a snapshot's certificate
carries too few genesis signatures for a node that trusts only its genesis set. The serving
node's offer carries the two changes (`chain.light_client` hops): a new node follows them
from genesis, over the real transport, and joins at the snapshot's height with the state
root block h+1 carries. An offer without them, or one whose last change names a forged
set, is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from gridtokenx.chain import blocks, light_client
from gridtokenx.chain.application import Application
from gridtokenx.consensus.simulation import CHAIN_ID, Scenario, Simulation
from gridtokenx.ledger import genesis, validator_set
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.node import state_sync
from gridtokenx.p2p.gossip import Gossip, Kind, Outcome
from gridtokenx.storage import snapshots, validator_history
from gridtokenx.storage.store import Store, open_application
from gridtokenx.wire import codec, tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import CastVote, ValidatorChange, VoteChoice
from gridtokenx.wire.validators import ValidatorSet
from gridtokenx.wire.votes import Vote, VoteType, block_id, sign_vote
from tests.conftest import key
from tests.ledger.test_validator_changes import (
    AUTHORITIES,
    GENESIS_TIME,
    _proposal,
    _scripted_nodes,
    _voting,
    _without_nepo_power,
)

NEW = key("validator/new")
HEIGHTS = 16
SNAPSHOT = 14  # offered once 15 is committed: both certified by the changed set


def _chain(folder: Path) -> tuple[genesis.Genesis, Application, snapshots.Snapshots]:
    """The changed chain; node 0's application and its snapshots (one, at SNAPSHOT)."""
    keys = genesis.dev_keys()
    egat, mea, pea, erc, nepo = (keys[c] for c in AUTHORITIES)
    sb = _without_nepo_power(Sandbox(chain_id=CHAIN_ID, genesis_time=GENESIS_TIME))
    spec = _voting(sb.genesis, period=3, timelock=1)
    four = sb.validators(1)
    power = {v.address: v.power for v in four.validators}

    def signed(signer: PrivateKey, nonce: int, body: tx.Body) -> bytes:
        return tx.make(signer, CHAIN_ID, nonce, body).encode()

    def yes(proposal_id: int, nonces: tuple[int, int, int, int]) -> list[bytes]:
        voters = zip((egat, mea, pea, erc), nonces, strict=True)
        return [signed(s, n, CastVote(proposal_id, VoteChoice.YES)) for s, n in voters]

    first = _proposal(ValidatorChange(nepo.public_key, power[erc.address]),
                      ValidatorChange(erc.public_key, 0))  # fmt: skip
    second = _proposal(ValidatorChange(NEW.public_key, power[pea.address]),
                       ValidatorChange(pea.public_key, 0))  # fmt: skip
    apps: dict[int, Application] = {}
    served = snapshots.Snapshots(folder / "snapshots", chunk_bytes=2048)
    recorders: dict[int, validator_history.Recorder] = {}

    def submit(raws: list[bytes]) -> list[Callable[[Application], object]]:
        return [lambda a, raw=raw: a.submit(raw) for raw in raws]

    def observe(a: Application) -> None:  # what node 0's Snapshotter does on each commit
        if a is apps[0]:
            assert isinstance(a.store, Store)
            recorder = recorders.setdefault(0, validator_history.Recorder(a.store))
            recorder.observe()
            if a.height == SNAPSHOT:
                served.build(served.checkpoint(a.store))
            served.complete(a.store, recorder)

    script: dict[int, list[Callable[[Application], object]]] = {
        h: [observe] for h in range(1, HEIGHTS + 1)
    }
    script[0] = submit([signed(egat, 0, first)])  # in block 1, executed at 4, signs from 6
    script[1] += submit(yes(1, (1, 0, 0, 0)))
    script[4] += submit([signed(egat, 2, second)])  # in block 5, executed at 8, from 10
    script[5] += submit(yes(2, (3, 1, 1, 1)))
    open_app = _scripted_nodes(spec, folder, script, apps)
    scenario = Scenario(seed=3, validators=6, heights=HEIGHTS, delay_ms=(1, 50))
    Simulation(scenario, apps=open_app, keys=[egat, mea, pea, erc, nepo, NEW],
               validators=four).run()  # fmt: skip
    for index, app in apps.items():
        if index:
            app.close()
    return spec, apps[0], served


Chain = tuple[genesis.Genesis, Application, snapshots.Snapshots]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    spec, app, served = _chain(tmp_path_factory.mktemp("changed"))
    yield spec, app, served
    app.close()


def test_more_than_a_third_of_the_genesis_power_was_replaced(chain: Chain) -> None:
    spec, app, served = chain
    first = validator_set.for_height(genesis.build_state(spec), 1)
    last = app.validators(HEIGHTS + 1)
    kept = sum(v.power for v in first.validators if last.get(v.address) is not None)
    assert 3 * kept < 2 * first.total_power  # more than a third of the power replaced
    offer = snapshots.decode_offer(served.offers()[0])
    assert offer.height == SNAPSHOT
    assert [validator_history.height_of(h) for h in offer.hops] == [6, 10]
    joiner = state_sync.Joiner(spec, PrivateKey.from_dev_label("trust/joiner"))
    assert joiner.certified(served.offers()[0]) == offer
    # The genesis validators alone do not vouch for the snapshot's certificates.
    bare = codec.encode(msgspec.structs.replace(offer, hops=()))
    assert joiner.certified(bare) is None
    skipped = codec.encode(msgspec.structs.replace(offer, hops=offer.hops[1:]))
    assert joiner.certified(skipped) is None


def _forged_set(offer: snapshots.Offer, attackers: list[PrivateKey]) -> bytes:
    """The offer with its last change replaced by a set of `attackers`, and blocks h and
    h+1 re-made under that set and certified by it: consistent, but not vouched for by a
    third of the set trusted before the change."""
    forged_set = ValidatorSet.of([(k.public_key, 10_000) for k in attackers])
    forged_hash = validator_set.set_hash(forged_set)

    def remade(raw: bytes) -> tuple[bytes, bytes]:
        block = blocks.decode(raw)
        header = msgspec.structs.replace(block.header, validators_hash=forged_hash)
        encoded = msgspec.structs.replace(block, header=header).encode()
        bid = block_id(encoded)
        votes = tuple(sign_vote(k, CHAIN_ID, Vote(header.height, 0, VoteType.PRECOMMIT, bid,
                                                  k.address)) for k in attackers)  # fmt: skip
        return encoded, codec.encode(votes)

    last = offer.hops[-1]
    hop_block, hop_certificate = remade(last.block)
    hop = light_client.Hop(hop_block, hop_certificate, light_client.members_of(forged_set))
    block, certificate = remade(offer.block)
    next_block, next_certificate = remade(offer.next_block)
    forged = msgspec.structs.replace(offer, hops=(*offer.hops[:-1], hop), block=block,
                                     certificate=certificate, next_block=next_block,
                                     next_certificate=next_certificate)  # fmt: skip
    return codec.encode(forged)


def test_a_forged_validator_set_is_refused(chain: Chain) -> None:
    spec, _, served = chain
    offer = snapshots.decode_offer(served.offers()[0])
    joiner = state_sync.Joiner(spec, PrivateKey.from_dev_label("trust/joiner"))
    attackers = [NEW, *(PrivateKey.from_dev_label(f"trust/attacker-{i}") for i in range(3))]
    assert joiner.certified(_forged_set(offer, attackers)) is None
    # The same forgery signed by one of the trusted set's validators too: still a quarter.
    nepo = genesis.dev_keys()["NEPO"]
    forged = snapshots.decode_offer(_forged_set(offer, [nepo, *attackers]))
    assert joiner.certified(codec.encode(forged)) is None
    genesis_set = validator_set.for_height(genesis.build_state(spec), 1)
    with pytest.raises(light_client.Untrusted, match="a third needed"):
        light_client.walk(CHAIN_ID, genesis_set, forged.hops, forged.height + 1)
    light_client.walk(CHAIN_ID, genesis_set, offer.hops, offer.height + 1)  # the real ones
    # Members that hash to the header but with an address not their key's: refused.
    with pytest.raises(light_client.Untrusted, match="address"):
        light_client.set_of(((NEW.address, nepo.public_key, 1),))


class _Server:
    """A serving peer: the node's own answer to the state-sync kinds."""

    def __init__(self, served: snapshots.Snapshots) -> None:
        self.served = served
        self.gossip = Gossip(PrivateKey.from_dev_label("trust/server"), self._on)

    async def _on(self, kind: Kind, payload: bytes, peer: bytes) -> Outcome:
        return state_sync.answer(self.served, self.gossip, kind, payload, peer)


def test_a_new_node_joins_a_chain_whose_set_changed(chain: Chain, tmp_path: Path) -> None:
    spec, app, served = chain

    async def scenario() -> state_sync.Joined | None:
        server = _Server(served)
        try:
            port = await server.gossip.listen()
            peers = [("127.0.0.1", port, server.gossip.key.address.hex())]
            key_ = PrivateKey.from_dev_label("trust/new")
            return await state_sync.join(tmp_path / "new", spec, key_, peers, timeout_s=20)
        finally:
            await server.gossip.close()

    done = asyncio.run(scenario())
    assert done is not None and done.height == SNAPSHOT and done.chunks > 1, done
    joined = open_application(spec, tmp_path / "new")
    try:
        stored = app.store.block(SNAPSHOT + 1)
        assert stored is not None
        assert joined.height == SNAPSHOT
        assert joined.state.root() == blocks.decode(stored[0]).header.state_root
        # It serves the changes on: its history starts from the hops it verified.
        assert isinstance(joined.store, Store)
        history = validator_history.load(joined.store)
        assert [validator_history.height_of(h) for h in history.hops] == [6, 10]
        assert history.seen == SNAPSHOT and not history.broken
    finally:
        joined.close()
