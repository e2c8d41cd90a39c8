"""What the SDK returns and raises: the first typed results (the rest are in results.py),
the errors (errors.py) and turning an HTTP answer into one or the other. Shared by
`Client` and `AsyncClient`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from gridtokenx.client.errors import ApiError as ApiError
from gridtokenx.client.errors import GridTokenXError as GridTokenXError
from gridtokenx.client.errors import StreamError as StreamError
from gridtokenx.client.errors import TxDropped as TxDropped
from gridtokenx.client.errors import TxFailed as TxFailed
from gridtokenx.client.errors import describe as describe
from gridtokenx.client.results import Event, Record, decode
from gridtokenx.client.retries import retry_after
from gridtokenx.wire import crypto
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import SignedTransaction

PREFIX: Final = "/api/v1"
EVENTS: Final = decode(list[Event])  # a receipt's events, checked and typed
JSON = dict[str, Any]
Who = str | bytes | PrivateKey  # an account: gtx... text, 20 raw bytes, or its key


class FinalityTimeout(TimeoutError):
    def __init__(self, tx_hash: str, seconds: float) -> None:
        super().__init__(f"transaction {tx_hash} was not committed within {seconds} s")
        self.tx_hash = tx_hash


@dataclass(frozen=True)
class Receipt(Record):
    hash: str
    status: str  # pending, committed or dropped
    height: int | None = None
    index: int | None = None
    events: list[Event] = field(default_factory=list)
    reason: str = ""  # a dropped transaction's code

    @property
    def code(self) -> str:
        """Why it was dropped, named as `TxDropped.code` and `ApiError.code` name it."""
        return self.reason

    @classmethod
    def of(cls, data: JSON) -> Receipt:
        return cls(
            data["hash"],
            data["status"],
            data.get("height"),
            data.get("index"),
            EVENTS(data.get("events", [])),
            data.get("reason", ""),
        )


def final(receipt: Receipt) -> Receipt | None:
    """A committed receipt, or None while the transaction is pending; a dropped one raises
    `TxDropped`, and one that failed in its block `TxFailed` (one-block finality:
    committed is final, failed too)."""
    if receipt.status == "dropped":
        raise TxDropped(receipt.hash, receipt.reason)
    if receipt.status == "failed":
        raise TxFailed(receipt.hash, receipt.reason, receipt.height or 0)
    return receipt if receipt.status == "committed" else None


@dataclass(frozen=True)
class Balance(Record):
    address: str
    grid_wh: int
    thb_satang: int
    nonce: int

    @classmethod
    def of(cls, data: JSON) -> Balance:
        return cls(data["address"], data["grid_wh"], data["thb_satang"], data["nonce"])


@dataclass(frozen=True)
class NodeStatus(Record):
    """A node's `GET /status` (field meanings: the API's OpenAPI document, docs/api.md)."""

    version: str
    chain_id: str
    node_id: str
    moniker: str
    latest_height: int
    latest_hash: str | None
    latest_time: int
    genesis_hash: str | None
    genesis_root: str | None
    catching_up: bool
    peer_height: int
    validator_address: str
    voting_power: int
    peers_inbound: int
    peers_outbound: int
    mempool_txs: int
    uptime_s: float

    @classmethod
    def of(cls, data: JSON) -> NodeStatus:
        """Fields a newer node adds are left out, so an older SDK keeps working."""
        flat = {**data, "peers_inbound": data["peers"]["inbound"],
                "peers_outbound": data["peers"]["outbound"]}  # fmt: skip
        return cls(**{f.name: flat[f.name] for f in dataclasses.fields(cls)})


def address_text(who: Who) -> str:
    """`gtx...` text for an address given as text, 20 raw bytes or a key."""
    if isinstance(who, PrivateKey):
        return crypto.address_to_text(who.address)
    if isinstance(who, bytes):
        return crypto.address_to_text(who)
    return who


def raw_of(signed: bytes | SignedTransaction) -> bytes:
    return signed.encode() if isinstance(signed, SignedTransaction) else signed


def error_code(response: httpx.Response) -> str | None:
    """The API's error code in a refusal's body (None: not the API's error shape)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return str(error.get("code")) if isinstance(error, dict) else None


def checked(response: httpx.Response) -> Any:
    """The JSON body, or the API's error as `ApiError`."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.is_success:
        return data
    error = data.get("error") if isinstance(data, dict) else None
    status, wait = response.status_code, retry_after(response.headers.get("retry-after"))
    if isinstance(error, dict):
        raise ApiError(status, str(error.get("code")), str(error.get("message")), wait)
    raise ApiError(status, f"HTTP_{status}", response.text[:200], wait)
