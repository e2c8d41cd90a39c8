"""Blocks, the validator set, the chain's parameters and the node's own health."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Path, Query

from gridtokenx.api import models, views
from gridtokenx.api.deps import NodeDep
from gridtokenx.api.errors import not_found
from gridtokenx.api.models import ERRORS
from gridtokenx.api.routes.common import Limit
from gridtokenx.chain import blocks
from gridtokenx.chain.application import BlockStore
from gridtokenx.ledger import registry, validator_set
from gridtokenx.ledger.chain_info import chain_info as ledger_chain_info
from gridtokenx.ledger.chain_info import params as ledger_params
from gridtokenx.ledger.state import State
from gridtokenx.node.runtime import Node
from gridtokenx.wire import tx
from gridtokenx.wire.votes import Vote

Height = Annotated[int, Path(ge=1, le=2**63 - 1)]

router = APIRouter(tags=["chain"], responses=ERRORS)


def block_view(node: Node, height: int, *, full: bool = True) -> dict[str, Any]:
    store = node.app.store
    stored = store.block(height) if height <= node.app.height else None
    if stored is None:
        pruned = store.pruned_below()
        why = f" (pruned below {pruned})" if height < pruned else ""
        raise not_found(f"block {height}{why}")
    block = blocks.decode(stored[0])
    out: dict[str, Any] = {
        "height": height,
        "hash": block.hash.hex(),
        "header": views.plain(block.header),
        "tx_count": len(block.txs),
        "evidence_count": len(block.evidence),
    }
    if full:
        hashes = [tx.hash_of(raw) for raw in block.txs]
        out["txs"] = [h.hex() for h in hashes]
        out["failed"] = _failed(store, hashes)
        out["end_events"] = views.events(store.block_events(height) or [])
        # Who signed it: the validators whose precommits this node's commit certificate
        # holds (more than 2/3 of the power, not necessarily every signer's vote).
        certificate = msgspec.msgpack.decode(stored[1], type=tuple[Vote, ...])
        out["signers"] = [views.plain(vote.validator) for vote in certificate]
    return out


def _failed(store: BlockStore, hashes: list[bytes]) -> dict[str, str]:
    """The block's transactions that failed as they executed, with the ledger's code
    (validators vote before executing: consensus.md, "Pipelined heights")."""
    out = {}
    for tx_hash in hashes:
        receipt = store.receipt(tx_hash)
        if receipt is not None and (code := receipt.failed) is not None:
            out[tx_hash.hex()] = code
    return out


def _authority_code(state: State, address: bytes) -> str | None:
    """The authority a validator key belongs to (EGAT, MEA, ...), for people reading."""
    found = registry.authority_of(state.overlay(), address)
    return found.code if found is not None else None


@router.get("/blocks/latest", response_model=models.Block)
async def latest_block(node: NodeDep) -> dict[str, Any]:
    """The last committed block: header, transaction ids and end-of-block events."""
    if node.app.height == 0:
        raise not_found("block (no block committed yet)")
    return block_view(node, node.app.height)


@router.get("/blocks", response_model=models.Page[models.BlockSummary])
async def recent_blocks(
    node: NodeDep,
    limit: Limit = 20,
    after: Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")] = None,
) -> dict[str, Any]:
    """Block summaries, newest first; `after` is a height (the page starts below it)."""
    top = node.app.height if after is None else min(int(after) - 1, node.app.height)
    bottom = max(node.app.store.pruned_below(), 1)
    heights = range(top, max(bottom - 1, top - limit), -1)
    items = [block_view(node, h, full=False) for h in heights]
    more = items and items[-1]["height"] > bottom
    return {"items": items, "next": str(items[-1]["height"]) if more else None}


@router.get("/blocks/hash/{block_hash}", response_model=models.Block)
async def block_by_hash(
    block_hash: Annotated[str, Path(pattern=r"^[0-9a-fA-F]{64}$")], node: NodeDep
) -> dict[str, Any]:
    height = node.app.store.block_height(views.hex_bytes(block_hash, 32, "block hash"))
    if height is None:
        raise not_found(f"block {block_hash}")
    return block_view(node, height)


@router.get("/blocks/{height}", response_model=models.Block)
async def block_by_height(height: Height, node: NodeDep) -> dict[str, Any]:
    return block_view(node, height)


@router.get("/validators", response_model=models.Validators)
async def validators(node: NodeDep) -> dict[str, Any]:
    """Every member (jailed ones too) with its power, the set signing the next height,
    and decided changes waiting for their activation height."""
    state = node.app.state
    sets = validator_set.validator_sets(state)
    signing = node.app.validators(node.app.height + 1)
    return {
        "height": node.app.height,
        "members": [
            {**views.plain(m), "authority": _authority_code(state, m.address)} for m in sets.current
        ],
        "pending": views.plain(sets.pending),
        "signing_next": [
            {"address": views.plain(v.address), "power": v.power} for v in signing.validators
        ],
        "total_power": signing.total_power,
    }


@router.get("/chain", response_model=models.ChainView)
async def chain_info(node: NodeDep) -> dict[str, Any]:
    """Chain id, genesis time, the node's clock (the chain's time now, which runs fast
    on an accelerated devnet) and the governed parameters (fees, market rules)."""
    state = node.app.state
    return {
        **views.plain(ledger_chain_info(state)),
        "height": node.app.height,
        "clock": int(node.clock()),  # the chain's time now: accelerated on a devnet
        "params": views.plain(ledger_params(state)),
    }


@router.get("/health", response_model=models.Health)
async def health(node: NodeDep) -> dict[str, Any]:
    app = node.app
    return {
        "chain_id": app.chain_id,
        "height": app.height,
        "latest_time": app.last_time,
        "pruned_below": app.store.pruned_below(),
        "round": node.core.state.round,
        "peers": len(node.gossip.peers),
        "mempool_txs": len(app.mempool),
        "mempool_bytes": app.mempool.size_bytes,
        "halted": node.halted,
        "validating": app.validators(app.height + 1).power(node.key.address) > 0,
    }
