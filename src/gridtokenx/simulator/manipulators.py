"""Manipulating agents to mix into a market day, so that surveillance can be measured.

Each is a member of the day (registered, metered and funded like the others) that trades
by a pattern the ERC's surveillance must catch (docs/surveillance.md), instead of the
honest forecast-and-offer of `agents.Traders`:

- `wash_ring`: three linked accounts (the first funds the others on the first step) that
  trade the same 4 kWh round a circle in every interval, in two blocks of their own before
  anyone else's orders arrive so that they match each other;
- `spoofer`: five layered bids of 20 kWh, 40 satang and more below where honest bids sit,
  a small sell into the honest bids that the depth attracts, and a cancellation of the
  layers a few minutes later;
- `gate_marker`: 150 s before gate closure it reads the book and, when sweeping it with
  20 kWh would move the interval's price by 15 % or more, sweeps it with an IOC order;
- `withholder`: a 2 MW plant offering a fifth of its forecast surplus;
- `dominant_seller`: a 3 MW plant offering all its forecast surplus at 90 % of the way from
  the buy-back rate to the buyers' cap.

They live in Bangkok (or the day's first zone), never in the honest population's lists:
an honest day is unchanged by this module. They read the chain through a `MarketReader`
(their own open orders, the resting book, the interval's trades), which the in-process
sink provides: like real manipulators, and unlike the honest agents, they look at the
market before they act. `acted` logs which agent did what in which interval, for the
benchmark's ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Protocol, runtime_checkable

from gridtokenx.ledger.params import Params
from gridtokenx.simulator.agents import Plan, Prices
from gridtokenx.simulator.population import Archetype, Member
from gridtokenx.wire import crypto, tx


class Role(StrEnum):
    WASH_RING = "wash_ring"
    SPOOFER = "spoofer"
    GATE_MARKER = "gate_marker"
    WITHHOLDER = "withholder"
    DOMINANT_SELLER = "dominant_seller"


ROLES: Final = tuple(Role)
WASH_WH: Final = 4_000
SPOOF_LAYERS: Final = 5
SPOOF_WH: Final = 20_000
MARK_WH: Final = 20_000
MARK_MOVE_BP: Final = 1_500
MARK_LEAD_SECONDS: Final = 150  # the sweep's time before gate closure: inside surveillance's
# late window (MarkingSettings.late_seconds, 180) with room for a devnet's block spacing
EXTRA_SATANG: Final = 3_000_000  # beyond the usual budget: the layers' and sweeps' escrow
FUNDING_SATANG: Final = 1_000_000


@runtime_checkable
class MarketReader(Protocol):
    """What the manipulators read of committed state between steps."""

    def open_orders_of(self, address: bytes) -> list[int]: ...

    def resting(self, interval: int) -> list[tuple[tx.Side, int, int]]:
        """Every open order of the interval, all zones: (side, price, remaining Wh)."""

    def traded(self, interval: int) -> list[tuple[int, int]]:
        """The interval's trades so far: (quantity Wh, price)."""


Order = tuple[Member, tx.Body]


