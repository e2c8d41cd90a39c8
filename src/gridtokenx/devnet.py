"""Running validators as processes: a node home directory, `node start`, and a local devnet.

A home holds `genesis.json`, `node_key.json` (the insecure dev key on a devnet; an
encrypted keystore file otherwise), `config.json` (listen port, peers, block time, metrics
port, pruning) and `data/` (the RocksDB store). `gridtokenx init` makes one for an operator's
node; `init_devnet` makes the homes of a local devnet. On a devnet, validator i serves
Prometheus metrics on 127.0.0.1 at base port + 100 + i and the REST/WebSocket API at base
port + 200 + i (`config.api_port`; 0 turns it off). While running, the node rewrites
`status.json` twice a second (height, state root, round and step, peers) atomically, which
is what `gridtokenx status` and the tests read without touching the store the node holds
open. With `keep_blocks` set, the same loop prunes blocks older than the last
`keep_blocks` heights.

Accelerated chain time (devnets and the demo only): the ledger's clock is the block time,
and validators refuse proposals more than `blocks.MAX_CLOCK_DRIFT` seconds from their own
clock, so replaying a market day faster than real time needs every validator's clock sped
up the same way. With `clock_speed` S other than 1 a node's clock reads
`genesis_time + (time.time() - clock_origin) * S`: all nodes of the devnet share the
genesis time, the origin (a wall-clock instant) and the speed, so they agree to within
their wall clocks' difference times S. A production node keeps speed 1, the wall clock.
Proposals must reach the other validators within MAX_CLOCK_DRIFT / S wall seconds, so the
speed bounds how slow block building and gossip may be (the demo keeps blocks small).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Final, TypeVar

import msgspec

from gridtokenx import genesis, keystore
from gridtokenx.api import ApiSettings
from gridtokenx.api import serve as serve_api
from gridtokenx.application import Application
from gridtokenx.blocks import MAX_CLOCK_DRIFT, Receipt
from gridtokenx.consensus.core import Timeouts
from gridtokenx.context import Event
from gridtokenx.crypto import PrivateKey
from gridtokenx.node import Node
from gridtokenx.p2p.peers import AddressBook
from gridtokenx.params import Governance

AUTHORITY_ORDER = ("EGAT", "MEA", "PEA", "ERC", "NEPO")
"""The order in which a local devnet of N validators takes the authorities."""
DEVNET_VALIDATORS = AUTHORITY_ORDER[:4]
PASSPHRASE_ENV = "GRIDTOKENX_PASSPHRASE"
DEVNET_GOVERNANCE: Final = Governance(
    voting_period_heights=60,
    timelock_heights=10,
    emergency_voting_period_heights=20,
    emergency_timelock_heights=5,
)
"""Governance periods short enough to try a vote on a local devnet: at one block a second a
proposal is open for a minute and executes ten seconds after it passes (an emergency: 20 s
and 5 s). Quorums and approvals are the production ones; production's periods (params.py,
a day of voting and half a day of timelock) are untouched."""
DEVNET_GRID_STATUS_MAX_AGE_SECONDS: Final = 900
"""How old a grid measurement may be on a devnet: one interval, where production keeps 300 s
(params.py). An accelerated devnet (the demo runs 120 chain seconds per wall second) would
squeeze 300 chain seconds into 2.5 wall seconds, less than the 5 the demo's order gate
closure allows, so a SCADA report submitted at an interval boundary could go stale while
it waits for a block behind the interval's readings and orders; the demo's sink stops the
day on any dropped transaction. One interval (7.5 wall seconds at 120x) keeps a report
valid for as long as the interval it describes is the latest one; the clock-skew limit
(30 s ahead) and the strict ordering per subject are untouched."""
T = TypeVar("T")


class Config(msgspec.Struct, frozen=True):
    listen_port: int
    peers: tuple[tuple[str, int, str], ...]  # (host, port, peer id hex)
    propose_ms: int = 1000
    prevote_ms: int = 500
    precommit_ms: int = 500
    block_ms: int = 1000  # governed block time: empty blocks come at most this often
    min_block_ms: int = 0  # with transactions waiting, propose this soon after a commit
    build_budget_ms: int = 250  # stop adding transactions to a block after this long
    metrics_port: int = 0  # Prometheus /metrics on 127.0.0.1; 0: off
    dial_all: bool = False  # a full node dials every peer; validators split the dialling
    keep_blocks: int = 0  # keep the last N blocks, prune older ones; 0: keep all (archive)
    moniker: str = ""  # the operator's name for the node, for logs and status only
    target_peers: int = 8  # dial addresses learnt from peers (peers.json) up to this many
    api_port: int = 0  # REST + WebSocket API on 127.0.0.1 (api_host); 0: off
    api_host: str = "127.0.0.1"  # bind elsewhere only behind a deliberate decision
    api_cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API
    api_rate_per_second: float = 100.0  # requests per client IP (burst: twice this)
    clock_origin: int = 0  # wall-clock unix seconds at which the chain clock reads genesis time
    clock_speed: float = 1.0  # chain seconds per wall second: devnets/demo only, 1 in production


def chain_clock(genesis_time: int, clock_origin: int, clock_speed: float) -> Callable[[], float]:
    """The node's clock: the wall clock at speed 1 (production), otherwise the accelerated
    devnet clock every validator of the devnet computes alike (see the module docstring)."""
    if clock_speed <= 0:
        raise ValueError(f"clock_speed must be positive, not {clock_speed}")
    if clock_speed == 1:
        return time.time
    return lambda: genesis_time + (time.time() - clock_origin) * clock_speed


def devnet_validators(count: int) -> tuple[str, ...]:
    """The authorities validating on a local devnet of `count` validators."""
    if not 1 <= count <= len(AUTHORITY_ORDER):
        raise ValueError(
            f"a local devnet runs 1 to {len(AUTHORITY_ORDER)} validators "
            f"({', '.join(AUTHORITY_ORDER)}), not {count}"
        )
    return AUTHORITY_ORDER[:count]


def devnet_genesis(
    chain_id: str,
    genesis_time: int,
    validators: Sequence[str] = DEVNET_VALIDATORS,
    governance: Governance = DEVNET_GOVERNANCE,
    grid_status_max_age_seconds: int = DEVNET_GRID_STATUS_MAX_AGE_SECONDS,
) -> genesis.Genesis:
    """The Thai devnet genesis with `validators` validating at their genesis voting power;
    the other authorities keep their governance roles and weights but get voting power 0,
    since a validator with power that runs no process would only slow or stop the quorum.
    A vote can give them power later. `governance` sets the voting rules (short periods by
    default, so a vote can be tried on a local devnet) and `grid_status_max_age_seconds`
    how stale a grid measurement may be (one interval by default, for accelerated clocks:
    see DEVNET_GRID_STATUS_MAX_AGE_SECONDS)."""
    spec = genesis.devnet(chain_id, genesis_time, genesis.dev_keys())
    authorities = tuple(
        a if a.code in validators else msgspec.structs.replace(a, voting_power=0)
        for a in spec.authorities
    )
    params = msgspec.structs.replace(
        spec.params, governance=governance, grid_status_max_age_seconds=grid_status_max_age_seconds
    )
    return msgspec.structs.replace(spec, authorities=authorities, params=params)


def init_devnet(
    root: Path,
    chain_id: str,
    genesis_time: int,
    base_port: int,
    block_ms: int = 1000,
    validators: Sequence[str] = DEVNET_VALIDATORS,
    clock_origin: int = 0,
    clock_speed: float = 1.0,
    build_budget_ms: int = 250,
    api_rate_per_second: float = 100.0,
    propose_ms: int = 1000,
) -> list[Path]:
    """Homes for the devnet validators, fully meshed on 127.0.0.1, in `validators` order.
    With `clock_speed` other than 1 their clocks run accelerated from `clock_origin`.
    The authorities that do not validate get their dev key in `root/keys/CODE.key`, to
    sign governance votes with or to start a node that a vote may make a validator."""
    chain_clock(genesis_time, clock_origin, clock_speed)  # a bad speed fails before writing
    spec = devnet_genesis(chain_id, genesis_time, validators)
    keys = genesis.dev_keys()
    homes = []
    for i, code in enumerate(validators):
        peers = tuple(
            ("127.0.0.1", base_port + j, keys[other].address.hex())
            for j, other in enumerate(validators)
            if j != i
        )
        config = Config(
            base_port + i,
            peers,
            block_ms=block_ms,
            build_budget_ms=build_budget_ms,
            propose_ms=propose_ms,
            metrics_port=base_port + 100 + i,
            api_port=base_port + 200 + i,
            api_rate_per_second=api_rate_per_second,
            clock_origin=clock_origin,
            clock_speed=clock_speed,
        )
        homes.append(write_home(root / code.lower(), spec.encode(), keys[code], config))
    for code in AUTHORITY_ORDER:
        if code not in validators:
            (root / "keys").mkdir(parents=True, exist_ok=True)
            path = root / "keys" / f"{code.lower()}.key"
            keystore.save_insecure_dev_key(path, keys[code], overwrite=True)
    return homes


def init_full_node(
    home: Path,
    validator_homes: list[Path],
    port: int,
    key: PrivateKey | None = None,
    api_port: int = 0,
) -> Path:
    """A node that follows the devnet of `validator_homes` from genesis: with a new key a
    full node; with the key of an authority without genesis power (NEPO on a devnet of
    four) a follower that signs from the first height a vote gives it power for."""
    peers = []
    for other in validator_homes:
        config = read_config(other)
        other_key = keystore.load_key(other / "node_key.json", "", allow_insecure=True)
        peers.append(("127.0.0.1", config.listen_port, other_key.address.hex()))
    genesis_bytes = (validator_homes[0] / "genesis.json").read_bytes()
    first = read_config(validator_homes[0])
    config = Config(port, tuple(peers), dial_all=True, clock_origin=first.clock_origin,
                    clock_speed=first.clock_speed, block_ms=first.block_ms,
                    propose_ms=first.propose_ms, api_port=api_port)  # fmt: skip
    return write_home(home, genesis_bytes, key or PrivateKey.generate(), config)


def write_home(
    home: Path, genesis_bytes: bytes, key: PrivateKey, config: Config, passphrase: str = ""
) -> Path:
    """Write a home's genesis, key and config (replacing them): the key is encrypted under
    `passphrase`, or saved as an insecure dev key when it is empty (devnets only)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "genesis.json").write_bytes(genesis_bytes)
    if passphrase:
        keystore.save_key(home / "node_key.json", key, passphrase, overwrite=True)
    else:
        keystore.save_insecure_dev_key(home / "node_key.json", key, overwrite=True)
    (home / "config.json").write_bytes(msgspec.json.encode(config))
    return home


