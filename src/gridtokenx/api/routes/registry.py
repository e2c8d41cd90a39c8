"""Accounts, participants, meters with their readings, and licences."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Path, Query

from gridtokenx.api import views
from gridtokenx.api.errors import invalid, not_found
from gridtokenx.api.models import ERRORS, Page
from gridtokenx.api.routes.common import Limit, address_cursor, page
from gridtokenx.ledger import accounts, metering, registry
from gridtokenx.node.runtime import Node
from gridtokenx.wire.tx import LicenceKind

AddressPath = Annotated[str, Path(min_length=3, max_length=64, description="gtx... address")]
AddressQuery = Annotated[str | None, Query(min_length=3, max_length=64)]
IntervalCursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")]


def _by_address(suffix: bytes, value: msgspec.Struct) -> dict[str, Any]:
    return views.record(value, address=suffix[:20])


def _licence_after(text: str) -> bytes:
    """A licence cursor is `ADDRESS-KIND` (a holder may hold both kinds)."""
    holder, _, kind = text.rpartition("-")
    if kind not in ("1", "2"):
        raise invalid("a licence cursor is ADDRESS-KIND, as returned in `next`")
    return views.address(holder) + bytes([int(kind)])


def router(node: Node) -> APIRouter:
    api = APIRouter(tags=["registry"], responses=ERRORS)

    def get(key: bytes, typ: type[Any], what: str) -> Any:
        found = node.app.state.get(key, typ)
        if found is None:
            raise not_found(what)
        return found

    def by_address(text: str, key_of: Any, typ: type[Any], what: str) -> dict[str, Any]:
        raw = views.address(text)
        return views.record(get(key_of(raw), typ, f"{what} {text}"), address=raw)

    @api.get("/accounts/{address}")
    async def account(address: AddressPath) -> dict[str, Any]:
        """Balances (GRID in Wh, THB in satang) and the nonce the next transaction needs."""
        return by_address(address, accounts.account_key, accounts.Account, "account")

    @api.get("/participants", response_model=Page)
    async def participants(limit: Limit = 100, after: AddressQuery = None) -> dict[str, Any]:
        prefix = b"part/"
        start = None if after is None else views.address(after)
        scan = node.app.state.scan(prefix)
        return page(scan, prefix, start, limit, _by_address, address_cursor)

    @api.get("/participants/{address}")
    async def participant(address: AddressPath) -> dict[str, Any]:
        return by_address(address, registry.participant_key, registry.Participant, "participant")

    @api.get("/meters", response_model=Page)
    async def meters(
        limit: Limit = 100, after: AddressQuery = None, owner: AddressQuery = None
    ) -> dict[str, Any]:
        """All meters in address order, or one owner's meters (`owner`)."""
        start = None if after is None else views.address(after)
        if owner is not None:
            index = node.app.state.get(
                registry.owner_meters_key(views.address(owner)), registry.OwnerMeters
            )
            keys = sorted(index.meters) if index is not None else []
            found = (
                (registry.meter_key(m), node.app.state.get(registry.meter_key(m), registry.Meter))
                for m in keys
            )
            scan: Iterator[tuple[bytes, msgspec.Struct]] = (
                (k, v) for k, v in found if v is not None
            )
        else:
            scan = node.app.state.scan(b"meter/")
        return page(scan, b"meter/", start, limit, _by_address, address_cursor)

    @api.get("/meters/{address}")
    async def meter(address: AddressPath) -> dict[str, Any]:
        return by_address(address, registry.meter_key, registry.Meter, "meter")

    @api.get("/meters/{address}/readings", response_model=Page)
    async def readings(
        address: AddressPath, limit: Limit = 96, after: IntervalCursor = None
    ) -> dict[str, Any]:
        """The meter's applied readings, oldest first; `after` is an interval start."""
        raw = views.address(address)
        get(registry.meter_key(raw), registry.Meter, f"meter {address}")
        prefix = metering.reading_key(raw, 0)[:-8]
        start = None if after is None else int(after).to_bytes(8)

        def show(suffix: bytes, value: msgspec.Struct) -> dict[str, Any]:
            return views.record(value, interval_start=int.from_bytes(suffix))

        def cursor(suffix: bytes) -> str:
            return str(int.from_bytes(suffix))

        return page(node.app.state.scan(prefix), prefix, start, limit, show, cursor)

    @api.get("/licences", response_model=Page)
    async def licences(
        limit: Limit = 100,
        after: Annotated[str | None, Query(min_length=5, max_length=70)] = None,
        holder: AddressQuery = None,
    ) -> dict[str, Any]:
        """ERC licences (seller, custodian) with their validity, all or one holder's;
        the cursor is `ADDRESS-KIND`."""
        prefix = b"lic/"
        scan: Iterator[tuple[bytes, msgspec.Struct]]
        if holder is not None:
            scan = (
                (registry.licence_key(raw, kind), found)
                for raw in [views.address(holder)]
                for kind in LicenceKind
                if (found := node.app.state.get(registry.licence_key(raw, kind), registry.Licence))
            )
        else:
            scan = node.app.state.scan(prefix)
        start = None if after is None else _licence_after(after)
        time = node.app.last_time

        def show(suffix: bytes, value: msgspec.Struct) -> dict[str, Any]:
            assert isinstance(value, registry.Licence)
            kind = LicenceKind(suffix[20])
            return views.record(value, holder=suffix[:20], kind=kind, valid=value.valid_at(time))

        def cursor(suffix: bytes) -> str:
            return f"{address_cursor(suffix)}-{suffix[20]}"

        return page(scan, prefix, start, limit, show, cursor)

    return api
