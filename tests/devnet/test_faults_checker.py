"""The fault harness's checker on stores made without processes: five validators of the
consensus simulator with the real application commit a few heights into RocksDB, and the
checker must pass them as they are and catch what a doctored store or acknowledgement list
hides (a lost transaction, a diverging state root, two certified blocks at one height, a
certificate that does not certify)."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

from gridtokenx.chain import blocks
from gridtokenx.consensus.simulation import CHAIN_ID, Scenario
from gridtokenx.devnet.faults.checker import Verdict, check
from gridtokenx.ledger import genesis
from gridtokenx.storage.store import Store
from gridtokenx.wire import codec, tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.votes import Vote, VoteType, block_id, sign_vote
from tests.chain.test_replicated_chain import GENESIS_TIME, _chain, _transactions
from tests.chain.test_replicated_chain import KEYS as VALIDATORS

SPEC = genesis.devnet(CHAIN_ID, GENESIS_TIME, genesis.dev_keys())


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Five validators' stores (`validator-0` ...) after four heights holding 30
    transactions (the replicated-chain test's); their hashes."""
    root = tmp_path_factory.mktemp("chain")
    txs = _transactions(30)
    _sim, apps = _chain(root, Scenario(seed=5, validators=5, heights=4, delay_ms=(1, 50)), txs)
    for app in apps.values():
        app.close()
    return root, [tx.hash_of(raw).hex() for raw in txs]


def _copy(chain: tuple[Path, list[str]], tmp_path: Path) -> dict[str, Path]:
    root, _ = chain
    stores = {}
    for i in range(5):
        shutil.copytree(root / f"validator-{i}", tmp_path / f"v{i}")
        stores[f"v{i}"] = tmp_path / f"v{i}"
    return stores


def _check(stores: dict[str, Path], acked: dict[str, str], said: dict[str, str]) -> Verdict:
    return check(SPEC, stores, acked, said)


def test_clean_stores_pass_and_every_acknowledged_transaction_is_committed(
    chain: tuple[Path, list[str]], tmp_path: Path
) -> None:
    stores = _copy(chain, tmp_path)
    acked = dict.fromkeys(chain[1], "v1")
    verdict = _check(stores, acked, {})
    assert verdict.ok, verdict.violations
    assert set(verdict.heights.values()) == {4} and verdict.checked_height == 4
    assert set(verdict.committed) == set(acked) and verdict.committed_txs == 30
    with Store(stores["v0"]) as store:
        assert verdict.state_root == store.load_state().root().hex()


def test_a_lost_and_a_dropped_transaction_are_told_apart(
    chain: tuple[Path, list[str]], tmp_path: Path
) -> None:
    stores = _copy(chain, tmp_path)
    never, evicted = "ab" * 32, "cd" * 32  # acknowledged, in no block
    acked = {**dict.fromkeys(chain[1], "v0"), never: "v2", evicted: "v3"}
    verdict = _check(stores, acked, {never: "pending", evicted: "dropped:EVICTED"})
    assert verdict.safe and not verdict.ok
    assert verdict.lost == {never: "pending"}
    assert verdict.dropped == {evicted: "EVICTED"}
    # A node that says committed what no block holds is a violation, not a mere loss.
    verdict = _check(stores, {never: "v2"}, {never: "committed"})
    assert not verdict.safe and "no stored block holds it" in verdict.violations[0]


def test_a_diverging_state_root_is_caught(chain: tuple[Path, list[str]], tmp_path: Path) -> None:
    stores = _copy(chain, tmp_path)
    with Store(stores["v2"]) as store:  # one record gone from one node's state
        state = store.db.get_column_family("state")
        key = next(iter(state.keys()))
        state.delete(key)
        del state
    verdict = _check(stores, {}, {})
    assert not verdict.safe
    assert any(v.startswith("v2 at height 4: stored state root") for v in verdict.violations)


def _forge(store_path: Path, height: int, signers: list[PrivateKey]) -> None:
    """Replace a stored block with another at the same height (a later time), with a
    certificate of precommits from `signers`."""
    with Store(store_path) as store:
        stored = store.block(height)
        assert stored is not None
        block = blocks.decode(stored[0])
        header = msgspec.structs.replace(block.header, time=block.header.time + 1)
        other = codec.encode(msgspec.structs.replace(block, header=header))
        votes = tuple(
            sign_vote(k, CHAIN_ID, Vote(height, 0, VoteType.PRECOMMIT, block_id(other), k.address))
            for k in signers
        )
        family = store.db.get_column_family("blocks")
        family[b"b" + height.to_bytes(8)] = other
        family[b"c" + height.to_bytes(8)] = codec.encode(votes)
        del family


def test_two_certified_blocks_at_one_height_are_caught(
    chain: tuple[Path, list[str]], tmp_path: Path
) -> None:
    stores = _copy(chain, tmp_path)
    _forge(stores["v4"], 2, VALIDATORS)  # every validator signed both: equivocation
    verdict = _check(stores, {}, {})
    assert not verdict.safe
    assert verdict.violations == [verdict.violations[0]]
    assert verdict.violations[0].startswith("height 2: different blocks on different nodes")
    assert verdict.checked_height == 1  # nothing above a split is trusted


def test_a_certificate_without_a_quorum_is_caught(
    chain: tuple[Path, list[str]], tmp_path: Path
) -> None:
    stores = {"v0": _copy(chain, tmp_path)["v0"]}
    _forge(stores["v0"], 3, VALIDATORS[:2])  # 18,000 of 39,000: no quorum
    verdict = _check(stores, {}, {})
    assert "height 3: v0's commit certificate does not certify its block" in verdict.violations
