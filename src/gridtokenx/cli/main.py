"""The `gridtokenx` command line: one Typer app, one error contract (cli.errors).

The whole command tree is assembled here from one module per command group:

    demo, demo-ledger          cli.demo     a market day on a devnet; the ledger alone
    init, node start, status   cli.node     a node's home, the node, its last status
    config show/check/migrate  cli.config   a home's config.toml, as the node reads it
    devnet                     cli.devnet   the authorities' validators as processes
    genesis create/validate    cli.genesis
    genesis authority/build/hash  cli.ceremony  the genesis from the authorities' public keys
    keys new/show/import/list  cli.keys     the encrypted keystore
    db info/backup/restore/prune  cli.db    a stopped node's RocksDB store
    tx ..., tx order ...       cli.tx       sign locally, submit to a node's API, wait
    query ...                  cli.query    read the ledger through a node's API
    report export/verify       cli.report   ERC audit exports
    surveillance alerts/scan/settings  cli.surveillance  the ERC's market-surveillance alerts

Shared pieces: cli.errors (the contract), cli.units (exact quantities and times),
cli.passphrase, cli.args (identities and the client commands' options), cli.render (what
success prints). Heavy imports (FastAPI, the simulator, RocksDB, httpx) happen inside the
commands that need them, so `gridtokenx --help` stays quick.
"""

from __future__ import annotations

from typing import Annotated

import typer

from gridtokenx.cli import auction, ceremony, demo, devnet, node
from gridtokenx.cli.config import config_app
from gridtokenx.cli.db import db_app
from gridtokenx.cli.errors import ContractGroup
from gridtokenx.cli.genesis import genesis_app
from gridtokenx.cli.keys import keys_app
from gridtokenx.cli.query import query_app
from gridtokenx.cli.report import report_app
from gridtokenx.cli.surveillance import surveillance_app
from gridtokenx.cli.tx import tx_app

app = typer.Typer(
    cls=ContractGroup, help="GridTokenX: peer-to-peer electricity trading for Thailand."
)


def _version(asked: bool) -> None:
    if asked:
        from gridtokenx import __version__

        print(f"gridtokenx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """GridTokenX: peer-to-peer electricity trading for Thailand."""


app.command("demo")(demo.demo)
app.command("demo-ledger")(demo.demo_ledger)
app.add_typer(genesis_app, name="genesis")
genesis_app.command("authority")(ceremony.authority)
genesis_app.command("build")(ceremony.build)
genesis_app.command("hash")(ceremony.hash_)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(tx_app, name="tx")
tx_app.add_typer(auction.auction_app, name="auction")  # and `query auction` (cli/auction.py)
app.add_typer(query_app, name="query")
app.add_typer(report_app, name="report")
app.add_typer(surveillance_app, name="surveillance")
app.command("init")(node.init)
app.add_typer(node.node_app, name="node")
app.command("status")(node.status)
app.command("devnet")(devnet.devnet)
app.add_typer(config_app, name="config")


def main() -> None:
    _interruptible()
    app()


def _interruptible() -> None:
    """Ctrl-C (SIGINT) and SIGTERM reach the command even when the process that started it
    had them blocked or ignored: a child inherits both, and in the full test suite under
    pytest-xdist the devnet, demo and `--follow` commands then never saw the SIGINT sent
    to stop them. Every long-running command here stops on them cleanly."""
    import signal

    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
