"""How the market's records look to people: names instead of bare addresses, Bangkok wall
times instead of unix seconds, kWh and THB instead of Wh and satang (exact, cli.units),
and only the columns a reader needs. `--json` bypasses all of this and prints the API's
records unchanged, so scripts see every field.

The trade and block columns are shared by a whole table and by rows streamed one at a
time (`--follow`, cli.follow), so both look the same.
"""

from __future__ import annotations

from typing import Any, Final

from rich.console import Group, RenderableType
from rich.table import Table

from gridtokenx.cli.names import Names
from gridtokenx.cli.render import Column, columns_table, paged, record_table
from gridtokenx.cli.units import kwh, local_minute, local_time, percent, thb, value_thb

TRADE_COLUMNS: Final[tuple[Column, ...]] = (
    ("id", 7, "right"),
    ("delivery (Bangkok)", 16, "left"),
    ("seller", 24, "left"),
    ("buyer", 24, "left"),
    ("zones", 9, "left"),
    ("kWh", 10, "right"),
    ("THB/kWh", 8, "right"),
    ("THB", 11, "right"),
    ("loss %", 6, "right"),
    ("state", 9, "left"),
)
BLOCK_COLUMNS: Final[tuple[Column, ...]] = (
    ("height", 8, "right"),
    ("time (Bangkok)", 19, "left"),
    ("proposer", 24, "left"),
    ("txs", 5, "right"),
    ("hash", 16, "left"),
)


def zones(seller_zone: str, buyer_zone: str) -> str:
    return seller_zone if seller_zone == buyer_zone else f"{seller_zone}→{buyer_zone}"


def trade_state(trade: dict[str, Any]) -> str:
    return "settled" if trade.get("settled") else "unsettled"


def from_stream(message: dict[str, Any]) -> dict[str, Any]:
    """A streamed `trade` message in the shape of a trade record (what the rows read):
    the stream names the id `trade` and the interval `interval`, and a trade is never
    settled in the block that makes it."""
    return {
        **message,
        "id": message["trade"],
        "interval_start": message["interval"],
        "settled": False,
    }


def trade_row(trade: dict[str, Any], names: Names) -> list[str]:
    wh, price = trade["quantity_wh"], trade["price"]
    return [
        str(trade["id"]),
        local_minute(trade["interval_start"]),
        names.label(trade["seller"]),
        names.label(trade["buyer"]),
        zones(trade["seller_zone"], trade["buyer_zone"]),
        kwh(wh, trim=False),
        thb(price),
        value_thb(wh, price),
        percent(trade["loss_bp"]),
        trade_state(trade),
    ]


def trades_view(page: dict[str, Any], names: Names) -> RenderableType:
    rows = [trade_row(t, names) for t in page["items"]]
    return paged(columns_table(TRADE_COLUMNS, rows, "trades"), page)


def block_row(block: dict[str, Any], names: Names) -> list[str]:
    """A block summary from the REST listing (time and proposer in its header) or from the
    `blocks` stream (beside it)."""
    header = block.get("header") or block
    return [
        str(block["height"]),
        local_time(header["time"]),
        names.label(header["proposer"]),
        str(block["tx_count"]),
        block["hash"][:16],
    ]


def blocks_view(page: dict[str, Any], names: Names) -> RenderableType:
    rows = [block_row(b, names) for b in page["items"]]
    return paged(columns_table(BLOCK_COLUMNS, rows, "blocks, newest first"), page)


def _remaining(order: dict[str, Any]) -> str:
    left, placed = order["remaining_wh"], order["quantity_wh"]
    return kwh(left, trim=False) if left == placed else f"{kwh(left, trim=False)} of {kwh(placed)}"


def orders_view(page: dict[str, Any], names: Names, owner: str | None = None) -> RenderableType:
    """Orders with their owner, unless they are one account's (named in the title)."""
    columns: list[Column] = [
        ("id", 0, "right"), ("side", 0, "left"), ("zone", 0, "left"),
        ("delivery (Bangkok)", 0, "left"), ("kWh left", 0, "right"), ("THB/kWh", 0, "right"),
        ("THB held", 0, "right"), ("until", 0, "left"), ("status", 0, "left"),
    ]  # fmt: skip
    if owner is None:
        columns.append(("owner", 0, "left"))
    rows = []
    for o in page["items"]:
        row = [
            str(o["id"]), o["side"].lower(), o["zone"], local_minute(o["interval_start"]),
            _remaining(o), thb(o["price"]), thb(o["escrow_satang"]), _tif(o["tif"]),
            o["status"].lower(),
        ]  # fmt: skip
        if owner is None:
            row.append(names.label(o["owner"]))
        rows.append(row)
    title = "open orders" if owner is None else f"open orders of {names.label(owner, full=True)}"
    return paged(columns_table(columns, rows, title), page)


def _tif(name: str) -> str:
    return {"GOOD_TILL_GATE": "gate", "IMMEDIATE_OR_CANCEL": "IOC", "FILL_OR_KILL": "FOK"}.get(
        name, name.lower()
    )


