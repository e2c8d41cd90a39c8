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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import orjson
from websockets.asyncio.client import connect as ws_connect
from websockets.sync.client import connect as ws_connect_sync

from gridtokenx.wire import crypto
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import Body, SignedTransaction
from gridtokenx.wire.tx import make as make_tx

PREFIX: Final = "/api/v1"
JSON = dict[str, Any]
_NONCE_CODES: Final = frozenset({"NONCE_REPLAYED", "NONCE_TAKEN", "NONCE_GAP"})


class ApiError(Exception):
    """The API refused a request: `code` is stable (branch on it), `message` is for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


class TxDropped(Exception):
    """A submitted transaction left the mempool without being committed."""

    def __init__(self, tx_hash: str, reason: str) -> None:
        super().__init__(f"transaction {tx_hash} was dropped: {reason}")
        self.tx_hash, self.reason = tx_hash, reason


class FinalityTimeout(TimeoutError):
    def __init__(self, tx_hash: str, seconds: float) -> None:
        super().__init__(f"transaction {tx_hash} was not committed within {seconds} s")
        self.tx_hash = tx_hash


@dataclass(frozen=True)
class Receipt:
    hash: str
    status: str  # pending, committed or dropped
    height: int | None = None
    index: int | None = None
    events: list[JSON] = field(default_factory=list)
    reason: str = ""

    @classmethod
    def of(cls, data: JSON) -> Receipt:
        return cls(
            data["hash"],
            data["status"],
            data.get("height"),
            data.get("index"),
            data.get("events", []),
            data.get("reason", ""),
        )


@dataclass(frozen=True)
class Balance:
    address: str
    grid_wh: int
    thb_satang: int
    nonce: int

    @classmethod
    def of(cls, data: JSON) -> Balance:
        return cls(data["address"], data["grid_wh"], data["thb_satang"], data["nonce"])


def address_text(who: str | bytes | PrivateKey) -> str:
    """`gtx...` text for an address given as text, 20 raw bytes or a key."""
    if isinstance(who, PrivateKey):
        return crypto.address_to_text(who.address)
    if isinstance(who, bytes):
        return crypto.address_to_text(who)
    return who


def raw_of(signed: bytes | SignedTransaction) -> bytes:
    return signed.encode() if isinstance(signed, SignedTransaction) else signed


def _check(response: httpx.Response) -> Any:
    """The JSON body, or the API's error as `ApiError`."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.is_success:
        return data
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        raise ApiError(response.status_code, str(error.get("code")), str(error.get("message")))
    raise ApiError(response.status_code, f"HTTP_{response.status_code}", response.text[:200])


def _params(params: JSON) -> JSON:
    """Query parameters without the ones left out (None)."""
    return {k: v for k, v in params.items() if v is not None}


@dataclass
class _Nonces:
    """Next nonce per sender, so several transactions can be in flight without waiting;
    refreshed from the ledger whenever a nonce is refused."""

    known: dict[str, int] = field(default_factory=dict)

    def take(self, address: str, ledger_next: int) -> int:
        nonce = max(self.known.get(address, 0), ledger_next)
        self.known[address] = nonce + 1
        return nonce

    def forget(self, address: str) -> None:
        self.known.pop(address, None)


Request = tuple[str, JSON]  # a GET path under /api/v1 and its query parameters


def _certificates(
    owner: str | bytes | PrivateKey | None,
    issued_to: str | bytes | PrivateKey | None,
    status: str,
    limit: int,
    after: int | str | None,
) -> Request:
    """Both clients' certificate listing: by holder, by first owner, or all."""
    params: JSON = {"status": status, "limit": limit, "after": after}
    if owner is not None:
        params["owner"] = address_text(owner)
    if issued_to is not None:
        params["issued_to"] = address_text(issued_to)
    return "/certificates", params


