"""A scripted exchange for detector tests: committed blocks with the events the ledger's
market writes (order_accepted, trade, order_cancelled, order_expired, transfer, reading,
interval_settled), built by hand so each test injects exactly one pattern or near-miss.
The simulator tests (test_simulated_day.py) check the same detectors on the real ledger."""

from __future__ import annotations

import hashlib

from gridtokenx.ledger.context import Event
from gridtokenx.ledger.params import Params
from gridtokenx.surveillance import Alert, Surveillance, SurveillanceSettings
from gridtokenx.surveillance.tape import CommittedBlock, CommittedTx
from gridtokenx.wire import tx
from tests.conftest import key

INTERVAL = 900
T = 1_767_250_800  # 2026-01-01 07:00 UTC, 14:00 in Bangkok: a peak interval


class Exchange:
    def __init__(self, settings: SurveillanceSettings | None = None) -> None:
        self.params = Params()
        self.trades: dict[int, tuple[int, int]] = {}
        self.engine = Surveillance(self.params, self.trades.get, settings)
        self.height = 0
        self.time = T - 3 * 3600
        self.txs: list[CommittedTx] = []
        self.orders: dict[int, dict[str, int | str | bytes]] = {}
        self.filled: dict[int, int] = {}
        self.next_id = 1
        self.alerts: list[Alert] = []

    def _tx(self, sender: bytes, body: tx.Body, events: list[Event]) -> None:
        digest = hashlib.sha256(f"{self.height}/{len(self.txs)}".encode()).digest()
        self.txs.append(CommittedTx(digest, sender, body, events))

    def place(self, who: str, side: str, qty: int, price: int, zone: str = "BKK",
              interval: int = T) -> int:  # fmt: skip
        owner = key(who).address
        oid, self.next_id = self.next_id, self.next_id + 1
        attrs: dict[str, int | str | bytes] = {
            "order": oid, "owner": owner, "side": side, "zone": zone, "interval": interval,
            "quantity_wh": qty, "price": price, "escrow_satang": 0,
        }  # fmt: skip
        self.orders[oid] = attrs
        self.filled[oid] = 0
        body = tx.PlaceOrder(tx.Side[side], zone, interval, qty, price)
        self._tx(owner, body, [Event("order_accepted", attrs)])
        return oid

    def trade(self, buy: int, sell: int, qty: int, price: int) -> None:
        """A fill, in the receipt of the latest transaction (the incoming order's)."""
        tid, self.next_id = self.next_id, self.next_id + 1
        self.trades[tid] = (buy, sell)
        b, s = self.orders[buy], self.orders[sell]
        self.txs[-1].events.append(Event("trade", {
            "trade": tid, "interval": b["interval"], "buyer": b["owner"], "seller": s["owner"],
            "buyer_zone": b["zone"], "seller_zone": s["zone"], "quantity_wh": qty,
            "price": price, "loss_bp": 0,
        }))  # fmt: skip
        for oid in (buy, sell):
            self.filled[oid] += qty
            if self.filled[oid] == self.orders[oid]["quantity_wh"]:
                self.txs[-1].events.append(Event("order_filled", {"order": oid}))
                del self.orders[oid]

    def cancel(self, oid: int) -> None:
        owner = self.orders.pop(oid)["owner"]
        assert isinstance(owner, bytes)
        self._tx(owner, tx.CancelOrder(oid), [Event("order_cancelled", {"order": oid})])

    def transfer(self, who: str, to: str, amount: int) -> None:
        a, b = key(who).address, key(to).address
        attrs: dict[str, int | str | bytes] = {"from": a, "to": b, "asset": "THB",
                                               "amount": amount}  # fmt: skip
        self._tx(a, tx.Transfer(tx.Asset.THB, b, amount), [Event("transfer", attrs)])

    def meter(self, who: str, zone: str = "BKK") -> None:
        m = key(f"meter/{who}")
        attrs: dict[str, int | str | bytes] = {"meter": m.address, "owner": key(who).address,
                                               "zone": zone}  # fmt: skip
        body = tx.RegisterMeter(m.public_key, key(who).address, zone, tx.MeterKind.SOLAR, 10**7)
        self._tx(m.address, body, [Event("meter_registered", attrs)])

    def reading(self, who: str, interval: int, export_wh: int) -> None:
        m = key(f"meter/{who}").address
        attrs: dict[str, int | str | bytes] = {
            "meter": m,
            "interval": interval,
            "import_wh": 0,
            "export_wh": export_wh,
        }
        self._tx(m, tx.MeterReading(interval, 0, export_wh), [Event("reading", attrs)])

    def commit(self, time: int, end: list[Event] | None = None) -> list[Alert]:
        assert time >= self.time
        self.height += 1
        self.time = time
        block = CommittedBlock(self.height, time, hashlib.sha256(bytes(self.height)).digest(),
                               self.txs, end or [])  # fmt: skip
        self.txs = []
        new = self.engine.observe(block)
        self.alerts += new
        return new

    def close_and_settle(self, interval: int = T) -> list[Alert]:
        """Gate closure (the rest expires), then the block that settles the interval."""
        expired = [Event("order_expired", {"order": oid}) for oid, o in self.orders.items()
                   if o["interval"] == interval]  # fmt: skip
        self.orders = {k: v for k, v in self.orders.items() if v["interval"] != interval}
        self.commit(interval - self.params.gate_closure_seconds, expired)
        return self.commit(interval + INTERVAL, [Event("interval_settled",
                                                       {"interval": interval})])  # fmt: skip


def address(who: str) -> str:
    from gridtokenx.wire import crypto

    return crypto.address_to_text(key(who).address)