def order_record(order: dict[str, Any], names: Names, title: str) -> Table:
    return record_table(
        {
            "id": order["id"],
            "owner": names.label(order["owner"], full=True),
            "side": order["side"].lower(),
            "zone": order["zone"],
            "delivery": f"{local_minute(order['interval_start'])} Bangkok",
            "kind": order["kind"].lower(),
            "price": f"{thb(order['price'])} THB/kWh",
            "quantity": f"{kwh(order['quantity_wh'])} kWh",
            "remaining": f"{kwh(order['remaining_wh'])} kWh",
            "THB held": f"{thb(order['escrow_satang'])} THB",
            "time in force": order["tif"].lower().replace("_", " "),
            "renewable": _renewable(order),
            "status": order["status"].lower(),
            "placed": f"{local_time(order['placed_at'])} Bangkok",
        },
        title,
    )


def _renewable(order: dict[str, Any]) -> str:
    if order["side"] == "BUY":
        return "only renewable sellers" if order["renewable_only"] else "any seller"
    return "yes" if order["renewable"] else "no"


def trade_view(data: dict[str, Any], names: Names) -> RenderableType:
    """One trade with both its orders and where its interval's settlement stands."""
    t = data["trade"]
    wh, price = t["quantity_wh"], t["price"]
    sent = t["delivered_wh"] if t["settled"] else wh
    received = sent * (10_000 - t["loss_bp"]) // 10_000  # as settlement computes it
    delivered = f"{kwh(t['delivered_wh'])} kWh" if t["settled"] else "- (at settlement)"
    arrives = "received" if t["settled"] else "to receive if all is delivered"
    market = data["settlement"]
    interval_status = market["status"].lower() if market else "unknown"
    record = record_table(
        {
            "seller": f"{names.label(t['seller'], full=True)} ({t['seller_zone']})",
            "buyer": f"{names.label(t['buyer'], full=True)} ({t['buyer_zone']})",
            "delivery": f"{local_minute(t['interval_start'])} Bangkok",
            "traded": f"{local_time(t['time'])} Bangkok, height {t['height']}",
            "quantity sent": f"{kwh(wh)} kWh",
            "price": f"{thb(price)} THB/kWh",
            "value": f"{value_thb(wh, price)} THB",
            "path": " → ".join(t["path"]),
            "losses": f"{percent(t['loss_bp'])} % (buyer {arrives}: {kwh(received)} kWh)",
            "THB held for it": f"{thb(t['escrow_satang'])} THB",
            "delivered": delivered,
            "settlement": f"{trade_state(t)} (interval {interval_status})",
            "buy order": t["buy_order"],
            "sell order": t["sell_order"],
        },
        f"trade {t['id']}",
    )
    parts: list[RenderableType] = [record]
    for side in ("buy_order", "sell_order"):
        if data[side] is not None:
            parts.append(order_record(data[side], names, side.replace("_", " ")))
    return Group(*parts)


def book_view(data: dict[str, Any]) -> RenderableType:
    title = f"{data['zone']} book, delivery {local_minute(data['interval'])} Bangkok"
    columns: list[Column] = [
        ("bid orders", 0, "right"), ("bid kWh", 0, "right"), ("bid THB/kWh", 0, "right"),
        ("ask THB/kWh", 0, "right"), ("ask kWh", 0, "right"), ("ask orders", 0, "right"),
    ]  # fmt: skip
    bids, asks = data.get("bids", []), data.get("asks", [])
    rows = []
    for i in range(max(len(bids), len(asks))):
        left, right = ["", "", ""], ["", "", ""]
        if i < len(bids):
            bid = bids[i]
            left = [str(bid["orders"]), kwh(bid["quantity_wh"], trim=False), thb(bid["price"])]
        if i < len(asks):
            ask = asks[i]
            right = [thb(ask["price"]), kwh(ask["quantity_wh"], trim=False), str(ask["orders"])]
        rows.append([*left, *right])
    table = columns_table(columns, rows, title)
    if not bids and not asks:
        table.caption = "(empty book)"
    return table


def balance_view(data: dict[str, Any], names: Names) -> RenderableType:
    """Spendable balances next to what the market holds for the account (its escrow)."""
    held = data.get("escrow") or {}
    table = Table(title=names.label(data["address"], full=True))
    for name, justify in (("", "left"), ("available", "right"), ("held by the market", "right"),
                          ("total", "right")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    grid, held_grid = data["grid_wh"], held.get("grid_wh", 0)
    money, held_money = data["thb_satang"], held.get("thb_satang", 0)
    table.add_row("GRID (kWh)", kwh(grid, trim=False), kwh(held_grid, trim=False),
                  kwh(grid + held_grid, trim=False))  # fmt: skip
    table.add_row("THB", thb(money), thb(held_money), thb(money + held_money))
    notes = [f"next nonce {data['nonce']}"]
    if held.get("thb_satang"):
        notes.append(
            f"THB held: {thb(held['thb_in_orders_satang'])} for {held['open_orders']} open "
            f"order(s), {thb(held['thb_in_trades_satang'])} for "
            f"{held['unsettled_purchases']} unsettled purchase(s)"
        )
    if held_grid:
        notes.append("GRID held: metered export sold, until its interval settles")
    if held.get("offered_wh"):
        notes.append(f"offered for sale: {kwh(held['offered_wh'])} kWh (holds no GRID)")
    table.caption = "\n".join(notes)
    return table
