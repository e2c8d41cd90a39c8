"""Writing report rows as CSV or Parquet files plus a manifest, and reading them back.

One file per report kind (`trades.csv`, `settlements.parquet`, ...) and `manifest.json`
naming the chain, the height range with its first and last block hashes, the format and
each file's row count. Verification starts from the manifest, so an export is
self-describing: nothing but the directory and the store is needed to re-check it."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from gridtokenx.ledger import accounts
from gridtokenx.reporting import balances, schema
from gridtokenx.reporting.extract import ReportError, Row, Value, block_at, extract, text
from gridtokenx.storage.store import Store

Format = Literal["csv", "parquet"]
FORMATS: Final[tuple[Format, ...]] = ("csv", "parquet")
MANIFEST: Final = "manifest.json"
VERSION: Final = 3


def file_name(kind: str, format: Format) -> str:
    return f"{kind}.{format}"


def arrow_schema(kind: str) -> pa.Schema:
    return pa.schema(
        [(name, pa.int64() if t == "int" else pa.string()) for name, t in schema.columns(kind)]
    )


def write(out: Path, rows: dict[str, list[Row]], format: Format, about: dict[str, Any]) -> None:
    """Write every kind's file and then the manifest (last: a directory without one is an
    interrupted export). `out` must be new or empty: an audit file is never overwritten."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReportError(f"{out} exists and is not an empty directory")
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Any]] = {}
    for kind, items in rows.items():
        names = [name for name, _ in schema.columns(kind)]
        path = out / file_name(kind, format)
        if format == "csv":
            with path.open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(names)
                writer.writerows([["" if r[n] is None else r[n] for n in names] for r in items])
        else:
            table = pa.Table.from_pylist(items, schema=arrow_schema(kind))
            pq.write_table(table, path)
        files[kind] = {"file": path.name, "rows": len(items)}
    manifest = {"version": VERSION, **about, "format": format, "kinds": files}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _cell(text: str, type_: str) -> Value:
    """A CSV cell typed as its column; a malformed number stays text so that verification
    reports it as a mismatch of that row instead of failing the whole file."""
    if type_ == "str":
        return text
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        return text


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    if manifest.get("version") != VERSION or manifest.get("format") not in FORMATS:
        raise ReportError(f"{path} is not a version {VERSION} GridTokenX export manifest")
    return manifest


def read(directory: Path, kind: str, format: Format) -> tuple[list[str], list[Row]]:
    """A kind's file as (its header, its rows in file order)."""
    path = directory / file_name(kind, format)
    types = dict(schema.columns(kind))
    try:
        if format == "csv":
            with path.open(newline="", encoding="utf-8") as f:
                lines = list(csv.reader(f))
            header = lines[0] if lines else []
            rows: list[Row] = [
                {n: _cell(c, types.get(n, "str")) for n, c in zip(header, line, strict=False)}
                for line in lines[1:]
            ]
            return header, rows
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    return list(table.column_names), table.to_pylist()


def supply_at_ends(
    store: Store, rows: dict[str, list[Row]], last: int
) -> dict[str, dict[str, int]]:
    """The supply before the range's first block and after its last, as the chain's own
    running totals say: a series with rows in the range opens at its first row's total
    less its amount and closes at its last row's total; one without stays at its total
    after the range, the first later row's total less its amount, else the head's supply
    record. Cost: beyond the range, one block and its events per height until every
    series without rows is found (at worst up to the head)."""
    ends = balances.supply_ends(rows)
    missing = {field for field, (opening, _) in ends.items() if opening is None}
    height = last
    while missing and height < store.height():
        height += 1
        later = extract(store, height, height)
        for field, (opening, _) in balances.supply_ends(later).items():
            if field in missing and opening is not None:
                ends[field] = (opening, opening)
                missing.discard(field)
    head = accounts.supply(store)
    for field in missing:
        ends[field] = (getattr(head, field), getattr(head, field))
    return {
        end: {field: ends[field][i] or 0 for field in balances.SUPPLY_SERIES}
        for i, end in enumerate(("opening", "closing"))
    }


ESCROW_ACCOUNT: Final = text(accounts.ESCROW_ADDRESS)


def accounts_at_ends(rows: dict[str, list[Row]]) -> balances.AccountEnds:
    """Each account's balances before and after the range, as its movement rows say."""
    ends, _ = balances.account_ends(balances.located(rows, lambda kind: kind), ESCROW_ACCOUNT)
    return ends


def export_range(store: Store, first: int, last: int, out: Path, format: Format) -> dict[str, int]:
    """Export heights first..last of `store` into `out`; returns the row count per kind."""
    rows = extract(store, first, last)
    about = {
        "chain_id": block_at(store, first).header.chain_id,
        "from_height": first,
        "to_height": last,
        "from_block_hash": block_at(store, first).hash.hex(),
        "to_block_hash": block_at(store, last).hash.hex(),
        "supply": supply_at_ends(store, rows, last),
        "escrow_account": ESCROW_ACCOUNT,
        "accounts": accounts_at_ends(rows),
    }
    write(out, rows, format, about)
    return {kind: len(items) for kind, items in rows.items()}
