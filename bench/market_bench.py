"""Order placement and matching through the ledger, next to the raw Ed25519 rate.

Builds a Bangkok book `--depth` orders deep (half bids, half asks, not crossing), then
places `--orders` incoming orders that alternately rest and cross, timing each one. Figures:
the matching engine alone (decide the fills and apply them to its books with the same
operations a commit uses, no ledger and no records), orders/s and p50/p99 microseconds per
order through `transition.apply` without signature checks (engine plus every state write,
escrow and event), orders/s with signature checks, and the raw PyNaCl verification rate
measured in the same run.

    python bench/market_bench.py [--depth 10000] [--orders 2000]

Prints a table and writes bench/results/market.json.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import benchkit
from gridtokenx.ledger import transition
from gridtokenx.ledger.market import orderbook
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.ledger.state import State
from gridtokenx.wire import crypto, tx

RESULTS = Path(__file__).parent / "results" / "market.json"
BUY, SELL = tx.Side.BUY, tx.Side.SELL
INTERVAL = 900


def _key(label: str) -> crypto.PrivateKey:
    return crypto.PrivateKey.from_dev_label(f"bench-market/{label}")


class Desk:
    """A devnet with licensed 1 MW sellers and funded buyers, and a target interval."""

    def __init__(self, accounts_per_side: int) -> None:
        self.sb = Sandbox(chain_id="gridtokenx-bench")
        mea, erc = self.sb.authority("MEA"), self.sb.authority("ERC")
        custodian = _key("custodian")
        year = self.sb.time + 365 * 86_400
        P, L = tx.ParticipantKind, tx.LicenceKind
        self.sb.submit(mea, tx.RegisterParticipant(custodian.address, "BKK", P.CUSTODIAN, "c"))
        self.sb.submit(erc, tx.GrantLicence(custodian.address, L.CUSTODIAN, year))
        self.sellers = [_key(f"seller/{i}") for i in range(accounts_per_side)]
        self.buyers = [_key(f"buyer/{i}") for i in range(accounts_per_side)]
        for i, seller in enumerate(self.sellers):
            self.sb.submit(mea, tx.RegisterParticipant(seller.address, "BKK", P.GENERATOR, f"s{i}"))
            meter = _key(f"meter/{i}")
            body = tx.RegisterMeter(
                meter.public_key, seller.address, "BKK", tx.MeterKind.SOLAR, 10**6
            )
            self.sb.submit(mea, body)
            self.sb.submit(erc, tx.GrantLicence(seller.address, L.SELLER, year))
        for i, buyer in enumerate(self.buyers):
            self.sb.submit(mea, tx.RegisterParticipant(buyer.address, "BKK", P.BUSINESS, f"b{i}"))
            self.sb.submit(custodian, tx.IssueThb(buyer.address, 10**10))
        self.T = (self.sb.time // INTERVAL + 2) * INTERVAL
        self.nonces: dict[bytes, int] = {}

    def order(
        self, who: crypto.PrivateKey, side: tx.Side, qty: int, price: int
    ) -> tx.SignedTransaction:
        nonce = self.nonces.get(who.address, self.sb.next_nonce(who))
        self.nonces[who.address] = nonce + 1
        body = tx.PlaceOrder(side, "BKK", self.T, qty, price)
        return tx.make(who, self.sb.chain_id, nonce, body)


def _submit(books: orderbook.Books, body: tx.PlaceOrder, owner: bytes, order_id: int) -> bool:
    """One incoming order through the engine alone; True when its rest was put in the book."""
    buying = body.side is BUY
    side = books.side(body.interval_start, body.zone, SELL if buying else BUY)
    fills = (
        []
        if side is None
        else orderbook.match_local(
            side, buying, body.price, owner, body.quantity_wh, False, True
        ).fills
    )
    rest = body.quantity_wh
    for resting, quantity, _, _ in fills:
        rest -= quantity
        if quantity < resting.remaining:
            books.set_remaining(resting.id, resting.remaining - quantity)
        else:
            books.drop(resting.id)
    if rest:
        resting = orderbook.Resting(order_id, owner, body.price, order_id, rest, True, False)
        books.rest(body.interval_start, body.zone, body.side, resting)
    return bool(rest)


def engine_alone(state: State, incoming: list[tx.SignedTransaction]) -> tuple[float, float, float]:
    """The matching engine without the ledger, on copies of the books: decide each order's
    fills, then apply them with the engine operations a commit uses (`set_remaining`,
    `drop`, `rest`). One pass times the whole stream (throughput), a second pass on a
    fresh copy times each order (latency), so the timer itself does not count as work."""
    orders = []
    for stx in incoming:
        body = stx.tx.body
        assert isinstance(body, tx.PlaceOrder)
        orders.append((body, stx.tx.sender_address))
    original = orderbook.books(state)
    first_id = max(original.by_id) + 1 if original.by_id else 1

    books, next_id = copy.deepcopy(original), first_id
    started = time.perf_counter()
    for body, owner in orders:
        next_id += _submit(books, body, owner, next_id)
    throughput = len(orders) / (time.perf_counter() - started)

    books, next_id = copy.deepcopy(original), first_id
    latencies = []
    clock = time.perf_counter
    for body, owner in orders:
        started = clock()
        next_id += _submit(books, body, owner, next_id)
        latencies.append(clock() - started)
    micro = sorted(x * 1e6 for x in latencies)
    return throughput, statistics.median(micro), benchkit.quantile(micro, 0.99)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=2_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    per_side = max(1, args.depth // 2 // 100 + 1)  # at most 100 open orders per account
    desk = Desk(per_side)
    S, B = tx.Side.SELL, tx.Side.BUY
    for i in range(args.depth):  # bids 100-399, asks 600-899: a deep book that does not cross
        if i % 2:
            stx = desk.order(desk.sellers[i // 2 % per_side], S, 1_000, 600 + i % 300)
        else:
            stx = desk.order(desk.buyers[i // 2 % per_side], B, 1_000, 100 + i % 300)
        transition.apply(desk.sb.state, stx, desk.sb.context, check_signature=False)

    incoming = []
    for i in range(args.orders):  # alternately rest inside the spread and cross it
        if i % 4 == 0:
            incoming.append(desk.order(desk.buyers[i % per_side], B, 500, 450))
        elif i % 4 == 1:
            incoming.append(desk.order(desk.sellers[i % per_side], S, 500, 550))
        elif i % 4 == 2:
            incoming.append(desk.order(desk.buyers[i % per_side], B, 700, 600))
        else:
            incoming.append(desk.order(desk.sellers[i % per_side], S, 700, 399))

    state = desk.sb.state
    engine_rate, engine_p50, engine_p99 = engine_alone(state, incoming)
    snapshot = list(state.items())
    latencies = []
    for stx in incoming:
        started = time.perf_counter()
        transition.apply(state, stx, desk.sb.context, check_signature=False)
        latencies.append(time.perf_counter() - started)
    unsigned = len(incoming) / sum(latencies)

    fresh = Desk(per_side)  # the same book again, for the signed run
    for key, record in snapshot:
        view = fresh.sb.state.overlay()
        view.put(key, record)
        view.commit()
    started = time.perf_counter()
    for stx in incoming:
        transition.apply(fresh.sb.state, stx, desk.sb.context, check_signature=True)
    signed = len(incoming) / (time.perf_counter() - started)
    if fresh.sb.state.root() != state.root():
        raise SystemExit("signed and unsigned runs reached different state roots")

    verify = benchkit.raw_verify_rate(incoming)

    micro = sorted(x * 1e6 for x in latencies)
    result: dict[str, object] = {
        "benchmark": "market",
        "python": platform.python_version(),
        "book_depth": args.depth,
        "incoming_orders": len(incoming),
        "raw_ed25519_verify_per_s": round(verify),
        "engine_alone_orders_per_s": round(engine_rate),
        "engine_alone_p50_us": round(engine_p50, 2),
        "engine_alone_p99_us": round(engine_p99, 2),
        "orders_per_s_without_signature": round(unsigned),
        "orders_per_s_with_signature": round(signed),
        "p50_us": round(statistics.median(micro), 1),
        "p99_us": round(benchkit.quantile(micro, 0.99), 1),
    }
    print(f"GridTokenX market benchmark: {len(incoming):,} orders into a {args.depth:,}-deep book")
    benchkit.print_figures(result)
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
