"""The application a validator runs: proposals bounded by the validator's clock, each
signature verified once per node, blocks voted on after cheap checks and executed once at
their commit, transactions that fail there recorded as failed, and a crash between the
decision and the commit recovered by executing the certified block after the restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gridtokenx.chain import blocks
from gridtokenx.chain.application import (
    CERTIFIED,
    DEEP_BACKLOG_BLOCKS,
    MIN_BLOCK_TXS,
    SHARED_CORES_ALLOWANCE,
    Application,
)
from gridtokenx.chain.mempool import DUPLICATE
from gridtokenx.ledger import genesis, transition, validator_set
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.storage.store import open_application
from gridtokenx.surveillance import follow
from gridtokenx.surveillance.follower import Follower
from gridtokenx.wire import crypto, tx
from gridtokenx.wire.crypto import PrivateKey
from tests.conftest import AddressHashes

CHAIN = "gridtokenx-app-test"
GENESIS_TIME = 1_767_225_600
SPEC = genesis.devnet(CHAIN, GENESIS_TIME, genesis.dev_keys())
EGAT = genesis.dev_keys()["EGAT"]


def _registrations(count: int) -> list[bytes]:
    sb = Sandbox(spec=SPEC)
    mea = sb.authority("MEA")
    out = []
    for i in range(count):
        body = tx.RegisterParticipant(
            PrivateKey.from_dev_label(f"app/{i}").address, "BKK", tx.ParticipantKind.HOUSEHOLD, "h"
        )
        out.append(sb.sign(mea, body).encode())
        sb.submit(mea, body)
    return out


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[tuple[Application, Application]]:
    pair = (open_application(SPEC, tmp_path / "a"), open_application(SPEC, tmp_path / "b"))
    yield pair
    for app in pair:
        app.close()


class _Counting:
    """Counts `transition.apply` calls and signature checks while it is installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.applied = 0
        self.checked = 0
        real = transition.apply

        def counting(*args: object, check_signature: bool = True) -> object:
            self.applied += 1
            self.checked += check_signature
            return real(*args, check_signature=check_signature)  # type: ignore[arg-type]

        monkeypatch.setattr(transition, "apply", counting)


