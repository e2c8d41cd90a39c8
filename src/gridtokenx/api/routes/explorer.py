"""What a block explorer needs beyond the block and status routes: a committed
transaction with its decoded body, and the transactions that involve an address.

The node keeps no index of transactions by address, so the address listing walks blocks
down from the tip (or from the `before` height a page returned), at most `SCAN_BLOCKS`
blocks per request: a bounded read, and a client pages on with `next` as explorers do
without an indexer. A transaction involves an address when it signed it, or when the
address (or a public key whose address it is) appears anywhere in the body."""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from fastapi import APIRouter, Query

from gridtokenx.api import views
from gridtokenx.api.deps import NodeDep
from gridtokenx.api.models import ERRORS, Page, TxBody
from gridtokenx.api.routes.common import AddressPath, Limit
from gridtokenx.api.routes.txs import HashPath
from gridtokenx.chain import blocks
from gridtokenx.ledger import registry
from gridtokenx.ledger.state import State
from gridtokenx.node.runtime import Node
from gridtokenx.wire import crypto, tx

SCAN_BLOCKS: Final = 1000  # blocks read per request, as the audit trail (it runs on the loop)

router = APIRouter(tags=["explorer"], responses=ERRORS)


def _kind(signed: tx.SignedTransaction) -> str:
    return type(signed.tx.body).__name__


def _mentions(value: object, address: bytes) -> bool:
    """Whether `address` appears in a transaction body: as itself, or as the public key
    it is the address of (a meter's key in RegisterMeter, a validator's in a change)."""
    if isinstance(value, bytes):
        if len(value) == crypto.ADDRESS_SIZE:
            return value == address
        return len(value) == 32 and crypto.address_of(value) == address
    if isinstance(value, msgspec.Struct):
        return any(_mentions(getattr(value, f), address) for f in value.__struct_fields__)
    if isinstance(value, tuple | list):
        return any(_mentions(v, address) for v in value)
    return False


def name_of(state: State, address: bytes) -> str | None:
    """Who an address is, for people reading: a participant's name or an authority's
    code (None for a meter or an unregistered key)."""
    found = registry.get_participant(state, address)
    if found is not None:
        return found.name
    authority = registry.authority_of(state.overlay(), address)
    return authority.code if authority is not None else None


def _summary(
    state: State, signed: tx.SignedTransaction, raw: bytes, height: int, index: int
) -> dict[str, Any]:
    sender = signed.tx.sender_address
    return {
        "hash": tx.hash_of(raw).hex(),
        "height": height,
        "index": index,
        "kind": _kind(signed),
        "sender": views.plain(sender),
        "sender_name": name_of(state, sender),
        "nonce": signed.tx.nonce,
        "fee": signed.tx.fee,
    }


def _block(node: Node, height: int) -> blocks.Block | None:
    stored = node.app.store.block(height) if height <= node.app.height else None
    return None if stored is None else blocks.decode(stored[0])


@router.get("/txs/{tx_hash}/body", response_model=TxBody, response_model_exclude_unset=True)
async def tx_body(node: NodeDep, tx_hash: str = HashPath) -> dict[str, Any]:
    """A transaction's status (as `GET /txs/{hash}`) and, once committed (or failed in its
    block), what it says:
    kind, sender (with `sender_name`: a participant's name or an authority's code),
    nonce, fee, its decoded body, and its block's time."""
    raw_hash = views.hex_bytes(tx_hash, 32, "transaction hash")
    status = views.tx_status(node, raw_hash)
    if status["status"] not in ("committed", "failed"):
        return status
    block = _block(node, status["height"])
    if block is None:  # pruned since the receipt was read
        return status
    raw = block.txs[status["index"]]
    signed = tx.decode(raw)
    return {
        **status,
        **_summary(node.app.state, signed, raw, status["height"], status["index"]),
        "time": block.header.time,
        "block_hash": block.hash.hex(),
        "chain_id": signed.tx.chain_id,
        "body": views.plain(signed.tx.body),
        "signature": signed.signature.hex(),
    }


@router.get("/accounts/{address}/txs", response_model=Page)
async def address_txs(
    address: AddressPath,
    node: NodeDep,
    limit: Limit = 20,
    before: Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")] = None,
) -> dict[str, Any]:
    """Committed transactions that involve the address, newest first, from blocks below
    `before` (the tip if absent), at most SCAN_BLOCKS blocks per request; `next` is the
    `before` of the following page (set while older blocks remain)."""
    who = views.address(address)
    top = node.app.height if before is None else min(int(before) - 1, node.app.height)
    bottom = max(node.app.store.pruned_below(), 1)
    items: list[dict[str, Any]] = []
    height = top
    while height >= bottom and height > top - SCAN_BLOCKS and len(items) < limit:
        block = _block(node, height)
        found = []
        for index, raw in enumerate(() if block is None else block.txs):
            signed = tx.decode(raw)
            if signed.tx.sender_address == who or _mentions(signed.tx.body, who):
                found.append(_summary(node.app.state, signed, raw, height, index))
        items += reversed(found)
        height -= 1
    # A block is never split between pages: the next one starts below the last read.
    return {"items": items, "next": str(height + 1) if height >= bottom else None}
