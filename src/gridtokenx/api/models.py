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


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "refused"},
    404: {"model": ErrorBody, "description": "not found"},
    422: {"model": ErrorBody, "description": "invalid request"},
    429: {"model": ErrorBody, "description": "rate limited, or the mempool is full"},
}
