"""Request and response shapes that the OpenAPI document describes. Records inside
responses are the ledger's own (see views.py); their fields are documented in
docs/protocol.md and docs/api.md rather than duplicated here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from gridtokenx.wire import codec

MAX_TX_TEXT = 4 * codec.MAX_TX_SIZE  # room for hex or base64 of one byte too many
MAX_LIMIT = 500


class TxIn(BaseModel):
    tx: str = Field(
        min_length=1,
        max_length=MAX_TX_TEXT,
        description="a signed transaction's canonical bytes, hex or base64",
    )
    encoding: Literal["hex", "base64"] | None = Field(
        None, description="how `tx` is written; absent: hex when it is valid hex, else base64"
    )


class BatchIn(BaseModel):
    txs: list[str] = Field(min_length=1, max_length=1000)
    encoding: Literal["hex", "base64"] | None = None


class Submitted(BaseModel):
    hash: str = Field(description="transaction id, hex")


class Admission(BaseModel):
    hash: str | None
    accepted: bool
    code: str = ""
    message: str = ""


class BatchResult(BaseModel):
    results: list[Admission]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class TxStatus(BaseModel):
    hash: str
    status: Literal["pending", "committed", "dropped"]
    reason: str = Field("", description="why it was dropped")
    height: int | None = None
    index: int | None = None
    events: list[dict[str, Any]] = []


class Page(BaseModel):
    items: list[dict[str, Any]]
    next: str | None = Field(None, description="pass as `after` for the next page")


class Health(BaseModel):
    chain_id: str
    height: int
    latest_time: int
    pruned_below: int
    round: int
    peers: int
    mempool_txs: int
    mempool_bytes: int
    halted: str | None
    validating: bool


class Peers(BaseModel):
    inbound: int = Field(description="connections the peers opened")
    outbound: int = Field(description="connections this node dialled")


class NodeStatus(BaseModel):
    """What an operator (or a monitor) asks a node first: which software, which chain,
    which node, how far it got, whether it is still catching up, and whether it votes."""

    version: str = Field(description="the gridtokenx package version the node runs")
    chain_id: str
    node_id: str = Field(description="peer id: the node key's address, hex (PEERIDHEX)")
    moniker: str = Field(description="the operator's name for the node (config.json)")
    latest_height: int = Field(description="the last committed height (0: none yet)")
    latest_hash: str | None = Field(description="that block's hash, hex (None at height 0)")
    latest_time: int = Field(description="that block's time, unix seconds (genesis time at 0)")
    genesis_hash: str | None = Field(
        description="the genesis hash operators compare (`gridtokenx genesis hash`), hex "
        "(None when the node was not started from a home)"
    )
    genesis_root: str | None = Field(description="the state root of the genesis state, hex")
    catching_up: bool = Field(
        description="a connected peer has shown a height more than one beyond the one this "
        "node is deciding: it lacks at least a whole block and is syncing"
    )
    peer_height: int = Field(description="the highest height a connected peer has shown")
    validator_address: str = Field(description="the node key's gtx... address")
    voting_power: int = Field(description="its power for the next height (0: a full node)")
    peers: Peers
    mempool_txs: int
    uptime_s: float = Field(description="seconds since the node started")


class Checkpoint(BaseModel):
    """Where a checkpoint of the node's store was written, and what it holds."""

    path: str = Field(description="the checkpoint's directory, absolute")
    height: int
    state_root: str


class CheckpointIn(BaseModel):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="a new directory name under the home's checkpoints/ (no path)",
    )


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "refused"},
    404: {"model": ErrorBody, "description": "not found"},
    422: {"model": ErrorBody, "description": "invalid request"},
    429: {"model": ErrorBody, "description": "rate limited, or the mempool is full"},
}
