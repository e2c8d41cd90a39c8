"""The node's own status: what `gridtokenx status` and monitors read over the network."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from gridtokenx import __version__
from gridtokenx.api.deps import NodeDep, SettingsDep
from gridtokenx.api.models import ERRORS, NodeStatus
from gridtokenx.wire import crypto

router = APIRouter(tags=["node"], responses=ERRORS)


@router.get("/status", response_model=NodeStatus)
async def status(node: NodeDep, settings: SettingsDep) -> dict[str, Any]:
    """Version, chain, node id, the latest block, whether the node is catching up, its
    voting power and its peers. Served on the node's loop between consensus steps, so
    every field describes the same committed height."""
    app = node.app
    peers = node.gossip.peers.values()
    outbound = sum(1 for peer in peers if peer.outbound)
    genesis_root = app.store.genesis_root()
    return {
        "version": __version__,
        "chain_id": app.chain_id,
        "node_id": node.key.address.hex(),
        "moniker": settings.moniker,
        "latest_height": app.height,
        "latest_hash": app.last_hash.hex() if app.height else None,
        "latest_time": app.last_time,
        "genesis_hash": settings.genesis_hash,
        "genesis_root": genesis_root.hex() if genesis_root is not None else None,
        "catching_up": node.catching_up,
        "peer_height": node.peer_height,
        "validator_address": crypto.address_to_text(node.key.address),
        "voting_power": app.validators(app.height + 1).power(node.key.address),
        "peers": {"inbound": len(node.gossip.peers) - outbound, "outbound": outbound},
        "mempool_txs": len(app.mempool),
        "uptime_s": round(time.monotonic() - node.started_at, 3),
    }