def test_a_checked_block_executes_once_at_its_commit(
    apps: tuple[Application, Application], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Voting needs the cheap checks only: nothing executes before the decision, then each
    node executes the block once, without verifying a signature again, and the next
    block's header carries the root both reached."""
    proposer, validator = apps
    txs = _registrations(5)
    for app in apps:
        for raw in txs:
            app.submit(raw)
    raw = proposer.build_block(1, GENESIS_TIME + 5, EGAT.address)
    count = _Counting(monkeypatch)
    assert count.applied == 0  # building executed nothing
    assert validator.check_block(1, raw, now=GENESIS_TIME + 5)
    assert count.applied == 0  # nor did the check
    assert blocks.decode(raw).header.state_root == validator.state.root()  # the root before
    validator.commit(1, raw, ())
    proposer.commit(1, raw, ())
    assert count.applied == 10 and count.checked == 0  # once per node, signatures known
    assert validator.state.root() == proposer.state.root()
    following = proposer.build_block(2, GENESIS_TIME + 6, EGAT.address)
    assert blocks.decode(following).header.state_root == validator.state.root()
    assert validator.check_block(2, following, now=GENESIS_TIME + 6)
    assert validator.state.recompute_root() == validator.state.root()
    assert validator.store.load_state().root() == validator.state.root()
    assert all(validator.mempool.status(tx.hash_of(r)) == "committed" for r in txs)


def test_a_block_whose_transactions_never_arrived_is_verified_before_it_runs(
    apps: tuple[Application, Application], monkeypatch: pytest.MonkeyPatch
) -> None:
    proposer, validator = apps
    for raw in _registrations(3):
        proposer.submit(raw)  # the validator's mempool never sees them
    raw = proposer.build_block(1, GENESIS_TIME + 5, EGAT.address)
    verified: list[int] = []
    real_verify = validator.mempool.verify

    def spy(raws: list[bytes]) -> list[bool]:
        verified.append(len(raws))
        return real_verify(raws)

    monkeypatch.setattr(validator.mempool, "verify", spy)
    assert validator.check_block(1, raw, now=GENESIS_TIME + 5)
    assert verified == [3]
    validator.commit(1, raw, ())
    proposer.commit(1, raw, ())
    assert verified == [3]  # the commit used the screen's verdicts
    assert validator.state.root() == proposer.state.root()


def test_a_forged_signature_in_a_proposal_makes_it_invalid(
    apps: tuple[Application, Application],
) -> None:
    _, validator = apps
    good = tx.decode(_registrations(1)[0])
    forged = tx.SignedTransaction(good.tx, bytes(64)).encode()
    state = validator.state
    root = state.root()
    header = blocks.Header(
        CHAIN, 1, GENESIS_TIME + 5, b"\x00" * 32, EGAT.address, blocks.tx_root((forged,)),
        root, validator_set.set_hash(validator.validators(1)), blocks.evidence_root(()),
    )  # fmt: skip
    assert not validator.check_block(1, blocks.Block(header, (forged,)).encode())
    assert state.root() == root


@pytest.mark.parametrize(("offset", "ok"), [(0, True), (5, True), (-5, True), (6, False)])
def test_a_proposal_dated_away_from_the_validators_clock_is_refused(
    apps: tuple[Application, Application], offset: int, ok: bool
) -> None:
    proposer, validator = apps
    now = GENESIS_TIME + 3600
    raw = proposer.build_block(1, now + offset, EGAT.address)
    assert validator.check_block(1, raw, now=now) is ok
    assert validator.check_block(1, raw) is True  # no clock: certified blocks (sync)


def test_a_backdated_proposal_is_refused(apps: tuple[Application, Application]) -> None:
    proposer, validator = apps
    raw = proposer.build_block(1, GENESIS_TIME + 10, EGAT.address)
    assert not validator.check_block(1, raw, now=GENESIS_TIME + 16)


def test_blocks_may_share_a_second_but_time_never_goes_back(
    apps: tuple[Application, Application],
) -> None:
    proposer, validator = apps
    now = GENESIS_TIME + 100
    for height in (1, 2):
        raw = proposer.build_block(height, now, EGAT.address)
        assert validator.check_block(height, raw, now=now)
        for app in apps:
            app.commit(height, raw, ())
        assert blocks.decode(raw).header.time == now
    raw = proposer.build_block(3, now - 1, EGAT.address)
    assert blocks.decode(raw).header.time == now  # the proposer's clock lags: it waits


def test_a_transaction_that_fails_as_it_executes_is_committed_as_failed_with_its_code(
    apps: tuple[Application, Application],
) -> None:
    """Admission cannot know balances, and voting no longer executes: an overdrawn
    transfer goes into a block, fails there with the ledger's code, uses its nonce, and
    its sender's next transaction follows in the same block. A participant's own
    transaction waits in the mempool until the block that registers it is committed."""
    proposer, _ = apps
    sb = Sandbox(spec=SPEC)
    mea = sb.authority("MEA")
    poor = PrivateKey.from_dev_label("app/poor")
    register = sb.sign(mea, tx.RegisterParticipant(poor.address, "BKK",
                                                   tx.ParticipantKind.HOUSEHOLD, "p"))  # fmt: skip
    proposer.submit(register.encode())
    proposer.commit(1, proposer.build_block(1, GENESIS_TIME + 5, EGAT.address), ())
    overdraw = tx.make(poor, CHAIN, 0, tx.Transfer(tx.Asset.THB, EGAT.address, 100))
    follower = tx.make(poor, CHAIN, 1, tx.Transfer(tx.Asset.GRID, EGAT.address, 0))
    for signed in (overdraw, follower):
        proposer.submit(signed.encode())
    raw = proposer.build_block(2, GENESIS_TIME + 6, EGAT.address)
    assert blocks.decode(raw).txs == (overdraw.encode(), follower.encode())
    receipts = proposer.commit(2, raw, ())
    assert blocks.failure_of(receipts[0].events) == "INSUFFICIENT_BALANCE"
    stored = proposer.receipt(overdraw.hash)
    assert stored is not None and stored.failed == "INSUFFICIENT_BALANCE"
    assert stored.height == 2 and stored.index == 0
    assert proposer.mempool.status(overdraw.hash) == "committed"
    assert proposer.nonce_of(poor.address) == 2  # both nonces used, failed or not
    # A participant whose registration is not committed yet cannot send: the mempool
    # refuses it, so no block holds a transaction whose sender the screen cannot find.
    later = PrivateKey.from_dev_label("app/later")
    sb.submit(mea, register.tx.body)  # the sandbox's MEA nonce follows the chain's
    proposer.submit(sb.sign(mea, tx.RegisterParticipant(later.address, "BKK",
                                                        tx.ParticipantKind.HOUSEHOLD, "l")
                            ).encode())  # fmt: skip
    own = tx.make(later, CHAIN, 0, tx.Transfer(tx.Asset.GRID, EGAT.address, 0)).encode()
    assert proposer.mempool.add(own, proposer.nonce_of, 0).code == "UNKNOWN_SENDER"
    proposer.commit(3, proposer.build_block(3, GENESIS_TIME + 7, EGAT.address), ())
    assert proposer.mempool.add(own, proposer.nonce_of, 0).accepted
    assert own in blocks.decode(proposer.build_block(4, GENESIS_TIME + 8, EGAT.address)).txs


def test_transactions_waiting_in_the_mempool_survive_a_restart(tmp_path: Path) -> None:
    """A node that acknowledged transactions and then stops (or is killed) before they are
    committed admits them again when it reopens its store; committed ones are forgotten."""
    txs = _registrations(4)
    app = open_application(SPEC, tmp_path / "n")
    for raw in txs[:2]:
        app.submit(raw)
    raw_block = app.build_block(1, GENESIS_TIME + 5, EGAT.address)
    app.commit(1, raw_block, ())
    for raw in txs[2:]:
        app.submit(raw)
    app.store.close()  # as abrupt as the process ends: no mempool shutdown, no flush
    app.mempool.close()
    reopened = open_application(SPEC, tmp_path / "n")
    try:
        hashes = [tx.hash_of(raw) for raw in txs]
        assert [reopened.mempool.holds(h) for h in hashes] == [False, False, True, True]
        assert sorted(reopened.store.pending()) == sorted(txs[2:])
        reopened.commit(2, reopened.build_block(2, GENESIS_TIME + 6, EGAT.address), ())
        assert reopened.store.pending() == []
        assert reopened.mempool.status(hashes[3]) == "committed"
    finally:
        reopened.close()


def test_a_peers_relay_is_not_saved_until_a_client_sends_it_here(tmp_path: Path) -> None:
    """Only what a node acknowledges must survive its crash: a peer's relay (`keep` False)
    is held but not saved, since the node that acknowledged it saved it; a client sending
    it again gets DUPLICATE, an acknowledgement, so then it is saved."""
    txs = _registrations(3)
    app = open_application(SPEC, tmp_path / "n")
    try:
        relayed = app.admit(txs, app.mempool.check(txs), keep=False)
        assert all(a.accepted for a in relayed) and app.store.pending() == []
        again = app.admit(txs[1:2], app.mempool.check(txs[1:2]))
        assert [a.code for a in again] == [DUPLICATE]
        assert app.store.pending() == [txs[1]]
        app.commit(1, app.build_block(1, GENESIS_TIME + 5, EGAT.address), ())
        assert app.store.pending() == []
    finally:
        app.close()


def test_a_commit_forgets_the_saved_copies_of_what_left_the_mempool_in_its_own_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saved copies of a block's transactions go in the height's synced batch, with
    no write of their own and no scan of everything saved; one still waiting stays."""
    txs = _registrations(3)
    app = open_application(SPEC, tmp_path / "n")
    try:
        for raw in txs[:2]:
            app.submit(raw)
        raw_block = app.build_block(1, GENESIS_TIME + 5, EGAT.address)
        app.submit(txs[2])  # arrives while block 1 is agreed: still waiting after it

        def separate_write(hashes: list[bytes]) -> None:
            raise AssertionError(f"a write of its own for {len(hashes)} saved copies")

        monkeypatch.setattr(app.store, "forget_pending", separate_write)
        app.commit(1, raw_block, ())
        assert app.store.pending() == [txs[2]]
        assert app.mempool.take_gone() == []  # taken by the commit
    finally:
        app.close()


def test_a_node_killed_after_the_decision_executes_the_certified_block_after_restart(
    tmp_path: Path,
) -> None:
    """The block and its execution are one write: a node killed after the decision and
    before that write holds neither. It reopens at the height before, takes the certified
    block (as block sync brings it), executes it, and reaches the state of a node that
    committed it at once, and the root the next header carries."""
    txs = _registrations(6)
    steady = open_application(SPEC, tmp_path / "steady")
    crashed = open_application(SPEC, tmp_path / "crashed")
    try:
        for app in (steady, crashed):
            for raw in txs:
                app.submit(raw)
        decided = steady.build_block(1, GENESIS_TIME + 5, EGAT.address)
        assert crashed.check_block(1, decided, now=GENESIS_TIME + 5)
        steady.commit(1, decided, ())
        crashed.store.close()  # killed before its commit: nothing of height 1 written
        crashed.mempool.close()
        crashed = open_application(SPEC, tmp_path / "crashed")
        assert crashed.height == 0
        assert crashed.state.root() == blocks.decode(decided).header.state_root
        crashed.commit(1, decided, ())  # the certified block, from a peer
        assert crashed.height == 1 and crashed.state.root() == steady.state.root()
        following = steady.build_block(2, GENESIS_TIME + 6, EGAT.address)
        assert crashed.check_block(2, following, now=GENESIS_TIME + 6)
        assert crashed.store.load_state().root() == steady.state.root()
    finally:
        steady.close()
        crashed.close()


def test_a_proposer_bounds_its_block_by_what_executing_it_takes(
    apps: tuple[Application, Application],
) -> None:
    """Building executes nothing, so a budget bounds the block by the execution rate the
    node's own commits measured: at 10 ms a transaction, a 1 s budget holds 100 of 150
    (never fewer than MIN_BLOCK_TXS); the commit then updates the rate."""
    proposer, _ = apps
    for raw in _registrations(150):
        proposer.submit(raw)
    proposer._exec_s_per_tx = proposer._exec_cpu_per_tx = 0.01
    raw = proposer.build_block(1, GENESIS_TIME + 5, EGAT.address, budget=1.0)
    assert len(blocks.decode(raw).txs) == 100
    proposer._exec_s_per_tx = proposer._exec_cpu_per_tx = 10.0
    assert len(blocks.decode(proposer.build_block(1, GENESIS_TIME + 5, EGAT.address,
                                                  budget=1.0)).txs) == MIN_BLOCK_TXS  # fmt: skip
    proposer._exec_s_per_tx = proposer._exec_cpu_per_tx = 0.01
    proposer.commit(1, raw, ())
    assert proposer._exec_s_per_tx < 0.01  # registrations execute far faster than 10 ms
    assert 0 < proposer._exec_cpu_per_tx < 0.01


def test_a_block_holds_a_budget_of_execution_cpu_when_neighbours_share_the_cores(
    apps: tuple[Application, Application],
) -> None:
    """Four validators on two cores each execute at half speed: the clock says 20 ms a
    transaction where the CPU says 10 ms. With a deep backlog (150 waiting, more than
    DEEP_BACKLOG_BLOCKS blocks of 50) the block still holds a budget's worth of CPU (100),
    not of the clock (50: the rule that held the chain at a third of a core under
    overload). Only beyond SHARED_CORES_ALLOWANCE (a node getting under a third of a core)
    does the clock cut it: at 40 ms a transaction on the clock, 3 x 1 s / 40 ms = 75.
    Without a deep backlog the clock bounds it as before: at 10 ms on the clock and 5 ms
    of CPU, 150 waiting are under two blocks of 100, and a block holds 100, not 200."""
    proposer, _ = apps
    for raw in _registrations(150):
        proposer.submit(raw)
    assert (SHARED_CORES_ALLOWANCE, DEEP_BACKLOG_BLOCKS) == (3.0, 2)
    proposer._exec_cpu_per_tx, proposer._exec_s_per_tx = 0.005, 0.01
    assert proposer.block_limit(1.0) == 100
    proposer._exec_cpu_per_tx, proposer._exec_s_per_tx = 0.01, 0.02
    raw = proposer.build_block(1, GENESIS_TIME + 5, EGAT.address, budget=1.0)
    assert len(blocks.decode(raw).txs) == 100
    proposer._exec_s_per_tx = 0.04
    assert proposer.block_limit(1.0) == 75
    raw = proposer.build_block(1, GENESIS_TIME + 5, EGAT.address, budget=1.0)
    assert len(blocks.decode(raw).txs) == 75


def test_a_follower_reads_the_committed_transactions_as_the_node_decoded_them(
    apps: tuple[Application, Application], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Surveillance on a node takes the block's transactions as the node decoded them to
    execute it (`committed_txs`), not decoding each one again, and sees the same block
    as a follower that decodes them itself; only the last height committed is kept."""
    proposer, validator = apps
    txs = _registrations(4)
    for raw in txs:
        proposer.submit(raw)
    raw = proposer.build_block(1, GENESIS_TIME + 5, EGAT.address)
    assert validator.check_block(1, raw, now=GENESIS_TIME + 5)
    receipts = validator.commit(1, raw, ())
    signed = validator.committed_txs(1)
    assert signed is not None and [s.encode() for s in signed] == txs
    assert validator.committed_txs(2) is None and validator.committed_txs(0) is None
    decoding = follow.from_commit(1, raw, receipts, [])
    real, decodes = tx.decode, []

    def counting(data: bytes) -> tx.SignedTransaction:
        decodes.append(data)
        return real(data)

    monkeypatch.setattr(tx, "decode", counting)
    reusing = follow.from_commit(1, raw, receipts, [], signed)
    assert decodes == [] and reusing == decoding
    follower = Follower(validator.state, decoded=validator.committed_txs)
    follower.on_commit(1, raw, receipts, [])
    assert decodes == [] and follower.height == 1
    unscreened = open_application(SPEC, tmp_path / "c")  # a block it never checked
    try:
        monkeypatch.setattr(tx, "decode", real)
        unscreened.commit(1, raw, ())
        kept = unscreened.committed_txs(1)  # decoded once, for the listeners too
        assert kept is not None and [s.encode() for s in kept] == txs
    finally:
        unscreened.close()


def test_a_senders_address_is_hashed_once_per_key_on_a_validators_way(
    apps: tuple[Application, Application], address_hashes: AddressHashes
) -> None:
    """Admission, the block's screen, execution and the surveillance follower each ask
    for a transaction's sender address: `crypto.address_of` keeps it by key, so it is
    hashed once per sender on two nodes (four or more times per transaction per node
    while each asked hashed it again)."""
    proposer, validator = apps
    txs = _registrations(6)
    for app in apps:
        for raw in txs:
            app.submit(raw)
    raw = proposer.build_block(1, GENESIS_TIME + 5, EGAT.address)
    assert validator.check_block(1, raw, now=GENESIS_TIME + 5)
    receipts = validator.commit(1, raw, ())
    proposer.commit(1, raw, ())
    Follower(validator.state, decoded=validator.committed_txs).on_commit(1, raw, receipts, [])
    mea = tx.decode(txs[0]).tx.sender
    assert address_hashes.hashed.count(mea) == 1


def test_a_block_not_screened_takes_its_transactions_as_the_mempool_decoded_them(
    apps: tuple[Application, Application], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A validator that decides a block through a peer's certificate (it never screened
    it) executes the transactions its mempool holds decoded, decodes only the others,
    and keeps them all for its commit listeners."""
    proposer, validator = apps
    txs = _registrations(6)
    for raw in txs:
        proposer.submit(raw)
    for raw in txs[:4]:
        validator.submit(raw)  # the last two never reached it
    held = [validator.mempool.decoded(tx.hash_of(r)) for r in txs[:4]]
    raw = proposer.build_block(1, GENESIS_TIME + 5, EGAT.address)
    real, decodes = tx.decode, []

    def counting(data: bytes) -> tx.SignedTransaction:
        decodes.append(data)
        return real(data)

    monkeypatch.setattr(tx, "decode", counting)
    validator.commit(1, raw, (), CERTIFIED)
    assert not validator.screened and decodes == txs[4:]
    kept = validator.committed_txs(1)
    assert kept is not None and all(a is b for a, b in zip(kept[:4], held, strict=True))
    assert [s.encode() for s in kept] == txs
    proposer.commit(1, raw, ())
    assert proposer.screened and validator.state.root() == proposer.state.root()


def test_the_proposer_hashes_no_transaction_id_to_build_and_commit_its_block(
    apps: tuple[Application, Application], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mempool holds each transaction by its id: the proposer's screen takes those
    (it hashed each candidate again before), and its commit the ids the screen kept."""
    proposer, _ = apps
    txs = _registrations(5)
    for raw in txs:
        proposer.submit(raw)
    real, hashed = crypto.tagged_hash, []

    def counting(tag: bytes, data: bytes) -> bytes:
        if tag == tx.TX_HASH_DOMAIN:
            hashed.append(data)
        return real(tag, data)

    monkeypatch.setattr(crypto, "tagged_hash", counting)
    raw = proposer.build_block(1, GENESIS_TIME + 5, EGAT.address)
    proposer.commit(1, raw, ())
    assert hashed == [] and len(blocks.decode(raw).txs) == 5
    assert all(proposer.mempool.status(tx.hash_of(r)) == "committed" for r in txs)
