"""The day-ahead auction next to continuous trading, read back from the ledger.

A trade belongs to the auction when its interval's accepted clearing lists it
(`AuctionResult.trades`), otherwise to continuous trading. For each market:

- energy: Wh the sellers sent in its trades, and its share of all the window's traded Wh;
- prices: volume-weighted trade price per buyer zone (turnover / energy, satang per kWh);
- welfare: buyers' value minus sellers' cost at the prices they stated, in satang. For
  continuous trading that is, per trade, the buy order's limit times the Wh received
  (sent less the path's loss) minus the sell order's limit times the Wh sent. For the
  auction it is, per cleared curve, each step's price times the Wh accepted of it (buys
  received, sells sent), the same objective the clearing maximised; the ledger's exact
  certified welfare is kept beside it (`certified_satang`): they differ by the whole-Wh
  rounding of the accepted steps only.

Both are welfare at stated prices, not at true values: what the comparison shows is which
market matched more of what the members asked for, not their utility.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Final

from gridtokenx.ledger.market import auction, queries
from gridtokenx.ledger.market.records import Trade
from gridtokenx.ledger.state import Overlay, State
from gridtokenx.wire.tx import Side

BASIS: Final = 10_000
AUCTION: Final = "auction"
CONTINUOUS: Final = "continuous"


@dataclass
class MarketFigures:
    trades: int = 0
    energy_wh: int = 0  # sent by sellers
    turnover: int = 0  # sum of Wh sent x price
    welfare_milli: int = 0  # satang x 1000: satang per kWh x Wh
    zones: dict[str, tuple[int, int]] = field(default_factory=dict)  # zone -> (Wh, turnover)

    @property
    def welfare_satang(self) -> int:
        return self.welfare_milli // 1000

    def vwap(self, zone: str) -> int:
        """Volume-weighted price of the trades into `zone`, satang per kWh (0: none)."""
        wh, turnover = self.zones.get(zone, (0, 0))
        return turnover // wh if wh else 0

    def add(self, trade: Trade) -> None:
        self.trades += 1
        self.energy_wh += trade.quantity_wh
        self.turnover += trade.quantity_wh * trade.price
        wh, turnover = self.zones.get(trade.buyer_zone, (0, 0))
        self.zones[trade.buyer_zone] = (wh + trade.quantity_wh,
                                        turnover + trade.quantity_wh * trade.price)  # fmt: skip


@dataclass
class Comparison:
    auction: MarketFigures = field(default_factory=MarketFigures)
    continuous: MarketFigures = field(default_factory=MarketFigures)
    auctions_cleared: int = 0
    auctions_cancelled: int = 0
    certified: Fraction = Fraction(0)  # the clearings' exact welfare, satang

    @property
    def certified_satang(self) -> int:
        return int(self.certified)

    def share_permille(self, market: MarketFigures) -> int:
        total = self.auction.energy_wh + self.continuous.energy_wh
        return market.energy_wh * 1000 // total if total else 0

    @property
    def zones(self) -> list[str]:
        return sorted(set(self.auction.zones) | set(self.continuous.zones))


def received_wh(trade: Trade) -> int:
    """What the buyer receives of a trade: the Wh sent less the path's loss."""
    return trade.quantity_wh * (BASIS - trade.loss_bp) // BASIS


def _continuous_welfare(state: State, trade: Trade) -> int:
    buy, sell = queries.order(state, trade.buy_order), queries.order(state, trade.sell_order)
    if buy is None or sell is None:
        raise LookupError(f"trade {trade.id} names an order the ledger does not hold")
    return buy.price * received_wh(trade) - sell.price * trade.quantity_wh


def _auction_welfare(view: Overlay, start: int) -> int:
    record = auction.get_interval(view, start)
    total = 0
    for curve_id in () if record is None else record.curves:
        curve = auction.get_curve(view, curve_id)
        sign = 1 if curve.side is Side.BUY else -1
        total += sign * sum(s.price * q for s, q in zip(curve.steps, curve.accepted_wh,
                                                         strict=False))  # fmt: skip
    return total


def compare(state: State, window: range) -> Comparison:
    """The two markets over the window's intervals (`window`: the interval starts)."""
    c = Comparison()
    view = state.overlay()
    auctioned: set[int] = set()
    for start in window:
        found = auction.get_interval(view, start)
        if found is None:
            continue
        if found.status is auction.AuctionStatus.CANCELLED:
            c.auctions_cancelled += 1
        result = auction.result(view, start)
        if result is None:
            continue
        c.auctions_cleared += 1
        auctioned.update(result.trades)
        c.auction.welfare_milli += _auction_welfare(view, start)
        c.certified += Fraction(result.welfare_num, result.welfare_den) / 1000
    for trade in queries.trades(state):
        if trade.interval_start not in window:
            continue
        if trade.id in auctioned:
            c.auction.add(trade)
        else:
            c.continuous.add(trade)
            c.continuous.welfare_milli += _continuous_welfare(state, trade)
    return c
