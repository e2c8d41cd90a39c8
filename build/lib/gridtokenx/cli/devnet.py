"""`gridtokenx devnet`: the authorities' validators as processes on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.node import check_log_options
from gridtokenx.cli.render import console


def devnet(
    directory: Annotated[Path, typer.Option("--dir", help="where the node homes go")] = Path(
        "devnet"
    ),
    base_port: Annotated[
        int, typer.Option(help="first of N consecutive ports on 127.0.0.1")
    ] = 26_650,
    validators: Annotated[
        int, typer.Option(help="1-5 validators: EGAT, MEA, PEA, ERC, NEPO in that order")
    ] = 4,
    log_format: Annotated[str, typer.Option(help="node.log lines: plain or json")] = "plain",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    sentries: Annotated[
        bool, typer.Option(help="each validator behind a sentry full node, at base port + N + i")
    ] = False,
) -> None:
    """Start the first N of EGAT, MEA, PEA, ERC and NEPO as validator processes on
    127.0.0.1 and show their heights until Ctrl-C, which stops them all. Authorities beyond
    N keep their roles but get voting power 0, so N validators alone hold the quorum.
    Each node logs to DIR/CODE/node.log. A validator that stops by itself ends the devnet
    with DEVNET_STOPPED. With --sentries each validator hides behind a sentry full node of
    its own (2N processes): validators have peer exchange off and dial only the sentries,
    whose addresses are gossiped."""
    from gridtokenx.devnet.homes import devnet_validators, init_devnet, sentry_homes
    from gridtokenx.devnet.processes import Processes
    from gridtokenx.node.home import read_status

    try:
        codes = devnet_validators(validators)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    check_log_options(log_format, log_level)
    homes = init_devnet(directory, "gridtokenx-devnet", int(time.time()), base_port,
                        validators=codes, log_format=log_format, log_level=log_level,
                        sentries=sentries)  # fmt: skip
    with Processes([*homes, *sentry_homes(homes)] if sentries else homes) as nodes:
        try:
            while nodes.alive():
                heights = [(read_status(h) or {}).get("height", "-") for h in homes]
                console.print(f"heights {heights}", end="\r")
                time.sleep(1)
        except KeyboardInterrupt:
            return
    raise Refused("DEVNET_STOPPED", f"a validator stopped (node logs: {directory}/*/node.log)")
