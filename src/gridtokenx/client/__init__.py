"""The Python SDK: build and sign transactions locally, submit them to a node's API, wait
for finality, query the ledger and subscribe to its streams.

Keys never leave the client: a transaction is built and signed here (`tx.make`) and only
its signed canonical bytes are sent. `Client` is synchronous (httpx.Client), `AsyncClient`
is the same API for asyncio (httpx.AsyncClient). Every read returns a typed result
(results.py), every stream message a typed event (streams.py). `send` tries the
transaction first and raises `WouldBeRefused` for one the ledger would refuse now
(`check=False` sends untried). Every failure is a `GridTokenXError` with the ledger's,
mempool's or API's stable `code` and a readable `message`: `ApiError` when the node
refuses a request, `TxDropped` when an admitted transaction is dropped (`TxFailed`: it
failed in its block), `StreamError` for a subscription. A 429 or 503 is retried as the
node's Retry-After says (a halted node's 503 is not: it will not recover), for reads and
signed submissions (retries.py).

    with Client("http://127.0.0.1:26850") as api:
        receipt = api.send_and_wait(key, tx.Transfer(tx.Asset.THB, to, 5_000))
        print(api.balance(crypto.address_to_text(to)).thb_satang)

The package: models.py (errors and the first results), results.py (the typed results),
retries.py (when to ask again), endpoints.py (every API operation, declared once), sync.py
and aio.py (the two transports that run them), streams.py (the WebSocket).
"""

from gridtokenx.client.aio import AsyncClient
from gridtokenx.client.models import (
    JSON,
    PREFIX,
    ApiError,
    Balance,
    FinalityTimeout,
    GridTokenXError,
    NodeStatus,
    Receipt,
    StreamError,
    TxDropped,
    TxFailed,
    address_text,
    describe,
    raw_of,
)
from gridtokenx.client.results import Event, Page, to_json
from gridtokenx.client.retries import NO_RETRY, Retry
from gridtokenx.client.simulation import Simulation, WouldBeRefused
from gridtokenx.client.streams import (
    BlockEvent,
    BookEvent,
    CertificateEvent,
    GovernanceEvent,
    HaltEvent,
    OtherEvent,
    StreamEvent,
    TradeEvent,
    TxEvent,
)
from gridtokenx.client.sync import Client

__all__ = [
    "JSON",
    "NO_RETRY",
    "PREFIX",
    "ApiError",
    "AsyncClient",
    "Balance",
    "BlockEvent",
    "BookEvent",
    "CertificateEvent",
    "Client",
    "Event",
    "FinalityTimeout",
    "GovernanceEvent",
    "GridTokenXError",
    "HaltEvent",
    "NodeStatus",
    "OtherEvent",
    "Page",
    "Receipt",
    "Retry",
    "Simulation",
    "StreamError",
    "StreamEvent",
    "TradeEvent",
    "TxDropped",
    "TxEvent",
    "TxFailed",
    "WouldBeRefused",
    "address_text",
    "describe",
    "raw_of",
    "to_json",
]
