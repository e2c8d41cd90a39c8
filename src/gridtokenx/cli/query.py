"""`gridtokenx query ...`: read the ledger through a node's API with the SDK, shown as
tables for people or, with --json, as the API's JSON for scripts.

Arguments are checked before anything is asked (bad input exits 2, cli.errors); energy,
money and carbon are shown exactly (cli.units)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

import typer
from rich.console import Group, RenderableType
from rich.table import Table

from gridtokenx.cli.args import (
    JSON_OPTION,
    NODE_OPTION,
    AddressArg,
    Arg,
    CertificateArg,
    IntervalArg,
    ZoneArg,
    address_text,
    expose,
    hash_hex,
    node_url,
    zone,
)
from gridtokenx.cli.errors import BadInput
from gridtokenx.cli.follow import FOLLOW_OPTIONS, Bounds, follow_blocks, follow_book, follow_trades
from gridtokenx.cli.names import Names
from gridtokenx.cli.registry_views import (
    licences_table,
    licences_view,
    meters_table,
    participant_record,
    validators_view,
)
from gridtokenx.cli.render import (
    cell,
    console,
    generic,
    paged,
    print_json,
    receipt_view,
    record_table,
    rows_table,
)
from gridtokenx.cli.units import count, hz, kg, local_date, mwh, percent, unix_time
from gridtokenx.cli.views import (
    balance_view,
    blocks_view,
    book_view,
    order_record,
    orders_view,
    trade_view,
    trades_view,
)

if TYPE_CHECKING:
    from gridtokenx.client import Client

F = TypeVar("F", bound=Callable[..., Any])
query_app = typer.Typer(
    help="Read the ledger through a node's API (tables, or JSON with --json).",
    no_args_is_help=True,
)
Render = Callable[[Any], RenderableType]
Named = Callable[[Any, Names], RenderableType]
Follow = Callable[..., None]  # (api, names, json_out, bounds, **the command's arguments)


def query_command(
    name: str, render: Render | None = None, *, named: Named | None = None,
    follow: Follow | None = None,
) -> Callable[[F], F]:  # fmt: skip
    """Register `fetch(api, ...)` as `query NAME` with --node and --json: it parses its
    arguments, reads the API and returns JSON data, shown as `render` draws it (or `named`,
    which also gets the command's address book). With `follow`, the command also takes
    --follow (and its bounds --count, --timeout), and `follow` streams instead."""

    def register(fetch: F) -> F:
        def command(**kwargs: Any) -> None:
            from gridtokenx.client import Client, to_json

            url, json_out = kwargs.pop("node"), kwargs.pop("json_out")
            streaming = follow is not None and kwargs.pop("follow")
            bounds = Bounds.of(kwargs.pop("count", None), kwargs.pop("timeout", None), streaming)
            with Client(node_url(url)) as api:
                names = Names(api)
                if follow is not None and streaming:
                    follow(api, names, json_out, bounds, **kwargs)
                    return
                data = to_json(fetch(api, **kwargs))  # the SDK's typed results as JSON
                if json_out:
                    print_json(data)
                elif named is not None:
                    console.print(named(data, names))
                else:
                    console.print((render or generic)(data))

        extra = (NODE_OPTION, JSON_OPTION, *(FOLLOW_OPTIONS if follow else ()))
        expose(command, fetch, 1, extra)
        query_app.command(name)(command)
        return fetch

    return register


@query_command("balance", named=balance_view)
def query_balance(api: Client, who: AddressArg) -> Any:
    """GRID and THB balances (available), what the market holds (escrow), and the next nonce.

    Held THB is in open buy orders and unsettled purchases; held GRID is metered export
    locked until its interval settles. --json: the account record with `escrow` added.

    Example:  gridtokenx query balance gtx1...
    """
    return _balance(api, address_text(who))


def _balance(api: Client, address: str) -> dict[str, Any]:
    """The account record with what the market holds for it (`escrow`) beside it."""
    return {**api.get(f"/accounts/{address}"), "escrow": api.get(f"/accounts/{address}/escrow")}


def _account_view(data: dict[str, Any], names: Names) -> RenderableType:
    parts: list[RenderableType] = [balance_view(data["account"], names)]
    if data["participant"] is not None:
        parts.append(participant_record(data["participant"], names))
    parts += [meters_table(data["meters"]), licences_table(data["licences"], names)]
    owner = data["account"]["address"]
    parts.append(orders_view({"items": data["open_orders"]}, names, owner))
    return Group(*parts)


@query_command("account", named=_account_view)
def query_account(api: Client, who: AddressArg) -> Any:
    """Balances, participant record, meters, licences and open orders of one account.

    Example:  gridtokenx query account gtx1... --json
    """
    from gridtokenx.client import ApiError

    text = address_text(who)
    try:
        participant = api.get(f"/participants/{text}")
    except ApiError as exc:
        if exc.code != "NOT_FOUND":
            raise
        participant = None
    return {
        "account": _balance(api, text),
        "participant": participant,
        "meters": api.get("/meters", owner=text, limit=500)["items"],
        "licences": api.get("/licences", holder=text, limit=500)["items"],
        "open_orders": api.get("/orders", account=text, limit=500)["items"],
    }


LimitOpt = Annotated[int, typer.Option(min=1, max=500, help="records per page (1-500)")]
AfterOpt = Annotated[
    str | None, typer.Option(help="the page after this cursor", show_default=False)
]


@query_command("participant")
def query_participant(
    api: Client,
    who: Annotated[
        str | None,
        Arg(metavar="[ADDRESS]", help="one participant; all if omitted", show_default=False),
    ] = None,
    limit: LimitOpt = 100,
    after: AfterOpt = None,
) -> Any:
    """A participant's record (zone, kind, name, registering authority), or a page of all.

    Example:  gridtokenx query participant gtx1...
    """
    if who is not None:
        return api.get(f"/participants/{address_text(who)}")
    return api.get("/participants", limit=limit, after=after)


@query_command("meter")
def query_meter(
    api: Client,
    who: Annotated[str, Arg(metavar="ADDRESS", help="the meter's gtx... address")],
    readings: Annotated[bool, typer.Option(help="list its applied readings instead")] = False,
    limit: LimitOpt = 100,
    after: AfterOpt = None,
) -> Any:
    """A meter's record (owner, zone, kind, capacity, registers), or its readings.

    Example:  gridtokenx query meter gtx1... --readings
    """
    text = address_text(who)
    if readings:
        return api.get(f"/meters/{text}/readings", limit=limit, after=after)
    return api.get(f"/meters/{text}")


@query_command("licences", named=licences_view)
def query_licences(
    api: Client,
    holder: Annotated[
        str | None, typer.Option(help="only this holder's", show_default=False)
    ] = None,
    limit: LimitOpt = 100,
    after: AfterOpt = None,
) -> Any:
    """Licences: kind, valid now, expired or revoked, with Bangkok times.

    Example:  gridtokenx query licences --holder gtx1...
    """
    who = None if holder is None else address_text(holder)
    return api.get("/licences", holder=who, limit=limit, after=after)


def _orders_view(data: dict[str, Any], names: Names) -> RenderableType:
    if "items" not in data:
        return order_record(data, names, f"order {data['id']}")
    owners = {o["owner"] for o in data["items"]}
    return orders_view(data, names, owners.pop() if len(owners) == 1 else None)


@query_command("orders", named=_orders_view)
def query_orders(
    api: Client,
    account: Annotated[
        str | None, typer.Option(help="an account's open orders", show_default=False)
    ] = None,
    zone_code: Annotated[
        str | None,
        typer.Option("--zone", help="with --interval: one book's open orders", show_default=False),
    ] = None,
    interval: Annotated[
        str | None,
        typer.Option(help="interval start (unix or ISO with offset)", show_default=False),
    ] = None,
    order_id: Annotated[
        str | None,
        typer.Option("--id", help="one order by id (open or closed)", show_default=False),
    ] = None,
    limit: LimitOpt = 100,
    after: AfterOpt = None,
) -> Any:
    """Open orders of an account, or of one book (zone and interval), or one order by id.

    Examples:

        gridtokenx query orders --account gtx1...

        gridtokenx query orders --zone BKK --interval 2026-01-01T10:00+07:00
    """
    book = zone_code is not None or interval is not None
    if sum((account is not None, book, order_id is not None)) != 1:
        raise BadInput("give one of --account, --zone with --interval, or --id")
    if order_id is not None:
        return api.get(f"/orders/{count(order_id, 'order id')}")
    if account is not None:
        return api.get("/orders", account=address_text(account), limit=limit, after=after)
    if zone_code is None or interval is None:
        raise BadInput("--zone and --interval go together")
    start = unix_time(interval)
    return api.get("/orders", zone=zone(zone_code), interval=start, limit=limit, after=after)


@query_command("book", book_view, follow=follow_book)
def query_book(
    api: Client,
    zone_code: ZoneArg,
    interval: IntervalArg,
    levels: Annotated[int, typer.Option(min=1, max=500, help="price levels per side")] = 20,
) -> Any:
    """Order-book depth per price level, best first; --follow shows it again at each change.

    Examples:

        gridtokenx query book BKK 2026-01-01T10:00+07:00 --levels 5

        gridtokenx query book BKK 2026-01-01T10:00+07:00 --follow
    """
    code, start = zone(zone_code), unix_time(interval)
    return {"zone": code, "interval": start, **api.get(f"/book/{code}/{start}", levels=levels)}


@query_command("trades", named=trades_view, follow=follow_trades)
def query_trades(
    api: Client,
    interval: Annotated[
        str | None, typer.Option(help="one interval's trades, in order", show_default=False)
    ] = None,
    zone_code: Annotated[
        str | None, typer.Option("--zone", help="buyer or seller zone", show_default=False)
    ] = None,
    limit: LimitOpt = 50,
    after: AfterOpt = None,
) -> Any:
    """An interval's trades, or the latest trades newest first; --follow prints new ones.

    Delivery intervals in Bangkok time, energy sent in kWh, prices in THB/kWh, value in
    THB, path loss in %. --json prints the API's records (Wh, satang, unix seconds).

    Examples:

        gridtokenx query trades --zone BKK --limit 10

        gridtokenx query trades --follow --count 5
    """
    start = None if interval is None else unix_time(interval)
    code = None if zone_code is None else zone(zone_code)
    return api.get("/trades", interval=start, zone=code, limit=limit, after=after)


@query_command("trade", named=trade_view)
def query_trade(
    api: Client, trade_id: Annotated[str, Arg(metavar="ID", help="the trade's id")]
) -> Any:
    """One trade: both orders, zones and path, price, quantity, losses and settlement.

    Example:  gridtokenx query trade 42
    """
    from gridtokenx.client import ApiError

    found = api.get(f"/trades/{count(trade_id, 'trade id')}")
    orders = {side: api.get(f"/orders/{found[side]}") for side in ("buy_order", "sell_order")}
    try:
        settlement = api.get(f"/settlements/{found['interval_start']}")
    except ApiError as exc:
        if exc.code != "NOT_FOUND":
            raise
        settlement = None
    return {"trade": found, **orders, "settlement": settlement}


@query_command("blocks", named=blocks_view, follow=follow_blocks)
def query_blocks(api: Client, limit: LimitOpt = 20, after: AfterOpt = None) -> Any:
    """Block summaries newest first (height, Bangkok time, proposer, transactions, hash);
    --follow prints new blocks as they commit.

    Examples:

        gridtokenx query blocks --limit 5

        gridtokenx query blocks --follow --timeout 60
    """
    if after is not None:
        count(after, "--after")
    return api.get("/blocks", limit=limit, after=after)


@query_command("block")
def query_block(
    api: Client,
    which: Annotated[
        str, Arg(metavar="[HEIGHT|latest|HASH]", help="a height, latest, or a block hash")
    ] = "latest",
) -> Any:
    """A block: header, hash, transaction ids, end-of-block events and who signed it.

    Example:  gridtokenx query block 42
    """
    if which == "latest":
        return api.block()
    if re.fullmatch(r"[0-9a-fA-F]{64}", which):
        return api.get(f"/blocks/hash/{which}")
    height = count(which, "height")
    if height < 1:
        raise BadInput("heights start at 1")
    return api.block(height)


@query_command("tx", receipt_view)
def query_tx(
    api: Client, tx_hash: Annotated[str, Arg(metavar="HASH", help="the transaction id")]
) -> Any:
    """A transaction's status: pending, committed (height, index, events) or dropped (why).

    Example:  gridtokenx query tx 5be1...9c
    """
    return api.get(f"/txs/{hash_hex(tx_hash)}")


@query_command("validators", named=validators_view)
def query_validators(api: Client) -> Any:
    """The validator set by authority: power and share, jailed or active, pending changes.

    Example:  gridtokenx query validators
    """
    return api.get("/validators")


@query_command("health")
def query_health(api: Client) -> Any:
    """The node's height, latest block time, round, peers, mempool and whether it is halted.

    Example:  gridtokenx query health --node http://127.0.0.1:26851
    """
    return api.health()


@query_command("prices")
def query_prices(
    api: Client,
    zone_code: ZoneArg,
    start: Annotated[
        str | None,
        typer.Option(
            "--from", help="first interval (default: a day before --to)", show_default=False
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="end, exclusive (default: after the latest block's interval)",
            show_default=False,
        ),
    ] = None,
) -> Any:
    """Per interval: P2P volume and VWAP delivered into the zone, next to the TOU tariff.

    The buy-back rate is shown too; prices in satang/kWh, tariffs in milli-satang/kWh.

    Example:  gridtokenx query prices BKK --from 2026-01-01T00:00+07:00 --to 2026-01-02T00:00+07:00
    """
    code = zone(zone_code)
    first = None if start is None else unix_time(start)
    last = None if end is None else unix_time(end)
    length = int(api.get("/chain")["params"]["interval_seconds"])
    if last is None:
        last = (int(api.health()["latest_time"]) // length + 1) * length
    if first is None:
        first = max(last - 96 * length, 0)
    return api.get(f"/prices/{code}", **{"from": first, "to": last})


def _certificate_status(cert: dict[str, Any]) -> str:
    if not cert["retired"]:
        return "active"
    return f"retired {cert['retire_day']} for {cert['beneficiary']}"


def _certificates_view(data: dict[str, Any]) -> RenderableType:
    table = Table(title="certificates, newest first")
    for column in ("id", "source", "zone", "MWh", "kg CO2e", "issue day", "owner", "status"):
        table.add_column(column, overflow="fold")
    for cert in data["items"]:
        table.add_row(
            str(cert["id"]), cert["source"], cert["zone"], mwh(cert["energy_wh"]),
            kg(cert["avoided_g"]), str(cert["issue_day"]), cert["owner"],
            _certificate_status(cert),
        )  # fmt: skip
    return paged(table, data)


@query_command("certificates", _certificates_view)
def query_certificates(
    api: Client,
    who: AddressArg,
    retired: Annotated[bool, typer.Option("--retired", help="only retired ones")] = False,
    active: Annotated[bool, typer.Option("--active", help="only active ones")] = False,
    issued: Annotated[
        bool, typer.Option("--issued", help="those first issued to ADDRESS, not those it holds")
    ] = False,
    limit: LimitOpt = 100,
    after: AfterOpt = None,
) -> Any:
    """Certificates a participant holds (or was issued, --issued), newest first.

    A retired certificate stays with the owner that retired it. Energy in MWh, avoided
    emissions in kg CO2e.

    Example:  gridtokenx query certificates gtx1... --active
    """
    if retired and active:
        raise BadInput("give --retired or --active, not both")
    status = "retired" if retired else "active" if active else "all"
    text = address_text(who)
    if after is not None:
        count(after, "--after")
    if issued:
        return api.certificates(issued_to=text, status=status, limit=limit, after=after)
    return api.certificates(text, status=status, limit=limit, after=after)


def _certificate_view(cert: dict[str, Any]) -> RenderableType:
    shown = {
        **cert,
        "energy_wh": f"{mwh(cert['energy_wh'])} MWh ({cert['energy_wh']} Wh)",
        "avoided_g": f"{kg(cert['avoided_g'])} kg CO2e ({cert['avoided_g']} g)",
        "emission_factor_g_per_kwh": f"{cert['emission_factor_g_per_kwh']} g CO2e/kWh",
        "status": _certificate_status(cert),
    }
    return record_table(shown, f"certificate {cert['id']}")


@query_command("certificate", _certificate_view)
def query_certificate(api: Client, certificate_id: CertificateArg) -> Any:
    """One certificate: source, zone, meter, interval range, energy, avoided CO2e, owners.

    Example:  gridtokenx query certificate 12
    """
    return api.certificate(count(certificate_id, "certificate id"))


_CARBON_COLUMNS: Final = (
    ("issued MWh", "issued_wh", mwh),
    ("issued kg CO2e", "issued_avoided_g", kg),
    ("retired MWh", "retired_wh", mwh),
    ("retired kg CO2e", "retired_avoided_g", kg),
)


def _carbon_view(data: dict[str, Any]) -> RenderableType:
    who = data.get("participant") or data.get("zone")
    table = Table(title=f"certificate carbon of {who}, {data['from_day']}..{data['to_day']}")
    table.add_column("day")
    for name, _, _ in _CARBON_COLUMNS:
        table.add_column(name, justify="right")
    for row in [*data["days"], {**data, "day": "total"}]:
        table.add_row(str(row["day"]), *(show(row[field]) for _, field, show in _CARBON_COLUMNS))
    return table


@query_command("carbon", _carbon_view)
def query_carbon(
    api: Client,
    who: Annotated[
        str | None, Arg(metavar="[ADDRESS]", help="a participant", show_default=False)
    ] = None,
    zone_code: Annotated[
        str | None, typer.Option("--zone", help="a zone instead of a participant")
    ] = None,
    from_day: Annotated[
        str | None,
        typer.Option(help="first local day, YYYYMMDD (default: the latest block's)"),
    ] = None,
    to_day: Annotated[
        str | None, typer.Option(help="last local day, included (at most 366 days)")
    ] = None,
) -> Any:
    """Certificates issued and retired (MWh) and their avoided CO2e (kg), per local day.

    For a participant (issued to it, retired by it) or a zone (issued from its meters,
    retired from it). This is certificate carbon, not the P2P trade figure of /carbon.

    Example:  gridtokenx query carbon gtx1... --from-day 20260101 --to-day 20260131
    """
    if (who is None) == (zone_code is None):
        raise BadInput("give exactly one of a participant ADDRESS and --zone")
    first = None if from_day is None else local_date(from_day, "--from-day")
    last = None if to_day is None else local_date(to_day, "--to-day")
    if first is not None and last is not None and last < first:
        raise BadInput("--to-day is before --from-day")
    if zone_code is not None:
        return api.carbon(zone=zone(zone_code), from_day=first, to_day=last)
    return api.carbon(address_text(who or ""), from_day=first, to_day=last)


# --- governance and grid reads --------------------------------------------------------------
def _tally(p: dict[str, Any]) -> str:
    return f"{p['yes']}/{p['no']}/{p['abstain']} of {p['total_weight']}"


def _proposals_view(data: dict[str, Any]) -> RenderableType:
    table = Table(title="proposals, newest first")
    columns = ("id", "kind", "title", "status", "yes/no/abstain", "quorum/approval bp",
               "voting ends", "executes")  # fmt: skip
    for column in columns:
        table.add_column(column, overflow="fold")
    for p in data["items"]:
        table.add_row(
            str(p["id"]), p["kind"], p["title"], p["status"], _tally(p),
            f"{p['quorum_bp']}/{p['approval_bp']}", str(p["voting_end_height"]),
            str(p["execute_height"] or "-"),
        )  # fmt: skip
    return paged(table, data)


_PROPOSAL_STATUSES: Final = (
    "active", "closed", "voting", "passed", "rejected", "executed", "failed", "withdrawn",
)  # fmt: skip


@query_command("proposals", _proposals_view)
def query_proposals(
    api: Client,
    status: Annotated[
        str | None,
        typer.Option(help=f"only one status: {', '.join(_PROPOSAL_STATUSES)}", show_default=False),
    ] = None,
    limit: LimitOpt = 50,
    after: AfterOpt = None,
) -> Any:
    """Governance proposals, newest first, with their tallies and heights.

    Kind, title, status, yes/no/abstain weights against the quorum and approval (basis
    points) of the proposal's kind, the last voting height and the execution height.

    Example:  gridtokenx query proposals --status active
    """
    chosen = None
    if status is not None:
        if status.lower() not in _PROPOSAL_STATUSES:
            raise BadInput(f"--status {status!r}: expected one of {', '.join(_PROPOSAL_STATUSES)}")
        chosen = status.lower() if status.lower() in ("active", "closed") else status.upper()
    if after is not None:
        count(after, "--after")
    return api.proposals(chosen, limit=limit, after=after)


def _proposal_view(data: dict[str, Any]) -> RenderableType:
    shown = {k: v for k, v in data.items() if k not in ("actions", "ballots")}
    shown["tally"] = (
        f"{_tally(data)} (quorum {data['quorum_bp']} bp, approval {data['approval_bp']} bp)"
    )
    return Group(
        record_table(shown, f"proposal {data['id']}"),
        rows_table(data["actions"], "actions"),
        rows_table(data["ballots"], "ballots"),
    )


@query_command("proposal", _proposal_view)
def query_proposal(
    api: Client, proposal_id: Annotated[str, Arg(metavar="ID", help="the proposal's id")]
) -> Any:
    """One proposal with its actions, tally and every ballot.

    Example:  gridtokenx query proposal 3
    """
    return api.proposal(count(proposal_id, "proposal id"))


def _grid_view(data: dict[str, Any]) -> RenderableType:
    zones = Table(title="zones")
    for column in ("zone", "name", "halted", "generation kW", "demand kW", "load kW",
                   "headroom kW"):  # fmt: skip
        zones.add_column(column, overflow="fold")
    for z in data["zones"]:
        balance, dist = z.get("balance") or {}, z.get("distribution") or {}
        halt = f"yes: {z['halt']['reason'] or 'no reason'}" if z["halted"] else "no"
        zones.add_row(
            z["code"], z.get("name", ""), halt, cell(balance.get("generation_kw")),
            cell(balance.get("demand_kw")), cell(dist.get("load_kw")),
            cell(dist.get("headroom_kw")),
        )  # fmt: skip
    links = Table(title="interconnectors")
    for column in ("link", "capacity kW", "measured kW", "flow kW", "loss %"):
        links.add_column(column, justify="right")
    for link in data["interconnectors"]:
        measured = link.get("measured") or {}
        links.add_row(
            f"{link['zone_a']}-{link['zone_b']}", f"{link['capacity_kw']:,}",
            cell(measured.get("capacity_kw")), cell(measured.get("flow_kw")),
            percent(link["loss_basis_points"]),
        )  # fmt: skip
    frequency = data.get("frequency")
    line = (
        "frequency: not reported yet"
        if frequency is None
        else f"frequency: {hz(frequency['frequency_mhz'])} Hz "
        f"(reported by {frequency['reported_by']} at {frequency['measured_at']})"
    )
    return Group(line, zones, links)


@query_command("grid", _grid_view)
def query_grid(api: Client) -> Any:
    """Grid status: zones, interconnectors and EGAT's frequency.

    Each zone's halt, generation, demand, load and headroom (kW); each interconnector's
    capacity, measured capacity and flow (kW) and loss; the latest frequency (Hz).

    Example:  gridtokenx query grid --json
    """
    return api.get("/grid")
