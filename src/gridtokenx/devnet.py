"""Running validators as processes: a node home directory, `node start`, and a local devnet.

A home holds `genesis.json`, `node_key.json` (the insecure dev key on a devnet; an
encrypted keystore file otherwise), `config.json` (listen port, peers, block time, metrics
port) and `data/` (the RocksDB store). On a devnet, validator i serves Prometheus metrics on
127.0.0.1 at base port + 100 + i. While running, the node rewrites `status.json` twice a
second (height, state root, round, peers) atomically, which is what `gridtokenx status` and
the tests read without touching the store the node holds open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

import msgspec

from gridtokenx import genesis, keystore
from gridtokenx.application import Application
from gridtokenx.consensus.core import Timeouts
from gridtokenx.crypto import PrivateKey
from gridtokenx.node import Node

DEVNET_VALIDATORS = ("EGAT", "MEA", "PEA", "ERC")


class Config(msgspec.Struct, frozen=True):
    listen_port: int
    peers: tuple[tuple[str, int, str], ...]  # (host, port, peer id hex)
    propose_ms: int = 1000
    prevote_ms: int = 500
    precommit_ms: int = 500
    block_ms: int = 1000  # governed block time: empty blocks come at most this often
    metrics_port: int = 0  # Prometheus /metrics on 127.0.0.1; 0: off
    dial_all: bool = False  # a full node dials every peer; validators split the dialling


def devnet_genesis(chain_id: str, genesis_time: int) -> genesis.Genesis:
    """The Thai devnet genesis with EGAT, MEA, PEA and ERC validating; NEPO votes in
    governance but runs no validator on a local devnet (voting power 0 for consensus)."""
    spec = genesis.devnet(chain_id, genesis_time, genesis.dev_keys())
    authorities = tuple(
        a if a.code in DEVNET_VALIDATORS else msgspec.structs.replace(a, voting_power=0)
        for a in spec.authorities
    )
    return msgspec.structs.replace(spec, authorities=authorities)


def init_devnet(
    root: Path, chain_id: str, genesis_time: int, base_port: int, block_ms: int = 1000
) -> list[Path]:
    """Homes for the four devnet validators, fully meshed on 127.0.0.1."""
    spec = devnet_genesis(chain_id, genesis_time)
    keys = genesis.dev_keys()
    homes = []
    for i, code in enumerate(DEVNET_VALIDATORS):
        home = root / code.lower()
        home.mkdir(parents=True, exist_ok=True)
        (home / "genesis.json").write_bytes(spec.encode())
        keystore.save_insecure_dev_key(home / "node_key.json", keys[code], overwrite=True)
        peers = tuple(
            ("127.0.0.1", base_port + j, keys[other].address.hex())
            for j, other in enumerate(DEVNET_VALIDATORS)
            if j != i
        )
        config = Config(base_port + i, peers, block_ms=block_ms, metrics_port=base_port + 100 + i)
        (home / "config.json").write_bytes(msgspec.json.encode(config))
        homes.append(home)
    return homes


def init_full_node(home: Path, validator_homes: list[Path], port: int) -> Path:
    """A non-validating node that follows the devnet of `validator_homes` from genesis."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "genesis.json").write_bytes((validator_homes[0] / "genesis.json").read_bytes())
    key = PrivateKey.generate()
    keystore.save_insecure_dev_key(home / "node_key.json", key, overwrite=True)
    peers = []
    for other in validator_homes:
        config = read_config(other)
        other_key = keystore.load_key(other / "node_key.json", "", allow_insecure=True)
        peers.append(("127.0.0.1", config.listen_port, other_key.address.hex()))
    config = Config(port, tuple(peers), dial_all=True)
    (home / "config.json").write_bytes(msgspec.json.encode(config))
    return home


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
        "state_root": node.app.state.root().hex(),
        "round": node.core.state.round,
        "peers": len(node.gossip.peers),
        "halted": node.halted,
        "pid": os.getpid(),
    }
    tmp = home / "status.json.tmp"
    tmp.write_text(json.dumps(status))
    tmp.replace(home / "status.json")


async def run_node(home: Path, *, max_seconds: float | None = None) -> None:
    """Run the validator of `home` until SIGINT/SIGTERM (or `max_seconds`, for tests)."""
    config = read_config(home)
    spec = genesis.load(home / "genesis.json")
    key: PrivateKey = keystore.load_key(
        home / "node_key.json", os.environ.get("GRIDTOKENX_PASSPHRASE", ""), allow_insecure=True
    )
    timeouts = Timeouts(config.propose_ms, config.prevote_ms, config.precommit_ms)
    node = Node(
        key, Application.open(spec, home / "data"), timeouts, block_interval=config.block_ms / 1000
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
    started = loop.time()
    try:
        while not stop.is_set():
            for host, port, peer in config.peers:
                peer_id = bytes.fromhex(peer)
                if peer_id not in node.gossip.peers and (config.dial_all or key.address < peer_id):
                    with contextlib.suppress(OSError, ConnectionError, TimeoutError):
                        await node.gossip.dial(host, port, expect=peer_id)
            _write_status(home, node)
            if max_seconds is not None and loop.time() - started > max_seconds:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        _write_status(home, node)
        await node.stop()
