"""`gridtokenx surveillance ...`: the ERC's market-surveillance alerts (docs/surveillance.md).

`alerts` asks a running node's API (its follower judges every settled interval); `scan`
replays a stopped node's store, a `db backup` or (with --home) a running node's checkpoint
through the same detectors, with the ERC's own settings file if given, and can write the
alerts as JSON; `settings` prints the default thresholds as TOML to start that file from.
Exit codes follow cli.errors (2 for bad input, an unreadable settings file or store)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from gridtokenx.cli.args import JSON_OPTION, NODE_OPTION, address_text, expose, node_url
from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.render import console, plain, print_json
from gridtokenx.cli.report import Data, HomeOption, _store
from gridtokenx.cli.units import local_minute, percent

if TYPE_CHECKING:
    from gridtokenx.client import Client
    from gridtokenx.surveillance import SurveillanceSettings

surveillance_app = typer.Typer(
    help="Market surveillance for the ERC: alerts of wash trading, spoofing, marking the "
    "gate, capacity withholding and market power.",
    no_args_is_help=True,
)
DETECTORS = ("wash_trading", "spoofing", "marking_the_gate", "capacity_withholding",
             "market_power")  # fmt: skip


def alerts_table(items: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for name in ("interval", "detector", "zone", "score", "accounts", "summary", "evidence"):
        table.add_column(name)
    for a in items:
        table.add_row(
            local_minute(a["interval"]), a["detector"], a["zone"] or "-", percent(a["score"]),
            "\n".join(a["accounts"]), a["summary"],
            f"{len(a['evidence'])} items from height {min(e['height'] for e in a['evidence'])}",
        )  # fmt: skip
    return table


def fetch_alerts(
    api: Client,
    detector: Annotated[str | None, typer.Option(help=", ".join(DETECTORS))] = None,
    account: Annotated[str | None, typer.Option(help="alerts naming this gtx... address")] = None,
    zone: Annotated[str | None, typer.Option(help="one zone, e.g. BKK")] = None,
    interval_from: Annotated[int | None, typer.Option(help="first interval (unix s)")] = None,
    interval_to: Annotated[int | None, typer.Option(help="last interval (unix s)")] = None,
    min_score: Annotated[int, typer.Option(help="basis points, 0-10000")] = 0,
    limit: Annotated[int, typer.Option(help="at most this many (1-500)")] = 50,
) -> Any:
    """The alerts a node's surveillance raised, newest interval first, filtered."""
    if detector is not None and detector not in DETECTORS:
        raise BadInput(f"--detector must be one of {', '.join(DETECTORS)}")
    if not 0 <= min_score <= 10_000 or not 1 <= limit <= 500:
        raise BadInput("--min-score must be 0-10000 and --limit 1-500")
    who = None if account is None else address_text(account)
    return api.surveillance_alerts(detector=detector, account=who, zone=zone,
                                   interval_from=interval_from, interval_to=interval_to,
                                   min_score=min_score, limit=limit)  # fmt: skip


def surveillance_alerts(**kwargs: Any) -> None:
    from gridtokenx.client import Client, to_json

    url, json_out = kwargs.pop("node"), kwargs.pop("json_out")
    with Client(node_url(url)) as api:
        data = to_json(fetch_alerts(api, **kwargs))
    if json_out:
        print_json(data)
        return
    title = (f"{data['total']} alerts (heights {data['followed_from']}..{data['height']}, "
             f"settings {data['settings_digest']})")  # fmt: skip
    console.print(alerts_table(data["items"], title))


expose(surveillance_alerts, fetch_alerts, 1, (NODE_OPTION, JSON_OPTION))
surveillance_app.command("alerts")(surveillance_alerts)


def read_settings(path: Path | None) -> SurveillanceSettings | None:
    from gridtokenx.surveillance import settings

    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    try:
        return settings.load(text, "json" if path.suffix == ".json" else "toml")
    except ValueError as exc:
        raise BadInput(f"{path}: {exc}") from None


def scan_store(data: Path | None, home: Path | None, found: SurveillanceSettings | None,
               to_height: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Replay a store through the detectors; the alerts as the API shows them."""
    from gridtokenx.api.views import alert as alert_view
    from gridtokenx.surveillance.follower import Follower

    with _store(data, home) as store:
        last = store.height() if to_height is None else to_height
        if not 1 <= last <= store.height():
            raise BadInput(f"--to-height must be 1..{store.height()}")
        follower = Follower(store.load_state(), found)
        try:
            follower.catch_up(store, last)
        except LookupError as exc:
            raise Refused("STORE_INCOMPLETE", str(exc)) from None
    return {
        "followed_from": follower.from_height,
        "height": follower.height,
        "settings_digest": follower.engine.settings.digest,
        "total": len(follower.alerts),
        "items": [alert_view(a) for a in follower.alerts],
    }


@surveillance_app.command("scan")
def surveillance_scan(
    data: Data = None,
    home: HomeOption = None,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="the ERC's thresholds (TOML or .json)")
    ] = None,
    to_height: Annotated[int | None, typer.Option(help="last height (default: the head)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the alerts to this JSON file")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")] = False,
) -> None:
    """Run the detectors over a node's store from its first height, as its follower would.

    Example:  gridtokenx surveillance scan --data devnet/demo/observer/data --json"""
    result = scan_store(data, home, read_settings(settings_file), to_height)
    if out is not None:
        if out.exists():
            raise Refused("EXISTS", f"{out} exists: an alerts file is never overwritten")
        import json

        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if json_out:
        print_json(result)
    elif out is None:
        console.print(alerts_table(result["items"], f"{result['total']} alerts"))
    else:
        plain.print(f"{result['total']} alerts over heights {result['followed_from']}.."
                    f"{result['height']} written to {out}")  # fmt: skip


@surveillance_app.command("settings")
def surveillance_settings() -> None:
    """Print the default thresholds as TOML: the start of the ERC's settings file."""
    import msgspec

    from gridtokenx.surveillance import SurveillanceSettings

    lines = []
    for group, values in msgspec.structs.asdict(SurveillanceSettings()).items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in msgspec.structs.asdict(values).items()]
        lines.append("")
    plain.print("\n".join(lines).rstrip(), markup=False, highlight=False)
