"""`gridtokenx init`, `node start` and `status`: a node's home, the node run from it, and
what it last reported."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gridtokenx.cli import genesis, keys, passphrase
from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.render import console
from gridtokenx.wire import crypto

if TYPE_CHECKING:
    from gridtokenx.p2p.connection import PeerSettings

node_app = typer.Typer(help="Run a validator or full node.")
Home = Annotated[Path, typer.Option(help="the node's home directory")]
Pex = Annotated[bool, typer.Option(help="peer exchange; --no-pex for a validator behind sentries")]
PrivateIds = Annotated[
    list[str] | None, typer.Option(help="PEERIDHEX never gossiped (a sentry's validator)")
]
UnconditionalIds = Annotated[
    list[str] | None, typer.Option(help="PEERIDHEX let in beyond the peer caps")
]


def _parse_peer(text: str) -> tuple[str, int, str]:
    """HOST:PORT:PEERIDHEX, checked here so a typo fails at init, not as silent non-dialling."""
    host, _, rest = text.rpartition(":")
    host, _, port = host.rpartition(":")
    try:
        peer_id = bytes.fromhex(rest)
        port_number = int(port)
    except ValueError:
        peer_id, port_number = b"", 0
    if not host or not 1 <= port_number <= 65_535 or len(peer_id) != crypto.ADDRESS_SIZE:
        raise BadInput(
            f"--peer {text!r}: expected HOST:PORT:PEERID with PEERID the peer's "
            f"{crypto.ADDRESS_SIZE}-byte address in hex"
        )
    return host, port_number, peer_id.hex()


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
    pex: Pex = True,
    private_peer_id: PrivateIds = None,
    unconditional_peer_id: UnconditionalIds = None,
) -> None:
    """Create a node home: genesis, an encrypted node key, config.json and data/.

    A key without voting power in the genesis makes a full node, which dials every peer
    (validators split the dialling between them) and follows the chain by block sync."""
    from gridtokenx.node.home import Config, create_home, voting_power

    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        raise Refused("EXISTS", f"{home} exists and is not empty; choose a new directory")
    spec = genesis.read(genesis_file)
    peers = tuple(_parse_peer(p) for p in peer or [])
    _check_numbers(listen_port, metrics_port, api_port, keep_blocks)
    hosts = (("--listen-host", listen_host), ("--api-host", api_host),
             ("--metrics-host", metrics_host), ("--external-host", external_host))  # fmt: skip
    for name, host in hosts:
        _check_host(name, host, empty_ok=name == "--external-host")
    p2p = _peer_settings(pex, private_peer_id or [], unconditional_peer_id or [])
    key, secret = _node_key(key_file, insecure_dev_key)
    power = voting_power(spec, key)
    config = Config(listen_port, peers, listen_host=listen_host, external_host=external_host,
                    metrics_port=metrics_port, metrics_host=metrics_host, api_port=api_port,
                    api_host=api_host, dial_all=power == 0, keep_blocks=keep_blocks,
                    moniker=moniker or home.name, p2p=p2p)  # fmt: skip
    try:
        create_home(home, genesis_file.read_bytes(), key, config, secret)
    except FileExistsError as exc:  # another init made it meanwhile
        raise Refused("EXISTS", str(exc)) from None
    except OSError as exc:
        raise Refused("INVALID_HOME", f"cannot write {home}: {exc.strerror or exc}") from None
    console.print(f"initialised {home} for chain {spec.chain_id}")
    console.print(f"peer id     {key.address.hex()}")
    console.print(f"address     {crypto.address_to_text(key.address)}")
    role = f"validator (genesis voting power {power})" if power else "full node (no voting power)"
    console.print(f"role        {role}")
    if insecure_dev_key:
        console.print("[yellow]warning:[/yellow] the node key is stored unencrypted")


@node_app.command("start")
def node_start(home: Home) -> None:
    """Run the node of HOME until Ctrl-C (writes HOME/status.json as it goes).

    A node that cannot start (its store held by another process or damaged, a port in
    use, an unusable home) says why in one line and exits 1, having closed what it
    opened."""
    import uvloop

    from gridtokenx.api.server import start_api
    from gridtokenx.node import keystore
    from gridtokenx.node.home import HomeError
    from gridtokenx.node.service import PortInUse, run_node

    if not (home / "config.json").exists():
        raise BadInput(f"{home} has no config.json (run `gridtokenx init` or `gridtokenx devnet`)")
    if not (home / "node_key.json").exists():
        raise BadInput(f"{home} has no node_key.json")
    secret = "" if keys.is_insecure(home / "node_key.json") else passphrase.read(confirm=False)
    try:
        # uvloop: the libuv event loop, cheaper per socket event than asyncio's own.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run_node(home, passphrase=secret, services=(start_api,)))
    except HomeError as exc:
        if isinstance(exc.__context__, keystore.KeystoreError):  # the home's key did not open
            raise Refused("KEYSTORE", str(exc)) from None
        where = "" if str(home) in str(exc) else f"{home}: "  # a config value, named alone
        raise Refused("INVALID_HOME", f"{where}{exc}") from None
    except PortInUse as exc:  # the store's errors name the home's data/ already
        raise Refused("PORT_IN_USE", f"{home}: {exc.strerror}") from None


def status(home: Home) -> None:
    """Height, state root and peers of a running (or stopped) node."""
    from gridtokenx.node.home import read_status

    found = read_status(home)
    if found is None:
        raise Refused("NO_STATUS", f"no status in {home}: has the node run?")
    console.print_json(data=found)
