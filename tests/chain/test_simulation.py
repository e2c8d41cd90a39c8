"""chain.simulation: a transaction tried against the state and rolled back, as `eth_call`.
The ledger's verdict (its code, or the events) comes back, and the state, its root, its
record count and the order books are exactly as before, whatever the verdict."""

from __future__ import annotations

from gridtokenx.chain.mempool import Mempool
from gridtokenx.chain.simulation import MALFORMED, simulate
from gridtokenx.ledger import invariants
from gridtokenx.ledger.context import BlockContext
from gridtokenx.ledger.market import queries
from gridtokenx.wire import tx
from gridtokenx.wire.crypto import PrivateKey
from tests.chain.test_mempool import CHAIN
from tests.conftest import INTERVAL, Cast


def _fingerprint(net: Cast) -> tuple[bytes, int, int, int]:
    state = net.sb.state
    return (state.root(), len(state), net.thb(net.office.address), net.nonce(net.office.address))


def _next_open_interval(net: Cast) -> int:
    p = net.params
    first = net.sb.time + p.gate_closure_seconds + 1
    return -(-first // INTERVAL) * INTERVAL


def test_an_applicable_transaction_returns_its_events_and_keeps_nothing(net: Cast) -> None:
    before = _fingerprint(net)
    raw = net.sb.sign(net.office, tx.Transfer(tx.Asset.THB, net.home.address, 12_345)).encode()
    result = simulate(net.sb.state, raw, net.sb.context)
    assert result.ok and result.code == ""
    assert [e.kind for e in result.events] == ["transfer"]
    assert result.events[0].attrs["amount"] == 12_345
    assert _fingerprint(net) == before
    invariants.check_all(net.sb.state)
    # The same transaction still applies for real afterwards: the nonce was not used.
    net.ok(net.office, tx.Transfer(tx.Asset.THB, net.home.address, 12_345))
    assert net.thb(net.office.address) == before[2] - 12_345


def test_a_refusal_returns_the_ledgers_code_and_message_and_keeps_nothing(net: Cast) -> None:
    before = _fingerprint(net)
    too_much = tx.Transfer(tx.Asset.THB, net.home.address, 10**12)
    result = simulate(net.sb.state, net.sb.sign(net.office, too_much).encode(), net.sb.context)
    assert (result.ok, result.code) == (False, "INSUFFICIENT_BALANCE")
    assert "below" in result.message and result.events == []
    closed = _next_open_interval(net) - INTERVAL  # its gate is closed already
    order = tx.PlaceOrder(tx.Side.BUY, "BKK", closed, 1_000, 400)
    result = simulate(net.sb.state, net.sb.sign(net.office, order).encode(), net.sb.context)
    assert result.code == "GATE_CLOSED"
    misaligned = tx.PlaceOrder(tx.Side.BUY, "BKK", _next_open_interval(net) + 60, 1_000, 400)
    result = simulate(net.sb.state, net.sb.sign(net.office, misaligned).encode(), net.sb.context)
    assert result.code == "MISALIGNED_INTERVAL"
    assert _fingerprint(net) == before


def test_matching_in_a_trial_leaves_the_order_book_as_it_was(net: Cast) -> None:
    interval = _next_open_interval(net)
    net.ok(net.home, tx.PlaceOrder(tx.Side.SELL, "BKK", interval, 1_000, 300))
    depth = queries.depth(net.sb.state, "BKK", interval, 10)
    before = _fingerprint(net)
    buy = tx.PlaceOrder(tx.Side.BUY, "BKK", interval, 1_000, 400)
    result = simulate(net.sb.state, net.sb.sign(net.office, buy).encode(), net.sb.context)
    assert result.ok and "trade" in [e.kind for e in result.events]
    assert queries.depth(net.sb.state, "BKK", interval, 10) == depth  # the ask still rests
    assert _fingerprint(net) == before


def test_the_senders_earlier_waiting_transactions_run_first(net: Cast) -> None:
    """A pipelined client signs nonce n+1 while n waits in the mempool: tried alone it
    would be a nonce gap; after n it meets the balance n leaves."""
    balance = net.thb(net.office.address)
    nonce = net.nonce(net.office.address)
    first = tx.make(net.office, net.sb.chain_id, nonce,
                    tx.Transfer(tx.Asset.THB, net.home.address, balance - 100))  # fmt: skip
    second = tx.make(net.office, net.sb.chain_id, nonce + 1,
                     tx.Transfer(tx.Asset.THB, net.home.address, 500))  # fmt: skip
    alone = simulate(net.sb.state, second.encode(), net.sb.context)
    assert alone.code == "NONCE_GAP"
    after = simulate(net.sb.state, second.encode(), net.sb.context, [first.encode()])
    assert after.code == "INSUFFICIENT_BALANCE"  # 100 satang left after the first
    small = tx.make(net.office, net.sb.chain_id, nonce + 1,
                    tx.Transfer(tx.Asset.THB, net.home.address, 100))  # fmt: skip
    assert simulate(net.sb.state, small.encode(), net.sb.context, [first.encode()]).ok
    assert net.thb(net.office.address) == balance and net.nonce(net.office.address) == nonce


def test_bytes_that_do_not_decode_are_malformed(net: Cast) -> None:
    before = _fingerprint(net)
    result = simulate(net.sb.state, b"\x01\x02garbage", BlockContext(2, net.sb.time))
    assert (result.ok, result.code, result.tx_hash) == (False, MALFORMED, None)
    assert _fingerprint(net) == before


def test_the_mempool_gives_the_senders_waiting_transactions_below_a_nonce() -> None:
    """What `POST /txs/simulate` runs before the transaction: the sender's own, in nonce
    order, below its nonce; nobody else's, and none at or above it."""
    from tests.chain.test_mempool import ALICE, CAROL, make, nonce_of

    pool = Mempool(CHAIN)
    try:
        raws = {n: make(ALICE, n) for n in (2, 0, 1, 3)}
        for raw in [*raws.values(), make(CAROL, 0)]:
            assert pool.add(raw, nonce_of, 0).accepted
        assert pool.queued_before(ALICE.address, 2) == [raws[0], raws[1]]
        assert pool.queued_before(ALICE.address, 0) == []
        assert pool.queued_before(ALICE.address, 9) == [raws[n] for n in range(4)]
        assert pool.queued_before(PrivateKey.from_dev_label("sim/carol").address, 5) == []
    finally:
        pool.close()
