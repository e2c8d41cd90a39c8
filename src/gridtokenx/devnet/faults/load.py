"""The scenario's load: pre-signed transactions, and the generator that sends them through
the nodes' APIs and records every one a node acknowledged.

The load is signed before any node starts (so the rate is the chain's, not the signer's):
THB transfers between accounts a custodian funded, and market orders from an
`OrdersSource` the caller hands in (the simulator's market day, `simulator.loadgen`, sits
a layer above the devnet), each with its setup in phases (registrations, licences, money)
that commit one after the other. Both streams keep each sender's nonces in order, so every
transaction applies once the ones before it have.

The generator spreads batches over the nodes in turn (full nodes too, as clients would),
skipping for a few seconds a node that failed to answer, and retries a batch on another
node when a request fails. With `redundancy` 2 it sends each batch to two nodes at once,
as a client that wants its transactions final within seconds must: a node that
acknowledges and is then cut off from the validators holds what it took until the cut
heals, and only a copy at another node commits meanwhile. Both nodes admit the same
bytes; gossip, the mempools and the chain deduplicate by hash. A failure after the request
was sent is ambiguous (the node may have admitted it), so the retry settles it: a node
that already holds a transaction says DUPLICATE, which is an acknowledgement as good as
the first; one whose chain already committed it says NONCE_REPLAYED, noted as
`committed_unacknowledged`. Only a transaction with an acknowledgement (its hash, the
node, the time) is held to the checker's promise.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import httpx

from gridtokenx.client import ApiError, AsyncClient
from gridtokenx.devnet.faults.scenario import Load
from gridtokenx.ledger import accounts, genesis
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.wire import crypto, tx

RETRY_LATER: Final = frozenset({"MEMPOOL_FULL", "NONCE_TOO_FAR", "RATE_LIMITED"})
ACKNOWLEDGED: Final = frozenset({"DUPLICATE"})  # the node holds it already
COOL_DOWN_S: Final = 5.0  # a node that failed to answer is skipped this long
GIVE_UP_S: Final = 120.0  # a batch no node would take by then is recorded as unsent
THB_EACH: Final = 10**9  # satang issued to each transfer account: far more than it sends


@dataclass(frozen=True)
class LoadPlan:
    setup: list[list[bytes]]  # phases: each commits before the next is sent
    stream: list[bytes]  # the load, in order


class OrdersSource(Protocol):
    """Market orders for a load: `count` signed orders and their setup phases, for the
    chain of `spec` at about `now`; `next_nonce` gives the nonces the transfers' setup
    left the authorities at. The simulator's market day is one (`simulator.loadgen`),
    handed in by the caller because the simulator is a layer above the devnet."""

    def __call__(
        self, spec: genesis.Genesis, load: Load, now: int, count: int,
        next_nonce: Callable[[bytes], int],
    ) -> tuple[list[list[bytes]], list[bytes]]: ...  # fmt: skip


class NoOrdersSource(ValueError):
    """A load with orders, and nobody handed in where to take them from."""


def build(
    spec: genesis.Genesis, load: Load, now: int, orders: OrdersSource | None = None
) -> LoadPlan:
    """`load.rate * load.seconds` transactions (and their setup) for the chain of `spec`
    whose clock reads about `now`; the orders of a load with orders come from `orders`."""
    count = int(load.rate * load.seconds)
    transfers = {"orders": 0, "transfers": count, "mixed": round(count * load.transfer_share)}
    n_transfers = transfers[load.kind]
    sb = Sandbox(spec=spec)
    sb.time = now
    transfer_setup, transfer_stream = _transfers(sb, load, n_transfers)
    if n_transfers == count:
        return LoadPlan(transfer_setup, transfer_stream)
    if orders is None:
        raise NoOrdersSource(
            f"a {load.kind!r} load needs an orders source (bench/availability_bench.py hands "
            "in the simulator's market day)"
        )

    def next_nonce(address: bytes) -> int:  # authorities' nonces after the transfers' setup
        account = accounts.get_account(sb.state, address)
        return 0 if account is None else account.nonce

    order_setup, order_stream = orders(spec, load, now, count - n_transfers, next_nonce)
    empty: list[bytes] = []
    pairs = itertools.zip_longest(transfer_setup, order_setup, fillvalue=empty)
    setup = [a + b for a, b in pairs]
    return LoadPlan(setup, _interleave(order_stream[: count - n_transfers], transfer_stream))


def _transfers(sb: Sandbox, load: Load, count: int) -> tuple[list[list[bytes]], list[bytes]]:
    """MEA registers a custodian and the accounts, the ERC licenses the custodian, which
    issues THB to each; then each account pays the next one 1 satang, in turn. The setup
    is applied in the sandbox (so the market day's authority nonces follow it)."""
    if count == 0:
        return [], []
    prefix = f"faults/{load.seed}/transfers"
    custodian = crypto.PrivateKey.from_dev_label(f"{prefix}/custodian")
    people = [crypto.PrivateKey.from_dev_label(f"{prefix}/{i}") for i in range(load.participants)]
    mea, erc = sb.authority("MEA"), sb.authority("ERC")
    kinds = tx.ParticipantKind

    def phase(items: Sequence[tuple[crypto.PrivateKey, tx.Body]]) -> list[bytes]:
        out = []
        for key, body in items:
            out.append(sb.sign(key, body).encode())
            sb.submit(key, body)
        return out

    register = [(mea, tx.RegisterParticipant(custodian.address, "BKK", kinds.CUSTODIAN, "c"))]
    register += [(mea, tx.RegisterParticipant(p.address, "BKK", kinds.HOUSEHOLD, f"t{i}"))
                 for i, p in enumerate(people)]  # fmt: skip
    licence = [(erc, tx.GrantLicence(custodian.address, tx.LicenceKind.CUSTODIAN,
                                     sb.time + 365 * 86_400))]  # fmt: skip
    money = [(custodian, tx.IssueThb(p.address, THB_EACH)) for p in people]
    setup = [phase(register), phase(licence), phase(money)]
    nonces = [0] * len(people)
    stream = []
    for i in range(count):  # each account sends far less than it holds: all apply
        k = i % len(people)
        body = tx.Transfer(tx.Asset.THB, people[(k + 1) % len(people)].address, 1)
        stream.append(tx.make(people[k], sb.chain_id, nonces[k], body).encode())
        nonces[k] += 1
    return setup, stream


def _interleave(a: list[bytes], b: list[bytes]) -> list[bytes]:
    """Both streams spread evenly through one, each in its own order."""
    out: list[bytes] = []
    i = j = 0
    while i < len(a) or j < len(b):  # bounded by len(a) + len(b) steps
        if j >= len(b) or (i < len(a) and i * len(b) <= j * len(a)):
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out


# --- sending -----------------------------------------------------------------------------


@dataclass
class Sent:
    """One transaction's fate as the generator saw it; times are the run clock's."""

    submitted: float  # first attempt
    phase: str  # "setup" or "load"
    sent: float | None = None  # when the request that was acknowledged went out
    acked: float | None = None
    node: str = ""  # the node that acknowledged it (or refused it)
    outcome: str = "unsent"  # acked, refused:CODE, committed_unacknowledged, unsent


@dataclass
class Generator:
    """Sends batches through the nodes' APIs and keeps a `Sent` per transaction hash."""

    apis: dict[str, AsyncClient]
    clock: Callable[[], float]
    redundancy: int = 1  # nodes each batch is sent to at once
    sent: dict[str, Sent] = field(default_factory=dict)
    cooling: dict[str, float] = field(default_factory=dict)  # node -> skip until
    errors: dict[str, int] = field(default_factory=dict)  # kind of failure -> count
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def _pick(self, besides: Sequence[str] = ()) -> str | None:
        names = list(self.apis)
        now = time.monotonic()
        for _ in range(len(names)):
            name = names[next(self._turn) % len(names)]
            if self.cooling.get(name, 0.0) <= now and name not in besides:
                return name
        return None

    def _targets(self) -> list[str]:
        """Up to `redundancy` distinct nodes that are not cooling down (none: wait)."""
        chosen: list[str] = []
        for _ in range(max(1, self.redundancy)):
            if (name := self._pick(chosen)) is None:
                break
            chosen.append(name)
        return chosen

    def _fail(self, node: str, kind: str) -> None:
        self.cooling[node] = time.monotonic() + COOL_DOWN_S
        self.errors[kind] = self.errors.get(kind, 0) + 1

    async def send(self, raws: list[bytes], phase: str = "load") -> None:
        """Until every transaction of the batch is acknowledged or refused (or GIVE_UP_S)."""
        now = self.clock()
        todo = []
        for raw in raws:
            tx_hash = tx.hash_of(raw).hex()
            self.sent.setdefault(tx_hash, Sent(now, phase))
            todo.append((tx_hash, raw))
        deadline = time.monotonic() + GIVE_UP_S
        ambiguous = False
        while todo and time.monotonic() < deadline:  # bounded by the deadline
            nodes = self._targets()
            if not nodes:
                await asyncio.sleep(0.2)
                continue
            sent_at = self.clock()
            raws_now = [raw for _, raw in todo]
            answers = await asyncio.gather(
                *(self.apis[n].submit_batch(raws_now) for n in nodes), return_exceptions=True
            )
            answered = []
            for node, answer in zip(nodes, answers, strict=True):
                if isinstance(answer, httpx.ConnectError):
                    self._fail(node, "connect")
                elif isinstance(answer, httpx.TransportError | ApiError):  # sent, answer unknown
                    self._fail(node, type(answer).__name__)
                    ambiguous = True
                elif isinstance(answer, BaseException):
                    raise answer
                else:
                    answered.append((node, answer))
            if not answered:
                continue
            todo = self._settle(answered, sent_at, todo, ambiguous)
            if todo:
                await asyncio.sleep(0.5)

    def _settle(
        self, answered: list[tuple[str, list[dict[str, object]]]], sent_at: float,
        todo: list[tuple[str, bytes]], ambiguous: bool,
    ) -> list[tuple[str, bytes]]:  # fmt: skip
        """Record the nodes' answers, one list per node that answered; returns what to send
        again later. One node's acknowledgement settles a transaction whatever the other
        said (it may have refused it only because the copy it got by gossip came first)."""
        again = []
        now = self.clock()
        for i, (tx_hash, raw) in enumerate(todo):
            sent = self.sent[tx_hash]
            said = [
                (node, results[i], str(results[i].get("code") or "")) for node, results in answered
            ]
            acked = [
                node
                for node, result, code in said
                if result.get("accepted") or code in ACKNOWLEDGED
            ]
            codes = [code for _, _, code in said]
            if acked:
                sent.sent, sent.acked, sent.node, sent.outcome = sent_at, now, acked[0], "acked"
            elif any(code in RETRY_LATER for code in codes):
                again.append((tx_hash, raw))
            elif "NONCE_REPLAYED" in codes and ambiguous:
                sent.outcome = "committed_unacknowledged"
            else:
                sent.outcome = f"refused:{codes[0]}"
                sent.sent, sent.node = sent_at, said[0][0]  # who refused it, and when
        return again

    def acked(self, phase: str | None = None) -> dict[str, Sent]:
        return {h: s for h, s in self.sent.items()
                if s.acked is not None and (phase is None or s.phase == phase)}  # fmt: skip


async def drive(
    generator: Generator, stream: list[bytes], load: Load, stop_at: float, in_flight: int = 64,
    stop: asyncio.Event | None = None,
) -> float:  # fmt: skip
    """Send `stream` at `load.rate` in batches every `load.batch_ms`, each batch its own
    task (a node that hangs delays its batch, not the pace), at most `in_flight` at once,
    until the stream or the time (`stop_at`, run clock) runs out or `stop` is set (a run
    whose length its caller decides as it goes). Returns the largest lag behind the pace,
    in seconds."""
    step = load.batch_ms / 1000
    per_batch = max(1, round(load.rate * step))
    gate = asyncio.Semaphore(in_flight)
    tasks: set[asyncio.Task[None]] = set()
    started, lag = generator.clock(), 0.0

    async def one(batch: list[bytes]) -> None:
        try:
            await generator.send(batch)
        finally:
            gate.release()

    for k, i in enumerate(range(0, len(stream), per_batch)):
        due = started + k * step
        if due >= stop_at or (stop is not None and stop.is_set()):
            break
        if (delay := due - generator.clock()) > 0:
            await asyncio.sleep(delay)
        await gate.acquire()
        lag = max(lag, generator.clock() - due)
        task = asyncio.create_task(one(stream[i : i + per_batch]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return lag