@dataclass
class Manipulators:
    roles: tuple[Role, ...]
    zone: str
    prefix: str
    members: dict[Role, list[Member]] = field(default_factory=dict)
    acted: list[tuple[Role, int]] = field(default_factory=list)  # (role, window interval)

    def __post_init__(self) -> None:
        specs = {
            Role.WASH_RING: [(f"wash-{n}", 40_000, Archetype.OFFICE) for n in (1, 2, 3)],
            Role.SPOOFER: [("spoofer", 40_000, Archetype.OFFICE)],
            Role.GATE_MARKER: [("marker", 40_000, Archetype.OFFICE)],
            Role.WITHHOLDER: [("withholder", 2_000_000, Archetype.SOLAR_FARM)],
            Role.DOMINANT_SELLER: [("dominant", 3_000_000, Archetype.SOLAR_FARM)],
        }  # fmt: skip
        for role in self.roles:
            self.members[role] = [self._member(n, pv, a) for n, pv, a in specs[role]]

    def _member(self, label: str, pv_w: int, archetype: Archetype) -> Member:
        name = f"{self.zone.lower()}-{label}"
        return Member(
            name=name, zone=self.zone, archetype=archetype,
            key=crypto.PrivateKey.from_dev_label(f"{self.prefix}/manipulator/{name}"),
            meter=crypto.PrivateKey.from_dev_label(f"{self.prefix}/manipulator-meter/{name}"),
            pv_w=pv_w, load_w=0, three_shifts=False, ask_permille=200, bid_permille=200,
            import_register_wh=0,
        )  # fmt: skip

    @property
    def all(self) -> list[Member]:
        return [m for role in self.roles for m in self.members[role]]

    def extra_budget(self) -> int:
        return EXTRA_SATANG

    # --- the steps -------------------------------------------------------------------------
    def first(self, k: int, start: int, params: Params, plans: dict[str, Plan]) -> list[Order]:
        """Before the honest orders of interval `k` arrive (its book is still empty)."""
        out: list[Order] = []
        prices = Prices.at(start, params)
        for spoofer in self.members.get(Role.SPOOFER, []):
            for layer in range(SPOOF_LAYERS):
                price = max(params.price_min_satang_per_kwh, prices.buyback - 40 - 5 * layer)
                out.append((spoofer, tx.PlaceOrder(tx.Side.BUY, self.zone, start, SPOOF_WH,
                                                   price)))  # fmt: skip
            self.acted.append((Role.SPOOFER, k))
        for role, share, lean in ((Role.WITHHOLDER, 200, 200), (Role.DOMINANT_SELLER, 1000, 900)):
            for m in self.members.get(role, []):
                p = plans[m.name]
                qty = (p.forecast_pv[k] - p.forecast_load[k]) * share // 1000
                if qty >= params.min_lot_wh:
                    span = max(0, prices.bid_cap - prices.buyback)
                    price = prices.buyback + span * lean // 1000
                    out.append((m, tx.PlaceOrder(tx.Side.SELL, self.zone, start, qty, price)))
                    self.acted.append((role, k))
        return out

    def ring(self, k: int, start: int, params: Params) -> tuple[list[Order], list[Order]]:
        """The wash ring's two moves for interval `k`, each to be final before the next and
        both before anyone else's orders arrive (an empty book): every member offers, then
        each buys with an IOC order what the one before it offers. A block interleaves its
        senders' transactions (chain/mempool.py), so sells and buys in one block could miss
        each other; in their own blocks, in this order, each buy's best ask is the offer of
        the member before it (price-time priority, the oldest first): a circle."""
        ring = self.members.get(Role.WASH_RING)
        if not ring:
            return [], []
        prices = Prices.at(start, params)
        price = (prices.buyback + prices.bid_cap) // 2
        sells: list[Order] = []
        if k == 0:
            sells += [(ring[0], tx.Transfer(tx.Asset.THB, m.key.address, FUNDING_SATANG))
                      for m in ring[1:]]  # fmt: skip
        sells += [(m, tx.PlaceOrder(tx.Side.SELL, self.zone, start, WASH_WH, price)) for m in ring]
        buys: list[Order] = [(m, _ioc(tx.Side.BUY, self.zone, start, WASH_WH, price))
                for m in ring[1:] + ring[:1]]  # fmt: skip
        self.acted.append((Role.WASH_RING, k))
        return sells, buys

    def after(self, k: int, start: int, params: Params) -> list[Order]:
        """After the honest orders: the spoofer sells into the bids its layers attract."""
        prices = Prices.at(start, params)
        return [(m, _ioc(tx.Side.SELL, self.zone, start, 3_000, prices.buyback))
                for m in self.members.get(Role.SPOOFER, [])]  # fmt: skip

    def mid(self, k: int, start: int, reader: MarketReader) -> list[Order]:
        """A few minutes on: the spoofer takes its layers away."""
        return [(m, tx.CancelOrder(oid)) for m in self.members.get(Role.SPOOFER, [])
                for oid in reader.open_orders_of(m.key.address)]  # fmt: skip

    def late(self, k: int, start: int, params: Params, reader: MarketReader) -> list[Order]:
        """Just before gate closure: the marker sweeps the book if that moves the price."""
        out: list[Order] = []
        for m in self.members.get(Role.GATE_MARKER, []):
            traded = reader.traded(start)
            volume = sum(q for q, _ in traded)
            if not volume:
                continue
            reference = sum(q * p for q, p in traded) // volume
            book = reader.resting(start)
            for side, limit_of in ((tx.Side.SELL, max), (tx.Side.BUY, min)):
                levels = sorted(((p, q) for s, p, q in book if s is side),
                                key=lambda pq: pq[0], reverse=side is tx.Side.BUY)  # fmt: skip
                swept, left = [], MARK_WH
                for price, qty in levels:
                    take = min(left, qty)
                    swept.append((take, price))
                    left -= take
                    if not left:
                        break
                got = sum(q for q, _ in swept)
                if got < params.min_lot_wh:
                    continue
                price = sum(q * p for q, p in swept) // got
                if abs(price - reference) * 10_000 >= reference * MARK_MOVE_BP:
                    mine = tx.Side.BUY if side is tx.Side.SELL else tx.Side.SELL
                    qty = got if mine is tx.Side.BUY else min(got, 10_000)
                    limit = limit_of(p for _, p in swept)
                    out.append((m, _ioc(mine, self.zone, start, qty, limit)))
                    self.acted.append((Role.GATE_MARKER, k))
                    break
        return out


def _ioc(side: tx.Side, zone: str, start: int, qty: int, price: int) -> tx.PlaceOrder:
    return tx.PlaceOrder(side, zone, start, qty, price, tif=tx.TimeInForce.IMMEDIATE_OR_CANCEL)
