"""Blocks: proposing and screening run the cheap checks only and leave the state untouched;
committing executes once, records transactions that fail as failed, and halts rather than
diverge when the node's state root is not the one the certified block carries."""

from __future__ import annotations

import msgspec
import pytest

from gridtokenx.chain import blocks
from gridtokenx.ledger import accounts, invariants
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


def test_propose_keeps_what_passes_the_screen_under_the_root_before_it(net: Cast) -> None:
    before, root = _snapshot(net.sb.state), net.sb.state.root()
    candidates = _market_txs(net)
    skipped: list[tuple[bytes, str]] = []
    block, decoded = blocks.propose(
        net.sb.state, net.sb.chain_id, 2, net.sb.time + 1, ZERO, net.egat.address, ZERO,
        candidates, skipped=skipped,
    )  # fmt: skip
    assert block.txs == tuple(candidates[:2])  # the replayed nonce and the garbage are out
    assert [s.encode() for s in decoded] == list(block.txs)
    assert [code for _, code in skipped] == ["NONCE_REPLAYED", "MALFORMED"]
    assert block.header.state_root == root  # the root before the block: nothing executed
    assert block.header.tx_root == blocks.tx_root(block.txs)
    assert _snapshot(net.sb.state) == before and net.sb.state.root() == root
    assert orderbook.books(net.sb.state).sides == {}


def test_screen_then_commit_and_the_next_header_carries_the_root_after(net: Cast) -> None:
    block = _propose(net, _market_txs(net))
    root = net.sb.state.root()
    blocks.screen(net.sb.state, block)
    assert net.sb.state.root() == root  # screening never keeps anything
    receipts, _ = blocks.commit(net.sb.state, block)
    assert net.sb.state.root() != root
    assert [r.events[0].kind for r in receipts] == ["order_accepted", "order_accepted"]
    assert "trade" in [e.kind for e in receipts[1].events]  # the bid crossed the ask
    [(_, side)] = orderbook.books(net.sb.state).sides.items()
    assert [r.remaining for r in side.best_first()] == [500]
    following, _ = blocks.propose(net.sb.state, net.sb.chain_id, 3, net.sb.time + 2,
                                  block.hash, net.egat.address, ZERO, [])  # fmt: skip
    assert following.header.state_root == net.sb.state.root() == net.sb.state.recompute_root()
    invariants.check_all(net.sb.state)


def test_a_block_executes_to_the_same_root_on_another_node(net: Cast) -> None:
    block = _propose(net, _market_txs(net))
    other = Cast(Sandbox())  # the same genesis and setup, on a different node
    mine, _ = blocks.commit(net.sb.state, block)
    theirs, _ = blocks.commit(other.sb.state, blocks.decode(block.encode()))
    assert other.sb.state.root() == net.sb.state.root()
    assert _snapshot(other.sb.state) == _snapshot(net.sb.state)
    assert [(r.tx_hash, r.events) for r in mine] == [(r.tx_hash, r.events) for r in theirs]


def test_screen_refuses_a_state_root_that_is_not_this_nodes(net: Cast) -> None:
    block = _propose(net, _market_txs(net))
    forged = blocks.Block(msgspec.structs.replace(block.header, state_root=ZERO), block.txs)
    before = _snapshot(net.sb.state)
    with pytest.raises(blocks.InvalidBlock, match="state root"):
        blocks.screen(net.sb.state, forged)
    assert _snapshot(net.sb.state) == before


def test_screen_refuses_a_transaction_whose_nonce_the_block_used_already(net: Cast) -> None:
    block = _propose(net, _market_txs(net))
    padded = blocks.Block(block.header, (*block.txs, block.txs[0]))
    before = _snapshot(net.sb.state)
    with pytest.raises(blocks.InvalidBlock, match="transaction 2 is refused: NONCE_REPLAYED"):
        blocks.screen(net.sb.state, padded)
    assert _snapshot(net.sb.state) == before


def _thb(state: State, address: bytes) -> int:
    account = accounts.get_account(state, address)
    assert account is not None
    return account.thb_satang


def _overdraw(net: Cast, fee: int) -> bytes:
    nonce = net.sb.next_nonce(net.office)
    body = tx.Transfer(tx.Asset.THB, net.home.address, 10**12)
    return tx.make(net.office, net.sb.chain_id, nonce, body, fee=fee).encode()


