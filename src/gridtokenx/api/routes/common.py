"""What several route modules share: the page size, paging over a query's listing, and
the 404 for a record that is not there.

A listing query of the ledger (`registry.participants`, `metering.readings`, ...) yields
(position, record) pairs in order, already after the client's cursor: its position is the
record's place in domain terms (an address, an interval start, a holder and kind). So a
page is the first `limit` pairs, and the next cursor is the last position shown."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any, TypeVar

from fastapi import Path, Query

from gridtokenx.api import views
from gridtokenx.api.errors import not_found
from gridtokenx.api.models import MAX_LIMIT
from gridtokenx.api.shapes import ADDRESS_PATTERN

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
_ADDRESS: Any = {
    "max_length": 64,
    "description": "gtx... address",
    # The schema states the form; the handler parses it (views.address), so a typo gets
    # the codec's own message (bad prefix, bad base32, checksum) instead of "no match".
    "json_schema_extra": {"pattern": ADDRESS_PATTERN},
}
AddressPath = Annotated[str, Path(**_ADDRESS)]
AddressQuery = Annotated[str | None, Query(**_ADDRESS)]
At = TypeVar("At")
R = TypeVar("R")


def page(
    found: Iterable[tuple[At, R]],
    limit: int,
    show: Callable[[At, R], dict[str, Any]],
    cursor: Callable[[At], str],
) -> dict[str, Any]:
    """One page of a listing that already starts after the client's cursor; `next` is set
    only when another record follows, and `cursor` turns a position into the text a client
    passes back as `after`."""
    items: list[dict[str, Any]] = []
    last: At | None = None
    for at, value in found:
        if len(items) == limit:
            return {"items": items, "next": cursor(last) if last is not None else None}
        items.append(show(at, value))
        last = at
    return {"items": items, "next": None}


def address_cursor(address: bytes) -> str:
    return views.plain(address)  # type: ignore[no-any-return]


def required(record: R | None, what: str) -> R:
    """The record, or the API's 404 naming `what` was not found."""
    if record is None:
        raise not_found(what)
    return record
