"""Pagination over state scans: key order, `after` cursor, bounded page size."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import msgspec
from fastapi import Query

from gridtokenx.api import views
from gridtokenx.api.models import MAX_LIMIT

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]


def page(
    found: Iterator[tuple[bytes, msgspec.Struct]],
    prefix: bytes,
    after: bytes | None,
    limit: int,
    show: Callable[[bytes, msgspec.Struct], dict[str, Any]],
    cursor: Callable[[bytes], str],
) -> dict[str, Any]:
    """One page of records under `prefix`, starting after the key suffix `after`.

    `cursor` turns a key suffix back into the text a client passes as `after`."""
    items: list[dict[str, Any]] = []
    last: bytes | None = None
    for key, value in found:
        suffix = key[len(prefix) :]
        if after is not None and suffix <= after:
            continue
        if len(items) == limit:
            return {"items": items, "next": cursor(last) if last is not None else None}
        items.append(show(suffix, value))
        last = suffix
    return {"items": items, "next": None}


def address_cursor(suffix: bytes) -> str:
    return views.plain(suffix[:20])  # type: ignore[no-any-return]
