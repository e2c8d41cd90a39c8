"""`gridtokenx demo` (a market day on a real 4-authority devnet) and `gridtokenx demo-ledger`
(a scripted morning through the ledger in one process)."""

from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from gridtokenx.cli import units
from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.node import check_log_options
from gridtokenx.cli.render import console

if TYPE_CHECKING:
    from gridtokenx.ledger.state import State
    from gridtokenx.simulator.devnet_day import DemoConfig, DemoDevnet, DemoResult, TooSlow

# simulator.devnet_day.DemoConfig's defaults (a test holds them equal): `gridtokenx --help`
# does not import the simulator.
DEFAULT_HOURS: float = 6
DEFAULT_SPEED: float = 120.0
DEFAULT_DIRECTORY = Path("devnet/demo")


def demo(
    participants: Annotated[
        int | None, typer.Option(help="members across the seven zones (default 300)")
    ] = None,
    hours: Annotated[
        float | None,
        typer.Option(
            help="simulated hours in quarters (0.25-24; 24: the day from midnight)"
            f" (default {DEFAULT_HOURS:g})"
        ),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            help="chain seconds per wall second; lowered when this machine cannot "
            f"keep up (default {DEFAULT_SPEED:g})"
        ),
    ] = None,
    hot_season: Annotated[bool, typer.Option("--hot-season", help="a day in April")] = False,
    seed: Annotated[int | None, typer.Option(help="the model's random seed (default 1)")] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(
            help="a scenario file (TOML: participants, zones, date, season, "
            "storyline, hours, seed); flags given win over it"
        ),
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(help="write the summary there as CSV files and PNG plots"),
    ] = None,
    directory: Annotated[
        Path, typer.Option("--dir", help="the devnet's folder (RocksDB, logs)")
    ] = DEFAULT_DIRECTORY,
    base_port: Annotated[int, typer.Option(help="first port on 127.0.0.1; 0: a free one")] = 0,
    exit_when_done: Annotated[
        bool, typer.Option("--exit-when-done", help="stop the devnet after the summary")
    ] = False,
    log_format: Annotated[str, typer.Option(help="node.log lines: plain or json")] = "plain",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    auction: Annotated[
        bool,
        typer.Option(
            "--auction",
            help="members also submit day-ahead curves before the auction gate (12:00 the "
            "day before: about 22 more chain hours, 11 wall minutes at x120)",
        ),
    ] = False,
    manipulators: Annotated[
        str,
        typer.Option(
            help="manipulating agents to mix in, comma-separated: wash_ring, spoofer, "
            "gate_marker, withholder, dominant_seller (or all); the ERC's surveillance "
            "alerts are shown at the end and on the dashboard"
        ),
    ] = "",
) -> None:
    """Run a Thai market day on a real 4-authority devnet: EGAT, MEA, PEA and ERC validate
    as processes on 127.0.0.1 with accelerated clocks; a few hundred members register,
    trade every 15-minute interval and their meters report; the summary is read from the
    chain. The devnet then keeps running (the dashboard is on EGAT's API) until Ctrl-C.
    When this machine cannot keep up with the speed, the day starts again at one it can:
    the results do not depend on the speed."""
    from gridtokenx.devnet.processes import terminate_as_interrupt
    from gridtokenx.simulator import devnet_day

    check_log_options(log_format, log_level)
    config = _config(participants, hours, speed, hot_season, seed, scenario, directory,
                     base_port, log_format, log_level)  # fmt: skip
    config = dataclasses.replace(config, auction=auction or config.auction,
                                 manipulators=_roles(manipulators))  # fmt: skip
    for attempt in range(MAX_ATTEMPTS):
        try:
            demo_net = devnet_day.DemoDevnet(config)
        except FileExistsError as exc:
            raise Refused("EXISTS", str(exc)) from None
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        _log_to(directory / "demo.log", log_format, log_level)  # the folder was just made
        # The options are floats; shown to the thousandth (hours are whole quarters).
        shown_speed = units.decimal(round(config.speed * 1000), 3, group=False)
        console.print(
            f"Starting EGAT, MEA, PEA and ERC on 127.0.0.1 in {directory}/ (chain time "
            f"x{shown_speed}, about {round(config.wall_seconds())} s for "
            f"{units.decimal(round(config.hours * 100), 2)} h)"
        )
        with terminate_as_interrupt():  # a `kill` stops the validators as Ctrl-C does
            outcome = _run(demo_net, exit_when_done, export)
        if isinstance(outcome, devnet_day.TooSlow):
            if not outcome.suggested or attempt == MAX_ATTEMPTS - 1:
                raise Refused("TOO_SLOW", str(outcome))
            console.print(f"[yellow]{outcome}[/yellow]: starting the day again at speed "
                          f"{outcome.suggested:g}")  # fmt: skip
            config = dataclasses.replace(config, speed=outcome.suggested,
                                         lead_seconds=demo_net.next_lead())  # fmt: skip
            continue
        if outcome:
            logs = ", ".join(str(p) for p in demo_net.logs())
            raise Refused("DEMO_FAILED", f"{outcome} (logs: {logs})")
        return


