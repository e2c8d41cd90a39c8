"""Submitting signed transactions and asking what became of them.

Transactions arrive already signed (keys never reach the node) as canonical bytes, the
same bytes that gossip relays. Admission is the mempool's: the answer is the hash at once,
or the mempool's or decoder's own code; what the ledger later decides is in the status."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final

import orjson
from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from gridtokenx.api import views
from gridtokenx.api.deps import NodeDep, SettingsDep
from gridtokenx.api.errors import NODE_HALTED, ApiError, invalid, rejected
from gridtokenx.api.models import ERRORS, BatchIn, BatchResult, Submitted, TxIn, TxStatus
from gridtokenx.chain.application import Rejected
from gridtokenx.chain.simulation import simulate as run_simulation
from gridtokenx.ledger.context import BlockContext
from gridtokenx.node.runtime import Node
from gridtokenx.wire import tx

_HEX: Final = re.compile(r"(?:[0-9a-fA-F]{2})+$")
HashPath = Path(pattern=r"^[0-9a-fA-F]{64}$", description="transaction id, 64 hex digits")


def decode_text(text: str, encoding: str | None) -> bytes:
    if encoding == "hex" or (encoding is None and _HEX.match(text)):
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise invalid("tx is not valid hex") from None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("tx is neither hex nor valid base64") from None


def decode_texts(texts: list[str], encoding: str | None) -> list[bytes]:
    """`decode_text` of each, a batch at a time: hex (what batches mostly carry) decoded
    in one pass; on any error, or another encoding, one by one, so the error is the one
    `decode_text` gives for the first bad transaction."""
    if encoding == "hex":
        try:
            return [bytes.fromhex(text) for text in texts]
        except ValueError:
            pass
    return [decode_text(text, encoding) for text in texts]


router = APIRouter(tags=["transactions"], responses=ERRORS)


def require_running(node: Node) -> None:
    if node.halted:
        raise ApiError(503, NODE_HALTED, f"the node has halted: {node.halted}")


@router.post("/txs", status_code=202, response_model=Submitted)
async def submit(body: TxIn, node: NodeDep) -> dict[str, str]:
    """Admit one signed transaction to the mempool and relay it; returns its hash at
    once (finality: poll `GET /txs/{hash}` or subscribe on the WebSocket)."""
    require_running(node)
    raw = decode_text(body.tx, body.encoding)
    try:
        tx_hash = await node.submit(raw)
    except Rejected as exc:
        raise rejected(exc.code, str(exc)) from None
    return {"hash": tx_hash.hex()}


@router.post("/txs/batch", response_model=BatchResult)
async def submit_batch(body: BatchIn, node: NodeDep, settings: SettingsDep) -> Response:
    """Admit many transactions in one request, the node's way (`Node.admit`, as for
    gossip and a single submit): signatures are verified in the node's thread pool while
    the loop keeps serving consensus; one result per transaction, in order, each with its
    hash or the code it was refused with. The answer is encoded here (`BatchResult`'s
    shape, which the schema still documents): FastAPI's validation of the model and its
    JSON encoding took about 5 µs per transaction, on the loop that also runs consensus."""
    require_running(node)
    if len(body.txs) > settings.max_batch:
        raise invalid(f"at most {settings.max_batch} transactions per batch")
    raws = decode_texts(body.txs, body.encoding)
    admissions = await node.admit(raws, client=True)
    results = [
        {
            "hash": None if a.tx_hash is None else a.tx_hash.hex(),
            "accepted": a.accepted,
            "code": a.code,
            "message": a.message,
        }
        for a in admissions
    ]
    return Response(orjson.dumps({"results": results}), media_type="application/json")


class Simulated(BaseModel):
    """What the ledger would do with a transaction now (nothing is kept)."""

    ok: bool = Field(description="the ledger would apply it")
    code: str = Field("", description="the ledger's rejection code when not ok")
    message: str = Field("", description="the rejection, readable")
    hash: str | None = Field(None, description="transaction id, hex (absent: undecodable)")
    height: int = Field(description="the height of the block it was tried in")
    time: int = Field(description="that block's time (the node's clock), unix seconds")
    events: list[dict[str, Any]] = Field([], description="what it would emit when ok")


@router.post("/txs/simulate", response_model=Simulated)
async def simulate(body: TxIn, node: NodeDep) -> dict[str, Any]:
    """Run a signed transaction against the current state in a trial that is always
    rolled back, as Ethereum's `eth_call` does, and return the ledger's verdict: `ok`
    with the events it would emit, or its rejection code and message (GATE_CLOSED,
    MISALIGNED_INTERVAL, INSUFFICIENT_FUNDS, ...). It is tried in the next block at this
    node's clock, after the sender's transactions still waiting here with lower nonces.
    Nothing is admitted, relayed or changed; a refusal is still a 200."""
    require_running(node)
    raw = decode_text(body.tx, body.encoding)
    app = node.app
    ctx = BlockContext(app.height + 1, app.next_time(int(node.clock())))
    earlier: list[bytes] = []
    try:
        signed = tx.decode(raw)
        earlier = app.mempool.queued_before(signed.tx.sender_address, signed.tx.nonce)
    except ValueError:
        pass  # the simulation reports it as MALFORMED
    result = run_simulation(app.state, raw, ctx, earlier)
    return {
        "ok": result.ok,
        "code": result.code,
        "message": result.message,
        "hash": None if result.tx_hash is None else result.tx_hash.hex(),
        "height": result.height,
        "time": result.time,
        "events": views.events(result.events),
    }


@router.get("/txs/{tx_hash}", response_model=TxStatus)
async def status(node: NodeDep, tx_hash: str = HashPath) -> dict[str, Any]:
    """pending (in the mempool), committed (with height, index and events), or dropped
    (with the reason: evicted, superseded, no longer applicable)."""
    return views.tx_status(node, views.hex_bytes(tx_hash, 32, "transaction hash"))
