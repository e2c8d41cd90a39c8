"""Blocks: proposing keeps only transactions that apply and leaves the state untouched;
validating executes on trial and always rolls back; committing executes for real and halts
on a state-root mismatch rather than diverge."""

from __future__ import annotations

import msgspec
import pytest

from conftest import Cast
from gridtokenx import blocks, invariants, tx
from gridtokenx.market import engine
from gridtokenx.sandbox import Sandbox
from gridtokenx.state import State

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
    return blocks.propose(
        net.sb.state, net.sb.chain_id, 2, net.sb.time + 1, ZERO, net.egat.address, ZERO, candidates
    )


def test_propose_keeps_what_applies_and_leaves_the_state_alone(net: Cast) -> None:
    before, root = _snapshot(net.sb.state), net.sb.state.root()
    candidates = _market_txs(net)
    block = _propose(net, candidates)
    assert block.txs == tuple(candidates[:2])
    assert block.header.tx_root == blocks.tx_root(block.txs)
    assert _snapshot(net.sb.state) == before and net.sb.state.root() == root
    assert engine.books(net.sb.state).sides == {}  # the trial's orders left the books too
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
    [(_, side)] = engine.books(net.sb.state).sides.items()
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
    for args, message in [
        (("other-chain", 2, ZERO, t - 1), "chain"),
        ((chain, 3, ZERO, t - 1), "height"),
        ((chain, 2, b"\x01" * 32, t - 1), "extend"),
        ((chain, 2, ZERO, t), "time"),
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
