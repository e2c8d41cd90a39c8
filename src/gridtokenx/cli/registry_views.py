"""How the registry's records and the validator set look to people, as cli.views does for
the market's: names instead of bare addresses, Bangkok times instead of unix seconds,
kW and kWh instead of W and Wh, and only the columns a reader needs. `--json` prints the
API's records unchanged.

A meter is shown by its shortened address (a meter has no name of its own; its owner's is
the account's), a licence by what a reader asks of it: valid now, expired or revoked, and
until when; a validator by its authority's code with its share of the voting power."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

from gridtokenx.cli.names import Names, short
from gridtokenx.cli.render import Column, columns_table, paged, record_table
from gridtokenx.cli.units import kwh, local_minute, local_time, percent

NEVER = "-"


def _when(unix: int) -> str:
    return local_time(unix) if unix > 0 else NEVER


def _who(code_or_address: str, names: Names) -> str:
    """An authority's code (as the registry records who registered a participant) as it
    is; an address with its name."""
    return names.label(code_or_address) if code_or_address.startswith("gtx") else code_or_address


def participant_record(data: dict[str, Any], names: Names) -> Table:
    return record_table(
        {
            "name": data["name"] or NEVER,
            "address": data["address"],
            "kind": data["kind"].lower(),
            "zone": data["zone"],
            "registered by": _who(data["registered_by"], names),
            "registered": f"{local_time(data['registered_at'])} Bangkok",
        },
        "participant",
    )


def meters_table(meters: list[dict[str, Any]], title: str = "meters") -> Table:
    """Meters with their capacity, last reading and registers (kWh)."""
    columns: list[Column] = [
        ("meter", 0, "left"), ("kind", 0, "left"), ("zone", 0, "left"),
        ("rated kW", 0, "right"), ("registered (Bangkok)", 0, "left"),
        ("last reading (Bangkok)", 0, "left"), ("import kWh", 0, "right"),
        ("export kWh", 0, "right"),
    ]  # fmt: skip
    rows = [_meter_row(m) for m in meters]
    table = columns_table(columns, rows, title)
    if not meters:
        table.caption = "(none)"
    return table


def _meter_row(m: dict[str, Any]) -> list[str]:
    last = m["last_interval"]
    return [
        short(m["address"]),
        m["kind"].lower(),
        m["zone"],
        kwh(m["rated_capacity_w"]),  # W to kW: the same thousandths
        local_time(m["registered_at"]),
        local_minute(last) if last >= 0 else "none yet",
        kwh(m["import_register_wh"], trim=False),
        kwh(m["export_register_wh"], trim=False),
    ]


def licence_status(licence: dict[str, Any]) -> str:
    if licence["revoked_at"]:
        return "revoked"
    return "valid" if licence["valid"] else "expired"


def licences_table(
    licences: list[dict[str, Any]], names: Names, title: str = "licences", *, holders: bool = False
) -> Table:
    """Licences: kind, whether valid now, granted, expiry and revocation times; with
    `holders`, whose each is (a listing of several holders')."""
    columns: list[Column] = [("kind", 0, "left"), ("status", 0, "left"),
                             ("granted (Bangkok)", 0, "left"), ("expires (Bangkok)", 0, "left"),
                             ("revoked (Bangkok)", 0, "left")]  # fmt: skip
    if holders:
        columns.insert(0, ("holder", 0, "left"))
    rows = []
    for licence in licences:
        row = [licence["kind"].lower(), licence_status(licence), _when(licence["granted_at"]),
               _when(licence["expires_at"]), _when(licence["revoked_at"])]  # fmt: skip
        if holders:
            row.insert(0, names.label(licence["holder"]))
        rows.append(row)
    table = columns_table(columns, rows, title)
    if not licences:
        table.caption = "(none)"
    return table


def licences_view(page: dict[str, Any], names: Names) -> RenderableType:
    return paged(licences_table(page["items"], names, holders=True), page)


def _validator_rows(members: list[dict[str, Any]], names: Names, total: int) -> list[list[str]]:
    rows = []
    for v in members:
        who = f"{v['authority']} {short(v['address'])}" if v.get("authority") else None
        share = percent(v["power"] * 10_000 // total) if total else NEVER
        rows.append([who or names.label(v["address"]), f"{v['power']:,}", share,
                     "jailed" if v["jailed"] else "active",
                     f"{v['accountable_from']:,}"])  # fmt: skip
    return rows


VALIDATOR_COLUMNS: tuple[Column, ...] = (
    ("validator", 0, "left"),
    ("power", 0, "right"),
    ("share %", 0, "right"),
    ("state", 0, "left"),
    ("accountable from height", 0, "right"),
)


def validators_view(data: dict[str, Any], names: Names) -> RenderableType:
    """The set by name with each one's share of the power, then changes already decided
    that take effect at a later height."""
    members = data["members"]
    total = sum(v["power"] for v in members if not v["jailed"])
    table = columns_table(VALIDATOR_COLUMNS, _validator_rows(members, names, total),
                          f"validators at height {data['height']:,}")  # fmt: skip
    table.caption = (
        f"share: of the active power ({total:,}); power signing the next block: "
        f"{data['total_power']:,}"
    )
    parts: list[RenderableType] = [table]
    for stage in data.get("pending") or []:
        staged = stage["members"]
        power = sum(v["power"] for v in staged if not v["jailed"])
        title = f"from height {stage['from_height']:,} (decided, pending)"
        parts.append(columns_table(VALIDATOR_COLUMNS, _validator_rows(staged, names, power), title))
    return Group(*parts)
