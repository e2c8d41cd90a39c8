"""A real one-validator node (EGAT holds all the voting power) with its API on 127.0.0.1,
running on its own event loop in a background thread, for the API and SDK tests.

Nothing is mocked: the node runs consensus, commits blocks into RocksDB in a tmp dir and
serves uvicorn from its loop, exactly as `run_node` does. Block times come from a clock the
test moves forward (`advance`), so meter readings and gate closures need no sleeping.
Everything binds 127.0.0.1, every wait is bounded, and `stop` always ends the thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import msgspec

from gridtokenx.api import ApiServer, ApiSettings, serve
from gridtokenx.client import Client, Receipt
from gridtokenx.consensus.core import Timeouts
from gridtokenx.devnet.homes import devnet_genesis
from gridtokenx.ledger import genesis
from gridtokenx.ledger.params import Governance
from gridtokenx.node.runtime import Node
from gridtokenx.storage.store import open_application
from gridtokenx.wire import crypto, tx

CHAIN = "gridtokenx-api-test"
T0 = 1_767_229_200  # 2026-01-01 01:00 UTC (08:00 in Bangkok), an interval start
INTERVAL = 900
KEYS = genesis.dev_keys()
EGAT, MEA, PEA, ERC = KEYS["EGAT"], KEYS["MEA"], KEYS["PEA"], KEYS["ERC"]
T = TypeVar("T")


def key(label: str) -> crypto.PrivateKey:
    return crypto.PrivateKey.from_dev_label(f"api-test/{label}")


def text(who: crypto.PrivateKey | bytes) -> str:
    raw = who.address if isinstance(who, crypto.PrivateKey) else who
    return crypto.address_to_text(raw)


class LocalNode:
    def __init__(
        self,
        path: Path,
        settings: ApiSettings | None = None,
        block_interval: float = 0.05,
        governance: Governance | None = None,
    ) -> None:
        self.path = path
        # Production voting periods unless a test asks otherwise: at 20 blocks a second the
        # devnet's short ones would close a proposal under a test that is still voting.
        self.governance = governance or Governance()
        self.settings = settings or ApiSettings(rate_per_second=10_000, rate_burst=10_000)
        self.block_interval = block_interval
        self.offset = 0
        self.node: Node | None = None
        self.api: ApiServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> LocalNode:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the node did not start within 30 s")
        if self._error is not None:
            raise RuntimeError("the node failed to start") from self._error
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the node thread did not stop"

    def __enter__(self) -> LocalNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        spec = devnet_genesis(CHAIN, T0, ("EGAT",), self.governance)
        app = open_application(spec, self.path)
        node = Node(
            EGAT,
            app,
            Timeouts(300, 200, 200),
            clock=lambda: T0 + self.offset,
            block_interval=self.block_interval,
        )
        self._stop = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.node = node
        await node.start()
        try:
            self.api = await serve(node, self.settings)
            self._ready.set()
            await self._stop.wait()
        finally:
            if self.api is not None:
                await self.api.stop()
            await node.stop()

    # --- helpers ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self.api is not None
        return f"http://127.0.0.1:{self.api.port}"

    def client(self) -> Client:
        return Client(self.url)

    def advance(self, seconds: int) -> None:
        """Move block time on (the next blocks carry it)."""
        self.offset += seconds

    def on_loop(self, read: Callable[[], T]) -> T:
        """Run `read` on the node's loop (where its state may be read consistently)."""
        assert self.loop is not None

        async def call() -> T:
            return read()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    @property
    def time(self) -> int:
        return T0 + self.offset


def signed(signer: crypto.PrivateKey, nonce: int, body: tx.Body, fee: int = 0) -> bytes:
    return tx.make(signer, CHAIN, nonce, body, fee).encode()


class Cast(msgspec.Struct):
    """Participants the contract tests share, all registered through the API."""

    home: crypto.PrivateKey
    office: crypto.PrivateKey
    custodian: crypto.PrivateKey
    meter: crypto.PrivateKey


