"""`gridtokenx report`: ERC audit exports from a node's store and their verification. With
`--home`, the node may be running: the export reads a checkpoint it takes on the fly
(cli.online), a consistent view of one height, deleted afterwards.

Exit codes follow cli.errors: 0 done (verify: the export balances, and matches the chain
when one is given); 1 for a
verification that found mismatches (MISMATCH, one line for each), an export directory
already in use (EXISTS) or a store that does not open (STORE_LOCKED, STORE_CORRUPT,
STORE_UNAVAILABLE); 2 for a request
that cannot be served as given (a bad range or options, no store, an unreadable export).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gridtokenx.cli.db import open_store
from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.render import plain

if TYPE_CHECKING:
    from gridtokenx.storage.store import Store

report_app = typer.Typer(help="ERC audit exports (CSV, Parquet) and their verification.")
MAX_FINDINGS_SHOWN = 200

Data = Annotated[
    Path | None, typer.Option(help="a stopped node's store directory or a `db backup`")
]
HomeOption = Annotated[
    Path | None, typer.Option("--home", help="or: a node's home (its node may be running)")
]


@contextlib.contextmanager
def _store(data: Path | None, home: Path | None) -> Iterator[Store]:
    """The store --data names, or the store of --home's node, running or not."""
    from gridtokenx.cli import online

    if (data is None) == (home is None):
        raise BadInput("give --data DIR or --home HOME (one of them)")
    if home is not None:
        online.config_of(home)  # a home, not some directory
        with online.store_of_home(home) as store:
            yield store
        return
    assert data is not None
    with open_store(data) as store:
        yield store


@report_app.command("export")
def report_export(
    out: Annotated[Path, typer.Option(help="a new (or empty) directory for the files")],
    data: Data = None,
    home: HomeOption = None,
    from_height: Annotated[int | None, typer.Option(help="first height")] = None,
    to_height: Annotated[int | None, typer.Option(help="last height (default: the head)")] = None,
    from_time: Annotated[int | None, typer.Option(help="or: first block time (unix s)")] = None,
    to_time: Annotated[int | None, typer.Option(help="and: last block time (unix s)")] = None,
    interval: Annotated[
        int | None, typer.Option(help="or: the block that settled this interval (unix s)")
    ] = None,
    format: Annotated[str, typer.Option(help="csv or parquet")] = "csv",
    alerts: Annotated[
        bool, typer.Option(help="add surveillance_alerts.json (docs/surveillance.md)")
    ] = True,
) -> None:
    """Export trades, settlements, zone reports, payments, mints, THB movements, burns,
    licences, certificates, grid and governance events of a height range (or of the blocks
    in a time range, or of the block that settled an interval) with their block and tx
    hashes and the supply at both ends, and the market-surveillance alerts raised by blocks
    of that range."""
    from gridtokenx.reporting import export, extract
    from gridtokenx.reporting.extract import ReportError

    if format not in export.FORMATS:
        raise BadInput(f"--format must be csv or parquet, not {format!r}")
    by_time = from_time is not None or to_time is not None
    by_height = from_height is not None or to_height is not None
    if by_time + by_height + (interval is not None) > 1:
        raise BadInput("give a height range, a time range or an interval, only one of them")
    if by_time and (from_time is None or to_time is None):
        raise BadInput("a time range needs both --from-time and --to-time")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Refused("EXISTS", f"{out} exists and is not an empty directory")
    with _store(data, home) as store:
        try:
            if interval is not None:
                first = last = extract.settlement_height(store, interval)
            elif from_time is not None and to_time is not None:
                first, last = extract.heights_for_times(store, from_time, to_time)
            else:
                first = 1 if from_height is None else from_height
                last = store.height() if to_height is None else to_height
            counts = export.export_range(store, first, last, out, format)
        except ReportError as exc:
            raise BadInput(str(exc)) from None
        if alerts:
            counts[ALERTS_FILE] = _write_alerts(store, first, last, out / ALERTS_FILE)
    summary = ", ".join(f"{kind} {n}" for kind, n in counts.items())
    plain.print(f"exported heights {first}..{last} to {out} ({format}): {summary}")


ALERTS_FILE = "surveillance_alerts.json"


def _write_alerts(store: Store, first: int, last: int, path: Path) -> int:
    """The alerts raised by heights first..last, judged from the store's first height (an
    interval's evidence may lie before the range), with the default thresholds."""
    import json

    from gridtokenx.api.views import alert
    from gridtokenx.surveillance.follower import Follower

    follower = Follower(store.load_state())
    follower.catch_up(store, last)
    found = [alert(a) for a in follower.alerts if first <= a.height <= last]
    about = {"from_height": first, "to_height": last,
             "settings_digest": follower.engine.settings.digest, "alerts": found}  # fmt: skip
    path.write_text(json.dumps(about, indent=2) + "\n", encoding="utf-8")
    return len(found)


@report_app.command("verify")
def report_verify(
    export_dir: Annotated[Path, typer.Option("--export", help="a `report export` directory")],
    data: Data = None,
    home: HomeOption = None,
) -> None:
    """Check an export's balances from its files alone (supply, every settlement payment
    and burn, the zone reports) and, given --data or --home, re-check it against the chain:
    block and tx hashes, every field, completeness."""
    from gridtokenx.reporting import verify
    from gridtokenx.reporting.extract import ReportError

    with contextlib.ExitStack() as stack:
        store = None if data is None and home is None else stack.enter_context(_store(data, home))
        try:
            findings = verify.verify(store, export_dir)
        except ReportError as exc:
            raise BadInput(str(exc)) from None
    if not findings:
        against = "" if store is None else " and matches the chain"
        plain.print(f"{export_dir} balances{against}")
        return
    more = len(findings) - MAX_FINDINGS_SHOWN
    total = f"{len(findings)} mismatches" + (f" ({more} not shown)" if more > 0 else "")
    raise Refused("MISMATCH", *(str(f) for f in findings[:MAX_FINDINGS_SHOWN]), total)
