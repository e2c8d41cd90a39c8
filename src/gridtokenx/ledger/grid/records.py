"""Grid records in state, their keys, and the limits the market reads from them.

The market never reads a grid status directly: it asks `link_capacity_kw` and
`import_room_wh`, which fall back to the genesis interconnector and to no limit until an
authority has reported. Keys of per-interval records embed the interval start as 8
big-endian bytes, like the market's.
"""

from __future__ import annotations

from typing import Final

import msgspec

from gridtokenx.ledger import registry
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay
from gridtokenx.wire import errors

TRANSMISSION_KEY: Final = b"gtx"
IMPORT_HOP: Final = ""
"""Pseudo zone of the matching engine's import hop (`("", zone)`): never a zone code, so a
zone's import headroom is rationed exactly like an interconnector's room."""


class TransmissionState(msgspec.Struct, frozen=True, array_like=True):
    """EGAT's latest accepted system measurement."""

    measured_at: int
    frequency_mhz: int
    reported_by: str  # authority code


class LinkState(msgspec.Struct, frozen=True, array_like=True):
    """Latest measured interconnector, oriented as the link's sorted zone pair."""

    measured_at: int
    capacity_kw: int
    flow_kw: int  # positive from the alphabetically first zone to the second


class ZoneBalanceState(msgspec.Struct, frozen=True, array_like=True):
    measured_at: int
    generation_kw: int
    demand_kw: int


class DistributionState(msgspec.Struct, frozen=True, array_like=True):
    """MEA's or PEA's latest accepted report of one of its zones."""

    measured_at: int
    reported_by: str
    load_kw: int
    headroom_kw: int


class ZoneImport(msgspec.Struct, frozen=True, array_like=True):
    """Energy (Wh sent) traded P2P into a zone from other zones in one interval."""

    wh: int


def link_state_key(zone_a: str, zone_b: str) -> bytes:
    a, b = sorted((zone_a, zone_b))
    return b"glink/" + a.encode() + b"/" + b.encode()


def zone_balance_key(zone: str) -> bytes:
    return b"gbal/" + zone.encode()


def distribution_key(zone: str) -> bytes:
    return b"gdist/" + zone.encode()


def zone_import_key(interval_start: int, zone: str) -> bytes:
    return b"gimp/" + interval_start.to_bytes(8) + zone.encode()


def transmission(view: Overlay) -> TransmissionState | None:
    return view.get(TRANSMISSION_KEY, TransmissionState)


def link_capacity_kw(view: Overlay, zone_a: str, zone_b: str) -> int | None:
    """The capacity the market uses: EGAT's latest, else the genesis value; None if the
    zones are not joined by an interconnector."""
    link = view.get(registry.interconnector_key(zone_a, zone_b), registry.Interconnector)
    if link is None:
        return None
    status = view.get(link_state_key(zone_a, zone_b), LinkState)
    return link.capacity_kw if status is None else status.capacity_kw


def imported_wh(view: Overlay, interval_start: int, zone: str) -> int:
    record = view.get(zone_import_key(interval_start, zone), ZoneImport)
    return 0 if record is None else record.wh


def add_import(view: Overlay, interval_start: int, zone: str, wh: int) -> None:
    total = imported_wh(view, interval_start, zone) + wh
    key = zone_import_key(interval_start, zone)
    if total:
        view.put(key, ZoneImport(total))
    else:
        view.delete(key)


def energy_wh(power_kw: int, interval_seconds: int) -> int:
    """Energy a power carries over an interval, in whole Wh (rounded down): a link's or a
    zone's capacity in kW as the market trades it, Wh per delivery interval."""
    return power_kw * 1000 * interval_seconds // 3600


def import_room_wh(
    view: Overlay, interval_start: int, zone: str, interval_seconds: int
) -> int | None:
    """P2P import the zone can still take in the interval under its distributor's latest
    headroom; None while no headroom has been reported (no limit)."""
    status = view.get(distribution_key(zone), DistributionState)
    if status is None:
        return None
    limit = energy_wh(status.headroom_kw, interval_seconds)
    return limit - imported_wh(view, interval_start, zone)


def require_frequency_in_band(view: Overlay, params: Params) -> None:
    """No zone resumes trading while EGAT's latest frequency is outside the governed band,
    whichever transaction asks (an emergency clear or a plain zone resume)."""
    status = transmission(view)
    if status is not None and not (
        params.frequency_min_mhz <= status.frequency_mhz <= params.frequency_max_mhz
    ):
        raise errors.FrequencyOutOfBand(
            f"EGAT's latest frequency {status.frequency_mhz} mHz is outside "
            f"{params.frequency_min_mhz}-{params.frequency_max_mhz} mHz"
        )


RECORDS: Final[tuple[type[msgspec.Struct], ...]] = (
    TransmissionState,
    LinkState,
    ZoneBalanceState,
    DistributionState,
    ZoneImport,
)
"""The record types this context stores (`transition.RECORD_TYPES` gathers every context's)."""
