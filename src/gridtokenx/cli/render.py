"""What a successful command prints on stdout: rich tables for people, JSON for scripts.

Failures never come here; they are the error contract's lines on stderr (cli.errors).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
from rich.box import HEAVY_HEAD
from rich.console import Console, Group, RenderableType
from rich.table import Table

console = Console()
plain = Console(highlight=False, soft_wrap=True)  # paths and hashes stay whole, uncoloured


def print_json(data: Any) -> None:
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def cell(value: Any) -> str:
    """A JSON value as a table cell: "-" for null, compact JSON for objects and lists."""
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _flat(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in data.items():
        if isinstance(value, dict) and value:
            yield from _flat(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def rows_table(items: list[Any], title: str = "") -> Table:
    """One row per record, one column per field (in the order fields first appear)."""
    table = Table(title=title or None)
    columns: list[str] = []
    for item in items:
        for name in item if isinstance(item, dict) else ["value"]:
            if name not in columns:
                columns.append(name)
    for name in columns:
        table.add_column(name, overflow="fold")
    for item in items:
        record = item if isinstance(item, dict) else {"value": item}
        table.add_row(*(cell(record.get(name)) for name in columns))
    if not items:
        table.caption = "(none)"
    return table


def record_table(data: dict[str, Any], title: str = "") -> Table:
    """One record as field/value rows, nested objects flattened to dotted names."""
    table = Table(title=title or None, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in _flat(data):
        table.add_row(name, cell(value))
    return table


def paged(table: Table, page: dict[str, Any]) -> Table:
    """A page's table, captioned with the cursor of the next page (or as empty)."""
    if not page["items"]:
        table.caption = "(none)"
    elif page.get("next"):
        table.caption = f"more: --after {page['next']}"
    return table


def generic(data: Any, title: str = "") -> RenderableType:
    """Any API answer: a page or list as rows, an object as a record, else its text."""
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        return paged(rows_table(data["items"], title), data)
    if isinstance(data, list):
        return rows_table(data, title)
    if isinstance(data, dict):
        return record_table(data, title)
    return cell(data)


def events_table(events: list[dict[str, Any]]) -> Table:
    table = Table(title="events")
    table.add_column("kind")
    table.add_column("attributes", overflow="fold")
    for event in events:
        attrs = event.get("attrs") or {}
        table.add_row(str(event.get("kind")), " ".join(f"{k}={cell(v)}" for k, v in attrs.items()))
    return table


def receipt_view(receipt: dict[str, Any]) -> RenderableType:
    status = receipt["status"]
    if status == "committed":
        line = f"committed at height {receipt['height']} (index {receipt['index']})"
        return Group(line, events_table(receipt.get("events", [])))
    reason = f": {receipt['reason']}" if receipt.get("reason") else ""
    if status == "failed":
        line = f"failed at height {receipt['height']} (index {receipt['index']}){reason}"
        return Group(line, events_table(receipt.get("events", [])))
    return f"{status}{reason}"


# --- tables with fixed columns, printed whole or streamed row by row ------------------------
Column = tuple[str, int, str]  # title, width (0: as wide as needed), justify


def columns_table(
    columns: Sequence[Column],
    rows: Iterable[Sequence[str]],
    title: str = "",
    *,
    stream: bool = False,
) -> Table:
    """A table of `columns`. A streamed row (`stream`) is a table of its own without lines,
    its header shown only with `title` (the first one), and every column at its fixed width,
    so rows printed one at a time as they commit line up under one header."""
    table = Table(
        title=title or None,
        box=None if stream else HEAVY_HEAD,
        show_header=not stream or bool(title),
        title_justify="left" if stream else "center",
        pad_edge=not stream,
    )
    for name, width, justify in columns:
        fixed = {"width": width, "no_wrap": True} if stream and width else {}
        table.add_column(name, justify=justify, overflow="fold", **fixed)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*row)
    return table
