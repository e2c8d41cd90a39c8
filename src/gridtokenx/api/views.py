"""Ledger records as JSON: integers stay integers (Wh, satang), enums become their names,
20-byte values become `gtx...` addresses (every 20-byte value the ledger keeps is an
address) and other bytes become hex (hashes, public keys, signatures).

Parsing goes the other way with clear errors, so a mistyped address is a 422 that says
so, never a lookup of garbage."""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from gridtokenx.api.errors import invalid, not_found
from gridtokenx.ledger.context import Event
from gridtokenx.ledger.market import queries as market
from gridtokenx.ledger.state import State
from gridtokenx.node.runtime import Node
from gridtokenx.surveillance import Alert
from gridtokenx.wire import crypto

JSON = dict[str, Any]


def plain(value: object) -> Any:
    """A record, event or value as JSON-ready builtins."""
    if isinstance(value, msgspec.Struct):
        return {name: plain(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, bool | None):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bytes):
        return crypto.address_to_text(value) if len(value) == crypto.ADDRESS_SIZE else value.hex()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def record(value: msgspec.Struct, **extra: Any) -> JSON:
    """A record with the fields that locate it (its address, id, ...) in front."""
    return {**{k: plain(v) for k, v in extra.items()}, **plain(value)}


def events(items: list[Event]) -> list[JSON]:
    return [{"kind": e.kind, "attrs": plain(e.attrs)} for e in items]


def book_depth(state: State, zone: str, interval: int, levels: int = 50) -> JSON:
    """Aggregated price levels, best first: price (satang/kWh), quantity (Wh), orders. The
    REST book and the WebSocket `book` topic send the same shape."""
    depth = market.depth(state, zone, interval, levels)
    return {
        "zone": zone,
        "interval": interval,
        "bids": [level._asdict() for level in depth.bids],
        "asks": [level._asdict() for level in depth.asks],
    }


def address(text: str) -> bytes:
    try:
        return crypto.address_from_text(text)
    except crypto.InvalidAddress as exc:
        raise invalid(f"address {text[:64]!r}: {exc}") from None


def hex_bytes(text: str, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise invalid(f"{what} must be hex") from None
    if len(raw) != size:
        raise invalid(f"{what} must be {size} bytes ({2 * size} hex digits)")
    return raw


def tx_status(node: Node, tx_hash: bytes) -> JSON:
    """What became of a transaction: committed (with its receipt), failed (committed in a
    block, where it failed as it executed: its nonce is used, its fee paid if it could be,
    nothing else happened; `reason` is the ledger's code), pending, or dropped with the
    reason; the route and the WebSocket hub answer alike. A receipt is written when the
    block executes, so a status never changes once it is committed or failed."""
    receipt = node.app.receipt(tx_hash)
    if receipt is not None:
        failed = receipt.failed
        return {
            "hash": tx_hash.hex(),
            "status": "committed" if failed is None else "failed",
            **({} if failed is None else {"reason": failed}),
            "height": receipt.height,
            "index": receipt.index,
            "events": events(receipt.events),
        }
    state = node.app.mempool.status(tx_hash)
    if state in ("pending", "committed"):  # committed without a receipt: pruned
        return {"hash": tx_hash.hex(), "status": state}
    if state.startswith("dropped:"):
        return {"hash": tx_hash.hex(), "status": "dropped", "reason": state.split(":", 1)[1]}
    raise not_found(f"transaction {tx_hash.hex()}")


def alert(found: Alert) -> JSON:
    """A surveillance alert as the API and the WebSocket topic show it."""
    return {
        "id": found.id,
        "detector": found.detector.value,
        "interval": found.interval,
        "zone": found.zone or None,
        "accounts": list(found.accounts),
        "score": found.score,
        "summary": found.summary,
        "height": found.height,
        "evidence": [
            {"kind": e.kind, "id": e.id or None, "tx_hash": e.tx_hash or None, "height": e.height}
            for e in found.evidence
        ],
    }
