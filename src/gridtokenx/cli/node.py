"""`gridtokenx init`, `node start` and `status`: a node's home, the node run from it, and
what it last reported."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gridtokenx.cli import ceremony, genesis, keys, passphrase
from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.render import console, plain, print_json
from gridtokenx.wire import crypto

if TYPE_CHECKING:
    from gridtokenx.node.state_sync import Trust
    from gridtokenx.p2p.connection import PeerSettings

node_app = typer.Typer(help="Run a validator or full node.")
Home = Annotated[Path, typer.Option(help="the node's home directory")]
Pex = Annotated[
    bool,
    typer.Option(
        help="peer exchange; --no-pex for a validator behind sentries (dials every --peer)"
    ),
]
PrivateIds = Annotated[
    list[str] | None, typer.Option(help="PEERIDHEX never gossiped (a sentry's validator)")
]
UnconditionalIds = Annotated[
    list[str] | None, typer.Option(help="PEERIDHEX let in beyond the peer caps")
]


def _parse_peer(text: str) -> tuple[str, int, str]:
    """HOST:PORT:PEERIDHEX, checked here so a typo fails at init, not as silent non-dialling."""
    from gridtokenx.node.config_values import parse_peer

    peer = parse_peer(text)
    if peer is None:
        raise BadInput(
            f"--peer {text!r}: expected HOST:PORT:PEERID with PEERID the peer's "
            f"{crypto.ADDRESS_SIZE}-byte address in hex"
        )
    return peer


def _check_numbers(listen_port: int, metrics_port: int, api_port: int, keep_blocks: int) -> None:
    ports = (("--listen-port", listen_port), ("--metrics-port", metrics_port),
             ("--api-port", api_port))  # fmt: skip
    for name, port in ports:
        if not (name != "--listen-port" and port == 0) and not 1 <= port <= 65_535:
            raise BadInput(f"{name} {port} is not a port (1-65535)")
    if keep_blocks < 0:
        raise BadInput(f"--keep-blocks {keep_blocks} must be 0 (keep all) or more")


def _check_host(name: str, host: str, empty_ok: bool = False) -> None:
    """An IP literal (v4 or v6) or a host name: anything else is a typo caught here rather
    than at the first start."""
    import ipaddress
    import re

    if not host and empty_ok:
        return
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return
    looks_numeric = re.fullmatch(r"[0-9.]+", host) is not None  # a mistyped IPv4 address
    if looks_numeric or not re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
                        r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*", host):  # fmt: skip
        raise BadInput(f"{name} {host!r} is neither an IP address nor a host name")


def _peer_settings(pex: bool, private: list[str], unconditional: list[str]) -> PeerSettings:
    """The `p2p` settings the init flags give; a malformed peer id is bad input."""
    from gridtokenx.p2p.connection import PeerSettings

    try:
        return PeerSettings(pex=pex, private_peer_ids=tuple(private),
                            unconditional_peer_ids=tuple(unconditional))  # fmt: skip
    except ValueError as exc:
        flag = "--private-peer-id" if "private" in str(exc) else "--unconditional-peer-id"
        raise BadInput(f"{flag}: {str(exc).partition(': ')[2]}") from None


def _node_key(key_file: Path | None, insecure: bool) -> tuple[crypto.PrivateKey, str]:
    """The node key (new, or the operator's existing file) and the passphrase to save it
    under ("" for an insecure dev key)."""
    if key_file is None:
        return crypto.PrivateKey.generate(), "" if insecure else passphrase.read(confirm=True)
    key, secret = keys.load(key_file, insecure, "--insecure-dev-key")
    return key, "" if insecure else secret


def init(
    home: Annotated[Path, typer.Option(help="the new node's home directory (must not exist)")],
    genesis_file: Annotated[Path, typer.Option("--genesis", help="the network's genesis file")],
    moniker: Annotated[str, typer.Option(help="a name for this node")] = "",
    listen_port: Annotated[int, typer.Option(help="P2P port")] = 26_656,
    listen_host: Annotated[
        str, typer.Option(help="P2P address to bind: 0.0.0.0 or :: for every interface")
    ] = "127.0.0.1",
    external_host: Annotated[
        str, typer.Option(help="the address peers should dial (behind NAT); default: as bound")
    ] = "",
    api_port: Annotated[int, typer.Option(help="REST and WebSocket API port; 0: off")] = 0,
    api_host: Annotated[
        str, typer.Option(help="API address to bind (public only behind a reverse proxy)")
    ] = "127.0.0.1",
    peer: Annotated[
        list[str] | None, typer.Option(help="HOST:PORT:PEERIDHEX, repeat for each peer")
    ] = None,
    metrics_port: Annotated[int, typer.Option(help="Prometheus port; 0: off")] = 0,
    metrics_host: Annotated[str, typer.Option(help="Prometheus address to bind")] = "127.0.0.1",
    keep_blocks: Annotated[
        int, typer.Option(help="prune all but the last N blocks; 0: keep all")
    ] = 0,
    key_file: Annotated[
        Path | None,
        typer.Option("--key", help="use this existing key file instead of a new key"),
    ] = None,
    insecure_dev_key: Annotated[
        bool,
        typer.Option(
            "--insecure-dev-key", help="store the node key unencrypted (local devnets only)"
        ),
    ] = False,
    genesis_hash: Annotated[
        str | None,
        typer.Option(help="refuse the genesis unless its hash is this (`genesis hash FILE`)"),
    ] = None,
    pex: Pex = True,
    private_peer_id: PrivateIds = None,
    unconditional_peer_id: UnconditionalIds = None,
) -> None:
    """Create a node home: genesis, an encrypted node key, config.toml and data/.

    A key without voting power in the genesis makes a full node, which dials every peer
    (validators split the dialling between them) and follows the chain by block sync."""
    from gridtokenx.node.home import Config, create_home, voting_power

    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        raise Refused("EXISTS", f"{home} exists and is not empty; choose a new directory")
    expected = None if genesis_hash is None else ceremony.parse_hash(genesis_hash)
    spec = genesis.read(genesis_file)
    peers = tuple(_parse_peer(p) for p in peer or [])
    _check_numbers(listen_port, metrics_port, api_port, keep_blocks)
    hosts = (("--listen-host", listen_host), ("--api-host", api_host),
             ("--metrics-host", metrics_host), ("--external-host", external_host))  # fmt: skip
    for name, host in hosts:
        _check_host(name, host, empty_ok=name == "--external-host")
    if expected is not None and spec.hash() != expected:
        raise Refused(
            "GENESIS_HASH_MISMATCH",
            f"{genesis_file} has genesis hash {spec.hash().hex()}, not {expected.hex()}: "
            "start only from the file whose hash every operator agreed",
        )
    p2p = _peer_settings(pex, private_peer_id or [], unconditional_peer_id or [])
    key, secret = _node_key(key_file, insecure_dev_key)
    power = voting_power(spec, key)
    config = Config(listen_port, peers, listen_host=listen_host, external_host=external_host,
                    metrics_port=metrics_port, metrics_host=metrics_host, api_port=api_port,
                    api_host=api_host, dial_all=power == 0 or not pex, keep_blocks=keep_blocks,
                    moniker=moniker or home.name, p2p=p2p)  # fmt: skip
    try:
        create_home(home, genesis_file.read_bytes(), key, config, secret)
    except FileExistsError as exc:  # another init made it meanwhile
        raise Refused("EXISTS", str(exc)) from None
    except OSError as exc:
        raise Refused("INVALID_HOME", f"cannot write {home}: {exc.strerror or exc}") from None
    console.print(f"initialised {home} for chain {spec.chain_id}")
    console.print(f"genesis     {spec.hash().hex()}")
    console.print(f"peer id     {key.address.hex()}")
    console.print(f"address     {crypto.address_to_text(key.address)}")
    role = f"validator (genesis voting power {power})" if power else "full node (no voting power)"
    console.print(f"role        {role}")
    if insecure_dev_key:
        console.print("[yellow]warning:[/yellow] the node key is stored unencrypted")


def check_log_options(log_format: str | None, log_level: str | None) -> None:
    """--log-format and --log-level (None: not given), for every command that starts nodes."""
    from gridtokenx.node import logs

    if (reason := logs.problem(log_format or "plain", log_level or "info")) is not None:
        raise BadInput("--" + reason.replace("_", "-", 1))


def _configure_logs(home: Path, log_format: str | None, log_level: str | None) -> None:
    """The node's logs on stdout as the flags say, else as the config says (a config
    that does not read is left for `run_node` to refuse with INVALID_HOME)."""
    from gridtokenx.node import logs
    from gridtokenx.node.home import read_config

    check_log_options(log_format, log_level)
    config_format, config_level = "plain", "info"
    with contextlib.suppress(Exception):
        config = read_config(home)
        if logs.problem(config.log_format, config.log_level) is None:
            config_format, config_level = config.log_format, config.log_level
    logs.configure(log_format or config_format, log_level or config_level)


@node_app.command("start")
def node_start(
    home: Home,
    log_format: Annotated[
        str | None, typer.Option(help="plain or json (default: the config's log_format)")
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="debug, info, warning or error (default: the config's log_level)"),
    ] = None,
    state_sync: Annotated[
        bool,
        typer.Option(
            "--state-sync",
            help="with an empty store, join from a peer's certified state snapshot instead "
            "of replaying every block (also the config's state_sync)",
        ),
    ] = False,
    trust_height: Annotated[
        int | None,
        typer.Option(
            "--trust-height",
            help="with --state-sync: a height whose block you trust (from a source you "
            "trust); the node takes only a chain through it and follows the validators "
            "from there, not from genesis",
        ),
    ] = None,
    trust_hash: Annotated[
        str | None,
        typer.Option("--trust-hash", help="the hash of the block at --trust-height (hex)"),
    ] = None,
) -> None:
    """Run the node of HOME until Ctrl-C (writes HOME/status.json as it goes). Its logs
    go to stdout, one line per event (docs/observability.md).

    A node that cannot start (its store held by another process or damaged, a port in
    use, an unusable home) says why in one line and exits 1, having closed what it
    opened.

    With --trust-height H --trust-hash HEX an empty store state-syncs only from peers
    whose block at H has that hash (a peer on another chain is refused, and with none
    left the node exits with STATE_SYNC)."""
    import uvloop

    from gridtokenx.api.server import start_api
    from gridtokenx.node import collector, keystore
    from gridtokenx.node.home import CONFIG_FILE, HomeError, config_path
    from gridtokenx.node.service import PortInUse, run_node
    from gridtokenx.node.state_sync import StateSyncFailed

    trust = _trust(trust_height, trust_hash)

    if not config_path(home).exists():
        raise BadInput(f"{home} has no {CONFIG_FILE} (run `gridtokenx init` or `devnet`)")
    if not (home / "node_key.json").exists():
        raise BadInput(f"{home} has no node_key.json")
    _configure_logs(home, log_format, log_level)
    secret = "" if keys.is_insecure(home / "node_key.json") else passphrase.read(confirm=False)
    collector.tune()  # a long-running process: its code is loaded (node.collector)
    try:
        # uvloop: the libuv event loop, cheaper per socket event than asyncio's own.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(
                run_node(
                    home,
                    passphrase=secret,
                    services=(start_api,),
                    state_sync=state_sync or trust is not None,
                    trust=trust,
                )
            )
    except HomeError as exc:
        if isinstance(exc.__context__, keystore.KeystoreError):  # the home's key did not open
            raise Refused("KEYSTORE", str(exc)) from None
        where = "" if str(home) in str(exc) else f"{home}: "  # a config value, named alone
        raise Refused("INVALID_HOME", f"{where}{exc}") from None
    except PortInUse as exc:  # the store's errors name the home's data/ already
        raise Refused("PORT_IN_USE", f"{home}: {exc.strerror}") from None
    except StateSyncFailed as exc:
        raise Refused("STATE_SYNC", f"{home}: state sync failed: {exc}") from None


def _trust(height: int | None, block_hash: str | None) -> Trust | None:
    """`--trust-height/--trust-hash` as a `Trust`, both or neither."""
    from gridtokenx.node.state_sync import Trust

    if height is None and block_hash is None:
        return None
    if height is None or block_hash is None:
        raise BadInput("--trust-height and --trust-hash go together")
    if height < 1:
        raise BadInput(f"--trust-height {height} must be 1 or more")
    try:
        raw = bytes.fromhex(block_hash)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise BadInput(f"--trust-hash {block_hash!r} is not a block hash (64 hex digits)")
    return Trust(height, block_hash=raw)


def status(
    home: Annotated[
        Path | None, typer.Option(help="a node's home: its API address is read from it")
    ] = None,
    node: Annotated[
        str | None,
        typer.Option(
            envvar="GRIDTOKENX_NODE",
            help="the node's API URL (default: the home's API, else http://127.0.0.1:26850)",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")] = False,
) -> None:
    """A node's status over the network: version, chain, node id, latest block, whether it
    is catching up, voting power, peers (GET /api/v1/status).

    With --home and the node's API off (api_port 0), the home's status.json is shown
    instead, as the node last wrote it, and a note on stderr says so."""
    from gridtokenx.cli import online
    from gridtokenx.cli.args import DEFAULT_NODE, node_url

    verify: ssl.SSLContext | bool = True
    if node is None and home is not None:
        config = online.config_of(home)
        if not config.api_port:
            return _local_status(home, json_out)
        node, verify = online.api_of(config)
    url = node_url(node or DEFAULT_NODE)
    from gridtokenx.client import Client

    with Client(url, timeout=10, verify=verify) as api:
        found = api.get("/status")
    if json_out:
        print_json(found)
    else:
        _print_status(found)


def _local_status(home: Path, json_out: bool) -> None:
    """What the node last wrote to HOME/status.json: all a node with its API off tells."""
    import sys

    from gridtokenx.node.home import read_status

    found = read_status(home)
    if found is None:
        raise Refused("NO_STATUS", f"no status in {home}: has the node run?")
    print(f"note: the API of {home} is off (api_port 0): showing {home / 'status.json'}, "
          "as the node last wrote it", file=sys.stderr)  # fmt: skip
    if json_out:
        print_json(found)
    else:
        console.print_json(data=found)


def _print_status(found: dict[str, Any]) -> None:
    import datetime

    when = datetime.datetime.fromtimestamp(found["latest_time"], datetime.UTC)
    behind = "yes" if found["catching_up"] else "no"
    power = found["voting_power"]
    role = f"validator, voting power {power}" if power else "full node (no voting power)"
    peers = found["peers"]
    rows = [
        ("node", f"{found['moniker'] or '-'}  id {found['node_id']}"),
        ("version", found["version"]),
        ("chain", found["chain_id"]),
        ("height", f"{found['latest_height']}  at {when:%Y-%m-%d %H:%M:%S} UTC"),
        ("block hash", found["latest_hash"] or "-"),
        ("catching up", f"{behind}  (best peer height {found['peer_height']})"),
        ("role", f"{role}  {found['validator_address']}"),
        ("peers", f"{peers['inbound']} inbound, {peers['outbound']} outbound"),
        ("mempool", f"{found['mempool_txs']} transactions"),
        ("uptime", str(datetime.timedelta(seconds=int(found["uptime_s"])))),
        ("genesis", found["genesis_hash"] or "-"),
    ]
    for name, value in rows:
        plain.print(f"{name:<12} {value}")
