"""A node's home directory: its config, genesis and key, and the status file it writes.

A home holds `genesis.json`, `node_key.json` (the insecure dev key on a devnet; an
encrypted keystore file otherwise), `config.toml` (addresses, peers, timing, limits,
pruning: `Config`, laid out and read strictly by `node.config_file`; older homes have a
`config.json`, still read) and `data/` (the RocksDB store). `gridtokenx init` makes one
for an operator's node (`create_home`, all or nothing); `devnet.homes` makes the homes of
a local devnet. While running, the node rewrites `status.json` twice a second (height,
state root, round and step, peers, chain id and genesis hash) atomically, which is what
`gridtokenx status` and the tests read without touching the store the node holds open.

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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

import msgspec

from gridtokenx.ledger import genesis
from gridtokenx.node import config_file, keystore, logs
from gridtokenx.p2p.connection import PeerSettings
from gridtokenx.storage.options import DEFAULT_CACHE_MB, READ_THREADS
from gridtokenx.wire.crypto import PrivateKey

PASSPHRASE_ENV = "GRIDTOKENX_PASSPHRASE"
ADMIN_COOKIE = "admin.cookie"  # the running API's admin token, readable by the home's owner
CHECKPOINTS = "checkpoints"  # where a running node writes the checkpoints it is asked for

# Checked when the config is read, so a value out of range is INVALID_HOME before the node
# opens anything (a port above 65535 would otherwise bind some other port, silently).
Port = Annotated[int, msgspec.Meta(ge=0, le=65_535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]


def _doc(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class Config(msgspec.Struct, frozen=True):
    """A node's settings, read from its home's config.toml (`read_config`). Each field's
    description is the comment config.toml carries for it; `node.config_file` says which
    section of the file a field goes to (by name: `api_port` is `[api] port`)."""

    # fmt: off
    listen_port: Annotated[Port, _doc(
        "The TCP port other nodes dial for P2P; 26656 by convention. Change it when two"
        " nodes share a host."
    )]
    peers: Annotated[tuple[tuple[str, int, str], ...], _doc(
        'The peers this node dials at start, as "HOST:PORT:PEERID" (PEERID: the peer\'s'
        " 40-hex-digit id, which `gridtokenx keys show` prints). Give the other"
        " authorities' nodes (or a validator's own sentries)."
    )]
    listen_host: Annotated[str, _doc(
        'The address the P2P port is bound to: "0.0.0.0" or "::" for every interface, or'
        " one interface's IP. The default, loopback, suits one machine only."
    )] = "127.0.0.1"
    external_host: Annotated[str, _doc(
        "The address announced to peers, which they dial and pass on: set it behind NAT or"
        ' when bound to "0.0.0.0"; empty: the bound address.'
    )] = ""
    propose_ms: Annotated[int, _doc(
        "How long validators wait for a round's proposal before prevoting nil; lengthen it"
        " on slow links."
    )] = 1000
    prevote_ms: Annotated[int, _doc(
        "How long validators wait for more prevotes once two thirds are seen, before"
        " precommitting."
    )] = 500
    precommit_ms: Annotated[int, _doc(
        "How long validators wait for more precommits once two thirds are seen, before"
        " moving to the next round."
    )] = 500
    block_ms: Annotated[int, _doc(
        "The governed block time: empty blocks come at most this often."
    )] = 1000
    min_block_ms: Annotated[int, _doc(
        "With transactions waiting, propose this soon after a commit (0: at once); raise"
        " it to batch more transactions per block (fewer heights, less CPU per"
        " transaction, that much more latency). A full block ready, or a grid update or"
        " emergency waiting, is proposed at once."
        " 100 on the idle 2-core devnet: at 1,000 orders/s a quarter less CPU per order"
        " for finality p99 0.24-0.28 s instead of 0.16 (docs/consensus.md)."
    )] = 100
    build_budget_ms: Annotated[int, _doc(
        "Stop adding transactions to a block after this long, so a full mempool does not"
        " delay the proposal."
    )] = 250
    metrics_port: Annotated[Port, _doc(
        "The Prometheus port (0: off)."
    )] = 0
    metrics_host: Annotated[str, _doc(
        "The address the metrics port is bound to; bind beyond loopback only for a"
        " Prometheus server on another host."
    )] = "127.0.0.1"
    dial_all: Annotated[bool, _doc(
        "Dial every peer in the list. Full nodes do; validators split the dialling between"
        " them, each dialling only some of the others, to avoid duplicate connections."
    )] = False
    keep_blocks: Annotated[int, _doc(
        "Keep the last N blocks and prune older ones; 0 keeps all (an archive node, which"
        " can serve any block to peers syncing from genesis)."
    )] = 0
    snapshot_interval: Annotated[int, msgspec.Meta(ge=0), _doc(
        "Take a state snapshot every N heights (at heights that are multiples of N, the"
        " same on every node), which nodes joining by state sync fetch; 0: none."
        " Validators and archive nodes take them; pruning blocks does not stop them."
    )] = 1000
    snapshot_keep: Annotated[Positive, _doc(
        "How many snapshots to keep (the newest), in the home's snapshots/ directory."
    )] = 2
    state_sync: Annotated[bool, _doc(
        "Join by state sync: a node with an empty store fetches a recent snapshot from its"
        " peers, checks it against the validators' commit certificate and block-syncs from"
        " there, instead of replaying every block since genesis. A node that restarts"
        " with a chain does the same when a snapshot lies more than state_sync_behind"
        " heights beyond its own (its older blocks are then dropped: not for an archive)."
    )] = False
    state_sync_behind: Annotated[int, msgspec.Meta(ge=0), _doc(
        "With state_sync on, a restarting node this many heights or more behind a"
        " certified snapshot its peers offer state-syncs to it and block-syncs only the"
        " rest, instead of replaying every block in between; 0: never (it replays)."
    )] = 3600
    storage_cache_mb: Annotated[Positive, _doc(
        "MB of RocksDB block cache shared by the store's column families: the state's"
        " records and the state root's tree read at random as blocks apply. More keeps a"
        " large state's per-block reads in memory; less fits a small machine."
    )] = DEFAULT_CACHE_MB
    storage_mmap_reads: Annotated[bool, _doc(
        "Read RocksDB's table files through memory maps: a state root's bucket reads then"
        " cost about half the CPU at millions of records, and the tree's blocks stay in the"
        " operating system's page cache rather than the block cache. The mapped pages the"
        " node touched count in its RSS (as file pages, reclaimable like any page cache):"
        " turn it off where memory is watched by RSS."
    )] = True
    storage_read_threads: Annotated[int, msgspec.Meta(ge=0, le=256), _doc(
        "Threads that read a block's state-root buckets ahead while it executes, side by"
        " side: a large state whose table files do not fit the memory left to the page"
        " cache (20 million records under a 2 GB limit) has most of those reads wait for"
        " the disk, and then the root no longer waits for them. They are used only while"
        " a root's reads have the disk read (page faults for over 1/16 of its buckets),"
        " so a state that fits in memory does not pay for them; 0: never, the root reads"
        " in one batch."
    )] = READ_THREADS
    moniker: Annotated[str, _doc(
        "The operator's name for this node, for logs and status only."
    )] = ""
    log_format: Annotated[str, _doc(
        'Node logs on stdout: "plain" (one line per event, key=value fields) or "json"'
        " (JSON lines, for a log shipper)."
    )] = "plain"
    log_level: Annotated[str, _doc(
        "The least severe level logged: debug, info, warning or error."
    )] = "info"
    target_peers: Annotated[int, _doc(
        "Dial addresses learnt from peers (peers.json) until this many peers are connected;"
        " 0 dials only the configured peers (sentry-protected validators)."
    )] = 8
    api_port: Annotated[Port, _doc(
        "The REST and WebSocket API port, also serving the dashboard (0: off)."
    )] = 0
    api_host: Annotated[str, _doc(
        "The address the API is bound to. Beyond loopback only behind a deliberate decision"
        " (a reverse proxy with TLS in front of it)."
    )] = "127.0.0.1"
    api_cors_origins: Annotated[tuple[str, ...], _doc(
        'Browser origins allowed to call the API (e.g. "https://dashboard.example"); empty:'
        " none but the node's own dashboard."
    )] = ()
    api_rate_per_second: Annotated[float, _doc(
        "Requests per second allowed from one client IP (bursts of twice this); beyond it"
        " the API answers 429."
    )] = 100.0
    api_max_connections: Annotated[Positive, _doc(
        "Connections open at once, WebSockets included; beyond it the API answers 503."
    )] = 512
    api_header_timeout_s: Annotated[Seconds, _doc(
        "Seconds a client has to send a request's headers before it is disconnected (slow"
        " clients tie up connections)."
    )] = 10.0
    api_body_timeout_s: Annotated[Seconds, _doc(
        "Seconds a client has to send a request's body once its headers are in."
    )] = 30.0
    api_keep_alive_s: Annotated[Positive, _doc(
        "Seconds an idle connection is kept open after a response."
    )] = 5
    api_tls_cert: Annotated[str, _doc(
        "A PEM certificate (chain) to serve the API over HTTPS; with tls_key, or neither"
        " (plain HTTP, for loopback or behind a reverse proxy)."
    )] = ""
    api_tls_key: Annotated[str, _doc(
        "The PEM private key of tls_cert; readable by the node's user only."
    )] = ""
    clock_origin: Annotated[int, _doc(
        "Wall-clock unix seconds at which a devnet's chain clock reads the genesis time"
        " (devnets and the demo only; 0: the wall clock at speed 1)."
    )] = 0
    clock_speed: Annotated[Seconds, _doc(
        "Chain seconds per wall second: above 1 on devnets and the demo to replay a market"
        " day faster; 1 in production."
    )] = 1.0
    p2p: Annotated[PeerSettings, _doc(
        "Peer caps and deadlines: config.toml's [p2p] keys from max_peers on."
    )] = msgspec.field(default_factory=PeerSettings)
    # fmt: on


CONFIG_FILE = "config.toml"
LEGACY_CONFIG_FILE = "config.json"
"""Homes made before config.toml: still read (with the same strictness) until migrated."""
LAYOUT = config_file.Layout(Config)
ConfigError = config_file.ConfigError


def config_path(home: Path) -> Path:
    """The file `home`'s config is read from: config.toml, else a legacy config.json."""
    legacy = home / LEGACY_CONFIG_FILE
    return legacy if legacy.exists() and not (home / CONFIG_FILE).exists() else home / CONFIG_FILE


