"""Every operation of a node's API, declared once for both clients.

`Api` is the table: each method decorated with `@endpoint` returns what to ask, not the
answer. Most return a `Call` (the HTTP method, the path under /api/v1, the query or JSON
body, and how the JSON answer becomes the typed result); a few are flows, generators that
yield calls and receive their results (signing with the tracked nonce needs the account's
nonce and the chain id first). `Client` (sync.py) and `AsyncClient` (aio.py) inherit the
table and each run any entry its own way, blocking or awaited, so `client.balance(who)`
returns a `Balance` and `await async_client.balance(who)` the same. Adding an endpoint is
one entry here.

What is not a request, and so not here: waiting for finality (polling, or the WebSocket)
and subscribing to streams, written once in each transport.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any, Concatenate, Final, Generic, ParamSpec, Protocol, TypeVar, overload

import httpx

from gridtokenx.client import results as r
from gridtokenx.client.models import (
    JSON,
    ApiError,
    Balance,
    NodeStatus,
    Receipt,
    Who,
    address_text,
    error_code,
    raw_of,
)
from gridtokenx.client.results import decode
from gridtokenx.client.retries import Retry
from gridtokenx.client.simulation import Simulation, WouldBeRefused
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import Body, SignedTransaction
from gridtokenx.wire.tx import decode as decode_tx
from gridtokenx.wire.tx import make as make_tx

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
NONCE_CODES: Final = frozenset({"NONCE_REPLAYED", "NONCE_TAKEN", "NONCE_GAP"})
HASH_HEX: Final = 64


@dataclass(frozen=True)
class Call(Generic[R]):
    """One request under /api/v1 and how its JSON answer becomes the result."""

    method: str
    path: str
    decode: Callable[[Any], R]
    params: JSON = field(default_factory=dict)  # the query; None values are left out
    body: JSON | None = None
    idempotent: bool = True  # safe to send again after a 429 or 503 (client.retries)

    def query(self) -> JSON:
        return {k: v for k, v in self.params.items() if v is not None}


Flow = Generator[Call[Any], Any, R]  # yields calls, is sent their results, returns R
Op = Call[R] | Flow[R]


def get(path: str, decode: Callable[[Any], R], **params: Any) -> Call[R]:
    return Call("GET", path, decode, params)


def post(path: str, body: JSON, decode: Callable[[Any], R], *, idempotent: bool = False) -> Call[R]:
    return Call("POST", path, decode, body=body, idempotent=idempotent)


def as_json(data: Any) -> JSON:
    return data  # type: ignore[no-any-return]


def as_is(data: Any) -> Any:
    return data


def items_of(kind: type[T]) -> Callable[[Any], list[T]]:
    """A page's items as `kind` (for the reads that return a list, not a page)."""
    page = decode(r.Page[kind])  # type: ignore[valid-type]

    def convert(data: Any) -> list[T]:
        return page(data).items  # type: ignore[no-any-return]

    return convert


# --- running an operation: shared by both transports -------------------------------------
@dataclass(frozen=True)
class Finished(Generic[R]):
    value: R


@dataclass(frozen=True)
class Reply:
    """What a transport got for a flow's last call: its result, or the error to raise
    inside the flow (which may handle it)."""

    value: Any = None
    error: Exception | None = None

    def resume(self, flow: Flow[R]) -> Call[Any] | Finished[R]:
        """The flow's next call, or its result once it returns."""
        try:
            return flow.throw(self.error) if self.error else flow.send(self.value)
        except StopIteration as done:
            return Finished(done.value)

    @staticmethod
    def of(request: Callable[[], Any]) -> Reply:
        try:
            return Reply(request())
        except Exception as exc:
            return Reply(error=exc)

    @staticmethod
    async def of_awaited(request: Coroutine[Any, Any, Any]) -> Reply:
        try:
            return Reply(await request)
        except Exception as exc:
            return Reply(error=exc)


def as_flow(op: Op[R]) -> Flow[R]:
    """Any operation as a flow: a single call is a flow of one step."""
    if isinstance(op, Call):
        return _one(op)
    return op


