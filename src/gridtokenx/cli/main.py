"""The `gridtokenx` command line."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
import uvloop
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gridtokenx.api.server import start_api
from gridtokenx.cli import tx as remote
from gridtokenx.cli.report import report_app
from gridtokenx.client import ApiError
from gridtokenx.devnet.homes import devnet_validators, init_devnet
from gridtokenx.devnet.processes import Processes
from gridtokenx.ledger import genesis, invariants
from gridtokenx.ledger.accounts import SUPPLY_KEY, Supply
from gridtokenx.ledger.market import queries
from gridtokenx.ledger.state import State
from gridtokenx.node import keystore
from gridtokenx.node.home import (
    PASSPHRASE_ENV,
    Config,
    HomeError,
    HomeExists,
    create_home,
    load_genesis,
    read_status,
    voting_power,
)
from gridtokenx.node.service import run_node
from gridtokenx.simulator import devnet_day, scenario
from gridtokenx.storage import store
from gridtokenx.wire import crypto

app = typer.Typer(help="GridTokenX: peer-to-peer electricity trading for Thailand.")
genesis_app = typer.Typer(help="Create and validate genesis files.")
app.add_typer(genesis_app, name="genesis")
keys_app = typer.Typer(help="Create and inspect keys in the encrypted keystore.")
app.add_typer(keys_app, name="keys")
db_app = typer.Typer(help="Inspect, back up and restore a node's RocksDB store.")
app.add_typer(db_app, name="db")
app.add_typer(remote.tx_app, name="tx")
app.add_typer(remote.query_app, name="query")
app.add_typer(report_app, name="report")
PASSPHRASE_ENV = PASSPHRASE_ENV
console = Console()


def _thb(satang: int) -> str:
    return f"{satang / 100:,.2f}"


def _kwh(wh: int) -> str:
    return f"{wh / 1000:,.3f}"


@app.command("demo")
def demo(
    participants: Annotated[int, typer.Option(help="members across the seven zones")] = 300,
    hours: Annotated[
        float,
        typer.Option(help="simulated hours in quarters (0.25-24; 24: the day from midnight)"),
    ] = devnet_day.DemoConfig.hours,
    speed: Annotated[
        float, typer.Option(help="chain seconds per wall second")
    ] = devnet_day.DemoConfig.speed,
    hot_season: Annotated[bool, typer.Option("--hot-season", help="a day in April")] = False,
    seed: Annotated[int, typer.Option(help="the model's random seed")] = 1,
    directory: Annotated[
        Path, typer.Option("--dir", help="the devnet's folder (RocksDB, logs)")
    ] = devnet_day.DemoConfig.directory,
    base_port: Annotated[int, typer.Option(help="first port on 127.0.0.1; 0: a free one")] = 0,
    exit_when_done: Annotated[
        bool, typer.Option("--exit-when-done", help="stop the devnet after the summary")
    ] = False,
) -> None:
    """Run a Thai market day on a real 4-authority devnet: EGAT, MEA, PEA and ERC validate
    as processes on 127.0.0.1 with accelerated clocks; a few hundred members register,
    trade every 15-minute interval and their meters report; the summary is read from the
    chain. The devnet then keeps running (the dashboard is on EGAT's API) until Ctrl-C."""
    config = devnet_day.DemoConfig(
        participants, hours, speed, hot_season, seed, directory, base_port
    )
    try:
        demo_net = devnet_day.DemoDevnet(config)
    except (ValueError, FileExistsError) as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"Starting EGAT, MEA, PEA and ERC on 127.0.0.1 in {directory}/ "
        f"(chain time x{speed:g}, about {config.wall_seconds():.0f} s for {hours:g} h)"
    )
    failure = ""
    try:
        demo_net.start()
        result = _run_with_progress(demo_net)
        devnet_day.render(result, console)
        console.print(
            f"Dashboard: [bold]{result.api_url}/[/bold]  (API docs: {result.api_url}/docs)"
        )
        if not exit_when_done:
            console.print("The devnet keeps running; Ctrl-C stops it.")
            while demo_net.processes.alive():
                time.sleep(0.5)
            failure = "a validator stopped"
    except KeyboardInterrupt:
        console.print("stopping the devnet")
    except (RuntimeError, TimeoutError, ApiError, httpx.HTTPError) as exc:
        failure = str(exc)
    finally:
        demo_net.stop()
    if failure:
        raise _fail(f"{failure} (node logs: {directory}/*/node.log)")