class HomeExists(FileExistsError):
    """`create_home` never writes over an existing node: its key may be the only copy."""


def create_home(
    home: Path, genesis_bytes: bytes, key: PrivateKey, config: Config, passphrase: str = ""
) -> Path:
    """A new home, all or nothing: written into a sibling directory and renamed into place,
    so a failure half-way (a full disk, a refused passphrase) leaves no partial home that a
    later `node start` could pick up."""
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        raise HomeExists(f"{home} exists and is not empty; choose a new directory")
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = home.parent / f".{home.name}.init-{os.getpid()}"
    try:
        write_home(staging, genesis_bytes, key, config, passphrase)
        (staging / "data").mkdir()
        if home.exists():
            home.rmdir()  # empty, checked above
        staging.rename(home)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return home


def voting_power(spec: genesis.Genesis, key: PrivateKey) -> int:
    """The genesis voting power of `key` (0: it is not a genesis validator)."""
    public = key.public_key.hex()
    return sum(a.voting_power for a in spec.authorities if a.public_key == public)


class HomeError(ValueError):
    """A home the node cannot start from; the message names the file and what is wrong."""


def load_home(
    home: Path, passphrase: str | None = None
) -> tuple[Config, genesis.Genesis, PrivateKey]:
    """Config, genesis and decrypted key of `home`, or one `HomeError` for the operator."""
    if passphrase is None:
        passphrase = os.environ.get(PASSPHRASE_ENV, "")
    try:
        config = read_config(home)
    except FileNotFoundError:
        raise HomeError(f"{home} has no config.json (run `gridtokenx init`)") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise HomeError(f"{home / 'config.json'}: {exc}") from None
    if config.clock_speed <= 0:
        raise HomeError(f"{home / 'config.json'}: clock_speed must be positive")
    try:
        spec = genesis.load(home / "genesis.json")
    except FileNotFoundError:
        raise HomeError(f"{home} has no genesis.json") from None
    except genesis.GenesisError as exc:
        raise HomeError(f"{home / 'genesis.json'}: {exc}") from None
    try:
        key = keystore.load_key(home / "node_key.json", passphrase, allow_insecure=True)
    except keystore.KeystoreError as exc:
        raise HomeError(str(exc)) from None
    return config, spec, key