def _one(call: Call[R]) -> Flow[R]:
    result: R = yield call
    return result


def ask(endpoint: Endpoint[P, T], api: Api, /, *args: P.args, **kwargs: P.kwargs) -> Flow[T]:
    """Inside a flow, another entry of the table: `x = yield from ask(Api.balance, self, who)`."""
    return (yield from as_flow(endpoint.build(api, *args, **kwargs)))


# --- the descriptor that makes a table entry a method of either client --------------------
class SyncRunner(Protocol):
    def _bind_sync(self, build: Callable[..., Op[Any]]) -> Callable[..., Any]: ...


class AsyncRunner(Protocol):
    def _bind_async(self, build: Callable[..., Op[Any]]) -> Callable[..., Any]: ...


class Endpoint(Generic[P, R]):
    """A table entry: on a `Client` a method returning R, on an `AsyncClient` a coroutine
    method returning R, with the declared parameters, name and docstring."""

    def __init__(self, build: Callable[Concatenate[Any, P], Op[R]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__
        self.__name__ = build.__name__

    @overload
    def __get__(self, api: None, owner: type[Any]) -> Endpoint[P, R]: ...
    @overload
    def __get__(self, api: SyncRunner, owner: type[Any]) -> Callable[P, R]: ...
    @overload
    def __get__(
        self, api: AsyncRunner, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    def __get__(self, api: Any, owner: type[Any]) -> Any:
        if api is None:
            return self
        bind = api._bind_async if hasattr(api, "_bind_async") else api._bind_sync
        method = bind(self.build)
        functools.update_wrapper(method, self.build)
        own = list(inspect.signature(self.build).parameters.values())[1:]  # less self
        method.__signature__ = inspect.Signature(own)
        return method


def endpoint(build: Callable[Concatenate[Any, P], Op[R]]) -> Endpoint[P, R]:
    return Endpoint(build)


# --- the table ------------------------------------------------------------------------------
class Nonces:
    """Next nonce per sender, so several transactions can be in flight without waiting;
    refreshed from the ledger whenever a nonce is refused."""

    def __init__(self) -> None:
        self.known: dict[str, int] = {}

    def take(self, address: str, ledger_next: int) -> int:
        nonce = max(self.known.get(address, 0), ledger_next)
        self.known[address] = nonce + 1
        return nonce

    def give_back(self, address: str, nonce: int) -> None:
        """`nonce` was taken but never submitted: reuse it if nothing was taken since."""
        if self.known.get(address) == nonce + 1:
            self.known[address] = nonce

    def forget(self, address: str) -> None:
        self.known.pop(address, None)


class Api:
    """Every operation of the node's API, for `Client` and `AsyncClient` alike."""

    def __init__(self, base_url: str, retry: Retry | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or Retry()
        self._chain_id: str | None = None
        self._nonces = Nonces()

    def _retry_delay(self, call: Call[Any], response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending `call` again, or None: take this answer."""
        status = response.status_code
        if not call.idempotent or status not in self.retry.statuses:
            return None
        return self.retry.delay(status, response.headers.get("retry-after"), attempt,
                                error_code(response))  # fmt: skip

    @endpoint
    def get(self, /, path: str, **params: Any) -> Call[Any]:
        """Any GET endpoint under /api/v1, for what has no method of its own."""
        return get(path, as_is, **params)

    # --- queries ---------------------------------------------------------------------------
    @endpoint
    def health(self) -> Call[r.Health]:
        return get("/health", decode(r.Health))

    @endpoint
    def status(self) -> Call[NodeStatus]:
        """The node's version, chain, id, latest block, catching-up flag, voting power and
        peers."""
        return get("/status", NodeStatus.of)

    @endpoint
    def chain(self) -> Call[r.ChainInfo]:
        """Chain id, genesis time, fee collector and the governed parameters."""
        return get("/chain", decode(r.ChainInfo))

    @endpoint
    def chain_id(self) -> Flow[str]:
        """The chain's id, asked once per client (signatures cover it)."""
        if self._chain_id is None:
            self._chain_id = str((yield get("/chain", as_json))["chain_id"])
        return self._chain_id

    @endpoint
    def validators(self) -> Call[r.Validators]:
        return get("/validators", decode(r.Validators))

    @endpoint
    def supply(self) -> Call[r.Supply]:
        return get("/supply", decode(r.Supply))

    @endpoint
    def balance(self, who: Who) -> Call[Balance]:
        return get(f"/accounts/{address_text(who)}", Balance.of)

    @endpoint
    def accounts(self, limit: int = 100, after: Who | None = None) -> Call[r.Page[Balance]]:
        """Every account's balances and nonce in address order; pass `next` as `after`."""
        after_text = None if after is None else address_text(after)
        return get("/accounts", decode(r.Page[Balance]), limit=limit, after=after_text)

    @endpoint
    def block(self, which: int | str = "latest") -> Call[r.Block]:
        """A block by height, by hash (64 hex digits) or the latest."""
        if isinstance(which, str) and len(which) == HASH_HEX:
            return get(f"/blocks/hash/{which}", decode(r.Block))
        return get(f"/blocks/{which}", decode(r.Block))

    @endpoint
    def blocks(self, limit: int = 20, after: int | str | None = None) -> Call[r.Page[r.Block]]:
        """Block summaries newest first (no transaction ids); `after` is a height."""
        return get("/blocks", decode(r.Page[r.Block]), limit=limit, after=after)

    @endpoint
    def tx(self, tx_hash: str) -> Call[Receipt]:
        return get(f"/txs/{tx_hash}", Receipt.of)

    @endpoint
    def participant(self, who: Who) -> Call[r.Participant]:
        return get(f"/participants/{address_text(who)}", decode(r.Participant))

    @endpoint
    def participants(
        self, limit: int = 100, after: Who | None = None
    ) -> Call[r.Page[r.Participant]]:
        after_text = None if after is None else address_text(after)
        return get("/participants", decode(r.Page[r.Participant]), limit=limit, after=after_text)

    @endpoint
    def meter(self, meter: Who) -> Call[r.Meter]:
        return get(f"/meters/{address_text(meter)}", decode(r.Meter))

    @endpoint
    def meters(
        self, owner: Who | None = None, limit: int = 100, after: Who | None = None
    ) -> Call[r.Page[r.Meter]]:
        """All meters in address order, or one owner's."""
        params = {"owner": owner, "after": after}
        shown = {k: None if v is None else address_text(v) for k, v in params.items()}
        return get("/meters", decode(r.Page[r.Meter]), limit=limit, **shown)

    @endpoint
    def readings(
        self, meter: Who, limit: int = 96, after: int | None = None
    ) -> Call[r.Page[r.Reading]]:
        """A meter's applied readings, oldest first; `after` is an interval start."""
        path = f"/meters/{address_text(meter)}/readings"
        return get(path, decode(r.Page[r.Reading]), limit=limit, after=after)

    @endpoint
    def licences(
        self, holder: Who | None = None, limit: int = 100, after: str | None = None
    ) -> Call[r.Page[r.Licence]]:
        held = None if holder is None else address_text(holder)
        return get("/licences", decode(r.Page[r.Licence]), holder=held, limit=limit, after=after)

    @endpoint
    def order(self, order_id: int) -> Call[r.Order]:
        return get(f"/orders/{order_id}", decode(r.Order))

    @endpoint
    def orders(
        self,
        account: Who | None = None,
        *,
        zone: str | None = None,
        interval: int | None = None,
        limit: int = 100,
    ) -> Call[list[r.Order]]:
        """Open orders of one account, or of one book (`zone` and `interval`)."""
        who = None if account is None else address_text(account)
        return get("/orders", items_of(r.Order), account=who, zone=zone, interval=interval,
                   limit=limit)  # fmt: skip

    @endpoint
    def book(self, zone: str, interval: int, levels: int = 50) -> Call[r.Book]:
        return get(f"/book/{zone}/{interval}", decode(r.Book), levels=levels)

    @endpoint
    def trade(self, trade_id: int) -> Call[r.Trade]:
        return get(f"/trades/{trade_id}", decode(r.Trade))

    @endpoint
    def trades(
        self, interval: int | None = None, zone: str | None = None, limit: int = 100
    ) -> Call[list[r.Trade]]:
        """An interval's trades in order, or the most recent ones newest first."""
        return get("/trades", items_of(r.Trade), interval=interval, zone=zone, limit=limit)

    @endpoint
    def settlement(self, interval: int) -> Call[r.Settlement]:
        """An interval's market status and, once settled, each zone's report."""
        return get(f"/settlements/{interval}", decode(r.Settlement))

    @endpoint
    def prices(self, zone: str, start: int, end: int) -> Call[r.Prices]:
        """Per interval in [start, end): trades into the zone against the tariff."""
        return get(f"/prices/{zone}", decode(r.Prices), **{"from": start, "to": end})

    @endpoint
    def grid(self) -> Call[r.GridStatus]:
        """Zones with halts and grid reports, interconnectors, and the frequency."""
        return get("/grid", decode(r.GridStatus))

    @endpoint
    def flows(self, interval: int) -> Call[r.Flows]:
        return get(f"/flows/{interval}", decode(r.Flows))

    @endpoint
    def auction_book(self, zone: str, interval: int) -> Call[r.AuctionBook]:
        """One zone's day-ahead curves for an interval, with the aggregate demand and supply."""
        return get(f"/auction/book/{zone}/{interval}", decode(r.AuctionBook))

    @endpoint
    def auction_result(self, interval: int) -> Call[r.AuctionResult]:
        """The accepted clearing of an interval's auction: zone prices, flows, trades."""
        return get(f"/auction/results/{interval}", decode(r.AuctionResult))

    @endpoint
    def certificate(self, certificate_id: int) -> Call[r.Certificate]:
        return get(f"/certificates/{certificate_id}", decode(r.Certificate))

    @endpoint
    def certificates(
        self,
        owner: Who | None = None,
        *,
        issued_to: Who | None = None,
        status: str = "all",
        limit: int = 100,
        after: int | str | None = None,
    ) -> Call[r.Page[r.Certificate]]:
        """A page of certificates, newest first: held by `owner`, issued to `issued_to`,
        or all; `status` is all, active or retired."""
        params: JSON = {"status": status, "limit": limit, "after": after}
        if owner is not None:
            params["owner"] = address_text(owner)
        if issued_to is not None:
            params["issued_to"] = address_text(issued_to)
        return get("/certificates", decode(r.Page[r.Certificate]), **params)

    @endpoint
    def carbon(
        self,
        participant: Who | None = None,
        *,
        zone: str | None = None,
        from_day: int | str | None = None,
        to_day: int | str | None = None,
    ) -> Call[r.Carbon]:
        """Certificate carbon totals (Wh issued and retired, grams CO2e avoided) over local
        days YYYYMMDD, for a participant, a zone, or every zone (neither given)."""
        if participant is not None and zone is not None:
            raise ValueError("give a participant or a zone, not both")
        if participant is not None:
            path = f"/carbon/participants/{address_text(participant)}"
        else:
            path = "/carbon/zones" if zone is None else f"/carbon/zones/{zone}"
        return get(path, decode(r.Carbon), from_day=from_day, to_day=to_day)

    @endpoint
    def governance(self) -> Call[r.Governance]:
        """Weights, delegations, voting rules and the open proposals' ids."""
        return get("/governance", decode(r.Governance))

    @endpoint
    def proposals(
        self, status: str | None = None, limit: int = 50, after: int | str | None = None
    ) -> Call[r.Page[r.Proposal]]:
        """A page of governance proposals, newest first; `status` e.g. active or EXECUTED."""
        return get("/governance/proposals", decode(r.Page[r.Proposal]), status=status,
                   limit=limit, after=after)  # fmt: skip

    @endpoint
    def proposal(self, proposal_id: int) -> Call[r.Proposal]:
        """A proposal with its ballots."""
        return get(f"/governance/proposals/{proposal_id}", decode(r.Proposal))

    @endpoint
    def audit(
        self,
        who: Who,
        from_height: int | None = None,
        to_height: int | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Call[r.AuditPage]:
        """Events an address sent or is named in, over at most 1000 heights."""
        return get(f"/audit/{address_text(who)}", decode(r.AuditPage), from_height=from_height,
                   to_height=to_height, limit=limit, after=after)  # fmt: skip

    @endpoint
    def surveillance_alerts(
        self,
        *,
        detector: str | None = None,
        account: Who | None = None,
        zone: str | None = None,
        interval_from: int | None = None,
        interval_to: int | None = None,
        min_score: int = 0,
        limit: int = 50,
        offset: int = 0,
    ) -> Call[r.SurveillanceAlerts]:
        """The ERC surveillance alerts the node raised, newest interval first, filtered."""
        who = None if account is None else address_text(account)
        return get("/surveillance/alerts", decode(r.SurveillanceAlerts), detector=detector,
                   account=who, zone=zone, interval_from=interval_from,
                   interval_to=interval_to, min_score=min_score, limit=limit,
                   offset=offset)  # fmt: skip

    # --- transactions ----------------------------------------------------------------------
    @endpoint
    def submit(self, signed: bytes | SignedTransaction) -> Call[str]:
        """Submit signed bytes; returns the transaction hash (hex) once admitted."""
        body = {"tx": raw_of(signed).hex()}
        # Idempotent: the node deduplicates by hash, so a retried submit is never twice.
        return post("/txs", body, lambda data: str(data["hash"]), idempotent=True)

    @endpoint
    def simulate(self, signed: bytes | SignedTransaction) -> Call[Simulation]:
        """Try signed bytes against the current state, keeping nothing (as `eth_call`):
        the ledger's code and message, or the events it would emit."""
        return post("/txs/simulate", {"tx": raw_of(signed).hex()}, Simulation.of)

    @endpoint
    def check(self, key: PrivateKey, body: Body, fee: int = 0) -> Flow[Simulation]:
        """Would `send` go through now? Signs with the next nonce (given back after, so the
        next `send` still takes it) and simulates."""
        signed = yield from ask(Api.sign, self, key, body, fee)
        self._nonces.give_back(address_text(key), decode_tx(signed).tx.nonce)
        return (yield from ask(Api.simulate, self, signed))

    @endpoint
    def submit_batch(self, signed: list[bytes] | list[SignedTransaction]) -> Call[list[JSON]]:
        body = {"txs": [raw_of(s).hex() for s in signed]}
        return post("/txs/batch", body, lambda data: data["results"])

    @endpoint
    def sign(
        self, key: PrivateKey, body: Body, fee: int = 0, nonce: int | None = None
    ) -> Flow[bytes]:
        """Build and sign locally with the sender's next nonce (tracked across calls)."""
        if nonce is None:
            sender = address_text(key)
            balance = yield from ask(Api.balance, self, sender)
            nonce = self._nonces.take(sender, balance.nonce)
        chain = yield from ask(Api.chain_id, self)
        return make_tx(key, chain, nonce, body, fee).encode()

    @endpoint
    def send(self, key: PrivateKey, body: Body, fee: int = 0, *, check: bool = True) -> Flow[str]:
        """Sign and submit; returns the hash. A refused nonce resets the nonce tracking.
        The transaction is simulated first (as the CLI does), so one the ledger would
        refuse now raises `WouldBeRefused` (an `ApiError` with the ledger's code:
        GATE_CLOSED, MISALIGNED_INTERVAL, INSUFFICIENT_BALANCE, ...) at once, rather than
        being admitted and dropped blocks later with only a code. `check=False` sends
        untried (one request fewer; a transaction that depends on another sender's still
        pending one would be refused by the trial). `submit` and `submit_batch` never
        check: bulk senders sign and submit themselves."""
        try:
            signed = yield from ask(Api.sign, self, key, body, fee)
            if check:
                verdict = yield from ask(Api.simulate, self, signed)
                if not verdict.ok:  # unused: the next transaction may take its nonce
                    self._nonces.give_back(address_text(key), decode_tx(signed).tx.nonce)
                    raise WouldBeRefused(verdict)
            return (yield from ask(Api.submit, self, signed))
        except ApiError as exc:
            if exc.code in NONCE_CODES:
                self._nonces.forget(address_text(key))
            raise