MAX_ATTEMPTS = 4  # the speed at most halves three times before the demo gives up


def _roles(text: str) -> tuple[str, ...]:
    """`--manipulators`: names separated by commas, "all" for every one; checked (with a
    list of the known ones) by the day's config."""
    from gridtokenx.simulator.manipulators import ROLES

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    return tuple(ROLES) if names == ("all",) else names


def _config(
    participants: int | None,
    hours: float | None,
    speed: float | None,
    hot_season: bool,
    seed: int | None,
    scenario: Path | None,
    directory: Path,
    base_port: int,
    log_format: str,
    log_level: str,
) -> DemoConfig:
    """The demo's settings: the scenario file's, then the flags given over them."""
    from gridtokenx.simulator import devnet_day, scenario_file

    base = devnet_day.DemoConfig(directory=directory, base_port=base_port,
                                 log_format=log_format, log_level=log_level)  # fmt: skip
    if scenario is not None:
        try:
            found = scenario_file.load(scenario)
        except scenario_file.ScenarioError as exc:
            raise BadInput(str(exc)) from None
        base = dataclasses.replace(
            base, participants=found.participants, hours=found.hours, seed=found.seed,
            date=found.date, zones=tuple(found.zones), storyline=found.storyline,
            season=found.hot_season, speed=found.speed or base.speed,
        )  # fmt: skip
    base = dataclasses.replace(
        base,
        participants=base.participants if participants is None else participants,
        hours=base.hours if hours is None else hours,
        speed=base.speed if speed is None else speed,
        seed=base.seed if seed is None else seed,
    )
    return dataclasses.replace(base, hot_season=True) if hot_season else base


def _log_to(path: Path, log_format: str, log_level: str) -> None:
    """The demo's own node (the observer, in this process) logs to a file beside the
    validators' node.log files, never over the progress bar."""
    from gridtokenx.node import logs

    logs.configure(log_format, log_level, open(path, "a"))  # noqa: SIM115 - the process's log


def _run(demo_net: DemoDevnet, exit_when_done: bool, export: Path | None) -> str | TooSlow:
    """Run the day and show it; then keep the devnet up until Ctrl-C unless told not to.
    Returns why it failed ("" if it did not, or was stopped by Ctrl-C); the devnet is
    stopped either way, and only then does the command return."""
    import httpx

    from gridtokenx.client import ApiError
    from gridtokenx.simulator import devnet_day

    try:
        demo_net.start()
        result = _run_with_progress(demo_net)
        devnet_day.render(result, console)
        if export is not None:
            _export(result, export)
        if exit_when_done:  # the devnet stops now: no address to visit
            return ""
        console.print(
            f"Dashboard: [bold]{result.dashboard_url}[/bold]  (API docs: {result.api_url}/docs)"
        )
        console.print("The devnet keeps running; Ctrl-C stops it.")
        while demo_net.processes.alive():
            time.sleep(0.5)
        if _asked_to_stop(demo_net):  # a terminal's Ctrl-C reaches the validators too
            console.print("stopping the devnet")
            return ""
        return f"a validator stopped: {demo_net.stopped()}"
    except KeyboardInterrupt:
        console.print("stopping the devnet")
    except devnet_day.TooSlow as exc:
        return exc
    except (RuntimeError, TimeoutError, ApiError, httpx.HTTPError) as exc:
        return str(exc)
    finally:
        _stop(demo_net)
    return ""


