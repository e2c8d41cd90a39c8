"""Four validators run consensus over the simulated network with the real application:
blocks built from a mempool, validated by trial execution, committed into RocksDB. Every
validator must reach the same state root at every height, equal to the certified header's,
also across a crash and restart that reloads the application from its store."""

from __future__ import annotations

import contextlib
from pathlib import Path

import msgspec

from gridtokenx.chain import blocks
from gridtokenx.chain.application import Application, Rejected
from gridtokenx.consensus.simulation import CHAIN_ID, Scenario, Simulation
from gridtokenx.ledger import genesis, validator_set
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.storage.store import Store, open_application
from gridtokenx.wire import tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.validators import ValidatorSet
from gridtokenx.wire.votes import Vote

GENESIS_TIME = 1_767_225_600
AUTHORITY_KEYS = genesis.dev_keys()
KEYS = [AUTHORITY_KEYS[c] for c in ("EGAT", "MEA", "PEA", "ERC", "NEPO")]  # genesis validators


def _genesis_set(spec: genesis.Genesis) -> ValidatorSet:
    return validator_set.for_height(genesis.build_state(spec), 1)


def _transactions(count: int) -> list[bytes]:
    """MEA registers households and the ERC licenses them: senders that exist at genesis,
    so every transaction is admitted at once (a licence may wait a block for its holder)."""
    sb = Sandbox(chain_id=CHAIN_ID, genesis_time=GENESIS_TIME)
    mea, erc = sb.authority("MEA"), sb.authority("ERC")
    out: list[bytes] = []

    def add(key: PrivateKey, body: tx.Body) -> None:
        out.append(sb.sign(key, body).encode())
        sb.submit(key, body)

    homes = [PrivateKey.from_dev_label(f"chain/home/{i}") for i in range(count)]
    for i, home in enumerate(homes[: count * 2 // 3]):
        add(mea, tx.RegisterParticipant(home.address, "BKK", tx.ParticipantKind.HOUSEHOLD, f"h{i}"))
    for home in homes[: count - len(out)]:
        add(erc, tx.GrantLicence(home.address, tx.LicenceKind.SELLER, GENESIS_TIME + 10**7))
    return out


def _chain(
    tmp_path: Path, scenario: Scenario, txs: list[bytes]
) -> tuple[Simulation, dict[int, Application]]:
    spec = genesis.devnet(CHAIN_ID, GENESIS_TIME, genesis.dev_keys())
    apps: dict[int, Application] = {}

    def app(index: int, restarted: bool) -> Application:
        if restarted:
            apps[index].close()
        opened = open_application(spec, tmp_path / f"validator-{index}")
        for raw in txs:  # every validator's mempool receives the transactions
            with contextlib.suppress(Rejected):  # already committed before a restart
                opened.submit(raw)
        apps[index] = opened
        return opened

    sim = Simulation(scenario, apps=app, keys=KEYS, validators=_genesis_set(spec))
    sim.run()
    return sim, apps


def _certified_roots(app: Application, height: int) -> list[bytes]:
    roots = []
    for h in range(1, height + 1):
        stored = app.store.block(h)
        assert stored is not None
        block = blocks.decode(stored[0])
        certificate = msgspec.msgpack.decode(stored[1], type=tuple[Vote, ...])
        assert {v.height for v in certificate} == {h}
        roots.append(block.header.state_root)
    return roots


def test_four_validators_commit_the_same_blocks_and_state(tmp_path: Path) -> None:
    txs = _transactions(60)
    _sim, apps = _chain(tmp_path, Scenario(seed=3, validators=5, heights=4, delay_ms=(1, 100)), txs)
    roots = {i: a.state.root() for i, a in apps.items()}
    assert len(set(roots.values())) == 1
    assert all(a.height == 4 for a in apps.values())
    headers = [_certified_roots(a, 4) for a in apps.values()]
    assert all(h == headers[0] for h in headers)
    assert headers[0][-1] == roots[0]
    stored = [apps[0].store.block(h) for h in range(1, 5)]
    included = sum(len(blocks.decode(s[0]).txs) for s in stored if s is not None)
    assert included == len(txs)  # everything submitted was committed...
    assert all(not a.mempool for a in apps.values())  # ...and left every mempool
    for i, a in apps.items():
        a.close()
        with Store(tmp_path / f"validator-{i}") as reopened:
            assert reopened.load_state().root() == roots[i]


def test_a_validator_that_crashes_reloads_from_its_store_and_catches_up(tmp_path: Path) -> None:
    txs = _transactions(40)
    scenario = Scenario(
        seed=8, validators=5, heights=6, delay_ms=(1, 200), crashes=((2, 1_500, 9_000),)
    )
    _sim, apps = _chain(tmp_path, scenario, txs)
    roots = {a.state.root() for a in apps.values()}
    assert len(roots) == 1
    assert all(a.height == 6 for a in apps.values())
    for a in apps.values():
        a.close()


def test_an_equivocator_is_jailed_on_chain_and_the_rest_go_on(tmp_path: Path) -> None:
    """Honest validators report the double vote, a block carries the evidence, every ledger
    jails the validator from two heights later, and consensus continues without it."""
    txs = _transactions(12)
    scenario = Scenario(seed=4, validators=5, heights=8, equivocators=frozenset({2}))
    sim, apps = _chain(tmp_path, scenario, txs)
    honest = [i for i in apps if i != 2]
    roots = {apps[i].state.root() for i in honest}
    assert len(roots) == 1 and all(apps[i].height == 8 for i in honest)
    assert sim.evidence
    jailed = KEYS[2].address
    carried = [
        h
        for h in range(1, 9)
        if (stored := apps[0].store.block(h)) is not None and blocks.decode(stored[0]).evidence
    ]
    assert carried, "no block carried the evidence"
    first = carried[0]
    assert first + 2 <= 8, "the chain should run past the activation height"
    before = _genesis_set(genesis.devnet(CHAIN_ID, GENESIS_TIME, AUTHORITY_KEYS))
    after = ValidatorSet(tuple(v for v in before.validators if v.address != jailed))

    def header(h: int) -> blocks.Header:
        stored = apps[0].store.block(h)
        assert stored is not None
        return blocks.decode(stored[0]).header

    # The block after the evidence is still signed by the old set; from H + 2 the new one.
    assert header(first + 1).validators_hash == validator_set.set_hash(before)
    assert header(first + 2).validators_hash == validator_set.set_hash(after)
    for h in range(first + 2, 9):
        stored = apps[0].store.block(h)
        assert stored is not None
        votes = msgspec.msgpack.decode(stored[1], type=tuple[Vote, ...])
        assert jailed not in {v.validator for v in votes}
    assert apps[0].validators(9).get(jailed) is None
    for i in apps:
        apps[i].close()