def _carbon(
    participant: str | bytes | PrivateKey | None,
    zone: str | None,
    from_day: int | str | None,
    to_day: int | str | None,
) -> Request:
    """One participant's certificate carbon totals, one zone's, or every zone's."""
    days: JSON = {"from_day": from_day, "to_day": to_day}
    if participant is not None and zone is not None:
        raise ValueError("give a participant or a zone, not both")
    if participant is not None:
        return f"/carbon/participants/{address_text(participant)}", days
    return ("/carbon/zones" if zone is None else f"/carbon/zones/{zone}"), days


def _ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + (
        f"{PREFIX}/ws"
    )


def _subscriptions(topics: list[JSON]) -> list[str]:
    return [orjson.dumps({"op": "subscribe", **t}).decode() for t in topics]


class Client:
    """Synchronous SDK over one node's API."""

    def __init__(
        self, base_url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url + PREFIX, timeout=timeout,
                                  transport=transport)  # fmt: skip
        self._chain_id: str | None = None
        self._nonces = _Nonces()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, **params: Any) -> Any:
        """Any GET endpoint under /api/v1, for what has no method of its own."""
        return _check(self._http.get(path, params=_params(params)))

    def _post(self, path: str, body: JSON) -> Any:
        return _check(self._http.post(path, json=body))

    # --- queries ---------------------------------------------------------------------------
    def health(self) -> JSON:
        return self.get("/health")  # type: ignore[no-any-return]

    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = str(self.get("/chain")["chain_id"])
        return self._chain_id

    def balance(self, who: str | bytes | PrivateKey) -> Balance:
        return Balance.of(self.get(f"/accounts/{address_text(who)}"))

    def block(self, height: int | str = "latest") -> JSON:
        return self.get(f"/blocks/{height}")  # type: ignore[no-any-return]

    def tx(self, tx_hash: str) -> Receipt:
        return Receipt.of(self.get(f"/txs/{tx_hash}"))

    def order(self, order_id: int) -> JSON:
        return self.get(f"/orders/{order_id}")  # type: ignore[no-any-return]

    def orders(self, account: str | bytes | PrivateKey) -> list[JSON]:
        return self.get("/orders", account=address_text(account))["items"]  # type: ignore[no-any-return]

    def book(self, zone: str, interval: int) -> JSON:
        return self.get(f"/book/{zone}/{interval}")  # type: ignore[no-any-return]

    def trades(self, interval: int | None = None, zone: str | None = None) -> list[JSON]:
        return self.get("/trades", interval=interval, zone=zone)["items"]  # type: ignore[no-any-return]

    def certificate(self, certificate_id: int) -> JSON:
        return self.get(f"/certificates/{certificate_id}")  # type: ignore[no-any-return]

    def certificates(
        self,
        owner: str | bytes | PrivateKey | None = None,
        *,
        issued_to: str | bytes | PrivateKey | None = None,
        status: str = "all",
        limit: int = 100,
        after: int | str | None = None,
    ) -> JSON:
        """A page (`items`, `next`) of certificates, newest first: held by `owner`, issued
        to `issued_to`, or all; `status` is all, active or retired."""
        path, params = _certificates(owner, issued_to, status, limit, after)
        return self.get(path, **params)  # type: ignore[no-any-return]

    def carbon(
        self,
        participant: str | bytes | PrivateKey | None = None,
        *,
        zone: str | None = None,
        from_day: int | str | None = None,
        to_day: int | str | None = None,
    ) -> JSON:
        """Certificate carbon totals (Wh issued and retired, grams CO2e avoided) over local
        days YYYYMMDD, for a participant, a zone, or every zone (neither given)."""
        path, params = _carbon(participant, zone, from_day, to_day)
        return self.get(path, **params)  # type: ignore[no-any-return]

    def proposals(
        self, status: str | None = None, limit: int = 50, after: int | str | None = None
    ) -> JSON:
        """A page of governance proposals, newest first; `status` e.g. active or EXECUTED."""
        return self.get("/governance/proposals", status=status, limit=limit, after=after)  # type: ignore[no-any-return]

    def proposal(self, proposal_id: int) -> JSON:
        return self.get(f"/governance/proposals/{proposal_id}")  # type: ignore[no-any-return]

    # --- transactions ----------------------------------------------------------------------
    def submit(self, signed: bytes | SignedTransaction) -> str:
        """Submit signed bytes; returns the transaction hash (hex) once admitted."""
        return str(self._post("/txs", {"tx": raw_of(signed).hex()})["hash"])

    def submit_batch(self, signed: list[bytes] | list[SignedTransaction]) -> list[JSON]:
        body = {"txs": [raw_of(s).hex() for s in signed]}
        return self._post("/txs/batch", body)["results"]  # type: ignore[no-any-return]

    def sign(self, key: PrivateKey, body: Body, fee: int = 0, nonce: int | None = None) -> bytes:
        """Build and sign locally with the sender's next nonce (tracked across calls)."""
        if nonce is None:
            sender = address_text(key)
            nonce = self._nonces.take(sender, self.balance(sender).nonce)
        return make_tx(key, self.chain_id(), nonce, body, fee).encode()

    def send(self, key: PrivateKey, body: Body, fee: int = 0) -> str:
        """Sign and submit; returns the hash. A refused nonce resets the nonce tracking."""
        try:
            return self.submit(self.sign(key, body, fee))
        except ApiError as exc:
            if exc.code in _NONCE_CODES:
                self._nonces.forget(address_text(key))
            raise

    def wait(self, tx_hash: str, timeout: float = 30.0, poll: float = 0.2) -> Receipt:
        """Poll until the transaction is committed (final: one-block finality)."""
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.tx(tx_hash)
            if receipt.status == "committed":
                return receipt
            if receipt.status == "dropped":
                raise TxDropped(tx_hash, receipt.reason)
            if time.monotonic() > deadline:
                raise FinalityTimeout(tx_hash, timeout)
            time.sleep(poll)

    def send_and_wait(
        self, key: PrivateKey, body: Body, fee: int = 0, timeout: float = 30.0
    ) -> Receipt:
        return self.wait(self.send(key, body, fee), timeout)

    # --- streams ---------------------------------------------------------------------------
    def subscribe(self, *topics: JSON, timeout: float | None = None) -> Iterator[JSON]:
        """Messages for the topics (e.g. {"topic": "blocks"}, {"topic": "tx", "hash": h}),
        until the caller stops iterating; `timeout` bounds the wait for each message."""
        with ws_connect_sync(_ws_url(self.base_url)) as socket:
            for request in _subscriptions(list(topics)):
                socket.send(request)
            while True:
                message = orjson.loads(socket.recv(timeout))
                yield message
                if message.get("type") == "lagged":
                    return


