"""Shared ledger fixtures: a devnet Sandbox with a small cast, and rejection/success helpers.

`Net` wraps a `Sandbox` and records nothing of its own: every fact a test asserts is read back
from the ledger state. `net.ok` applies a transaction and checks every invariant afterwards;
`net.rejects` applies one that must fail and checks the exact exception class, its code, and
that the state root did not move.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import settings

from gridtokenx.ledger import accounts, chain_info, genesis, invariants, registry, transition
from gridtokenx.ledger.context import Event
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.sandbox import DEFAULT_GENESIS_TIME, Sandbox
from gridtokenx.node.home import without_overrides
from gridtokenx.wire import crypto, errors
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import (
    Body,
    GrantLicence,
    IssueThb,
    LicenceKind,
    MeterKind,
    MeterReading,
    ParticipantKind,
    RegisterMeter,
    RegisterParticipant,
    SignedTransaction,
)

# Hypothesis's per-example deadline is a timing assertion: on a loaded 2-core machine a
# correct example can take longer than 200 ms. Speed is the benchmarks' business.
settings.register_profile("gridtokenx", deadline=None)
settings.load_profile("gridtokenx")

# A config variable in the shell that runs the tests (GRIDTOKENX_API_PORT=...) would reach
# every node process the tests start and move its ports; tests that want one set their own.
for _var in set(os.environ) - set(without_overrides(os.environ)):
    del os.environ[_var]

YEAR = 365 * 86_400
INTERVAL = 900


def key(label: str) -> PrivateKey:
    """Deterministic test key (never a key of the sandbox cast unless the label matches)."""
    return PrivateKey.from_dev_label(f"test/{label}")


class Net:
    """A sandbox ledger plus the helpers tests share."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.egat = sb.authority("EGAT")
        self.mea = sb.authority("MEA")
        self.pea = sb.authority("PEA")
        self.erc = sb.authority("ERC")
        self.nepo = sb.authority("NEPO")

    # --- applying transactions -------------------------------------------------------------
    def ok(self, signer: PrivateKey, body: Body, fee: int = 0) -> list[Event]:
        """Submit a transaction that must succeed, then check every invariant."""
        events = self.sb.submit(signer, body, fee)
        invariants.check_all(self.sb.state)
        return events

    def rejects(
        self,
        signer: PrivateKey,
        body: Body,
        exc_type: type[errors.Rejection],
        code: str,
        fee: int = 0,
    ) -> errors.Rejection:
        """Submit (signed with the next nonce) a transaction that must be refused."""
        return self.rejects_tx(self.sb.sign(signer, body, fee), exc_type, code)

    def rejects_tx(
        self,
        stx: SignedTransaction,
        exc_type: type[errors.Rejection],
        code: str,
        *,
        check_signature: bool = True,
    ) -> errors.Rejection:
        """Apply a prepared signed transaction that must be refused without a trace."""
        root = self.sb.state.root()
        records = len(self.sb.state)
        with pytest.raises(errors.Rejection) as info:
            transition.apply(self.sb.state, stx, self.sb.context, check_signature=check_signature)
        exc = info.value
        assert type(exc) is exc_type, f"expected {exc_type.__name__}, got {type(exc).__name__}"
        assert exc.code == code
        assert self.sb.state.root() == root, "a rejected transaction changed the state"
        assert len(self.sb.state) == records
        invariants.check_all(self.sb.state)
        return exc

    # --- reading state ---------------------------------------------------------------------
    def nonce(self, address: bytes) -> int:
        account = self.sb.state.get(accounts.account_key(address), accounts.Account)
        assert account is not None
        return account.nonce

    def grid(self, address: bytes) -> int:
        return self.sb.balance(address)[0]

    def thb(self, address: bytes) -> int:
        return self.sb.balance(address)[1]

    def supply(self) -> accounts.Supply:
        return self.sb.state.get(accounts.SUPPLY_KEY, accounts.Supply) or accounts.Supply()

    def meter(self, address: bytes) -> registry.Meter:
        meter = self.sb.state.get(registry.meter_key(address), registry.Meter)
        assert meter is not None
        return meter

    def licence(self, holder: bytes, kind: LicenceKind) -> registry.Licence | None:
        return self.sb.state.get(registry.licence_key(holder, kind), registry.Licence)

    def licence_valid(self, holder: bytes, kind: LicenceKind) -> bool:
        return registry.has_valid_licence(self.sb.state.overlay(), holder, kind, self.sb.time)

    @property
    def params(self) -> Params:
        return chain_info.params(self.sb.state)

    # --- building the cast -----------------------------------------------------------------
    def distributor(self, zone: str) -> PrivateKey:
        return self.mea if zone == "BKK" else self.pea

    def register(self, label: str, zone: str, kind: ParticipantKind) -> PrivateKey:
        participant = key(label)
        body = RegisterParticipant(participant.address, zone, kind, label)
        self.ok(self.distributor(zone), body)
        return participant

    def add_meter(
        self, label: str, owner: PrivateKey, zone: str, kind: MeterKind, capacity_w: int
    ) -> PrivateKey:
        meter = key(f"meter/{label}")
        body = RegisterMeter(meter.public_key, owner.address, zone, kind, capacity_w)
        self.ok(self.distributor(zone), body)
        return meter

    def grant(self, holder: PrivateKey, kind: LicenceKind, seconds: int = YEAR) -> None:
        self.ok(self.erc, GrantLicence(holder.address, kind, self.sb.time + seconds))

    def last_ended_interval(self) -> int:
        """Start of the newest interval that has fully ended at the sandbox clock."""
        return (self.sb.time // INTERVAL) * INTERVAL - INTERVAL

    def produce(self, meter: PrivateKey, export_wh: int, import_wh: int = 0) -> list[Event]:
        """Submit the meter's next reading, `export_wh` above its current export register,
        moving the clock on by one interval first when the newest ended one is already used."""
        m = self.meter(meter.address)
        while self.last_ended_interval() < max(m.last_interval + 1, m.first_interval):
            self.sb.advance(INTERVAL)
        reading = MeterReading(
            self.last_ended_interval(),
            m.import_register_wh + import_wh,
            m.export_register_wh + export_wh,
        )
        return self.ok(meter, reading)


class Cast(Net):
    """A sandbox with a few registered participants and meters (see the `net` fixture)."""

    def __init__(self, sb: Sandbox) -> None:
        super().__init__(sb)
        P, M = ParticipantKind, MeterKind
        # Bangkok household with 5 kW rooftop solar: a small prosumer, sells without a licence.
        self.home = self.register("bkk-home", "BKK", P.HOUSEHOLD)
        self.home_meter = self.add_meter("bkk-home", self.home, "BKK", M.SOLAR, 5_000)
        # Bangkok household with a consumption-only meter.
        self.consumer = self.register("bkk-consumer", "BKK", P.HOUSEHOLD)
        self.consumer_meter = self.add_meter(
            "bkk-consumer", self.consumer, "BKK", M.CONSUMPTION, 10_000
        )
        # Bangkok office: no meter on chain, buys energy with THB.
        self.office = self.register("bkk-office", "BKK", P.BUSINESS)
        # Central factory with a 50 kW rooftop plant: above the threshold, no licence (yet).
        self.factory = self.register("cen-factory", "CEN", P.INDUSTRIAL)
        self.factory_meter = self.add_meter("cen-factory", self.factory, "CEN", M.SOLAR, 50_000)
        # A licensed THB custodian, which funds the office with 10,000 THB.
        self.custodian = self.register("siam-custody", "BKK", P.CUSTODIAN)
        self.grant(self.custodian, LicenceKind.CUSTODIAN)
        self.ok(self.custodian, IssueThb(self.office.address, 1_000_000))


@pytest.fixture
def sb() -> Sandbox:
    return Sandbox()


@pytest.fixture
def net(sb: Sandbox) -> Cast:
    return Cast(sb)


class AddressHashes:
    """The public keys `crypto.address_of` hashed into addresses (each a miss of its
    cache, the hash counted rather than the calls), over an empty cache of its own."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hashed: list[bytes] = []
        self.kept: dict[bytes, bytes] = {}
        real = crypto.tagged_hash

        def counting(tag: bytes, *parts: bytes) -> bytes:
            if tag == crypto._ADDRESS_TAG:
                self.hashed.append(b"".join(parts))
            return real(tag, *parts)

        monkeypatch.setattr(crypto, "tagged_hash", counting)
        monkeypatch.setattr(crypto, "_ADDRESSES", self.kept)


@pytest.fixture
def address_hashes(monkeypatch: pytest.MonkeyPatch) -> AddressHashes:
    return AddressHashes(monkeypatch)


def sandbox_with_params(**changes: int) -> Sandbox:
    """A Sandbox whose genesis carries changed governed parameters."""
    base = genesis.devnet("gridtokenx-sandbox", DEFAULT_GENESIS_TIME, genesis.dev_keys())
    spec = msgspec.structs.replace(base, params=msgspec.structs.replace(base.params, **changes))
    return Sandbox(spec=spec)


def free_base_port(count: int = 4) -> int:
    """Ports for `count` node processes (node, metrics and API ports), from a range of this
    pytest-xdist worker's own, so parallel workers never pick overlapping ports."""
    from gridtokenx.devnet.processes import free_base_port as pick

    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
    width = 12_000 // max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    low = 20_000 + index * width
    return pick(count, low, low + width)


HOST_NETWORK_LOCK = Path(tempfile.gettempdir()) / "gridtokenx-tests-host-network.lock"


@contextlib.contextmanager
def host_network(changes_it: bool) -> Iterator[None]:
    """Held around what must not overlap under xdist: Chromium aborts every request in
    flight (ERR_NETWORK_CHANGED) when an interface or address comes or goes on the host, and
    the namespace tests add bridges and pull cables. Browsers hold it shared (many at once),
    namespace tests exclusively (`changes_it`), so a page never sees the host's network move."""
    from gridtokenx.devnet.netns.hosts import file_lock

    with file_lock(HOST_NETWORK_LOCK, shared=not changes_it):
        yield


def pytest_configure(config: pytest.Config) -> None:
    """GRIDTOKENX_TREE_PYTHON set: the whole run hashes the state root's tree with its
    Python loops, the reference, where the compiled ones were built (as the benchmarks)."""
    if os.environ.get("GRIDTOKENX_TREE_PYTHON"):
        from gridtokenx.ledger import bucket_tree

        bucket_tree.use_compiled(False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start processes or a browser first, the rest in their usual order after.
    xdist hands tests out in this order, and these take seconds to minutes each; run last,
    one of them kept a worker busy for minutes while the other sat idle (the suite's wall
    time is the busier worker's). The many quick tests after them fill the gaps instead."""
    items.sort(key=lambda item: not (item.get_closest_marker("process")
                                     or item.get_closest_marker("browser")))  # fmt: skip
