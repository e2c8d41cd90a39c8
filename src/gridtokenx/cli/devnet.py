"""`gridtokenx devnet`: the authorities' validators as processes on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gridtokenx.cli import units
from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.node import check_log_options
from gridtokenx.cli.render import console

if TYPE_CHECKING:
    from gridtokenx.devnet.processes import Processes


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
    speed: Annotated[
        float, typer.Option(help="chain seconds per wall second (1-900), as the demo runs")
    ] = 1.0,
    fund: Annotated[
        int,
        typer.Option(
            help="N prefunded participants (registered, with meters, THB and GRID); their "
            "dev keys are printed and listed in DIR/accounts.json"
        ),
    ] = 0,
    start: Annotated[
        str | None,
        typer.Option(
            metavar="HH:MM",
            help="start the chain clock at the next HH:MM Bangkok time (e.g. 11:30, half an "
            "hour before the day-ahead auction's gate); default: now",
        ),
    ] = None,
) -> None:
    """Start the first N of EGAT, MEA, PEA, ERC and NEPO as validator processes on
    127.0.0.1 and show their heights until Ctrl-C, which stops them all. Authorities beyond
    N keep their roles but get voting power 0, so N validators alone hold the quorum.
    Each node logs to DIR/CODE/node.log. A validator that stops by itself ends the devnet
    with DEVNET_STOPPED. With --sentries each validator hides behind a sentry full node of
    its own (2N processes): validators have peer exchange off and dial only the sentries,
    whose addresses are gossiped.

    --speed S runs the chain clock S times faster than the wall clock (a 15-minute
    interval in 900/S seconds). --fund N registers N participants dev-1...dev-N in BKK,
    each with a 10 kW solar meter, 10,000 THB from a licensed devnet custodian and GRID
    minted from a first reading; the chain clock then starts just before an interval ends
    so the reading needs no wait. Their insecure dev keys go to DIR/keys/.

    --start HH:MM begins the chain at the next such Bangkok time instead of now, so an hour
    of the market day (the auction gate at 12:00, the evening peak) comes without waiting."""
    from gridtokenx.devnet.funding import ACCOUNTS_FILE, MAX_FUNDED, fund_clock, next_local_time
    from gridtokenx.devnet.homes import devnet_validators, init_devnet, sentry_homes
    from gridtokenx.devnet.processes import Processes, terminate_as_interrupt
    from gridtokenx.node.home import read_config, read_status

    try:
        codes = devnet_validators(validators)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    check_log_options(log_format, log_level)
    if not 1 <= speed <= 900:
        raise BadInput(f"--speed {speed}: expected 1 to 900 chain seconds per wall second")
    if not 0 <= fund <= MAX_FUNDED:
        raise BadInput(f"--fund {fund}: expected 0 to {MAX_FUNDED} participants")
    start_minute = None if start is None else _minute_of_day(start)
    if stale := sorted(directory.glob("*/data")):  # its stores began from another genesis
        raise Refused(
            "EXISTS",
            f"{directory} holds the chain of an earlier devnet ({stale[0]}): a devnet starts "
            f"from a new genesis; remove {directory} or choose another --dir",
        )
    (directory / ACCOUNTS_FILE).unlink(missing_ok=True)  # a script waits for the new one
    now = time.time()
    begin = None if start_minute is None else next_local_time(now, start_minute)
    genesis_time, origin = (
        fund_clock(now, speed, start=begin) if fund else (begin or int(now), int(now))
    )
    if speed == 1 and not fund and begin is None:
        origin = 0  # the wall clock itself
    fast = speed > 1  # the demo's timings: proposals must arrive within 5 chain seconds
    homes = init_devnet(directory, "gridtokenx-devnet", genesis_time, base_port,
                        validators=codes, log_format=log_format, log_level=log_level,
                        sentries=sentries, clock_origin=origin, clock_speed=speed,
                        build_budget_ms=40 if fast else 250,
                        propose_ms=500 if fast else 1000)  # fmt: skip
    nodes = Processes([*homes, *sentry_homes(homes)] if sentries else homes)
    with terminate_as_interrupt(), nodes:
        try:
            if fund:
                _fund(directory, read_config(homes[0]).api_port, fund, nodes)
            while nodes.alive():
                heights = [(read_status(h) or {}).get("height", "-") for h in homes]
                console.print(f"heights {heights}", end="\r")
                time.sleep(1)
        except KeyboardInterrupt:
            return
    raise Refused("DEVNET_STOPPED", f"a validator stopped (node logs: {directory}/*/node.log)")


def _fund(directory: Path, api_port: int, count: int, nodes: Processes) -> None:
    """Wait for the first validator's API, fund `count` participants through it and show
    their keys; a validator that stops or a step that fails ends the devnet."""
    import httpx

    from gridtokenx.client import ApiError, Client
    from gridtokenx.devnet.funding import ACCOUNTS_FILE, Funding

    url = f"http://127.0.0.1:{api_port}"
    console.print(f"funding {count} participants through {url} ...")
    deadline = time.monotonic() + 60
    with Client(url, timeout=2.0) as api:
        while True:
            if not nodes.alive():
                raise Refused("DEVNET_STOPPED", f"a validator stopped ({directory}/*/node.log)")
            try:
                if api.health()["height"] >= 1:
                    break
            except (ApiError, httpx.HTTPError):
                pass
            if time.monotonic() > deadline:
                raise Refused("DEVNET_STOPPED", f"the API at {url} did not come up in 60 s")
            time.sleep(0.2)
    try:
        funded = Funding(directory, url, count).run()
    except (RuntimeError, TimeoutError, ApiError) as exc:
        raise Refused("FUNDING_FAILED", f"{exc} (node logs: {directory}/*/node.log)") from None
    console.print(f"prefunded (insecure dev keys, also in {directory}/{ACCOUNTS_FILE}):")
    for a in funded:
        console.print(f"  {a.name}  {a.address}  key {a.key_file}  meter key {a.meter_key_file}"
                      f"  {units.thb(a.thb_satang)} THB  {units.kwh(a.grid_wh)} kWh",
                      soft_wrap=True)  # fmt: skip
    console.print(f"API {url}  (tx and query take --node {url}; dev keys --allow-insecure)",
                  soft_wrap=True)  # fmt: skip


def _minute_of_day(text: str) -> int:
    """'11:30' -> 690; anything else is refused before the devnet writes a file."""
    hours, sep, minutes = text.partition(":")
    digits = sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2
    if digits and int(hours) < 24 and int(minutes) < 60:
        return int(hours) * 60 + int(minutes)
    raise BadInput(f"--start {text}: expected a Bangkok time of day as HH:MM, e.g. 11:30")
