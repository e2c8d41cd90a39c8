"""`gridtokenx report`: ERC audit exports from a stopped node's store and their verification.

Exit codes: 0 done (verify: the export matches the chain), 1 verify found mismatches,
2 the request cannot be done (bad range or options, no store, unreadable export)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from gridtokenx.reporting import export, extract, verify
from gridtokenx.reporting.extract import ReportError

report_app = typer.Typer(help="ERC audit exports (CSV, Parquet) and their verification.")
console = Console(highlight=False, soft_wrap=True)  # paths and hashes stay whole
MAX_FINDINGS_SHOWN = 200

Data = Annotated[Path, typer.Option(help="a stopped node's store directory or a `db backup`")]


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(2)


@report_app.command("export")
def report_export(
    data: Data,
    out: Annotated[Path, typer.Option(help="a new (or empty) directory for the files")],
    from_height: Annotated[int | None, typer.Option(help="first height")] = None,
    to_height: Annotated[int | None, typer.Option(help="last height (default: the head)")] = None,
    from_time: Annotated[int | None, typer.Option(help="or: first block time (unix s)")] = None,
    to_time: Annotated[int | None, typer.Option(help="and: last block time (unix s)")] = None,
    format: Annotated[str, typer.Option(help="csv or parquet")] = "csv",
) -> None:
    """Export trades, settlements, licences, certificates, grid and governance events of a
    height range (or of the blocks in a time range) with their block and tx hashes."""
    if format not in export.FORMATS:
        raise _fail(f"--format must be csv or parquet, not {format!r}")
    by_time = from_time is not None or to_time is not None
    if by_time and (from_height is not None or to_height is not None):
        raise _fail("give a height range or a time range, not both")
    try:
        with extract.open_store(data) as store:
            if by_time:
                if from_time is None or to_time is None:
                    raise ReportError("a time range needs both --from-time and --to-time")
                first, last = extract.heights_for_times(store, from_time, to_time)
            else:
                first = 1 if from_height is None else from_height
                last = store.height() if to_height is None else to_height
            counts = export.export_range(store, first, last, out, format)
    except ReportError as exc:
        raise _fail(str(exc)) from None
    summary = ", ".join(f"{kind} {n}" for kind, n in counts.items())
    console.print(f"exported heights {first}..{last} to {out} ({format}): {summary}")


@report_app.command("verify")
def report_verify(
    data: Data,
    export_dir: Annotated[Path, typer.Option("--export", help="a `report export` directory")],
) -> None:
    """Re-check an export against the chain: block and tx hashes, every field, completeness."""
    try:
        with extract.open_store(data) as store:
            findings = verify.verify(store, export_dir)
    except ReportError as exc:
        raise _fail(str(exc)) from None
    if not findings:
        console.print(f"{export_dir} matches the chain")
        return
    for finding in findings[:MAX_FINDINGS_SHOWN]:
        console.print(f"[red]mismatch:[/red] {escape(str(finding))}")
    more = len(findings) - MAX_FINDINGS_SHOWN
    console.print(f"{len(findings)} mismatches" + (f" ({more} not shown)" if more > 0 else ""))
    raise typer.Exit(1)
