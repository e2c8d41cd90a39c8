"""Metering: signed 15-minute readings, and the only place GRID is minted.

The meter's own key signs its readings (the meter is the transaction sender), so an owner
cannot forge export. A reading carries cumulative registers; the ledger mints the increase
in the export register since the meter's previous reading. Readings for one meter apply in
strictly increasing interval order, so each interval is applied at most once and each Wh
minted is recorded against exactly one (meter, interval) reading record. Energy counted
before registration (the registers a meter was installed with) is never minted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import msgspec

from gridtokenx.ledger import accounts, registry
from gridtokenx.ledger.context import BlockContext, Event, EventValue
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay, State, records_under
from gridtokenx.wire import errors
from gridtokenx.wire.tx import Asset, MeterKind, MeterReading

WH_PER_WATT_HOUR_SECONDS = 3600


class ReadingRecord(msgspec.Struct, frozen=True, array_like=True):
    """What one applied reading did; settlement and the mint-trace invariant read these."""

    owner: bytes
    zone: str
    covers_from: int  # first interval start the energy may come from (earlier than the
    # reading's own interval only after a gap in readings)
    import_wh: int  # energy drawn during the interval
    export_wh: int  # energy delivered to the grid during the interval
    minted_wh: int
    height: int


_READING_PREFIX: Final = b"read/"


def reading_key(meter: bytes, interval_start: int) -> bytes:
    return _READING_PREFIX + meter + interval_start.to_bytes(8)


def readings(
    state: State, meter: bytes, after: int | None = None
) -> Iterator[tuple[int, ReadingRecord]]:
    """One meter's applied readings as (interval start, record), oldest first, after the
    interval starting at `after`."""
    start = None if after is None else after.to_bytes(8)
    for at, reading in records_under(state, _READING_PREFIX + meter, ReadingRecord, start):
        yield int.from_bytes(at), reading


def all_readings(state: State) -> Iterator[tuple[bytes, int, ReadingRecord]]:
    """Every applied reading as (meter, interval start, record), by meter, then interval."""
    for at, reading in records_under(state, _READING_PREFIX, ReadingRecord):
        yield at[:-8], int.from_bytes(at[-8:]), reading


def max_export_wh(rated_capacity_w: int, interval_seconds: int) -> int:
    """Most a meter can export in one interval at rated capacity (rounded down to whole Wh)."""
    return rated_capacity_w * interval_seconds // WH_PER_WATT_HOUR_SECONDS


def submit_reading(
    view: Overlay, ctx: BlockContext, sender: bytes, body: MeterReading, params: Params
) -> list[Event]:
    meter = view.get(registry.meter_key(sender), registry.Meter)
    if meter is None:
        raise errors.UnknownMeter("the signing key is not a registered meter")
    start, length = body.interval_start, params.interval_seconds
    if start % length:
        raise errors.MisalignedInterval(f"interval start must be a multiple of {length} s")
    if start + length > ctx.time + params.reading_clock_skew_seconds:
        raise errors.ReadingOutsideWindow("the interval has not ended yet")
    if start + params.reading_max_age_seconds < ctx.time:
        raise errors.ReadingOutsideWindow("the interval is older than the reading window")
    if start < meter.first_interval:
        raise errors.ReadingBeforeRegistration("the interval began before the meter was registered")
    if start == meter.last_interval:
        raise errors.DuplicateReading("this interval's reading was already applied")
    if start < meter.last_interval:
        raise errors.ReadingOutOfOrder("a later interval's reading was already applied")
    # A reading after a gap covers every interval since the previous one (the gateway was
    # offline, the registers kept counting), so the capacity bound scales with the gap.
    covers_from = meter.first_interval if meter.last_interval < 0 else meter.last_interval + length
    covered = (start - covers_from) // length + 1
    if body.import_wh < meter.import_register_wh or body.export_wh < meter.export_register_wh:
        raise errors.RegisterNotMonotonic("cumulative registers must never decrease")
    imported = body.import_wh - meter.import_register_wh
    exported = body.export_wh - meter.export_register_wh
    if exported and meter.kind is MeterKind.CONSUMPTION:
        raise errors.ExportOnConsumptionMeter("a consumption-only meter cannot export")
    limit = max_export_wh(meter.rated_capacity_w, length) * covered
    if exported > limit:
        raise errors.OverCapacity(
            f"export {exported} Wh exceeds {limit} Wh at rated capacity over {covered} interval(s)"
        )

    view.put(
        registry.meter_key(sender),
        msgspec.structs.replace(
            meter,
            last_interval=start,
            import_register_wh=body.import_wh,
            export_register_wh=body.export_wh,
        ),
    )
    view.put(
        reading_key(sender, start),
        ReadingRecord(
            meter.owner, meter.zone, covers_from, imported, exported, exported, ctx.height
        ),
    )
    events = [
        Event(
            "reading",
            {"meter": sender, "interval": start, "import_wh": imported, "export_wh": exported},
        )
    ]
    if exported:
        minted = accounts.mint(view, meter.owner, Asset.GRID, exported)
        attrs: dict[str, EventValue] = {
            "to": meter.owner, "meter": sender, "interval": start, "amount": exported, **minted,
        }  # fmt: skip
        events.append(Event("minted", attrs))
    return events


RECORDS: Final[tuple[type[msgspec.Struct], ...]] = (ReadingRecord,)
"""The record types this context stores (`transition.RECORD_TYPES` gathers every context's)."""
