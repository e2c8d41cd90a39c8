"""Zone halts: an authority's halt and resume (tag 12), EGAT's emergency declaration (tag 17)
and its clearing (tag 18), and the automatic halt when EGAT reports a frequency outside the
governed band.

A halted zone stops matching, open orders stay, new ones are refused with ZONE_HALTED;
resuming re-matches the zone's open intervals at the end of the block. The Thai grid is one
synchronous area, so a frequency excursion halts every zone. Clearing is refused while EGAT's latest
frequency is still outside the band: an authority cannot resume a grid that is not normal.
"""

from __future__ import annotations

from gridtokenx.ledger import registry
from gridtokenx.ledger.context import BlockContext, Event
from gridtokenx.ledger.grid import records as grid
from gridtokenx.ledger.market import records
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay
from gridtokenx.wire import errors
from gridtokenx.wire.tx import ClearEmergency, DeclareEmergency, SetZoneHalt


def require_halt_authority(view: Overlay, sender: bytes, zone_code: str) -> registry.Authority:
    """EGAT may halt or resume any zone (transmission emergency); MEA/PEA the zones they
    distribute to."""
    zone = registry.require_zone(view, zone_code)
    authority = registry.authority_of(view, sender)
    allowed = authority is not None and (
        registry.ROLE_TRANSMISSION in authority.roles
        or (
            registry.ROLE_DISTRIBUTION in authority.roles
            and authority.code == zone.distribution_authority
        )
    )
    if authority is None or not allowed:
        raise errors.Unauthorised("only EGAT or the zone's distribution authority halts a zone")
    return authority


def is_halted(view: Overlay, zone: str) -> bool:
    return view.get(records.halt_key(zone), records.ZoneHalt) is not None


def halt_zone(view: Overlay, ctx: BlockContext, zone: str, by: str, reason: str) -> Event:
    view.put(records.halt_key(zone), records.ZoneHalt(by, ctx.time, reason))
    return Event("zone_halted", {"zone": zone, "by": by, "reason": reason})


def resume_zone(view: Overlay, zone: str, by: str, reason: str) -> Event:
    """Lift the halt; `end_block` then re-matches the zone's open intervals."""
    view.delete(records.halt_key(zone))
    pending = view.get(records.REMATCH_KEY, records.Rematch) or records.Rematch(())
    view.put(records.REMATCH_KEY, records.Rematch(tuple(sorted({*pending.zones, zone}))))
    return Event("zone_resumed", {"zone": zone, "by": by, "reason": reason})


def set_zone_halt(
    view: Overlay, ctx: BlockContext, sender: bytes, body: SetZoneHalt, params: Params
) -> list[Event]:
    authority = require_halt_authority(view, sender, body.zone)
    halted = is_halted(view, body.zone)
    if halted == body.halted:
        raise errors.HaltUnchanged(f"zone {body.zone} is {'already' if halted else 'not'} halted")
    if body.halted:
        return [halt_zone(view, ctx, body.zone, authority.code, body.reason)]
    grid.require_frequency_in_band(view, params)
    return [resume_zone(view, body.zone, authority.code, body.reason)]


def _in_band(frequency_mhz: int, params: Params) -> bool:
    return params.frequency_min_mhz <= frequency_mhz <= params.frequency_max_mhz


def _halt(view: Overlay, ctx: BlockContext, zones: list[str], by: str, reason: str) -> list[Event]:
    """Halt the zones not halted yet; a zone already halted keeps its first reason."""
    return [halt_zone(view, ctx, zone, by, reason) for zone in zones if not is_halted(view, zone)]


def on_frequency(
    view: Overlay, ctx: BlockContext, frequency_mhz: int, by: str, params: Params
) -> list[Event]:
    """After EGAT's status (the dispatcher calls it): halt every zone when the frequency
    left the band; the Thai grid is one synchronous area."""
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
    authorities = [require_halt_authority(view, sender, zone) for zone in zones]
    grid.require_frequency_in_band(view, params)
    for zone in zones:
        if not is_halted(view, zone):
            raise errors.ZoneNotHalted(f"zone {zone} is not halted")
    by = authorities[0].code
    return [resume_zone(view, zone, by, body.reason) for zone in zones]
