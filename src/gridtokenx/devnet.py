"""Running validators as processes: a node home directory, `node start`, and a local devnet.

A home holds `genesis.json`, `node_key.json` (the insecure dev key on a devnet; an
encrypted keystore file otherwise), `config.json` (listen port, peers, block time, metrics
port, pruning) and `data/` (the RocksDB store). `gridtokenx init` makes one for an operator's
node; `init_devnet` makes the homes of a local devnet. On a devnet, validator i serves
Prometheus metrics on 127.0.0.1 at base port + 100 + i and the REST/WebSocket API at base
port + 200 + i (`config.api_port`; 0 turns it off). While running, the node rewrites
`status.json` twice a second (height, state root, round, peers) atomically, which is what
`gridtokenx status` and the tests read without touching the store the node holds open. With
`keep_blocks` set, the same loop prunes blocks older than the last `keep_blocks` heights.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import msgspec

from gridtokenx import genesis, keystore
from gridtokenx.api import ApiSettings
from gridtokenx.api import serve as serve_api
from gridtokenx.application import Application
from gridtokenx.consensus.core import Timeouts
from gridtokenx.crypto import PrivateKey
from gridtokenx.node import Node
from gridtokenx.p2p.peers import AddressBook

AUTHORITY_ORDER = ("EGAT", "MEA", "PEA", "ERC", "NEPO")
"""The order in which a local devnet of N validators takes the authorities."""
DEVNET_VALIDATORS = AUTHORITY_ORDER[:4]
PASSPHRASE_ENV = "GRIDTOKENX_PASSPHRASE"


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


def devnet_validators(count: int) -> tuple[str, ...]:
    """The authorities validating on a local devnet of `count` validators."""
    if not 1 <= count <= len(AUTHORITY_ORDER):
        raise ValueError(
            f"a local devnet runs 1 to {len(AUTHORITY_ORDER)} validators "
            f"({', '.join(AUTHORITY_ORDER)}), not {count}"
        )
    return AUTHORITY_ORDER[:count]


def devnet_genesis(
    chain_id: str, genesis_time: int, validators: Sequence[str] = DEVNET_VALIDATORS
) -> genesis.Genesis:
    """The Thai devnet genesis with `validators` validating at their genesis voting power;
    the other authorities keep their governance roles but get voting power 0, since a
    validator with power that runs no process would only slow or stop the quorum."""
    spec = genesis.devnet(chain_id, genesis_time, genesis.dev_keys())
    authorities = tuple(
        a if a.code in validators else msgspec.structs.replace(a, voting_power=0)
        for a in spec.authorities
    )
    return msgspec.structs.replace(spec, authorities=authorities)


def init_devnet(
    root: Path,
    chain_id: str,
    genesis_time: int,
    base_port: int,
    block_ms: int = 1000,
    validators: Sequence[str] = DEVNET_VALIDATORS,
) -> list[Path]:
    """Homes for the devnet validators, fully meshed on 127.0.0.1, in `validators` order."""
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
            metrics_port=base_port + 100 + i,
            api_port=base_port + 200 + i,
        )
        homes.append(write_home(root / code.lower(), spec.encode(), keys[code], config))
    return homes


def init_full_node(home: Path, validator_homes: list[Path], port: int) -> Path:
    """A non-validating node that follows the devnet of `validator_homes` from genesis."""
    peers = []
    for other in validator_homes:
        config = read_config(other)
        other_key = keystore.load_key(other / "node_key.json", "", allow_insecure=True)
        peers.append(("127.0.0.1", config.listen_port, other_key.address.hex()))
    genesis_bytes = (validator_homes[0] / "genesis.json").read_bytes()
    config = Config(port, tuple(peers), dial_all=True)
    return write_home(home, genesis_bytes, PrivateKey.generate(), config)


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
        "peers": len(node.gossip.peers),
        "halted": node.halted,
        "pid": os.getpid(),
    }
    tmp = home / "status.json.tmp"
    tmp.write_text(json.dumps(status))
    tmp.replace(home / "status.json")


async def run_node(
    home: Path, *, max_seconds: float | None = None, passphrase: str | None = None
) -> None:
    """Run the node of `home` until SIGINT/SIGTERM (or `max_seconds`, for tests).

    The key is decrypted with `passphrase`, else with GRIDTOKENX_PASSPHRASE; a wrong one,
    like any other unusable file in the home, raises `HomeError` before anything is opened
    or bound.
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
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
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
