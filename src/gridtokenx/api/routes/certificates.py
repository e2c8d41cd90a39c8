"""Renewable energy certificates and the carbon totals they carry (docs/certificates.md).

The consensus state keys certificates by id only, so listing one participant's certificates
reads the node's secondary index in RocksDB (`Store.certificate_ids`: by holder, by first
owner, and by status, newest first, kept by `storage.indexes` in the same atomic batch as
each height's state); a page is one bounded range read plus one state read per certificate.
Carbon totals are records per participant or zone and local day, so a range of days is one
state read per day and subject, at most `MAX_CARBON_DAYS` days per request."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Path, Query

from gridtokenx.api import models, views
from gridtokenx.api.deps import NodeDep
from gridtokenx.api.errors import invalid, not_found
from gridtokenx.api.models import ERRORS
from gridtokenx.api.routes.common import AddressPath, AddressQuery, Limit
from gridtokenx.api.routes.market import ZonePath, known_zone
from gridtokenx.ledger import certificates, chain_info, registry
from gridtokenx.ledger.state import State
from gridtokenx.node.runtime import Node
from gridtokenx.storage import indexes

MAX_CARBON_DAYS: Final = 366
CertificateId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the certificate's id")]
DayQuery = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{8}$", description="local date YYYYMMDD (default: the latest block's)"),
]
Status = Literal["active", "retired", "all"]
Totals = certificates.CarbonTotals
_TOTALS: Final = Totals.__struct_fields__

router = APIRouter(tags=["certificates"], responses=ERRORS)


def certificate_view(cert: certificates.Certificate) -> dict[str, Any]:
    return {**views.record(cert), "retired": cert.retired}


def _day(text: str, what: str) -> datetime.date:
    try:
        return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise invalid(f"{what} {text!r} is not a date YYYYMMDD") from None


def _yyyymmdd(day: datetime.date) -> int:
    return day.year * 10_000 + day.month * 100 + day.day


def day_range(state: State, last_time: int, first: str | None, last: str | None) -> list[int]:
    """The local days from_day..to_day (both included, YYYYMMDD), refused unless in order
    and at most MAX_CARBON_DAYS long; both default to the latest block's local day."""
    today = str(certificates.local_day(last_time, chain_info.params(state)))
    end = _day(last or first or today, "to_day")
    start = _day(first or last or today, "from_day")
    if end < start:
        raise invalid("to_day must not be before from_day")
    span = (end - start).days + 1
    if span > MAX_CARBON_DAYS:
        raise invalid(f"at most {MAX_CARBON_DAYS} days per request, not {span}")
    return [_yyyymmdd(start + datetime.timedelta(days=n)) for n in range(span)]


def _sum(rows: list[Totals]) -> dict[str, int]:
    return {name: sum(getattr(r, name) for r in rows) for name in _TOTALS}


def carbon_totals(read: Callable[[int], Totals | None], days: list[int]) -> dict[str, Any]:
    """Totals over the days and the days that have a record (oldest first); `read` gives
    one day's record of the participant or zone asked about."""
    found = [(day, record) for day in days if (record := read(day)) is not None]
    return {
        "from_day": days[0],
        "to_day": days[-1],
        **_sum([record for _, record in found]),
        "days": [{"day": day, **views.plain(record)} for day, record in found],
    }


def _ids(
    node: Node, by: str, who: bytes, status: Status, before: int | None, limit: int
) -> list[int]:
    """Up to `limit` ids, newest first, from the store's index of one listing."""
    wanted = ("a", "r") if status == "all" else (status[0],)
    ids: list[int] = []
    for code in wanted:
        prefix = indexes.certificate_index_prefix(by, code, who)
        ids += node.app.store.certificate_ids(prefix, before, limit)
    return sorted(ids, reverse=True)[:limit]


@router.get("/certificates/{certificate_id}", response_model=models.Certificate)
async def certificate(certificate_id: CertificateId, node: NodeDep) -> dict[str, Any]:
    """One certificate: source, zone, meter, interval range, energy, emission factor and
    avoided CO2e at issue, issue height and day, owner, first owner, retirement."""
    found = certificates.get_certificate(node.app.state, certificate_id)
    if found is None:
        raise not_found(f"certificate {certificate_id}")
    return certificate_view(found)


@router.get("/certificates", response_model=models.Page[models.Certificate])
async def certificate_list(
    node: NodeDep,
    owner: AddressQuery = None,
    issued_to: AddressQuery = None,
    status: Status = "all",
    limit: Limit = 100,
    after: Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")] = None,
) -> dict[str, Any]:
    """Certificates newest first: those an `owner` holds (retired ones stay with the
    owner that retired them), those `issued_to` a participant, or all; `status` keeps
    active or retired ones. `after` is a certificate id from `next`."""
    if owner is not None and issued_to is not None:
        raise invalid("give `owner` or `issued_to`, not both")
    by, who = "all", b""
    if owner is not None:
        by, who = "owner", views.address(owner)
    elif issued_to is not None:
        by, who = "issued", views.address(issued_to)
    before = None if after is None else int(after)
    ids = _ids(node, by, who, status, before, limit + 1)
    state = node.app.state
    chosen = (certificates.get_certificate(state, i) for i in ids[:limit])
    items = [certificate_view(c) for c in chosen if c is not None]
    return {"items": items, "next": str(ids[limit - 1]) if len(ids) > limit else None}


@router.get("/carbon/participants/{address}", response_model=models.ParticipantCarbon)
async def participant_carbon(
    address: AddressPath,
    node: NodeDep,
    from_day: DayQuery = None,
    to_day: DayQuery = None,
) -> dict[str, Any]:
    """Certificates issued to and retired by a participant in the local days
    from_day..to_day (at most 366): Wh and avoided grams CO2e, in total and per day."""
    state = node.app.state
    raw = views.address(address)
    if registry.get_participant(state, raw) is None:
        raise not_found(f"participant {address}")
    days = day_range(state, node.app.last_time, from_day, to_day)

    def read(day: int) -> Totals | None:
        return certificates.participant_carbon(state, raw, day)

    return {"participant": address, **carbon_totals(read, days)}


@router.get("/carbon/zones/{zone}", response_model=models.ZoneCarbonTotals)
async def zone_carbon(
    zone: ZonePath, node: NodeDep, from_day: DayQuery = None, to_day: DayQuery = None
) -> dict[str, Any]:
    """Certificates issued from the zone's meters and retired from it in the local
    days from_day..to_day (at most 366), in total and per day."""
    state = node.app.state
    known_zone(state, zone)
    days = day_range(state, node.app.last_time, from_day, to_day)

    def read(day: int) -> Totals | None:
        return certificates.zone_carbon(state, zone, day)

    return {"zone": zone, **carbon_totals(read, days)}


@router.get("/carbon/zones", response_model=models.ZonesCarbon)
async def zones_carbon(
    node: NodeDep, from_day: DayQuery = None, to_day: DayQuery = None
) -> dict[str, Any]:
    """Every zone's certificate totals over from_day..to_day (at most 366), and the
    sum over zones (what the whole chain issued and retired)."""
    state = node.app.state
    days = day_range(state, node.app.last_time, from_day, to_day)
    zones: dict[str, dict[str, int]] = {}
    for code in registry.zone_index(state.overlay()).zones:
        rows = [r for day in days if (r := certificates.zone_carbon(state, code, day))]
        zones[code] = _sum(rows)
    total = {name: sum(z[name] for z in zones.values()) for name in _TOTALS}
    return {"from_day": days[0], "to_day": days[-1], **total, "zones": zones}