def _run_with_progress(demo_net: devnet_day.DemoDevnet) -> devnet_day.DemoResult:
    start, end = demo_net.window
    bangkok = datetime.timezone(datetime.timedelta(hours=7))
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[clock]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("simulated day", total=end - start, clock="")

        def on_block(chain_time: int) -> None:
            local = datetime.datetime.fromtimestamp(chain_time, bangkok)
            progress.update(task, completed=min(max(0, chain_time - start), end - start),
                            clock=local.strftime("%a %d %b %H:%M Bangkok"))  # fmt: skip

        return demo_net.run_day(on_block)


@app.command("demo-ledger")
def demo_ledger(
    intervals: Annotated[int, typer.Option(help="15-minute intervals to simulate")] = 20,
) -> None:
    """A scripted Thai morning through the ledger and market in one process (no devnet):
    forged and invalid transactions refused with their codes, conservation checked."""
    started = time.perf_counter()
    result = scenario.run(intervals)
    elapsed = time.perf_counter() - started
    sb = result.sandbox
    table = Table(title=f"Balances after {intervals} intervals of 15 minutes")
    for column in ("participant", "zone", "kind", "GRID (kWh)", "THB"):
        table.add_column(column, justify="right" if column[0].isupper() else "left")
    for actor in result.actors:
        grid, thb = sb.balance(actor.key.address)
        table.add_row(actor.name, actor.zone, actor.kind.name.lower(), _kwh(grid), _thb(thb))
    console.print(table)
    console.print(_market_table(sb.state))
    rejected = Table(title="Refused, state untouched")
    rejected.add_column("attempt")
    rejected.add_column("error code")
    for what, code in result.rejected:
        rejected.add_row(what, code)
    console.print(rejected)
    supply = sb.state.get(SUPPLY_KEY, Supply) or Supply()
    grid_total, thb_total = invariants.balance_totals(sb.state)
    invariants.check_all(sb.state)
    console.print(
        f"GRID: minted {_kwh(supply.grid_minted_wh)} kWh - burned {_kwh(supply.grid_burned_wh)}"
        f" = held {_kwh(grid_total)} kWh  [green]conserved[/green]"
    )
    console.print(
        f"THB: issued {_thb(supply.thb_issued_satang)} - redeemed "
        f"{_thb(supply.thb_redeemed_satang)} = held {_thb(thb_total)}  [green]conserved[/green]"
    )
    console.print(
        f"{result.accepted} transactions applied, {len(result.rejected)} refused, "
        f"in {elapsed:.2f} s; state root {sb.state.root().hex()}"
    )


def _market_table(state: State) -> Table:
    """Settled energy and money per zone, summed over every settled interval."""
    totals: dict[str, list[int]] = {}
    for _, zone, report in queries.zone_reports(state):
        row = totals.setdefault(zone, [0] * 6)
        for i, value in enumerate(
            (
                report.delivered_wh,
                report.received_wh,
                report.losses_wh,
                report.sold_to_utility_wh,
                report.paid_to_sellers_satang,
                report.utility_bills_satang,
            )
        ):
            row[i] += value
    table = Table(title="Market settlement per zone (energy in = energy out + losses)")
    table.add_column("zone")
    for column in (
        "P2P out (kWh)",
        "P2P in (kWh)",
        "losses (kWh)",
        "to utility (kWh)",
        "paid to sellers (THB)",
        "TOU bills (THB)",
    ):
        table.add_column(column, justify="right")
    for zone, (out, into, lost, utility, paid, bills) in sorted(totals.items()):
        table.add_row(
            zone, _kwh(out), _kwh(into), _kwh(lost), _kwh(utility), _thb(paid), _thb(bills)
        )
    return table