def read_config(home: Path) -> Config:
    return msgspec.json.decode((home / "config.json").read_bytes(), type=Config)


def read_status(home: Path) -> dict[str, object] | None:
    try:
        loaded: dict[str, object] = json.loads((home / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return loaded


def _write_status(home: Path, node: Node) -> None:
    node.metrics.round.set(node.core.state.round)
    node.metrics.peers.set(len(node.gossip.peers))
    node.metrics.mempool.set(len(node.app.mempool))
    status = {
        "height": node.app.height,
        "pruned_below": node.app.store.pruned_below(),
        "state_root": node.app.state.root().hex(),
        "round": node.core.state.round,
        "step": node.core.state.step.name.lower(),  # with the round: where a stall sits
        "peers": len(node.gossip.peers),
        "halted": node.halted,
        "pid": os.getpid(),
    }
    tmp = home / "status.json.tmp"
    tmp.write_text(json.dumps(status))
    tmp.replace(home / "status.json")


async def run_node(
    home: Path,
    *,
    max_seconds: float | None = None,
    passphrase: str | None = None,
    stop: asyncio.Event | None = None,
    on_node: Callable[[Node], None] | None = None,
) -> None:
    """Run the node of `home` until SIGINT/SIGTERM (or `max_seconds`, for tests).

    The key is decrypted with `passphrase`, else with GRIDTOKENX_PASSPHRASE; a wrong one,
    like any other unusable file in the home, raises `HomeError` before anything is opened
    or bound. A node embedded in another program (the demo's observer) passes its own
    `stop` event instead of taking the signals, and `on_node` to attach commit listeners
    before the node starts.
    """
    config, spec, key = load_home(home, passphrase)
    # A proposer with nothing to include waits up to block_ms: the others wait for that too.
    timeouts = Timeouts(config.propose_ms + config.block_ms, config.prevote_ms, config.precommit_ms)
    node = Node(
        key,
        Application.open(spec, home / "data"),
        timeouts,
        block_interval=config.block_ms / 1000,
        address_book=AddressBook(home / "peers.json"),
        min_block_gap=config.min_block_ms / 1000,
        build_budget=config.build_budget_ms / 1000,
        clock=chain_clock(spec.genesis_time, config.clock_origin, config.clock_speed),
        # An accelerated clock moves `speed` chain seconds per wall second: allow the same
        # wall-clock disagreement between validators as at speed 1.
        clock_drift=math.ceil(MAX_CLOCK_DRIFT * max(1.0, config.clock_speed)),
    )
    if on_node is not None:
        on_node(node)
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
    await node.gossip.listen("127.0.0.1", config.listen_port)
    if config.metrics_port:
        node.metrics.serve(config.metrics_port)
    await node.start()
    api = None
    started = loop.time()
    try:
        if config.api_port:  # a port in use stops the node with the reason, cleanly
            api = await serve_api(node, _api_settings(config))
        while not stop.is_set():
            for host, port, peer in config.peers:
                peer_id = bytes.fromhex(peer)
                if peer_id not in node.gossip.peers and (config.dial_all or key.address < peer_id):
                    with contextlib.suppress(OSError, ConnectionError, TimeoutError):
                        await node.gossip.dial(host, port, expect=peer_id)
            with contextlib.suppress(OSError, ConnectionError, TimeoutError):
                await node.gossip.maintain(config.target_peers)  # peers learnt by exchange
            if config.keep_blocks:
                node.app.store.prune(config.keep_blocks)
            _write_status(home, node)
            if max_seconds is not None and loop.time() - started > max_seconds:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        if api is not None:
            await api.stop()
        _write_status(home, node)
        await node.stop()


def _api_settings(config: Config) -> ApiSettings:
    return ApiSettings(
        host=config.api_host,
        port=config.api_port,
        cors_origins=config.api_cors_origins,
        rate_per_second=config.api_rate_per_second,
        rate_burst=2 * config.api_rate_per_second,
    )


PORT_OFFSETS: Final = (0, 100, 200)  # node, Prometheus metrics, API: base + offset + i


def free_base_port(count: int, low: int = 20_000, high: int = 32_000) -> int:
    """A base port in [low, high) whose node, metrics and API ports for `count` nodes are
    all free on 127.0.0.1 now. The range stays below Linux's ephemeral ports (from 32768),
    so outgoing connections do not take them; test workers pass disjoint ranges."""
    rng = random.Random()
    span = max(PORT_OFFSETS) + count
    for _ in range(200):  # bounded
        base = rng.randrange(low, high - span)
        if all(_bindable(base + offset + i) for offset in PORT_OFFSETS for i in range(count)):
            return base
    raise RuntimeError(f"no free ports in {low}-{high} on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Processes:
    """Nodes of local homes as `gridtokenx node start` processes (stderr to `node.log` in
    each home); `stop` ends every one of them, first with SIGTERM (a clean shutdown that
    closes the store) and then, after `grace` seconds, with SIGKILL."""

    def __init__(self, homes: Sequence[Path]) -> None:
        self.homes = list(homes)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> Processes:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for home in self.homes:
            with open(home / "node.log", "ab") as log:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "gridtokenx", "node", "start", "--home", str(home)],
                        stdout=subprocess.DEVNULL,
                        stderr=log,
                        stdin=subprocess.DEVNULL,
                        env=env,
                    )
                )
        return self

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def stop(self, grace: float = 10.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def __enter__(self) -> Processes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Observer:
    """A non-validating full node of a local devnet inside this process, on its own event
    loop in a background thread, with its own store under `home`. It follows the chain from
    the validators and keeps every committed event (transaction receipts' events, then the
    block's end-of-block events, in commit order), so a program can read the chain's own
    state and events rather than trusting what it submitted. `call` runs a function on the
    node's loop, between commits, so it reads one committed state."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.events: list[Event] = []
        self.height = 0
        self._node: Node | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="observer", daemon=True)
        self.error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> Observer:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the observer node did not start")
        if self.error is not None:
            raise RuntimeError(f"the observer node failed: {self.error}") from self.error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the caller
            self.error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await run_node(self.home, passphrase="", stop=self._stop, on_node=self._attach)

    def _attach(self, node: Node) -> None:
        self._node = node
        self.height = node.app.height
        node.add_commit_listener(self._on_commit)
        self._ready.set()

    def _on_commit(
        self, height: int, block: bytes, receipts: list[Receipt], end_events: list[Event]
    ) -> None:
        for receipt in receipts:
            self.events += receipt.events
        self.events += end_events
        self.height = height

    def call(self, fn: Callable[[Node], T], timeout: float = 30.0) -> T:
        """`fn(node)` on the node's loop; its result (or exception) here."""
        node, loop = self._node, self._loop
        if node is None or loop is None or not self._thread.is_alive():
            raise RuntimeError("the observer node is not running")
        result: Future[T] = Future()

        def run() -> None:
            try:
                result.set_result(fn(node))
            except BaseException as exc:  # handed to the caller
                result.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return result.result(timeout)

    def wait_height(self, height: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.height < height and self._thread.is_alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return self.height >= height

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(stop.set)
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Observer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