def read_config(home: Path, environ: Mapping[str, str] | None = None) -> Config:
    """`home`'s config as its file says, or with `environ` given (a node passes
    os.environ) with its GRIDTOKENX_<SECTION>_<KEY> overrides applied. `ConfigError`
    names every problem; FileNotFoundError: no config at all; OSError: unreadable."""
    path = config_path(home)
    if path.name == LEGACY_CONFIG_FILE:
        return LAYOUT.parse_legacy_json(path.read_bytes(), str(path), environ)
    text = path.read_text(encoding="utf-8")
    if (home / LEGACY_CONFIG_FILE).exists():
        raise ConfigError([
            f"{home} has both {CONFIG_FILE} and {LEGACY_CONFIG_FILE}: remove one (`gridtokenx"
            f" config migrate` keeps the JSON as {LEGACY_CONFIG_FILE}.bak)"
        ])  # fmt: skip
    return LAYOUT.parse(text, str(path), environ)


def write_config(home: Path, config: Config) -> Path:
    """Write `home`'s config.toml atomically (a reader finds the old file or the new one,
    never half of one). A legacy config.json beside it becomes config.json.bak: a home has
    one config. The only writer of a home's config, so nothing else knows its format."""
    path = home / CONFIG_FILE
    staging = home / f".{CONFIG_FILE}.tmp"
    with staging.open("w", encoding="utf-8") as out:
        out.write(LAYOUT.render(config))
        out.flush()
        os.fsync(out.fileno())
    staging.replace(path)
    legacy = home / LEGACY_CONFIG_FILE
    if legacy.exists():
        legacy.replace(home / f"{LEGACY_CONFIG_FILE}.bak")
    return path


