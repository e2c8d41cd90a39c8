"""Grid emergencies: EGAT's declaration (tag 17), the clearing (tag 18), and the automatic
halt when EGAT reports a frequency outside the governed band.

An emergency is the market's zone halt (market/settlement.py): matching stops in the zone,
open orders stay, new ones are refused with ZONE_HALTED. The Thai grid is one synchronous
area, so a frequency excursion halts every zone. Clearing is refused while EGAT's latest
frequency is still outside the band: an authority cannot resume a grid that is not normal.
"""

from __future__ import annotations

from gridtokenx.ledger import registry
from gridtokenx.ledger.context import BlockContext, Event
from gridtokenx.ledger.grid import records as grid
from gridtokenx.ledger.market import settlement
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay
from gridtokenx.wire import errors
from gridtokenx.wire.tx import ClearEmergency, DeclareEmergency


def _in_band(frequency_mhz: int, params: Params) -> bool:
    return params.frequency_min_mhz <= frequency_mhz <= params.frequency_max_mhz


def _halt(view: Overlay, ctx: BlockContext, zones: list[str], by: str, reason: str) -> list[Event]:
    """Halt the zones not halted yet; a zone already halted keeps its first reason."""
    return [
        settlement.halt_zone(view, ctx, zone, by, reason)
        for zone in zones
        if not settlement.is_halted(view, zone)
    ]


def on_frequency(
    view: Overlay, ctx: BlockContext, frequency_mhz: int, by: str, params: Params
) -> list[Event]:
    if _in_band(frequency_mhz, params):
        return []
    reason = (
        f"frequency {frequency_mhz} mHz outside "
        f"{params.frequency_min_mhz}-{params.frequency_max_mhz} mHz"
    )
    zones = list(registry.zone_index(view).zones)
    event = Event("grid_emergency", {"by": by, "reason": reason})
    return [event, *_halt(view, ctx, zones, by, reason)]


def _zones(view: Overlay, zones: tuple[str, ...]) -> list[str]:
    if len(set(zones)) != len(zones):
        raise errors.InvalidGridUpdate("a zone is listed more than once")
    for zone in zones:
        registry.require_zone(view, zone)
    return list(zones)


def declare(
    view: Overlay, ctx: BlockContext, sender: bytes, body: DeclareEmergency, params: Params
) -> list[Event]:
    """Only EGAT declares: it operates the transmission system the zones share."""
    authority = registry.require_role(view, sender, registry.ROLE_TRANSMISSION)
    zones = _zones(view, body.zones)
    event = Event(
        "grid_emergency", {"by": authority.code, "reason": body.reason, "zones": ",".join(zones)}
    )
    return [event, *_halt(view, ctx, zones, authority.code, body.reason)]


def clear(
    view: Overlay, ctx: BlockContext, sender: bytes, body: ClearEmergency, params: Params
) -> list[Event]:
    zones = _zones(view, body.zones)
    authorities = [settlement.require_halt_authority(view, sender, zone) for zone in zones]
    grid.require_frequency_in_band(view, params)
    for zone in zones:
        if not settlement.is_halted(view, zone):
            raise errors.ZoneNotHalted(f"zone {zone} is not halted")
    by = authorities[0].code
    return [settlement.resume_zone(view, zone, by, body.reason) for zone in zones]
