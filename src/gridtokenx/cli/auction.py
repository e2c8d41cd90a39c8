"""`gridtokenx tx auction ...` and `gridtokenx query auction ...`: the day-ahead auction
from the command line. A curve is a list of steps written PRICE:QUANTITY (each step's
price per kWh, then its energy), e.g. `4.2THB/kWh:1.5kWh 3.8THB/kWh:2kWh`. The validators
clear the auction themselves after its gate; there is nothing to run for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from gridtokenx.cli.args import Arg, IntervalArg, ZoneArg, zone
from gridtokenx.cli.errors import BadInput
from gridtokenx.cli.query import query_command
from gridtokenx.cli.tx import tx_command
from gridtokenx.cli.units import count, energy_wh, price_satang_per_kwh, unix_time
from gridtokenx.wire import tx

if TYPE_CHECKING:
    from gridtokenx.client import Client

auction_app = typer.Typer(
    help="Day-ahead auction: bid and offer curves until the gate.", no_args_is_help=True
)
StepsArg = Annotated[
    list[str], Arg(metavar="STEP...", help="PRICE:QUANTITY, e.g. 4.2THB/kWh:1.5kWh")
]


def steps(texts: list[str]) -> tuple[tx.CurveStep, ...]:
    found = []
    for text in texts:
        price, sep, quantity = text.partition(":")
        if not sep:
            raise BadInput(f"step {text!r}: expected PRICE:QUANTITY, e.g. 4.2THB/kWh:1.5kWh")
        found.append(tx.CurveStep(price_satang_per_kwh(price), energy_wh(quantity)))
    if not 1 <= len(found) <= tx.MAX_CURVE_STEPS:
        raise BadInput(f"a curve has 1 to {tx.MAX_CURVE_STEPS} steps")
    return tuple(found)


def _curve(
    side: tx.Side, zone_code: str, interval: str, texts: list[str], renewable_only: bool = False
) -> tx.Body:
    return tx.PlaceAuctionCurve(
        side, zone(zone_code), unix_time(interval), steps(texts), renewable_only
    )


@tx_command(auction_app, "bid")
def bid(
    zone_code: ZoneArg,
    interval: IntervalArg,
    step: StepsArg,
    renewable_only: Annotated[
        bool,
        typer.Option(
            "--renewable-only",
            help="served only by renewable offers, at the zone's renewable price",
        ),
    ] = False,
) -> tx.Body:
    """Bid to buy in an interval's day-ahead auction; the escrow is every step's cost.

    Each step buys up to its energy at up to its price: steps above the zone's clearing
    price are accepted whole, those at it pro rata, those below it not at all. A
    --renewable-only bid is served by renewable offers only and measured against the zone's
    renewable price, which is above the zone price only when renewable energy is short.

    Example:

        gridtokenx tx auction bid BKK 2026-01-02T08:00+07:00 4.5THB/kWh:1kWh 3.2THB/kWh:1kWh \
            --renewable-only --key office.key
    """
    return _curve(tx.Side.BUY, zone_code, interval, step, renewable_only)


@tx_command(auction_app, "offer")
def offer(zone_code: ZoneArg, interval: IntervalArg, step: StepsArg) -> tx.Body:
    """Offer to sell in an interval's day-ahead auction, within the meters' capacity
    (shared with the continuous market).

    Example:  gridtokenx tx auction offer BKK 2026-01-02T08:00+07:00 2.5THB/kWh:1kWh --key home.key
    """
    return _curve(tx.Side.SELL, zone_code, interval, step)


@tx_command(auction_app, "amend")
def amend(
    curve_id: Annotated[str, Arg(metavar="CURVE_ID", help="the curve's id")], step: StepsArg
) -> tx.Body:
    """Replace an own curve's steps before the gate.

    Example:  gridtokenx tx auction amend 42 4THB/kWh:2kWh --key office.key
    """
    return tx.AmendAuctionCurve(count(curve_id, "curve id"), steps(step))


@tx_command(auction_app, "cancel")
def cancel(curve_id: Annotated[str, Arg(metavar="CURVE_ID", help="the curve's id")]) -> tx.Body:
    """Cancel an own curve before the gate; its escrow or offer is given back.

    Example:  gridtokenx tx auction cancel 42 --key office.key
    """
    return tx.CancelAuctionCurve(count(curve_id, "curve id"))


@query_command("auction")
def query_auction(
    api: Client,
    interval: IntervalArg,
    zone_code: Annotated[
        str | None, typer.Option("--zone", help="show this zone's curves instead")
    ] = None,
) -> Any:
    """An interval's auction result (zone prices, link flows, welfare), or with --zone that
    zone's curves and aggregate demand and supply.

    Examples:

        gridtokenx query auction 2026-01-02T08:00+07:00

        gridtokenx query auction 2026-01-02T08:00+07:00 --zone BKK
    """
    start = unix_time(interval)
    if zone_code is not None:
        return api.auction_book(zone(zone_code), start)
    return api.auction_result(start)