@genesis_app.command("create")
def genesis_create(
    out: Annotated[Path, typer.Option(help="where to write the genesis JSON")] = Path(
        "devnet/genesis.json"
    ),
    chain_id: Annotated[str, typer.Option(help="chain id")] = "gridtokenx-devnet-1",
    genesis_time: Annotated[int, typer.Option(help="unix seconds; default now")] = -1,
    insecure_dev_keys: Annotated[
        bool,
        typer.Option(
            "--insecure-dev-keys",
            help="use the publicly derivable devnet authority keys (never for a real network)",
        ),
    ] = False,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a devnet genesis with the five authorities, seven zones and Thai defaults."""
    if not insecure_dev_keys:
        console.print(
            "[red]error:[/red] real authority keys come from their operators; for a local "
            "devnet pass --insecure-dev-keys"
        )
        raise typer.Exit(2)
    if out.exists() and not force:
        console.print(f"[red]error:[/red] {out} exists (use --force to overwrite)")
        raise typer.Exit(1)
    when = int(time.time()) if genesis_time < 0 else genesis_time
    spec = genesis.devnet(chain_id, when, genesis.dev_keys())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(spec.encode())
    console.print(f"wrote {out}: chain {chain_id}, {len(spec.authorities)} authorities")
    for a in spec.authorities:
        address = crypto.address_of(bytes.fromhex(a.public_key))
        console.print(f"  {a.code:5} {crypto.address_to_text(address)}")


@genesis_app.command("validate")
def genesis_validate(path: Path) -> None:
    """Check a genesis file; print every problem and exit 1 if there are any."""
    try:
        spec = load_genesis(path)
    except FileNotFoundError:
        console.print(f"[red]error:[/red] {path} does not exist")
        raise typer.Exit(1) from None
    except genesis.GenesisError as exc:
        for problem in exc.problems:
            console.print(f"[red]problem:[/red] {problem}")
        raise typer.Exit(1) from None
    root = genesis.build_state(spec).root()
    console.print(f"{path}: valid; chain {spec.chain_id}; genesis state root {root.hex()}")


def _passphrase(confirm: bool) -> str:
    """From the environment for scripts, else prompted without echo; with neither, a clear
    error rather than a prompt that a script or service manager would hang on."""
    value = os.environ.get(PASSPHRASE_ENV, "")
    if value:
        return value
    if not sys.stdin.isatty():
        raise _fail(f"no passphrase: set {PASSPHRASE_ENV} or run in a terminal to be asked")
    return str(typer.prompt("passphrase", hide_input=True, confirmation_prompt=confirm))


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


@keys_app.command("new")
def keys_new(
    path: Path,
    insecure_dev: Annotated[
        bool,
        typer.Option(
            "--insecure-dev",
            help="write the seed unencrypted (local devnets only; anyone reading the file has it)",
        ),
    ] = False,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Generate a key and save it encrypted with a passphrase (argon2id + XSalsa20-Poly1305)."""
    key = crypto.PrivateKey.generate()
    try:
        if insecure_dev:
            keystore.save_insecure_dev_key(path, key, overwrite=force)
        else:
            keystore.save_key(path, key, _passphrase(confirm=True), overwrite=force)
    except (keystore.KeystoreError, FileExistsError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"{crypto.address_to_text(key.address)}  saved to {path}")


@keys_app.command("show")
def keys_show(
    path: Path,
    allow_insecure: Annotated[
        bool, typer.Option("--allow-insecure", help="accept an unencrypted dev key file")
    ] = False,
) -> None:
    """Decrypt a key file and print its address and public key (never the secret)."""
    if not path.exists():
        raise _fail(f"{path} does not exist")
    try:
        key = keystore.load_key(
            path,
            "" if allow_insecure and _is_insecure(path) else _passphrase(confirm=False),
            allow_insecure=allow_insecure,
        )
    except keystore.KeystoreError as exc:
        raise _fail(str(exc)) from None
    console.print(f"address     {crypto.address_to_text(key.address)}")
    console.print(f"public key  {key.public_key.hex()}")
    console.print(f"peer id     {key.address.hex()}")  # what `init --peer` takes


keys_app.command("import")(remote.keys_import)
keys_app.command("list")(remote.keys_list)


def _is_insecure(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text()).get("insecure"))
    except (OSError, ValueError, AttributeError):
        return False


def main() -> None:
    app()


def _open_store(path: Path) -> store.Store:
    if not (path / "CURRENT").exists():
        console.print(f"[red]error:[/red] {path} is not a GridTokenX store")
        raise typer.Exit(1)
    try:
        return store.Store(path)
    except Exception as exc:  # rocksdict raises a bare Exception, e.g. for a held lock
        raise _fail(f"cannot open {path} ({exc}); is its node still running?") from None


