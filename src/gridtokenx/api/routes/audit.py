"""A participant's audit trail: every event of a height range that involves an address.

There is no index by participant: each request scans its height range in the store
(one block read per height, one receipt read per transaction, one end-of-block read per
height, plus decoding each transaction for its sender), so the range is capped at
`MAX_AUDIT_HEIGHTS` heights per request and a client walks longer periods in windows.
Paging inside a window uses a cursor "height.position.event" (position: the transaction's
index in its block, or 999999999 for end-of-block events)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Query

from gridtokenx.api import models, views
from gridtokenx.api.deps import NodeDep
from gridtokenx.api.errors import invalid
from gridtokenx.api.models import ERRORS
from gridtokenx.api.routes.common import AddressPath, Limit
from gridtokenx.node.runtime import Node
from gridtokenx.reporting import extract

MAX_AUDIT_HEIGHTS: Final = 1_000
HeightQuery = Annotated[int | None, Query(ge=1, le=2**63 - 1)]
Cursor = tuple[int, int, int]
END_OF_BLOCK: Final = 999_999_999
"""The position of end-of-block events in a cursor: after every transaction of the block."""

router = APIRouter(tags=["audit"], responses=ERRORS)


def _involves(found: extract.Located, address: bytes) -> bool:
    return found.sender == address or address in found.event.attrs.values()


def _position(found: extract.Located) -> Cursor:
    index = END_OF_BLOCK if found.tx_index is None else found.tx_index
    return (found.height, index, found.event_index)


def _position_of(shown: dict[str, Any]) -> str:
    return ".".join(str(part) for part in shown["position"])


def _show(found: extract.Located) -> dict[str, Any]:
    return {
        "height": found.height,
        "time": found.time,
        "block_hash": found.block_hash.hex(),
        "tx_hash": None if found.tx_hash is None else found.tx_hash.hex(),
        "kind": found.event.kind,
        "attrs": views.plain(found.event.attrs),
        "position": _position(found),
    }


def _cursor(text: str | None) -> Cursor | None:
    if text is None:
        return None
    height, index, event = (int(part) for part in text.split("."))
    return (height, index, event)


def _range(node: Node, from_height: int | None, to_height: int | None) -> tuple[int, int]:
    """The heights asked for, defaulting to the last MAX_AUDIT_HEIGHTS; refused when above
    the chain or longer than MAX_AUDIT_HEIGHTS."""
    last = node.app.height if to_height is None else to_height
    first = max(1, last - MAX_AUDIT_HEIGHTS + 1) if from_height is None else from_height
    if last > node.app.height:
        raise invalid(f"to_height {last} is above the chain height {node.app.height}")
    if first > last or last - first + 1 > MAX_AUDIT_HEIGHTS:
        raise invalid(f"the range must hold 1 to {MAX_AUDIT_HEIGHTS} heights")
    return first, last


@router.get("/audit/{address}", response_model=models.AuditPage)
async def audit_trail(
    address: AddressPath,
    node: NodeDep,
    from_height: HeightQuery = None,
    to_height: HeightQuery = None,
    limit: Limit = 50,
    after: Annotated[str | None, Query(pattern=r"^[0-9]{1,19}\.[0-9]{1,9}\.[0-9]{1,9}$")] = None,
) -> dict[str, Any]:
    """Events in from_height..to_height (at most 1000 heights; default: the last 1000)
    that the address sent or is named in, oldest first."""
    who = views.address(address)
    store = node.app.store
    first, last = _range(node, from_height, to_height)
    start = _cursor(after)
    scan_from = max(first, store.pruned_below(), 1 if start is None else start[0])
    items: list[dict[str, Any]] = []
    try:
        for found in extract.walk(store, scan_from, last):
            at = _position(found)
            if (start is not None and at <= start) or not _involves(found, who):
                continue
            if len(items) == limit:
                cursor = _position_of(items[-1])
                return {"from_height": first, "to_height": last, "items": items, "next": cursor}
            items.append(_show(found))
    except extract.ReportError as exc:
        raise invalid(str(exc)) from None
    return {"from_height": first, "to_height": last, "items": items, "next": None}
