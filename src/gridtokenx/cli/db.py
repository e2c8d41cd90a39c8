"""`gridtokenx db info/backup/restore/prune` on a node's RocksDB store, and opening the
store a command names (`report` reads one too). All but `db backup --home` need the node
stopped; that one asks a running node for a checkpoint (cli.online)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.render import console, print_json

if TYPE_CHECKING:
    from gridtokenx.storage.store import Store

db_app = typer.Typer(help="Inspect, back up and restore a node's RocksDB store.")
Data = Annotated[Path, typer.Argument(help="the node's store directory")]


def open_store(path: Path) -> Store:
    """The store at `path`: a path without one is bad input; one that does not open raises
    the store's own error, which `cli.errors` reports in every command alike (STORE_LOCKED
    while its node runs, STORE_CORRUPT, STORE_UNAVAILABLE)."""
    from gridtokenx.storage import store

    if not (path / "CURRENT").is_file():
        raise BadInput(f"{path} is not a GridTokenX store (no RocksDB CURRENT file)")
    return store.Store(path)


def _state_facts(db: Store) -> dict[str, Any]:
    state = db.load_state()
    return {
        "height": db.height(),
        "state_records": len(state),
        "state_root": state.root().hex(),
        "pruned_below": db.pruned_below(),
    }


def _facts(db: Store) -> dict[str, Any]:
    """What `db info --json` prints: the state, the head block and the retained history. A
    head block that does not decode is the store's damage, reported as such."""
    from gridtokenx.chain import blocks
    from gridtokenx.storage.store import StoreCorrupt

    facts = _state_facts(db)
    stored = db.block(db.height()) if db.height() else None
    try:
        head = None if stored is None else blocks.decode(stored[0])
    except ValueError:
        raise StoreCorrupt(f"the head block at height {db.height()} does not decode") from None
    genesis_hash = db.genesis_hash()
    return facts | {
        "chain_id": None if head is None else head.header.chain_id,
        "head_hash": None if head is None else head.hash.hex(),
        "head_time": None if head is None else head.header.time,
        "genesis_hash": None if genesis_hash is None else genesis_hash.hex(),
    }


def _describe(db: Store) -> str:
    facts = _state_facts(db)
    pruned = f", blocks below {facts['pruned_below']} pruned" if facts["pruned_below"] else ""
    return (
        f"height {facts['height']}, {facts['state_records']:,} state records, state root "
        f"{facts['state_root']}" + pruned
    )


@db_app.command("info")
def db_info(
    data: Data,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")] = False,
) -> None:
    """Show a store's height and state root (the node must not be running); --json adds
    the chain id, the head block's hash and time and the genesis hash."""
    with open_store(data) as db:
        if json_out:
            print_json(_facts(db))
        else:
            console.print(_describe(db))


@db_app.command("backup")
def db_backup(
    data: Annotated[
        Path | None, typer.Argument(help="a stopped node's store directory (or use --home)")
    ] = None,
    destination: Annotated[
        Path | None, typer.Argument(help="a new directory for the backup (or use --out)")
    ] = None,
    home: Annotated[
        Path | None, typer.Option(help="a node's home: its node may be running")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="a new directory for the backup")] = None,
) -> None:
    """Write a consistent RocksDB checkpoint of a store.

    `--home HOME --out DIR` works while the node runs: the node writes the checkpoint
    itself between two commits, through its API on loopback (the API must be on). `DATA
    DEST` needs the node stopped."""
    from gridtokenx.cli import online

    if home is not None or out is not None:
        if home is None or out is None or data is not None or destination is not None:
            raise BadInput("give --home HOME --out DIR, or DATA DEST, not a mix")
        online.config_of(home)  # a home, not some directory
        saved = online.backup_home(home, out)
    elif data is None or destination is None:
        raise BadInput("give the store and a new directory (DATA DEST), or --home and --out")
    else:
        if destination.exists():
            raise Refused("EXISTS", f"{destination} exists; choose a new directory")
        from gridtokenx.storage.store import StoreLocked

        try:
            with open_store(data) as db:
                db.checkpoint(destination)
        except StoreLocked as exc:
            raise Refused("STORE_LOCKED", f"{exc}: a running node is backed up with "
                          "`db backup --home HOME --out DIR`") from None  # fmt: skip
        saved = destination
    with open_store(saved) as db:  # the backup opens, and says what it holds
        console.print(f"backed up to {saved}: {_describe(db)}")


@db_app.command("restore")
def db_restore(
    backup: Annotated[Path, typer.Argument(help="a directory written by `db backup`")],
    data: Annotated[Path, typer.Argument(help="the node's store directory to create")],
    force: Annotated[bool, typer.Option(help="replace an existing store")] = False,
) -> None:
    """Restore a store from a backup, verifying that it opens and its state loads."""
    with open_store(backup) as db:
        summary = _describe(db)
    if data.exists():
        if not force:
            raise Refused("EXISTS", f"{data} exists (use --force to replace it)")
        shutil.rmtree(data)
    shutil.copytree(backup, data)
    with open_store(data) as db:
        restored = _describe(db)
    if restored != summary:
        raise Refused("RESTORE_MISMATCH", f"restored store differs from the backup: {restored}")
    console.print(f"restored {data}: {restored}")


@db_app.command("prune")
def db_prune(
    home: Annotated[Path, typer.Option(help="the node's home directory (node stopped)")],
    keep: Annotated[int, typer.Option(help="how many of the latest blocks to keep (>= 1)")],
) -> None:
    """Delete blocks, certificates and tx index entries older than the last KEEP heights.

    State is untouched. A pruned node can no longer serve block sync below its horizon, so
    keep at least one archive node for new full nodes to sync from."""
    from gridtokenx.storage import store

    if keep < 1:
        raise BadInput("--keep must be at least 1 (the head block stays)")
    with open_store(home / "data") as db:
        try:
            horizon = db.prune(keep)
        except store.StoreError as exc:
            raise Refused("STORE", str(exc)) from None
        console.print(f"pruned {home / 'data'}: {_describe(db)}" if horizon else "nothing to prune")
