"""A node's home directory: its config, genesis and key, and the status file it writes.

A home holds `genesis.json`, `node_key.json` (the insecure dev key on a devnet; an
encrypted keystore file otherwise), `config.json` (listen port, peers, block time, metrics
port, pruning) and `data/` (the RocksDB store). `gridtokenx init` makes one for an
operator's node (`create_home`, all or nothing); `devnet.homes` makes the homes of a local
devnet. While running, the node rewrites `status.json` twice a second (height, state root,
round and step, peers, chain id and genesis hash) atomically, which is what `gridtokenx
status` and the tests read without touching the store the node holds open.

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

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import msgspec

from gridtokenx.ledger import genesis
from gridtokenx.node import keystore, logs
from gridtokenx.p2p.connection import PeerSettings
from gridtokenx.wire.crypto import PrivateKey

PASSPHRASE_ENV = "GRIDTOKENX_PASSPHRASE"
ADMIN_COOKIE = "admin.cookie"  # the running API's admin token, readable by the home's owner
CHECKPOINTS = "checkpoints"  # where a running node writes the checkpoints it is asked for

# Checked when config.json is read, so a value out of range is INVALID_HOME before the node
# opens anything (a port above 65535 would otherwise bind some other port, silently).
Port = Annotated[int, msgspec.Meta(ge=0, le=65_535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]


class Config(msgspec.Struct, frozen=True):
    listen_port: Port
    peers: tuple[tuple[str, int, str], ...]  # (host, port, peer id hex)
    listen_host: str = "127.0.0.1"  # P2P: "0.0.0.0" or "::" for every interface, or one IP
    external_host: str = ""  # the address peers should dial, announced in HELLO (NAT); "": as bound
    propose_ms: int = 1000
    prevote_ms: int = 500
    precommit_ms: int = 500
    block_ms: int = 1000  # governed block time: empty blocks come at most this often
    min_block_ms: int = 0  # with transactions waiting, propose this soon after a commit
    build_budget_ms: int = 250  # stop adding transactions to a block after this long
    metrics_port: Port = 0  # Prometheus /metrics on metrics_host; 0: off
    metrics_host: str = "127.0.0.1"  # bind elsewhere only behind a deliberate decision
    dial_all: bool = False  # a full node dials every peer; validators split the dialling
    keep_blocks: int = 0  # keep the last N blocks, prune older ones; 0: keep all (archive)
    moniker: str = ""  # the operator's name for the node, for logs and status only
    log_format: str = "plain"  # node logs on stdout: "plain" (key=value) or "json" (JSON lines)
    log_level: str = "info"  # debug, info, warning or error
    target_peers: int = 8  # dial addresses learnt from peers (peers.json) up to this many
    api_port: Port = 0  # REST + WebSocket API on 127.0.0.1 (api_host); 0: off
    api_host: str = "127.0.0.1"  # bind elsewhere only behind a deliberate decision
    api_cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API
    api_rate_per_second: float = 100.0  # requests per client IP (burst: twice this)
    api_max_connections: Positive = 512  # open at once, WebSockets included; beyond: 503
    api_header_timeout_s: Seconds = 10.0  # to send a request's headers; then closed
    api_body_timeout_s: Seconds = 30.0  # to send its body once the headers are in
    api_keep_alive_s: Positive = 5  # an idle connection after a response; then closed
    api_tls_cert: str = ""  # PEM certificate (chain) for HTTPS; with api_tls_key, or neither
    api_tls_key: str = ""  # its PEM private key; "" and "": plain HTTP
    clock_origin: int = 0  # wall-clock unix seconds at which the chain clock reads genesis time
    clock_speed: float = 1.0  # chain seconds per wall second: devnets/demo only, 1 in production
    p2p: PeerSettings = msgspec.field(default_factory=PeerSettings)  # peer caps and deadlines


def chain_clock(genesis_time: int, clock_origin: int, clock_speed: float) -> Callable[[], float]:
    """The node's clock: the wall clock at speed 1 (production), otherwise the accelerated
    devnet clock every validator of the devnet computes alike (see the module docstring)."""
    if clock_speed <= 0:
        raise ValueError(f"clock_speed must be positive, not {clock_speed}")
    if clock_speed == 1:
        return time.time
    return lambda: genesis_time + (time.time() - clock_origin) * clock_speed


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
    except OSError as exc:  # unreadable: permissions, a directory in its place
        raise HomeError(f"{home / 'config.json'}: {exc.strerror or exc}") from None
    if config.clock_speed <= 0:
        raise HomeError(f"{home / 'config.json'}: clock_speed must be positive")
    if (reason := logs.problem(config.log_format, config.log_level)) is not None:
        raise HomeError(f"{home / 'config.json'}: {reason}")
    try:
        spec = load_genesis(home / "genesis.json")
    except FileNotFoundError:
        raise HomeError(f"{home} has no genesis.json") from None
    except genesis.GenesisError as exc:
        raise HomeError(f"{home / 'genesis.json'}: {exc}") from None
    except OSError as exc:
        raise HomeError(f"{home / 'genesis.json'}: {exc.strerror or exc}") from None
    try:
        key = keystore.load_key(home / "node_key.json", passphrase, allow_insecure=True)
    except keystore.KeystoreError as exc:
        raise HomeError(str(exc)) from None
    return config, spec, key


def load_genesis(path: Path) -> genesis.Genesis:
    """The genesis file at `path`, validated; raises `GenesisError` listing every problem."""
    return genesis.decode(path.read_bytes())


def read_config(home: Path) -> Config:
    return msgspec.json.decode((home / "config.json").read_bytes(), type=Config)


def read_status(home: Path) -> dict[str, object] | None:
    try:
        loaded: dict[str, object] = json.loads((home / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return loaded