class AsyncClient:
    """The asyncio SDK: the same methods as `Client`, awaited."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url + PREFIX, timeout=timeout,
                                       transport=transport)  # fmt: skip
        self._chain_id: str | None = None
        self._nonces = _Nonces()

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def get(self, path: str, **params: Any) -> Any:
        return _check(await self._http.get(path, params=_params(params)))

    async def _post(self, path: str, body: JSON) -> Any:
        return _check(await self._http.post(path, json=body))

    # --- queries ---------------------------------------------------------------------------
    async def health(self) -> JSON:
        return await self.get("/health")  # type: ignore[no-any-return]

    async def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = str((await self.get("/chain"))["chain_id"])
        return self._chain_id

    async def balance(self, who: str | bytes | PrivateKey) -> Balance:
        return Balance.of(await self.get(f"/accounts/{address_text(who)}"))

    async def block(self, height: int | str = "latest") -> JSON:
        return await self.get(f"/blocks/{height}")  # type: ignore[no-any-return]

    async def tx(self, tx_hash: str) -> Receipt:
        return Receipt.of(await self.get(f"/txs/{tx_hash}"))

    async def order(self, order_id: int) -> JSON:
        return await self.get(f"/orders/{order_id}")  # type: ignore[no-any-return]

    async def orders(self, account: str | bytes | PrivateKey) -> list[JSON]:
        return (await self.get("/orders", account=address_text(account)))["items"]  # type: ignore[no-any-return]

    async def book(self, zone: str, interval: int) -> JSON:
        return await self.get(f"/book/{zone}/{interval}")  # type: ignore[no-any-return]

    async def trades(self, interval: int | None = None, zone: str | None = None) -> list[JSON]:
        return (await self.get("/trades", interval=interval, zone=zone))["items"]  # type: ignore[no-any-return]

    async def certificate(self, certificate_id: int) -> JSON:
        return await self.get(f"/certificates/{certificate_id}")  # type: ignore[no-any-return]

    async def certificates(
        self,
        owner: str | bytes | PrivateKey | None = None,
        *,
        issued_to: str | bytes | PrivateKey | None = None,
        status: str = "all",
        limit: int = 100,
        after: int | str | None = None,
    ) -> JSON:
        path, params = _certificates(owner, issued_to, status, limit, after)
        return await self.get(path, **params)  # type: ignore[no-any-return]

    async def carbon(
        self,
        participant: str | bytes | PrivateKey | None = None,
        *,
        zone: str | None = None,
        from_day: int | str | None = None,
        to_day: int | str | None = None,
    ) -> JSON:
        path, params = _carbon(participant, zone, from_day, to_day)
        return await self.get(path, **params)  # type: ignore[no-any-return]

    async def proposals(
        self, status: str | None = None, limit: int = 50, after: int | str | None = None
    ) -> JSON:
        return await self.get("/governance/proposals", status=status, limit=limit, after=after)  # type: ignore[no-any-return]

    async def proposal(self, proposal_id: int) -> JSON:
        return await self.get(f"/governance/proposals/{proposal_id}")  # type: ignore[no-any-return]

    # --- transactions ----------------------------------------------------------------------
    async def submit(self, signed: bytes | SignedTransaction) -> str:
        return str((await self._post("/txs", {"tx": raw_of(signed).hex()}))["hash"])

    async def submit_batch(self, signed: list[bytes] | list[SignedTransaction]) -> list[JSON]:
        body = {"txs": [raw_of(s).hex() for s in signed]}
        return (await self._post("/txs/batch", body))["results"]  # type: ignore[no-any-return]

    async def sign(
        self, key: PrivateKey, body: Body, fee: int = 0, nonce: int | None = None
    ) -> bytes:
        if nonce is None:
            sender = address_text(key)
            nonce = self._nonces.take(sender, (await self.balance(sender)).nonce)
        return make_tx(key, await self.chain_id(), nonce, body, fee).encode()

    async def send(self, key: PrivateKey, body: Body, fee: int = 0) -> str:
        try:
            return await self.submit(await self.sign(key, body, fee))
        except ApiError as exc:
            if exc.code in _NONCE_CODES:
                self._nonces.forget(address_text(key))
            raise

    async def wait(self, tx_hash: str, timeout: float = 30.0, poll: float = 0.2) -> Receipt:
        """Wait for the commit on the WebSocket (polling once more at the deadline)."""
        try:
            async with asyncio.timeout(timeout):
                async for message in self.subscribe({"topic": "tx", "hash": tx_hash}):
                    if message.get("type") == "tx" and message["status"] != "pending":
                        break
        except TimeoutError:
            pass
        receipt = await self.tx(tx_hash)
        if receipt.status == "committed":
            return receipt
        if receipt.status == "dropped":
            raise TxDropped(tx_hash, receipt.reason)
        raise FinalityTimeout(tx_hash, timeout)

    async def send_and_wait(
        self, key: PrivateKey, body: Body, fee: int = 0, timeout: float = 30.0
    ) -> Receipt:
        return await self.wait(await self.send(key, body, fee), timeout)

    # --- streams ---------------------------------------------------------------------------
    async def subscribe(self, *topics: JSON) -> AsyncIterator[JSON]:
        async with ws_connect(_ws_url(self.base_url)) as socket:
            for request in _subscriptions(list(topics)):
                await socket.send(request)
            async for text in socket:
                message = orjson.loads(text)
                yield message
                if message.get("type") == "lagged":
                    return