def _describe(db: store.Store) -> str:
    state = db.load_state()
    pruned = f", blocks below {db.pruned_below()} pruned" if db.pruned_below() else ""
    return (
        f"height {db.height()}, {len(state):,} state records, state root {state.root().hex()}"
        + pruned
    )


@db_app.command("info")
def db_info(data: Annotated[Path, typer.Argument(help="the node's store directory")]) -> None:
    """Show a store's height and state root (the node must not be running)."""
    with _open_store(data) as db:
        console.print(_describe(db))


@db_app.command("backup")
def db_backup(
    data: Annotated[Path, typer.Argument(help="the node's store directory")],
    destination: Annotated[Path, typer.Argument(help="a new directory for the backup")],
) -> None:
    """Write a consistent RocksDB checkpoint of the store."""
    if destination.exists():
        console.print(f"[red]error:[/red] {destination} exists; choose a new directory")
        raise typer.Exit(1)
    with _open_store(data) as db:
        db.checkpoint(destination)
        console.print(f"backed up to {destination}: {_describe(db)}")


@db_app.command("restore")
def db_restore(
    backup: Annotated[Path, typer.Argument(help="a directory written by `db backup`")],
    data: Annotated[Path, typer.Argument(help="the node's store directory to create")],
    force: Annotated[bool, typer.Option(help="replace an existing store")] = False,
) -> None:
    """Restore a store from a backup, verifying that it opens and its state loads."""
    with _open_store(backup) as db:
        summary = _describe(db)
    if data.exists():
        if not force:
            console.print(f"[red]error:[/red] {data} exists (use --force to replace it)")
            raise typer.Exit(1)
        shutil.rmtree(data)
    shutil.copytree(backup, data)
    with _open_store(data) as db:
        restored = _describe(db)
    if restored != summary:
        console.print(f"[red]error:[/red] restored store differs from the backup: {restored}")
        raise typer.Exit(2)
    console.print(f"restored {data}: {restored}")


@db_app.command("prune")
def db_prune(
    home: Annotated[Path, typer.Option(help="the node's home directory (node stopped)")],
    keep: Annotated[int, typer.Option(help="how many of the latest blocks to keep (>= 1)")],
) -> None:
    """Delete blocks, certificates and tx index entries older than the last KEEP heights.

    State is untouched. A pruned node can no longer serve block sync below its horizon, so
    keep at least one archive node for new full nodes to sync from."""
    if keep < 1:
        raise _fail("--keep must be at least 1 (the head block stays)", 2)
    with _open_store(home / "data") as db:
        try:
            horizon = db.prune(keep)
        except store.StoreError as exc:
            raise _fail(str(exc)) from None
        console.print(f"pruned {home / 'data'}: {_describe(db)}" if horizon else "nothing to prune")


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
        raise _fail(
            f"--peer {text!r}: expected HOST:PORT:PEERID with PEERID the peer's "
            f"{crypto.ADDRESS_SIZE}-byte address in hex"
        )
    return host, port_number, peer_id.hex()


def _init_key(key_file: Path | None, insecure: bool) -> tuple[crypto.PrivateKey, str]:
    """The node key (new, or the operator's existing file) and the passphrase to save it
    under ("" for an insecure dev key)."""
    if key_file is None:
        return crypto.PrivateKey.generate(), "" if insecure else _passphrase(confirm=True)
    if not key_file.is_file():
        raise _fail(f"{key_file} does not exist")
    passphrase = "" if insecure and _is_insecure(key_file) else _passphrase(confirm=False)
    try:
        key = keystore.load_key(key_file, passphrase, allow_insecure=insecure)
    except keystore.KeystoreError as exc:
        raise _fail(str(exc)) from None
    return key, "" if insecure else passphrase


