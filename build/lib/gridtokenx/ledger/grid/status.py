"""Grid-status transactions: EGAT's transmission status (tag 15) and MEA/PEA's zone status
(tag 16).

A measurement carries its own time. It must be fresh (not older than the governed maximum
age at the block's time, not further ahead than the governed clock skew) and newer than the
last accepted one of the same subject: EGAT's system status is one subject, each
distribution zone another. So a delayed or replayed status can never overwrite a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridtokenx.ledger import registry
from gridtokenx.ledger.context import BlockContext, Event
from gridtokenx.ledger.grid import records as grid
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay
from gridtokenx.wire import errors
from gridtokenx.wire.tx import DistributionStatus, LinkStatus, TransmissionStatus


def _check_time(measured_at: int, last: int | None, ctx: BlockContext, params: Params) -> None:
    if measured_at > ctx.time + params.grid_status_clock_skew_seconds:
        raise errors.GridStatusFromFuture(
            f"measured at {measured_at}, more than {params.grid_status_clock_skew_seconds} s "
            f"after the block time {ctx.time}"
        )
    if ctx.time - measured_at > params.grid_status_max_age_seconds:
        raise errors.StaleGridStatus(
            f"measured {ctx.time - measured_at} s before the block; the limit is "
            f"{params.grid_status_max_age_seconds} s"
        )
    if last is not None and measured_at <= last:
        raise errors.GridStatusOutOfOrder(
            f"measured at {measured_at}, not after the last accepted measurement at {last}"
        )


def _unique(codes: list[str], what: str) -> None:
    if len(set(codes)) != len(codes):
        raise errors.InvalidGridUpdate(f"a {what} is listed more than once")


def _check_link(view: Overlay, link: LinkStatus) -> None:
    registry.require_zone(view, link.zone_a)
    registry.require_zone(view, link.zone_b)
    if grid.link_capacity_kw(view, link.zone_a, link.zone_b) is None:
        raise errors.UnknownInterconnector(
            f"no interconnector joins {link.zone_a} and {link.zone_b}"
        )


@dataclass(frozen=True)
class TransmissionUpdate:
    """What EGAT's status recorded, for the market to act on: `capacity_cut` when a link's
    capacity fell, `by` the reporting authority's code."""

    events: list[Event]
    capacity_cut: bool
    by: str


def transmission_status(
    view: Overlay, ctx: BlockContext, sender: bytes, body: TransmissionStatus, params: Params
) -> TransmissionUpdate:
    """Record EGAT's status. What it means for trading (curtailment after a capacity cut, a
    halt when the frequency leaves the band) is the market's rule: `transition` calls it."""
    authority = registry.require_role(view, sender, registry.ROLE_TRANSMISSION)
    last = grid.transmission(view)
    _check_time(body.measured_at, None if last is None else last.measured_at, ctx, params)
    if body.frequency_mhz == 0:
        raise errors.InvalidGridUpdate("frequency must be positive")
    _unique(["/".join(sorted((x.zone_a, x.zone_b))) for x in body.links], "link")
    _unique([z.zone for z in body.zones], "zone")
    for link in body.links:
        _check_link(view, link)
    for balance in body.zones:
        registry.require_zone(view, balance.zone)

    view.put(
        grid.TRANSMISSION_KEY,
        grid.TransmissionState(body.measured_at, body.frequency_mhz, authority.code),
    )
    events = [
        Event(
            "transmission_status",
            {"measured_at": body.measured_at, "frequency_mhz": body.frequency_mhz},
        )
    ]
    cut = False
    for link in body.links:
        before = grid.link_capacity_kw(view, link.zone_a, link.zone_b)
        assert before is not None
        flow = link.flow_kw if link.zone_a < link.zone_b else -link.flow_kw
        state = grid.LinkState(body.measured_at, link.capacity_kw, flow)
        view.put(grid.link_state_key(link.zone_a, link.zone_b), state)
        if link.capacity_kw != before:
            a, b = sorted((link.zone_a, link.zone_b))
            events.append(
                Event(
                    "link_capacity",
                    {"link": f"{a}-{b}", "from_kw": before, "to_kw": state.capacity_kw},
                )
            )
            cut = cut or link.capacity_kw < before
    for balance in body.zones:
        view.put(
            grid.zone_balance_key(balance.zone),
            grid.ZoneBalanceState(body.measured_at, balance.generation_kw, balance.demand_kw),
        )
    return TransmissionUpdate(events, cut, authority.code)


def distribution_status(
    view: Overlay, ctx: BlockContext, sender: bytes, body: DistributionStatus, params: Params
) -> list[Event]:
    """Record a distributor's zone status; its headroom caps P2P imports from then on."""
    authority = registry.require_distributor_of(view, sender, body.zone)
    last = view.get(grid.distribution_key(body.zone), grid.DistributionState)
    _check_time(body.measured_at, None if last is None else last.measured_at, ctx, params)
    view.put(
        grid.distribution_key(body.zone),
        grid.DistributionState(body.measured_at, authority.code, body.load_kw, body.headroom_kw),
    )
    return [
        Event(
            "distribution_status",
            {
                "zone": body.zone,
                "by": authority.code,
                "measured_at": body.measured_at,
                "load_kw": body.load_kw,
                "headroom_kw": body.headroom_kw,
            },
        )
    ]