def _asked_to_stop(demo_net: DemoDevnet) -> bool:
    """Whether the validators that ended did so cleanly (exit 0: a node exits 0 only when
    asked to stop, by SIGINT or SIGTERM), rather than failing."""
    import signal

    codes = [p.poll() for p in demo_net.processes.procs]
    return all(code in (0, -signal.SIGINT, -signal.SIGTERM) for code in codes if code is not None)


def _stop(demo_net: DemoDevnet) -> None:
    """Stop every process even when a second Ctrl-C arrives while they shut down."""
    for _ in range(3):
        try:
            demo_net.stop()
            return
        except KeyboardInterrupt:
            continue


def _export(result: DemoResult, directory: Path) -> None:
    from gridtokenx.simulator import export

    f = result.finality
    devnet = (
        ("speed", result.speed),
        ("wall_seconds", round(result.wall_seconds, 1)),
        ("submitted", result.submitted),
        ("committed", f.committed),
        ("finality_p50_s", round(f.percentile(0.5), 3)),
        ("finality_p99_s", round(f.percentile(0.99), 3)),
        ("height_read", result.summary.height),
        ("state_root", result.summary.state_root),
    )
    export.export(result.summary, directory, devnet)  # fmt: skip
    console.print(f"Exported the summary to {directory}/ (CSV files and PNG plots)")


def _run_with_progress(demo_net: DemoDevnet) -> DemoResult:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

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


def demo_ledger(
    intervals: Annotated[int, typer.Option(help="15-minute intervals to simulate")] = 20,
) -> None:
    """A scripted Thai morning through the ledger and market in one process (no devnet):
    forged and invalid transactions refused with their codes, conservation checked."""
    from gridtokenx.ledger import accounts, invariants
    from gridtokenx.simulator import scenario

    if intervals < 0:
        raise BadInput(f"--intervals {intervals} must be 0 or more")
    started = time.perf_counter_ns()
    result = scenario.run(intervals)
    elapsed = time.perf_counter_ns() - started
    sb = result.sandbox
    table = Table(title=f"Balances after {intervals} intervals of 15 minutes")
    for column in ("participant", "zone", "kind", "GRID (kWh)", "THB"):
        table.add_column(column, justify="right" if column[0].isupper() else "left")
    for actor in result.actors:
        grid, thb = sb.balance(actor.key.address)
        table.add_row(actor.name, actor.zone, actor.kind.name.lower(), _kwh(grid), units.thb(thb))
    console.print(table)
    console.print(_market_table(sb.state))
    rejected = Table(title="Refused, state untouched")
    rejected.add_column("attempt")
    rejected.add_column("error code")
    for what, code in result.rejected:
        rejected.add_row(what, code)
    console.print(rejected)
    supply = accounts.supply(sb.state)
    grid_total, thb_total = invariants.balance_totals(sb.state)
    invariants.check_all(sb.state)
    console.print(
        f"GRID: minted {_kwh(supply.grid_minted_wh)} kWh - burned {_kwh(supply.grid_burned_wh)}"
        f" = held {_kwh(grid_total)} kWh  [green]conserved[/green]"
    )
    console.print(
        f"THB: issued {units.thb(supply.thb_issued_satang)} - redeemed "
        f"{units.thb(supply.thb_redeemed_satang)} = held {units.thb(thb_total)}"
        "  [green]conserved[/green]"
    )
    console.print(
        f"{result.accepted} transactions applied, {len(result.rejected)} refused, "
        f"in {units.seconds(elapsed)} s; state root {sb.state.root().hex()}"
    )


def _kwh(wh: int) -> str:
    """The demo's tables keep three places, so their columns line up."""
    return units.kwh(wh, trim=False)


def _market_table(state: State) -> Table:
    """Settled energy and money per zone, summed over every settled interval."""
    from gridtokenx.ledger.market import queries

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
            zone, _kwh(out), _kwh(into), _kwh(lost), _kwh(utility), units.thb(paid),
            units.thb(bills),
        )  # fmt: skip
    return table
