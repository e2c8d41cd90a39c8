"""Renewable energy certificates (RECs) and the carbon they stand for.

A certificate is the claim to the environmental attribute of `rec_size_wh` (1 MWh) of
renewable export; GRID is the energy itself and moves separately. Certificates are issued by
the ledger, never by a transaction: every applied reading of a renewable meter (solar, wind,
hydro, biomass) adds its export to the meter's accrual, each full `rec_size_wh` becomes one
certificate for the meter's owner, and what is left carries over to the meter's next reading.
Because the accrual only ever grows from applied readings, and readings apply once per
interval (metering.py), no Wh is certified twice: per meter, certified Wh plus the carried
remainder always equals the renewable Wh exported (`invariants.check_certificates`).

The avoided emissions of a certificate are fixed when it is issued, from the governed grid
emission factor then in force, so a later change of the factor never rewrites history.
Carbon totals per participant and per zone for each local day are kept as records and
updated on issue (day of the certificate's last interval: when the energy was produced) and
on retirement (day of the block that retires: when the claim was made).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Final

import msgspec

from gridtokenx.ledger import registry
from gridtokenx.ledger.context import BlockContext, Event, EventValue
from gridtokenx.ledger.metering import ReadingRecord, reading_key
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay, State
from gridtokenx.wire import errors
from gridtokenx.wire.tx import MeterKind, RetireCertificate, TransferCertificate

SEQUENCE_KEY: Final = b"certseq"
_EPOCH: Final = datetime.date(1970, 1, 1)


class Certificate(msgspec.Struct, frozen=True, array_like=True):
    id: int
    owner: bytes  # current holder; the retiring owner once retired
    issued_to: bytes  # the meter's owner when it was issued
    meter: bytes
    source: MeterKind
    zone: str
    first_interval: int  # start of the earliest interval whose energy it contains
    last_interval: int  # start of the latest such interval
    energy_wh: int
    emission_factor_g_per_kwh: int  # the governed factor at issue
    avoided_g: int  # energy_wh * factor // 1000, in grams CO2e
    issued_height: int
    issue_day: int  # YYYYMMDD, local date of last_interval
    retire_day: int = 0  # YYYYMMDD of the retiring block's local date, 0 while active
    beneficiary: str = ""  # whom the retirement claims the energy for

    @property
    def retired(self) -> bool:
        return self.retire_day != 0


class Accrual(msgspec.Struct, frozen=True, array_like=True):
    """A renewable meter's certification progress."""

    certified_wh: int  # Wh already in certificates
    remainder_wh: int  # Wh exported but not yet a full certificate
    remainder_from: int  # earliest interval start the remainder's energy is from, -1 if none
    issued: int  # number of certificates issued from this meter


class CertificateSequence(msgspec.Struct, frozen=True, array_like=True):
    next_id: int  # ids start at 1 and are never reused


class CarbonTotals(msgspec.Struct, frozen=True, array_like=True):
    """Certificates issued and retired in one local day, for one participant or one zone."""

    issued_wh: int = 0
    issued_avoided_g: int = 0
    retired_wh: int = 0
    retired_avoided_g: int = 0


_CERTIFICATE_PREFIX: Final = b"cert/"


def certificate_key(certificate_id: int) -> bytes:
    return _CERTIFICATE_PREFIX + certificate_id.to_bytes(8)


def holds_certificate(key: bytes) -> bool:
    """Whether `key` is where a certificate is stored: for readers of raw state writes
    (the store's certificate index) that must notice a certificate's key being deleted."""
    return key.startswith(_CERTIFICATE_PREFIX)


def get_certificate(view: Overlay | State, certificate_id: int) -> Certificate | None:
    return view.get(certificate_key(certificate_id), Certificate)


def issued(view: Overlay | State) -> Iterator[Certificate]:
    """Every certificate, by id. Ids count up from 1 and are never reused, so this is one
    read per certificate, where a prefix scan would sort every key of the state."""
    sequence = view.get(SEQUENCE_KEY, CertificateSequence)
    for i in range(1, 1 if sequence is None else sequence.next_id):
        cert = view.get(certificate_key(i), Certificate)
        if cert is not None:
            yield cert


def accrual_key(meter: bytes) -> bytes:
    return b"certacc/" + meter


def participant_carbon_key(participant: bytes, day: int) -> bytes:
    return b"co2p/" + participant + day.to_bytes(4)


def zone_carbon_key(zone: str, day: int) -> bytes:
    return b"co2z/" + zone.encode() + b"/" + day.to_bytes(4)


def participant_carbon(view: Overlay | State, participant: bytes, day: int) -> CarbonTotals | None:
    """What `participant` was issued and retired in one local day (YYYYMMDD); None: nothing."""
    return view.get(participant_carbon_key(participant, day), CarbonTotals)


def zone_carbon(view: Overlay | State, zone: str, day: int) -> CarbonTotals | None:
    """What was issued from and retired in `zone` in one local day; None: nothing."""
    return view.get(zone_carbon_key(zone, day), CarbonTotals)


