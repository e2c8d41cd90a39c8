"""Accounts, participants, meters with their readings, and licences."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query

from gridtokenx.api import models, views
from gridtokenx.api.deps import NodeDep
from gridtokenx.api.errors import invalid
from gridtokenx.api.models import ERRORS
from gridtokenx.api.routes.common import (
    AddressPath,
    AddressQuery,
    Limit,
    address_cursor,
    page,
    required,
)
from gridtokenx.ledger import accounts, metering, registry
from gridtokenx.ledger.state import State
from gridtokenx.node.runtime import Node
from gridtokenx.wire.tx import LicenceKind

IntervalCursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")]

router = APIRouter(tags=["registry"], responses=ERRORS)


def _maybe_address(text: str | None) -> bytes | None:
    return None if text is None else views.address(text)


def _by_address(address: bytes, value: msgspec.Struct) -> dict[str, Any]:
    return views.record(value, address=address)


def _at(
    node: Node, text: str, read: Callable[[State, bytes], msgspec.Struct | None], what: str
) -> dict[str, Any]:
    """The record `read` finds at the address `text`, with the address in front; 404 if
    there is none."""
    raw = views.address(text)
    return _by_address(raw, required(read(node.app.state, raw), f"{what} {text}"))


def _licence_after(text: str) -> registry.LicenceId:
    """A licence cursor is `ADDRESS-KIND` (a holder may hold both kinds)."""
    holder, _, kind = text.rpartition("-")
    if kind not in ("1", "2"):
        raise invalid("a licence cursor is ADDRESS-KIND, as returned in `next`")
    return views.address(holder), LicenceKind(int(kind))


def _licence_cursor(at: registry.LicenceId) -> str:
    holder, kind = at
    return f"{address_cursor(holder)}-{int(kind)}"


@router.get("/accounts", response_model=models.AccountPage)
async def account_list(
    node: NodeDep, limit: Limit = 100, after: AddressQuery = None
) -> dict[str, Any]:
    """Every account in address order (system accounts such as the market escrow too), a
    page at a time: with `GET /supply` an auditor can add up the balances. Pages read the
    committed state, so a long walk may see blocks commit between pages."""
    listing = accounts.all_accounts(node.app.state, _maybe_address(after))
    return page(listing, limit, _by_address, address_cursor)


@router.get("/accounts/{address}", response_model=models.Account)
async def account(address: AddressPath, node: NodeDep) -> dict[str, Any]:
    """Balances (GRID in Wh, THB in satang) and the nonce the next transaction needs."""
    return _at(node, address, accounts.get_account, "account")


@router.get("/participants", response_model=models.Page[models.Participant])
async def participants(
    node: NodeDep, limit: Limit = 100, after: AddressQuery = None
) -> dict[str, Any]:
    listing = registry.participants(node.app.state, _maybe_address(after))
    return page(listing, limit, _by_address, address_cursor)


@router.get("/participants/{address}", response_model=models.Participant)
async def participant(address: AddressPath, node: NodeDep) -> dict[str, Any]:
    return _at(node, address, registry.get_participant, "participant")


@router.get("/meters", response_model=models.Page[models.Meter])
async def meters(
    node: NodeDep, limit: Limit = 100, after: AddressQuery = None, owner: AddressQuery = None
) -> dict[str, Any]:
    """All meters in address order, or one owner's meters (`owner`)."""
    start = _maybe_address(after)
    listing = registry.meters(node.app.state, start, _maybe_address(owner))
    return page(listing, limit, _by_address, address_cursor)


@router.get("/meters/{address}", response_model=models.Meter)
async def meter(address: AddressPath, node: NodeDep) -> dict[str, Any]:
    return _at(node, address, registry.get_meter, "meter")


@router.get("/meters/{address}/readings", response_model=models.Page[models.Reading])
async def readings(
    address: AddressPath, node: NodeDep, limit: Limit = 96, after: IntervalCursor = None
) -> dict[str, Any]:
    """The meter's applied readings, oldest first; `after` is an interval start."""
    raw = views.address(address)
    required(registry.get_meter(node.app.state, raw), f"meter {address}")
    start = None if after is None else int(after)

    def show(interval_start: int, value: metering.ReadingRecord) -> dict[str, Any]:
        return views.record(value, interval_start=interval_start)

    return page(metering.readings(node.app.state, raw, start), limit, show, str)


@router.get("/licences", response_model=models.Page[models.Licence])
async def licences(
    node: NodeDep,
    limit: Limit = 100,
    after: Annotated[str | None, Query(min_length=5, max_length=70)] = None,
    holder: AddressQuery = None,
) -> dict[str, Any]:
    """ERC licences (seller, custodian) with their validity, all or one holder's;
    the cursor is `ADDRESS-KIND`."""
    who = _maybe_address(holder)
    start = None if after is None else _licence_after(after)
    time = node.app.last_time

    def show(at: registry.LicenceId, value: registry.Licence) -> dict[str, Any]:
        return views.record(value, holder=at[0], kind=at[1], valid=value.valid_at(time))

    return page(registry.licences(node.app.state, start, who), limit, show, _licence_cursor)