def build_cast(api: Client) -> Cast:
    """Register a Bangkok household with a 5 kW solar meter, an office and a licensed THB
    custodian that funds the office, each step waited for to finality."""
    cast = Cast(key("home"), key("office"), key("custodian"), key("meter/home"))
    P = tx.ParticipantKind
    for who, kind, name in (
        (cast.home, P.HOUSEHOLD, "Somchai"),
        (cast.office, P.BUSINESS, "Office"),
        (cast.custodian, P.CUSTODIAN, "Siam Custody"),
    ):
        api.send_and_wait(MEA, tx.RegisterParticipant(who.address, "BKK", kind, name))
    api.send_and_wait(
        MEA,
        tx.RegisterMeter(cast.meter.public_key, cast.home.address, "BKK", tx.MeterKind.SOLAR, 5000),
    )
    expiry = T0 + 365 * 86_400
    api.send_and_wait(
        ERC, tx.GrantLicence(cast.custodian.address, tx.LicenceKind.CUSTODIAN, expiry)
    )
    api.send_and_wait(cast.custodian, tx.IssueThb(cast.office.address, 1_000_000))
    return cast


@contextlib.contextmanager
def running_cast(
    path: Path, settings: ApiSettings | None = None
) -> Iterator[tuple[LocalNode, Client, Cast]]:
    """A started node, a client of its API and the shared cast; all stopped on exit."""
    with LocalNode(path / "data", settings) as node, node.client() as api:
        yield node, api, build_cast(api)


FARM_W = 10_000_000  # 10 MW: 2.5 MWh per 15-minute interval at rated power
MWH = 1_000_000  # the default certificate size (`rec_size_wh`)


def solar_farm(
    api: Client, label: str, zone: str = "CEN", kind: tx.MeterKind = tx.MeterKind.SOLAR
) -> tuple[crypto.PrivateKey, ...]:
    """A licensed solar farm (a generator with an ERC seller licence) and its 10 MW meter
    (or a plant of another `kind`), registered through the API by the zone's distributor;
    returns (owner, meter)."""
    keys = genesis.dev_keys()
    owner = crypto.PrivateKey.from_dev_label(f"farm/{label}")
    meter = crypto.PrivateKey.from_dev_label(f"farm/{label}/meter")
    distributor = keys["MEA" if zone == "BKK" else "PEA"]
    P = tx.ParticipantKind
    api.send_and_wait(distributor, tx.RegisterParticipant(owner.address, zone, P.GENERATOR, label))
    body = tx.RegisterMeter(meter.public_key, owner.address, zone, kind, FARM_W)
    api.send_and_wait(distributor, body)
    expiry = api.health()["latest_time"] + 365 * 86_400
    api.send_and_wait(keys["ERC"], tx.GrantLicence(owner.address, tx.LicenceKind.SELLER, expiry))
    return owner, meter


def next_reading(api: Client, meter: crypto.PrivateKey, export_wh: int) -> tx.MeterReading:
    """The meter's next reading: its next interval, `export_wh` above its export register."""
    record = api.get(f"/meters/{text(meter)}")
    last = record["last_interval"]
    start = record["first_interval"] if last < 0 else last + INTERVAL
    return tx.MeterReading(
        start, record["import_register_wh"], record["export_register_wh"] + export_wh
    )


def produce(node: LocalNode, api: Client, meter: crypto.PrivateKey, export_wh: int) -> Receipt:
    """Move block time past the meter's next interval and submit its reading."""
    reading = next_reading(api, meter, export_wh)
    ends = reading.interval_start + INTERVAL
    node.advance(max(0, ends - node.time))
    deadline = time.monotonic() + 20
    while api.health()["latest_time"] < ends:
        assert time.monotonic() < deadline, "block time did not pass the interval's end"
        time.sleep(0.05)
    return api.send_and_wait(meter, reading)
