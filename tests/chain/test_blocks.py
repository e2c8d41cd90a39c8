"""Blocks: proposing keeps only transactions that apply and leaves the state untouched;
validating executes on trial and always rolls back; committing executes for real and halts
on a state-root mismatch rather than diverge."""

from __future__ import annotations

import msgspec
import pytest

from gridtokenx.chain import blocks
from gridtokenx.ledger import invariants
from gridtokenx.ledger.market import orderbook
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.ledger.state import State
from gridtokenx.wire import tx
from tests.conftest import Cast

ZERO = b"\x00" * 32


def _snapshot(state: State) -> dict[bytes, msgspec.Struct]:
    return dict(state.items())


def _market_txs(net: Cast) -> list[bytes]:
    T = (net.sb.time // 900 + 2) * 900
    first = net.sb.sign(net.home, tx.PlaceOrder(tx.Side.SELL, "BKK", T, 1_000, 300))
    second = tx.make(
        net.office,
        net.sb.chain_id,
        net.sb.next_nonce(net.office),
        tx.PlaceOrder(tx.Side.BUY, "BKK", T, 500, 320),
    )
    replay = first  # the same transaction twice: the second copy cannot apply
    return [first.encode(), second.encode(), replay.encode(), b"not a transaction"]


def _propose(net: Cast, candidates: list[bytes]) -> blocks.Block:
    block, _ = blocks.propose(
        net.sb.state, net.sb.chain_id, 2, net.sb.time + 1, ZERO, net.egat.address, ZERO, candidates
    )
    return block


def test_propose_keeps_what_applies_and_leaves_the_state_alone(net: Cast) -> None:
    before, root = _snapshot(net.sb.state), net.sb.state.root()
    candidates = _market_txs(net)
    block = _propose(net, candidates)
    assert block.txs == tuple(candidates[:2])
    assert block.header.tx_root == blocks.tx_root(block.txs)
    assert _snapshot(net.sb.state) == before and net.sb.state.root() == root
    assert orderbook.books(net.sb.state).sides == {}  # the trial's orders left the books too
    invariants.check_all(net.sb.state)


def test_validate_then_commit_reaches_the_header_root(net: Cast) -> None:
    block = _propose(net, _market_txs(net))
    root = net.sb.state.root()
    blocks.validate(net.sb.state, block)
    assert net.sb.state.root() == root  # validation never keeps anything
    receipts, _ = blocks.commit(net.sb.state, block)
    assert net.sb.state.root() == block.header.state_root
    assert [r.events[0].kind for r in receipts] == ["order_accepted", "order_accepted"]
    assert "trade" in [e.kind for e in receipts[1].events]  # the bid crossed the ask
    [(_, side)] = orderbook.books(net.sb.state).sides.items()
    assert [r.remaining for r in side.best_first()] == [500]
    invariants.check_all(net.sb.state)


def test_a_block_replays_to_the_same_root_on_another_node(net: Cast) -> None:
    block = _propose(net, _market_txs(net))
    other = Cast(Sandbox())  # the same genesis and setup, on a different node
    blocks.commit(other.sb.state, blocks.decode(block.encode()))
    blocks.commit(net.sb.state, block)
    assert other.sb.state.root() == net.sb.state.root() == block.header.state_root


def test_validate_refuses_a_wrong_state_root(net: Cast) -> None:
    block = _propose(net, _market_txs(net))
    forged = blocks.Block(msgspec.structs.replace(block.header, state_root=ZERO), block.txs)
    before = _snapshot(net.sb.state)
    with pytest.raises(blocks.InvalidBlock, match="state root"):
        blocks.validate(net.sb.state, forged)
    assert _snapshot(net.sb.state) == before


def test_validate_refuses_a_transaction_that_does_not_apply(net: Cast) -> None:
    block = _propose(net, _market_txs(net))
    padded = blocks.Block(block.header, (*block.txs, block.txs[0]))
    before = _snapshot(net.sb.state)
    with pytest.raises(blocks.InvalidBlock, match="transaction 2"):
        blocks.validate(net.sb.state, padded)
    assert _snapshot(net.sb.state) == before
    invariants.check_all(net.sb.state)


def test_header_checks(net: Cast) -> None:
    block = _propose(net, _market_txs(net))
    chain, t = net.sb.chain_id, block.header.time
    blocks.check_header(block, chain, 2, ZERO, t - 1)
    blocks.check_header(block, chain, 2, ZERO, t)  # blocks may share a second
    for args, message in [
        (("other-chain", 2, ZERO, t - 1), "chain"),
        ((chain, 3, ZERO, t - 1), "height"),
        ((chain, 2, b"\x01" * 32, t - 1), "extend"),
        ((chain, 2, ZERO, t + 1), "time"),
    ]:
        with pytest.raises(blocks.InvalidBlock, match=message):
            blocks.check_header(block, *args)
    shuffled = blocks.Block(block.header, tuple(reversed(block.txs)))
    with pytest.raises(blocks.InvalidBlock, match="root"):
        blocks.check_header(shuffled, chain, 2, ZERO, t - 1)


def test_commit_halts_on_a_divergent_root_and_keeps_nothing(net: Cast) -> None:
    block = _propose(net, _market_txs(net))
    forged = blocks.Block(msgspec.structs.replace(block.header, state_root=ZERO), block.txs)
    before = _snapshot(net.sb.state)
    with pytest.raises(RuntimeError, match="halting"):
        blocks.commit(net.sb.state, forged)
    assert _snapshot(net.sb.state) == before
    invariants.check_all(net.sb.state)


def test_state_trials_nest_no_further_and_need_a_trial_to_end() -> None:
    state = Sandbox().state
    with pytest.raises(RuntimeError):
        state.rollback()
    with pytest.raises(RuntimeError):
        state.release()
    state.begin()
    with pytest.raises(RuntimeError):
        state.begin()
    state.release()


def test_commit_replays_a_kept_trial_to_the_same_state_as_executing(net: Cast) -> None:
    block = _propose(net, _market_txs(net))
    other = Cast(Sandbox())
    executed = blocks.validate(net.sb.state, block)
    assert executed.root == block.header.state_root and executed.block_hash == block.hash
    replayed, _ = blocks.commit(net.sb.state, block, executed=executed)
    fresh, _ = blocks.commit(other.sb.state, block)
    assert _snapshot(net.sb.state) == _snapshot(other.sb.state)
    assert net.sb.state.root() == other.sb.state.root() == block.header.state_root
    assert net.sb.state.recompute_root() == block.header.state_root
    assert [(r.tx_hash, r.events) for r in replayed] == [(r.tx_hash, r.events) for r in fresh]
    assert (
        orderbook.books(net.sb.state).sides.keys() == orderbook.books(other.sb.state).sides.keys()
    )
    invariants.check_all(net.sb.state)


def test_commit_ignores_a_trial_of_another_block(net: Cast) -> None:
    txs = _market_txs(net)
    block = _propose(net, txs)
    smaller = _propose(net, txs[:1])
    stale = blocks.validate(net.sb.state, smaller)
    receipts, _ = blocks.commit(net.sb.state, block, executed=stale)
    assert len(receipts) == 2 and net.sb.state.root() == block.header.state_root


def test_a_signature_is_checked_unless_its_hash_was_verified(net: Cast) -> None:
    good = tx.decode(_market_txs(net)[0])
    forged = tx.SignedTransaction(good.tx, bytes(64)).encode()
    block = _propose(net, [forged])
    assert block.txs == ()  # the proposer refuses it
    header = msgspec.structs.replace(block.header, tx_root=blocks.tx_root((forged,)))
    bad = blocks.Block(header, (forged,))
    with pytest.raises(blocks.InvalidBlock, match="transaction 0"):
        blocks.trial(net.sb.state, bad)
    trusted = blocks.trial(net.sb.state, bad, verified={tx.hash_of(forged)})
    assert len(trusted.receipts) == 1  # what `verified` means: the caller checked it


@pytest.mark.parametrize(
    ("block_time", "now", "prev", "ok"),
    [
        (1000, 1000, 990, True),
        (1005, 1000, 990, True),  # the drift either way
        (995, 1000, 990, True),
        (1006, 1000, 990, False),  # too far ahead
        (994, 1000, 994, False),  # too far behind, even at the previous block's time
        (1010, 1000, 1010, True),  # the chain is ahead of this clock: it may stand still
        (1011, 1000, 1010, False),  # but not run further ahead
    ],
)
def test_block_time_is_bounded_by_the_validators_clock(
    block_time: int, now: int, prev: int, ok: bool
) -> None:
    if ok:
        blocks.check_time(block_time, now, prev)
    else:
        with pytest.raises(blocks.InvalidBlock, match=r"ahead|behind"):
            blocks.check_time(block_time, now, prev)


def test_an_accelerated_devnet_scales_the_allowed_drift() -> None:
    """At speed 30 a validator's clock moves 30 chain seconds per wall second, so the same
    wall-clock disagreement is 30 times as many chain seconds (devnets and the demo only)."""
    blocks.check_time(1100, 1000, 990, drift=150)
    with pytest.raises(blocks.InvalidBlock, match=r"150 s"):
        blocks.check_time(1151, 1000, 990, drift=150)