def test_a_transaction_that_fails_as_it_executes_is_recorded_failed_and_pays(net: Cast) -> None:
    """It passes the screen (its envelope holds) but the ledger refuses it: it is in the
    block, its receipt says why, its fee is paid and its nonce used, and nothing else moves;
    two nodes record it alike."""
    raw = _overdraw(net, fee=25)
    office_before = accounts.get_account(net.sb.state, net.office.address)
    assert office_before is not None
    block = _propose(net, [raw])
    assert block.txs == (raw,)
    other = Cast(Sandbox())
    [receipt], _ = blocks.commit(net.sb.state, block)
    [again], _ = blocks.commit(other.sb.state, block)
    assert receipt.events == again.events and net.sb.state.root() == other.sb.state.root()
    assert blocks.failure_of(receipt.events) == "INSUFFICIENT_BALANCE"
    assert [e.kind for e in receipt.events] == ["fee_paid", "tx_failed"]
    office = accounts.get_account(net.sb.state, net.office.address)
    assert office is not None and office.nonce == office_before.nonce + 1
    assert _thb(net.sb.state, net.office.address) == _thb(other.sb.state, net.office.address)
    assert _thb(net.sb.state, net.office.address) == office_before.thb_satang - 25
    invariants.check_all(net.sb.state)
    # The signed transaction can never apply later: its nonce is used.
    assert _propose(net, [raw]).txs == ()


def test_a_failed_transaction_whose_fee_is_unaffordable_pays_nothing(net: Cast) -> None:
    raw = _overdraw(net, fee=10**13)
    before = _thb(net.sb.state, net.office.address)
    [receipt], _ = blocks.commit(net.sb.state, _propose(net, [raw]))
    assert [e.kind for e in receipt.events] == ["tx_failed"]
    assert _thb(net.sb.state, net.office.address) == before
    office = accounts.get_account(net.sb.state, net.office.address)
    assert office is not None and office.nonce == tx.decode(raw).tx.nonce + 1


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
    """The node's state differs from the root the certified block carries: it stops before
    executing, so it never reaches (or signs for) a later height."""
    block = _propose(net, _market_txs(net))
    diverge = net.sb.state.overlay()
    diverge.put(accounts.account_key(b"\x07" * 20), accounts.Account(0, 0, 0))
    diverge.commit()
    before = _snapshot(net.sb.state)
    with pytest.raises(RuntimeError, match="halting"):
        blocks.commit(net.sb.state, block)
    assert _snapshot(net.sb.state) == before
    forged = blocks.Block(msgspec.structs.replace(block.header, state_root=ZERO), block.txs)
    with pytest.raises(RuntimeError, match="halting"):
        blocks.commit(Cast(Sandbox()).sb.state, forged)


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


def test_a_signature_is_checked_unless_its_hash_was_verified(net: Cast) -> None:
    good = tx.decode(_market_txs(net)[0])
    forged = tx.SignedTransaction(good.tx, bytes(64)).encode()
    block = _propose(net, [forged])
    assert block.txs == ()  # the proposer refuses it
    header = msgspec.structs.replace(block.header, tx_root=blocks.tx_root((forged,)))
    bad = blocks.Block(header, (forged,))
    with pytest.raises(blocks.InvalidBlock, match="transaction 0 is refused: INVALID_SIGNATURE"):
        blocks.screen(net.sb.state, bad)
    assert len(blocks.screen(net.sb.state, bad, verified={tx.hash_of(forged)})) == 1
    # Certified anyway (more than a third of the power lied): it executes as void.
    before = _snapshot(net.sb.state)
    [receipt], _ = blocks.commit(net.sb.state, bad)
    assert blocks.failure_of(receipt.events) == "INVALID_SIGNATURE"
    changed = {k for k, v in _snapshot(net.sb.state).items() if before.get(k) != v}
    assert all(not k.startswith(b"acct/") for k in changed)


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


def test_commit_asks_for_every_sender_s_account_before_executing(
    net: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A block's senders' accounts are asked for in one go before its first transaction
    runs, when the state's source reads ahead (a store whose reads go to the disk reads
    them side by side: `State.warm_records`); otherwise they are not gathered at all."""
    block = _propose(net, _market_txs(net))
    asked: list[list[bytes]] = []
    executed: list[int] = []
    monkeypatch.setattr(net.sb.state, "warm_records", lambda keys: asked.append(list(keys)))
    apply = blocks.transition.apply_in_block
    monkeypatch.setattr(blocks.transition, "apply_in_block",
                        lambda *a, **k: executed.append(len(asked)) or apply(*a, **k))  # fmt: skip
    decoded = [tx.decode(raw) for raw in block.txs]
    blocks.transition.read_senders_ahead(net.sb.state, decoded)  # in memory: no source
    assert asked == []
    monkeypatch.setattr(type(net.sb.state), "reads_ahead", property(lambda self: True))
    blocks.commit(net.sb.state, block)
    assert asked == [[accounts.account_key(net.home.address),
                      accounts.account_key(net.office.address)]]  # fmt: skip
    assert executed == [1, 1]  # both ran after it
