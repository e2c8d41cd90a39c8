"""The `gridtokenx` command line."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gridtokenx import crypto, devnet, genesis, invariants, keystore, scenario, store
from gridtokenx.accounts import SUPPLY_KEY, Supply
from gridtokenx.market import records
from gridtokenx.state import State

app = typer.Typer(help="GridTokenX: peer-to-peer electricity trading for Thailand.")
genesis_app = typer.Typer(help="Create and validate genesis files.")
app.add_typer(genesis_app, name="genesis")
keys_app = typer.Typer(help="Create and inspect keys in the encrypted keystore.")
app.add_typer(keys_app, name="keys")
db_app = typer.Typer(help="Inspect, back up and restore a node's RocksDB store.")
app.add_typer(db_app, name="db")
PASSPHRASE_ENV = "GRIDTOKENX_PASSPHRASE"
console = Console()


def _thb(satang: int) -> str:
    return f"{satang / 100:,.2f}"


def _kwh(wh: int) -> str:
    return f"{wh / 1000:,.3f}"


@app.command()
def demo(
    intervals: Annotated[int, typer.Option(help="15-minute intervals to simulate")] = 20,
) -> None:
    """Create a devnet genesis and run a scripted Thai morning through the ledger and market."""
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
    for key, report in state.scan(b"rep/"):
        assert isinstance(report, records.ZoneReport)
        zone = key[len(b"rep/") + 8 :].decode()
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
        spec = genesis.load(path)
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
    """From the environment for scripts, else prompted without echo."""
    value = os.environ.get(PASSPHRASE_ENV, "")
    if not value:
        value = str(typer.prompt("passphrase", hide_input=True, confirmation_prompt=confirm))
    return value


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


def _is_insecure(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text()).get("insecure"))
    except (ValueError, AttributeError):
        return False


def main() -> None:
    app()


def _open_store(path: Path) -> store.Store:
    if not (path / "CURRENT").exists():
        console.print(f"[red]error:[/red] {path} is not a GridTokenX store")
        raise typer.Exit(1)
    return store.Store(path)


def _describe(db: store.Store) -> str:
    state = db.load_state()
    return f"height {db.height()}, {len(state):,} state records, state root {state.root().hex()}"


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


node_app = typer.Typer(help="Run a validator node.")
app.add_typer(node_app, name="node")


@node_app.command("start")
def node_start(
    home: Annotated[Path, typer.Option(help="the node's home directory")],
) -> None:
    """Run the validator of HOME until Ctrl-C (writes HOME/status.json as it goes)."""
    if not (home / "config.json").exists():
        console.print(f"[red]error:[/red] {home} has no config.json (run `gridtokenx devnet`)")
        raise typer.Exit(1)
    asyncio.run(devnet.run_node(home))


@app.command("status")
def status(home: Annotated[Path, typer.Option(help="the node's home directory")]) -> None:
    """Height, state root and peers of a running (or stopped) node."""
    found = devnet.read_status(home)
    if found is None:
        console.print(f"[red]error:[/red] no status in {home}: has the node run?")
        raise typer.Exit(1)
    console.print_json(data=found)


@app.command("devnet")
def devnet_command(
    directory: Annotated[Path, typer.Option("--dir", help="where the node homes go")] = Path(
        "devnet"
    ),
    base_port: Annotated[int, typer.Option(help="first of four ports on 127.0.0.1")] = 26_650,
    validators: Annotated[int, typer.Option(help="validators to run (the devnet has 4)")] = 4,
) -> None:
    """Start EGAT, MEA, PEA and ERC validators as separate processes on 127.0.0.1 and show
    their heights until Ctrl-C, which stops them all."""
    if validators != len(devnet.DEVNET_VALIDATORS):
        console.print("[red]error:[/red] the local devnet runs exactly 4 validators")
        raise typer.Exit(2)
    homes = devnet.init_devnet(directory, "gridtokenx-devnet", int(time.time()), base_port)
    procs = [
        subprocess.Popen([sys.executable, "-m", "gridtokenx", "node", "start", "--home", str(h)])
        for h in homes
    ]
    try:
        while all(p.poll() is None for p in procs):
            heights = [(devnet.read_status(h) or {}).get("height", "-") for h in homes]
            console.print(f"heights {heights}", end="\r")
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