def setting_name(field: str) -> str:
    """How an operator names the field `field` (`api_port`): `api.port in config.toml (or
    GRIDTOKENX_API_PORT)`, for messages that tell them what to change."""
    setting = LAYOUT.by_path.get(field)
    return f"{setting.name} in {CONFIG_FILE} (or {setting.env})" if setting else field


def without_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without config variables, for processes whose home is the whole truth (a
    devnet's nodes: an exported GRIDTOKENX_API_PORT would give all of them one port)."""
    return LAYOUT.without_overrides(environ)


def chain_clock(genesis_time: int, clock_origin: int, clock_speed: float) -> Callable[[], float]:
    """The node's clock: the wall clock at speed 1 without an origin (production),
    otherwise the devnet clock every validator of the devnet computes alike (see the module
    docstring); at speed 1 with an origin it is the wall clock shifted to read the genesis
    time at the origin (`gridtokenx devnet --fund` starts the chain just before an
    interval ends, so its meters can report at once)."""
    if clock_speed <= 0:
        raise ValueError(f"clock_speed must be positive, not {clock_speed}")
    if clock_speed == 1 and clock_origin == 0:
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
    write_config(home, config)
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
        config = read_config(home, os.environ)
    except FileNotFoundError:
        raise HomeError(f"{home} has no {CONFIG_FILE} (run `gridtokenx init`)") from None
    except ConfigError as exc:
        raise HomeError(str(exc)) from None
    except OSError as exc:  # unreadable: permissions, a directory in its place
        raise HomeError(f"{config_path(home)}: {exc.strerror or exc}") from None
    if (reason := logs.problem(config.log_format, config.log_level)) is not None:
        raise HomeError(f"{config_path(home)}: {reason}")
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


def read_status(home: Path) -> dict[str, object] | None:
    try:
        loaded: dict[str, object] = json.loads((home / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return loaded