def local_day(time: int, params: Params) -> int:
    """The chain's local calendar date (Asia/Bangkok by default) as YYYYMMDD."""
    local = time + params.tariffs.utc_offset_seconds
    day = _EPOCH + datetime.timedelta(days=local // 86_400)
    return day.year * 10_000 + day.month * 100 + day.day


def avoided_g(energy_wh: int, factor_g_per_kwh: int) -> int:
    """Grams CO2e the grid would have emitted for the energy; rounded down, never overstated."""
    return energy_wh * factor_g_per_kwh // 1000


def _add_carbon(view: Overlay, keys: tuple[bytes, bytes], **deltas: int) -> None:
    for key in keys:
        totals = view.get(key, CarbonTotals) or CarbonTotals()
        changed = {name: getattr(totals, name) + value for name, value in deltas.items()}
        view.put(key, msgspec.structs.replace(totals, **changed))


def _carbon_keys(participant: bytes, zone: str, day: int) -> tuple[bytes, bytes]:
    return participant_carbon_key(participant, day), zone_carbon_key(zone, day)


def accrue(
    view: Overlay, ctx: BlockContext, meter_address: bytes, interval_start: int, params: Params
) -> list[Event]:
    """Add a just-applied reading's export to its meter's accrual and issue what is full,
    at most `rec_max_per_reading` certificates: each issue is a state write, and a reading
    after a week's gap from a large farm would otherwise issue thousands in one transaction.
    What the cap holds back stays in the remainder, oldest energy first, and the meter's
    next readings issue it."""
    meter = view.get(registry.meter_key(meter_address), registry.Meter)
    reading = view.get(reading_key(meter_address, interval_start), ReadingRecord)
    assert meter is not None and reading is not None, "accrue runs after the reading applied"
    if not meter.kind.renewable or reading.export_wh == 0:
        return []
    acc = view.get(accrual_key(meter_address), Accrual) or Accrual(0, 0, -1, 0)
    backlog = acc.remainder_wh  # carried Wh, older than this reading's energy
    first = acc.remainder_from if backlog else reading.covers_from
    total, size = backlog + reading.export_wh, params.rec_size_wh
    count = min(total // size, params.rec_max_per_reading)
    factor = params.emission_factor_g_per_kwh
    grams = avoided_g(size, factor)
    sequence = view.get(SEQUENCE_KEY, CertificateSequence) or CertificateSequence(1)
    day = local_day(interval_start, params)
    events = []
    for n in range(count):
        # Certificates fill in export order: the n-th starts n * size Wh into the carried
        # backlog followed by this reading, so only those starting inside the backlog can
        # hold energy from before this reading's intervals.
        cert = Certificate(
            id=sequence.next_id + n,
            owner=meter.owner,
            issued_to=meter.owner,
            meter=meter_address,
            source=meter.kind,
            zone=meter.zone,
            first_interval=first if n * size < backlog else reading.covers_from,
            last_interval=interval_start,
            energy_wh=size,
            emission_factor_g_per_kwh=factor,
            avoided_g=grams,
            issued_height=ctx.height,
            issue_day=day,
        )
        view.put(certificate_key(cert.id), cert)
        attrs: dict[str, EventValue] = {"id": cert.id, "owner": cert.owner, "wh": size}
        events.append(
            Event("certificate_issued", {**attrs, "meter": meter_address, "avoided_g": grams})
        )
    remainder = total - count * size
    if remainder == 0:
        remainder_from = -1
    else:
        remainder_from = first if count * size < backlog else reading.covers_from
    view.put(
        accrual_key(meter_address),
        Accrual(acc.certified_wh + count * size, remainder, remainder_from, acc.issued + count),
    )
    if count:
        view.put(SEQUENCE_KEY, CertificateSequence(sequence.next_id + count))
        keys = _carbon_keys(meter.owner, meter.zone, day)
        _add_carbon(view, keys, issued_wh=count * size, issued_avoided_g=count * grams)
    return events


def _owned(view: Overlay, sender: bytes, certificate_id: int) -> Certificate:
    """The certificate, if it exists, is still active and the sender holds it."""
    cert = view.get(certificate_key(certificate_id), Certificate)
    if cert is None:
        raise errors.UnknownCertificate(f"no certificate {certificate_id}")
    if cert.retired:
        raise errors.CertificateRetired(f"certificate {certificate_id} is retired")
    if cert.owner != sender:
        raise errors.NotCertificateOwner(f"certificate {certificate_id} is not the sender's")
    return cert


# --- transaction handlers -----------------------------------------------------------------
def transfer_certificate(
    view: Overlay, ctx: BlockContext, sender: bytes, body: TransferCertificate, p: Params
) -> list[Event]:
    cert = _owned(view, sender, body.certificate_id)
    if view.get(registry.participant_key(body.to), registry.Participant) is None:
        raise errors.RecipientNotParticipant("certificates go to registered participants only")
    if body.to == sender:
        raise errors.SelfTransfer("the sender already holds the certificate")
    view.put(certificate_key(cert.id), msgspec.structs.replace(cert, owner=body.to))
    return [Event("certificate_transferred", {"id": cert.id, "from": sender, "to": body.to})]


def retire_certificate(
    view: Overlay, ctx: BlockContext, sender: bytes, body: RetireCertificate, p: Params
) -> list[Event]:
    cert = _owned(view, sender, body.certificate_id)
    name = body.beneficiary
    if not name.strip() or not name.isprintable() or len(name) > p.rec_beneficiary_max_chars:
        raise errors.InvalidBeneficiary(
            f"beneficiary must be 1-{p.rec_beneficiary_max_chars} printable characters, not blank"
        )
    day = local_day(ctx.time, p)
    view.put(
        certificate_key(cert.id),
        msgspec.structs.replace(cert, retire_day=day, beneficiary=name),
    )
    keys = _carbon_keys(sender, cert.zone, day)
    _add_carbon(view, keys, retired_wh=cert.energy_wh, retired_avoided_g=cert.avoided_g)
    attrs: dict[str, EventValue] = {"id": cert.id, "owner": sender, "beneficiary": name}
    attrs["avoided_g"] = cert.avoided_g
    return [Event("certificate_retired", attrs)]


RECORDS: Final[tuple[type[msgspec.Struct], ...]] = (
    Certificate,
    Accrual,
    CertificateSequence,
    CarbonTotals,
)
"""The record types this context stores (`transition.RECORD_TYPES` gathers every context's)."""
