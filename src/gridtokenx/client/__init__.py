"""The Python SDK: build and sign transactions locally, submit them to a node's API, wait
for finality, query the ledger and subscribe to its streams.

Keys never leave the client: a transaction is built and signed here (`tx.make`) and only
its signed canonical bytes are sent. `Client` is synchronous (httpx.Client), `AsyncClient`
is the same API for asyncio (httpx.AsyncClient). Both raise `ApiError` carrying the API's
stable error code (the ledger's and mempool's codes for refused transactions) and the
readable message.

    with Client("http://127.0.0.1:26850") as api:
        receipt = api.send_and_wait(key, tx.Transfer(tx.Asset.THB, to, 5_000))
        print(api.balance(crypto.address_to_text(to)).thb_satang)

The package: models.py (results and errors), endpoints.py (every API operation, declared
once), sync.py and aio.py (the two transports that run them), streams.py (the WebSocket).
"""

from gridtokenx.client.aio import AsyncClient
from gridtokenx.client.models import (
    JSON,
    PREFIX,
    ApiError,
    Balance,
    FinalityTimeout,
    NodeStatus,
    Receipt,
    TxDropped,
    address_text,
    raw_of,
)
from gridtokenx.client.simulation import Simulation, WouldBeRefused
from gridtokenx.client.sync import Client

__all__ = [
    "JSON",
    "PREFIX",
    "ApiError",
    "AsyncClient",
    "Balance",
    "Client",
    "FinalityTimeout",
    "NodeStatus",
    "Receipt",
    "Simulation",
    "TxDropped",
    "WouldBeRefused",
    "address_text",
    "raw_of",
]