@app.command("init")
def init(
    home: Annotated[Path, typer.Option(help="the new node's home directory (must not exist)")],
    genesis_file: Annotated[Path, typer.Option("--genesis", help="the network's genesis file")],
    moniker: Annotated[str, typer.Option(help="a name for this node")] = "",
    listen_port: Annotated[int, typer.Option(help="P2P port on 127.0.0.1")] = 26_656,
    peer: Annotated[
        list[str] | None, typer.Option(help="HOST:PORT:PEERIDHEX, repeat for each peer")
    ] = None,
    metrics_port: Annotated[int, typer.Option(help="Prometheus port; 0: off")] = 0,
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
) -> None:
    """Create a node home: genesis, an encrypted node key, config.json and data/.

    A key without voting power in the genesis makes a full node, which dials every peer
    (validators split the dialling between them) and follows the chain by block sync."""
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        raise _fail(f"{home} exists and is not empty; choose a new directory")
    try:
        spec = load_genesis(genesis_file)
    except FileNotFoundError:
        raise _fail(f"{genesis_file} does not exist") from None
    except genesis.GenesisError as exc:
        raise _fail(f"{genesis_file}: {exc}") from None
    peers = tuple(_parse_peer(p) for p in peer or [])
    for name, port in (("--listen-port", listen_port), ("--metrics-port", metrics_port)):
        if not (name == "--metrics-port" and port == 0) and not 1 <= port <= 65_535:
            raise _fail(f"{name} {port} is not a port (1-65535)")
    if keep_blocks < 0:
        raise _fail(f"--keep-blocks {keep_blocks} must be 0 (keep all) or more")
    key, passphrase = _init_key(key_file, insecure_dev_key)
    power = voting_power(spec, key)
    config = Config(
        listen_port,
        peers,
        metrics_port=metrics_port,
        dial_all=power == 0,
        keep_blocks=keep_blocks,
        moniker=moniker or home.name,
    )
    try:
        create_home(home, genesis_file.read_bytes(), key, config, passphrase)
    except (HomeExists, keystore.KeystoreError, OSError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"initialised {home} for chain {spec.chain_id}")
    console.print(f"peer id     {key.address.hex()}")
    console.print(f"address     {crypto.address_to_text(key.address)}")
    role = f"validator (genesis voting power {power})" if power else "full node (no voting power)"
    console.print(f"role        {role}")
    if insecure_dev_key:
        console.print("[yellow]warning:[/yellow] the node key is stored unencrypted")


node_app = typer.Typer(help="Run a validator or full node.")
app.add_typer(node_app, name="node")


@node_app.command("start")
def node_start(
    home: Annotated[Path, typer.Option(help="the node's home directory")],
) -> None:
    """Run the node of HOME until Ctrl-C (writes HOME/status.json as it goes)."""
    if not (home / "config.json").exists():
        raise _fail(f"{home} has no config.json (run `gridtokenx init` or `gridtokenx devnet`)")
    if not (home / "node_key.json").exists():
        raise _fail(f"{home} has no node_key.json")
    passphrase = "" if _is_insecure(home / "node_key.json") else _passphrase(confirm=False)
    try:
        # uvloop: the libuv event loop, cheaper per socket event than asyncio's own.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run_node(home, passphrase=passphrase, services=(start_api,)))
    except HomeError as exc:
        raise _fail(str(exc)) from None


@app.command("status")
def status(home: Annotated[Path, typer.Option(help="the node's home directory")]) -> None:
    """Height, state root and peers of a running (or stopped) node."""
    found = read_status(home)
    if found is None:
        console.print(f"[red]error:[/red] no status in {home}: has the node run?")
        raise typer.Exit(1)
    console.print_json(data=found)


@app.command("devnet")
def devnet_command(
    directory: Annotated[Path, typer.Option("--dir", help="where the node homes go")] = Path(
        "devnet"
    ),
    base_port: Annotated[
        int, typer.Option(help="first of N consecutive ports on 127.0.0.1")
    ] = 26_650,
    validators: Annotated[
        int, typer.Option(help="1-5 validators: EGAT, MEA, PEA, ERC, NEPO in that order")
    ] = 4,
) -> None:
    """Start the first N of EGAT, MEA, PEA, ERC and NEPO as validator processes on
    127.0.0.1 and show their heights until Ctrl-C, which stops them all. Authorities beyond
    N keep their roles but get voting power 0, so N validators alone hold the quorum."""
    try:
        codes = devnet_validators(validators)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    homes = init_devnet(
        directory, "gridtokenx-devnet", int(time.time()), base_port, validators=codes
    )
    with Processes(homes) as nodes:
        try:
            while nodes.alive():
                heights = [(read_status(h) or {}).get("height", "-") for h in homes]
                console.print(f"heights {heights}", end="\r")
                time.sleep(1)
        except KeyboardInterrupt:
            pass
