"""`gridtokenx tx ...`: build a transaction from the command line, sign it here with a key
from the encrypted keystore (keys never leave the machine that runs the command), submit it
to a node's API through the SDK and wait for finality.

Everything on the command line is parsed before the key is opened or anything is sent: bad
input exits 2 with nothing submitted (cli.errors). Amounts carry their unit (cli.units).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

import msgspec
import typer

from gridtokenx.cli import keys, preflight
from gridtokenx.cli.args import (
    JSON_OPTION,
    NODE_OPTION,
    Arg,
    CertificateArg,
    ZoneArg,
    address,
    choice,
    expose,
    node_url,
    option,
    public_key,
    zone,
)
from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.render import console, events_table, print_json, receipt_view
from gridtokenx.cli.units import (
    count,
    energy_wh,
    loss_bp,
    money_satang,
    power_w,
    price_satang_per_kwh,
    unix_time,
)
from gridtokenx.wire import crypto, tx

if TYPE_CHECKING:
    from gridtokenx.client import Client, Receipt

KEY_ENV: Final = "GRIDTOKENX_KEY"

tx_app = typer.Typer(
    help="Sign a transaction locally with a key file and submit it to a node; waits for "
    "finality unless --no-wait. Amounts carry units: 1.5kWh, 1500Wh, 12.50THB, 450satang/kWh.",
    no_args_is_help=True,
)
order_app = typer.Typer(help="Place, cancel and amend market orders.", no_args_is_help=True)
tx_app.add_typer(order_app, name="order")


@dataclass(frozen=True)
class TxOptions:
    node: str
    key: Path
    wait: bool
    json_out: bool
    fee: str
    timeout: float
    allow_insecure: bool
    dry_run: bool
    check: bool


TX_OPTIONS: Final = (
    NODE_OPTION,
    option(
        "key",
        ...,
        Annotated[Path, typer.Option(envvar=KEY_ENV, help="the signer's key file", metavar="PATH")],
    ),
    option(
        "wait", True, Annotated[bool, typer.Option(help="wait for finality and show the outcome")]
    ),
    JSON_OPTION,
    option("fee", "0", Annotated[str, typer.Option(help="fee paid in THB, e.g. 1THB; 0 if free")]),
    option("timeout", 30.0, Annotated[float, typer.Option(help="seconds to wait for finality")]),
    option(
        "allow_insecure",
        False,
        Annotated[bool, typer.Option("--allow-insecure", help="accept an unencrypted dev key")],
    ),
    option(
        "dry_run",
        False,
        Annotated[
            bool,
            typer.Option(
                "--dry-run",
                help="try it against the node's current state and show the ledger's verdict; "
                "send nothing",
            ),
        ],
    ),
    option(
        "check",
        True,
        Annotated[
            bool,
            typer.Option(help="try it first and send nothing if the ledger would refuse it now"),
        ],
    ),
)

F = TypeVar("F", bound=Callable[..., Any])
ReadFirst = Callable[["Client", bytes], tx.Body]
"""A body that needs the chain first (the node's clock, a record): given the client and
the signer's address once the key is open."""


def tx_command(app: typer.Typer, name: str) -> Callable[[F], F]:
    """Register a function that turns its arguments into a transaction body as `tx NAME`,
    with the shared options: parse everything first (bad input exits 2 and sends nothing),
    then load the key, sign, submit and wait."""

    def register(build: F) -> F:
        def command(**kwargs: Any) -> None:
            from gridtokenx.client import Client

            options = TxOptions(**{p.name: kwargs.pop(p.name) for p in TX_OPTIONS})
            body = build(**kwargs)
            fee = money_satang(options.fee)
            url = node_url(options.node)
            if options.timeout <= 0:
                raise BadInput("--timeout must be positive")
            key, _ = keys.load(options.key, options.allow_insecure)
            with Client(url) as api:
                if callable(body):  # a body that needs a read first (delegate-vote ADDRESS)
                    body = body(api, key.address)
                submit(api, key, body, fee, options)

        expose(command, build, 0, TX_OPTIONS)
        app.command(name)(command)
        return build

    return register


def submit(api: Client, key: crypto.PrivateKey, body: tx.Body, fee: int, opt: TxOptions) -> None:
    """Sign with the signer's next nonce, try it (unless --no-check), submit, and show the
    hash or the final outcome; with --dry-run only try it and show the ledger's verdict."""
    from gridtokenx.client import ApiError, WouldBeRefused

    try:
        if opt.dry_run:
            dry_run(api, key, body, fee, opt.json_out)
            return
        tx_hash = api.send(key, body, fee, check=opt.check)
    except WouldBeRefused as exc:
        raise Refused(exc.code, preflight.explain(api, key.address, body, exc.simulation)) from None
    except ApiError as exc:
        if exc.code != "NOT_FOUND":  # the only lookup that can miss is the signer's account
            raise
        who = crypto.address_to_text(key.address)
        raise Refused(
            "UNKNOWN_SENDER", f"the signer {who} has no account: register it first"
        ) from None
    if not opt.wait:
        if opt.json_out:
            print_json({"hash": tx_hash, "status": "pending"})
        else:
            console.print(f"tx {tx_hash} submitted (pending)", soft_wrap=True)
        return
    receipt = api.wait(tx_hash, opt.timeout)  # a drop or timeout: stderr only, with the hash
    if opt.json_out:
        print_json(_receipt_json(receipt))
    else:
        console.print(f"tx {tx_hash}", soft_wrap=True)
        console.print(receipt_view(_receipt_json(receipt)))


def dry_run(api: Client, key: crypto.PrivateKey, body: tx.Body, fee: int, json_out: bool) -> None:
    """Sign (the nonce given back) and simulate: the verdict on stdout, exit 0 when the
    ledger would apply it, the ledger's code and a readable reason (exit 1) when not."""
    from gridtokenx.client import WouldBeRefused, to_json

    verdict = api.check(key, body, fee)
    if not verdict.ok:
        raise WouldBeRefused(verdict)
    events = to_json(verdict.events)
    if json_out:
        print_json({"hash": verdict.hash, "ok": True, "height": verdict.height,
                    "time": verdict.time, "events": events})  # fmt: skip
    else:
        console.print(f"dry run: tx {verdict.hash} would apply at height {verdict.height} "
                      "(nothing sent)", soft_wrap=True)  # fmt: skip
        console.print(events_table(events))


def _receipt_json(receipt: Receipt) -> dict[str, Any]:
    from gridtokenx.client import to_json

    return {
        "hash": receipt.hash,
        "status": receipt.status,
        "height": receipt.height,
        "index": receipt.index,
        "events": to_json(receipt.events),
    }


LicenceArg = Annotated[str, Arg(metavar="KIND", help="seller or custodian")]


@tx_command(tx_app, "transfer")
def transfer(
    asset: Annotated[
        str, Arg(metavar="ASSET", help="GRID (energy) or THB (baht)", show_default=False)
    ],
    to: Annotated[str, Arg(metavar="TO", help="the recipient's gtx... address")],
    amount: Annotated[
        str,
        Arg(
            metavar="AMOUNT",
            help="with its unit: 1.5kWh / 1500Wh for GRID, 12.50THB / 1250satang for THB",
        ),
    ],
) -> tx.Body:
    """Move GRID or THB to another account.

    Examples:

        gridtokenx tx transfer THB gtx1... 12.50THB --key alice.key

        gridtokenx tx transfer GRID gtx1... 1.5kWh --key alice.key --json
    """
    kind = choice(tx.Asset, asset, "asset")
    parse = energy_wh if kind is tx.Asset.GRID else money_satang
    return tx.Transfer(kind, address(to), parse(amount))


@tx_command(tx_app, "register-participant")
def register_participant(
    account: Annotated[str, Arg(metavar="ACCOUNT", help="the participant's gtx... address")],
    zone_code: ZoneArg,
    kind: Annotated[
        str,
        Arg(metavar="KIND", help="household, business, industrial, generator, retailer, custodian"),
    ],
    name: Annotated[str, Arg(metavar="NAME", help="display name (1-128 characters)")],
) -> tx.Body:
    """Register a participant in a zone (signed by the zone's distribution authority).

    Example:  gridtokenx tx register-participant gtx1... BKK household "Malee" --key mea.key
    """
    if not 1 <= len(name) <= 128:
        raise BadInput("the name must be 1-128 characters")
    return tx.RegisterParticipant(
        address(account), zone(zone_code), choice(tx.ParticipantKind, kind, "kind"), name
    )


@tx_command(tx_app, "register-meter")
def register_meter(
    meter_key: Annotated[
        str, Arg(metavar="METER_KEY", help="the meter's Ed25519 public key, 64 hex digits")
    ],
    owner: Annotated[str, Arg(metavar="OWNER", help="the owning participant's gtx... address")],
    zone_code: ZoneArg,
    kind: Annotated[
        str, Arg(metavar="KIND", help="solar, wind, hydro, biomass, consumption, cogeneration")
    ],
    capacity: Annotated[
        str, Arg(metavar="CAPACITY", help="rated capacity with its unit: 5kW or 5000W")
    ],
    import_register: Annotated[
        str, typer.Option(help="import register at installation, e.g. 1200kWh")
    ] = "0",
    export_register: Annotated[str, typer.Option(help="export register at installation")] = "0",
) -> tx.Body:
    """Register a smart meter for a participant (signed by the zone's distribution authority).

    Example:  gridtokenx tx register-meter 3f2a...e1 gtx1... BKK solar 5kW --key mea.key
    """
    return tx.RegisterMeter(
        public_key(meter_key),
        address(owner),
        zone(zone_code),
        choice(tx.MeterKind, kind, "meter kind"),
        power_w(capacity),
        energy_wh(import_register),
        energy_wh(export_register),
    )


@tx_command(tx_app, "grant-licence")
def grant_licence(
    holder: Annotated[str, Arg(metavar="HOLDER", help="the licensee's gtx... address")],
    kind: LicenceArg,
    expires: Annotated[
        str, typer.Option(help="unix seconds or ISO time with offset", show_default=False)
    ],
) -> tx.Body:
    """Grant a seller or custodian licence (signed by ERC).

    Example:

        gridtokenx tx grant-licence gtx1... custodian --expires 2027-01-01T00:00+07:00 \\
            --key erc.key
    """
    return tx.GrantLicence(
        address(holder), choice(tx.LicenceKind, kind, "licence"), unix_time(expires)
    )


@tx_command(tx_app, "revoke-licence")
def revoke_licence(
    holder: Annotated[str, Arg(metavar="HOLDER", help="the licensee's gtx... address")],
    kind: LicenceArg,
) -> tx.Body:
    """Revoke a licence (signed by ERC).

    Example:  gridtokenx tx revoke-licence gtx1... seller --key erc.key
    """
    return tx.RevokeLicence(address(holder), choice(tx.LicenceKind, kind, "licence"))


@tx_command(tx_app, "reading")
def reading(
    interval: Annotated[
        str,
        Arg(metavar="INTERVAL", help="interval start: unix seconds or ISO time with offset"),
    ] = "",
    import_total: Annotated[
        str, Arg(metavar="IMPORT", help="cumulative import register, e.g. 1200.5kWh")
    ] = "",
    export_total: Annotated[
        str, Arg(metavar="EXPORT", help="cumulative export register", show_default=False)
    ] = "",
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="the latest interval the ledger accepts, registers from the chain plus "
            "--imported/--exported (instead of INTERVAL IMPORT EXPORT)",
        ),
    ] = False,
    imported: Annotated[
        str, typer.Option(help="with --now: energy drawn (default 0, 1kWh on a consumption meter)")
    ] = "",
    exported: Annotated[
        str, typer.Option(help="with --now: energy exported (default half the rated output)")
    ] = "",
) -> tx.Body | ReadFirst:
    """Submit a meter reading: cumulative registers at the end of a 15-minute interval.

    The meter's own key signs it (--key is the meter's key file); GRID is minted from it.
    With --now the interval and registers are worked out from the chain (devnets, tests).

    Examples:

        gridtokenx tx reading 2026-01-01T08:00+07:00 0Wh 1.2kWh --key meter.key

        gridtokenx tx reading --now --exported 1kWh --key meter.key --allow-insecure
    """
    given = [interval, import_total, export_total]
    if now:
        if any(given):
            raise BadInput("give INTERVAL IMPORT EXPORT or --now, not both")
        more = tuple(None if v == "" else energy_wh(v) for v in (imported, exported))
        return lambda api, meter: preflight.reading_now(api, meter, *more)
    if not all(given):
        raise BadInput("give INTERVAL IMPORT EXPORT (cumulative registers), or --now")
    if imported or exported:
        raise BadInput("--imported and --exported go with --now")
    return tx.MeterReading(unix_time(interval), energy_wh(import_total), energy_wh(export_total))


@tx_command(tx_app, "issue-thb")
def issue_thb(
    to: Annotated[str, Arg(metavar="TO", help="the recipient's gtx... address")],
    amount: Annotated[str, Arg(metavar="AMOUNT", help="e.g. 1000THB or 100000satang")],
) -> tx.Body:
    """Issue THB against baht held in custody (signed by a licensed custodian).

    Example:  gridtokenx tx issue-thb gtx1... 1000THB --key custodian.key
    """
    return tx.IssueThb(address(to), money_satang(amount))


@tx_command(tx_app, "redeem-thb")
def redeem_thb(amount: Annotated[str, Arg(metavar="AMOUNT", help="e.g. 250THB")]) -> tx.Body:
    """Redeem THB for baht (signed by a licensed custodian, from its own balance).

    Example:  gridtokenx tx redeem-thb 250THB --key custodian.key
    """
    return tx.RedeemThb(money_satang(amount))


@tx_command(tx_app, "halt")
def halt(
    zone_code: ZoneArg,
    reason: Annotated[str, typer.Option(help="why, for the record (at most 128 characters)")] = "",
) -> tx.Body:
    """Halt matching in a zone (EGAT, or the zone's distribution authority).

    Example:  gridtokenx tx halt BKK --reason "feeder fault" --key egat.key
    """
    return _zone_halt(zone_code, True, reason)


@tx_command(tx_app, "resume")
def resume(
    zone_code: ZoneArg,
    reason: Annotated[str, typer.Option(help="why, for the record (at most 128 characters)")] = "",
) -> tx.Body:
    """Resume matching in a halted zone (EGAT, or the zone's distribution authority).

    Example:  gridtokenx tx resume BKK --key egat.key
    """
    return _zone_halt(zone_code, False, reason)


def _zone_halt(zone_code: str, halted: bool, reason: str) -> tx.Body:
    if len(reason) > 128:
        raise BadInput("--reason is at most 128 characters")
    return tx.SetZoneHalt(zone(zone_code), halted, reason)


# --- grid management (tags 15-18) ----------------------------------------------------------
ReasonOpt = Annotated[str, typer.Option(help="why, for the record (at most 128 characters)")]
ZonesArg = Annotated[list[str], Arg(metavar="ZONE...", help="one or more grid zones, e.g. BKK")]
MeasuredOpt = Annotated[
    str, typer.Option("--measured-at", help="measurement time, unix seconds (default: now)")
]


def _measured_at(text: str) -> int:
    return int(time.time()) if text == "" else count(text, "--measured-at")


def _grid_zones(zones: list[str], reason: str) -> tuple[tuple[str, ...], str]:
    if len(reason) > 128:
        raise BadInput("--reason is at most 128 characters")
    if not 1 <= len(zones) <= 16:
        raise BadInput("name 1 to 16 zones")
    return tuple(zone(z) for z in zones), reason


def _fields(text: str, what: str, shape: str) -> list[str]:
    parts = text.split(":")
    if len(parts) != shape.count(":") + 1:
        raise BadInput(f"{what} {text!r}: expected {shape}")
    return parts


def _link(text: str) -> tx.LinkStatus:
    pair, capacity, flow = _fields(text, "--link", "A-B:CAPACITY_KW:FLOW_KW")
    ends = pair.split("-")
    if len(ends) != 2:
        raise BadInput(f"--link {text!r}: expected A-B:CAPACITY_KW:FLOW_KW")
    magnitude = count(flow.removeprefix("-"), "flow kW")
    signed = -magnitude if flow.startswith("-") else magnitude
    return tx.LinkStatus(zone(ends[0]), zone(ends[1]), count(capacity, "capacity kW"), signed)


def _balance(text: str) -> tx.ZoneBalance:
    code, generation, demand = _fields(text, "--zone", "ZONE:GENERATION_KW:DEMAND_KW")
    return tx.ZoneBalance(
        zone(code), count(generation, "generation kW"), count(demand, "demand kW")
    )


@tx_command(tx_app, "grid-status")
def grid_status(
    frequency_mhz: Annotated[str, Arg(metavar="FREQUENCY_MHZ", help="e.g. 50012")],
    link: Annotated[
        list[str], typer.Option(help="A-B:CAPACITY_KW:FLOW_KW, flow positive A to B; repeatable")
    ] = [],  # noqa: B006 - typer reads the default, nothing mutates it
    zones: Annotated[
        list[str], typer.Option("--zone", help="ZONE:GENERATION_KW:DEMAND_KW; repeatable")
    ] = [],  # noqa: B006
    measured_at: MeasuredOpt = "",
) -> tx.Body:
    """Report EGAT's transmission status: frequency, interconnectors, zone balances.

    A capacity cut curtails the newest cross-zone trades that no longer fit; a frequency
    outside the governed band halts every zone.

    Example:  gridtokenx tx grid-status 50012 --link BKK-CEN:600000:-450000 --key egat.key
    """
    if len(link) > tx.MAX_GRID_ENTRIES or len(zones) > tx.MAX_GRID_ENTRIES:
        raise BadInput(f"at most {tx.MAX_GRID_ENTRIES} links and zones")
    return tx.TransmissionStatus(
        _measured_at(measured_at),
        count(frequency_mhz, "frequency mHz"),
        tuple(_link(x) for x in link),
        tuple(_balance(x) for x in zones),
    )


@tx_command(tx_app, "zone-status")
def zone_status(
    zone_code: ZoneArg,
    load_kw: Annotated[str, Arg(metavar="LOAD_KW", help="zone load in kW")],
    headroom_kw: Annotated[
        str, Arg(metavar="HEADROOM_KW", help="feeder/transformer headroom in kW")
    ],
    measured_at: MeasuredOpt = "",
) -> tx.Body:
    """Report a distribution zone's load and headroom (MEA for BKK, PEA for the others).

    The headroom caps P2P energy imported into the zone per interval.

    Example:  gridtokenx tx zone-status BKK 8200000 40000 --key mea.key
    """
    return tx.DistributionStatus(
        _measured_at(measured_at),
        zone(zone_code),
        count(load_kw, "load kW"),
        count(headroom_kw, "headroom kW"),
    )


@tx_command(tx_app, "emergency")
def emergency(zones: ZonesArg, reason: ReasonOpt = "") -> tx.Body:
    """Declare a grid emergency: matching halts in the zones at once (signed by EGAT).

    Example:  gridtokenx tx emergency CEN NTH --reason "N-1 contingency" --key egat.key
    """
    return tx.DeclareEmergency(*_grid_zones(zones, reason))


@tx_command(tx_app, "clear-emergency")
def clear_emergency(zones: ZonesArg, reason: ReasonOpt = "") -> tx.Body:
    """Clear a grid emergency and resume matching (EGAT, or the zones' distributor).

    Refused while EGAT's latest frequency is outside the governed band.

    Example:  gridtokenx tx clear-emergency BKK --key mea.key
    """
    return tx.ClearEmergency(*_grid_zones(zones, reason))


# --- governance (tags 21-24) ----------------------------------------------------------------
_PROPOSAL_KINDS = {
    "parameter": tx.ProposalKind.PARAMETER,
    "licence-policy": tx.ProposalKind.LICENCE_POLICY,
    "market-rule": tx.ProposalKind.MARKET_RULE,
    "emergency": tx.ProposalKind.EMERGENCY,
}


def _param_value(text: str) -> int | tuple[int, ...]:
    """An integer, or a comma-separated list of integers for tuple fields ("" is empty)."""
    try:
        if "," in text or text == "":
            return tuple(int(part) for part in text.split(",") if part.strip())
        return int(text)
    except ValueError:
        raise BadInput(f"{text!r} is not an integer or a comma-separated list of them") from None


def _title(title: str) -> str:
    if len(title) > 256:
        raise BadInput("--title is at most 256 characters")
    return title


@tx_command(tx_app, "propose-param")
def propose_param(
    name: Annotated[
        str, Arg(metavar="NAME", help="a Params field, or group.field: tariffs.ft_msat_per_kwh")
    ],
    value: Annotated[str, Arg(metavar="VALUE", help="an integer, or 20260413,20260414")],
    kind: Annotated[
        str, typer.Option(help="parameter, market-rule, licence-policy or emergency")
    ] = "parameter",
    title: Annotated[str, typer.Option(help="what the change is for")] = "",
) -> tx.Body:
    """Propose a change of one governed parameter (signed by an authority).

    Market fields need --kind market-rule, small_prosumer_threshold_w --kind licence-policy.

    Example:  gridtokenx tx propose-param min_fee_satang 50 --key egat.key
    """
    if kind not in _PROPOSAL_KINDS:
        raise BadInput(f"--kind must be one of {', '.join(_PROPOSAL_KINDS)}")
    change = tx.ParamChange(name, _param_value(value))
    return tx.SubmitProposal(_PROPOSAL_KINDS[kind], (change,), _title(title))


EmergencyOpt = Annotated[
    bool,
    typer.Option(
        "--emergency", help="an EMERGENCY proposal: short vote and timelock (EGAT or ERC only)"
    ),
]


def _validator_proposal(action: tx.Action, emergency: bool, title: str) -> tx.Body:
    """The validator set changes only by a vote: a VALIDATOR proposal, or an emergency."""
    kind = tx.ProposalKind.EMERGENCY if emergency else tx.ProposalKind.VALIDATOR
    return tx.SubmitProposal(kind, (action,), _title(title))


@tx_command(tx_app, "propose-validator")
def propose_validator(
    validator_key: Annotated[
        str, Arg(metavar="PUBLIC_KEY", help="the validator's public key, 64 hex digits")
    ],
    power: Annotated[
        str, Arg(metavar="POWER", help=f"voting power 0-{tx.MAX_TOTAL_POWER}; 0 removes it")
    ],
    emergency: EmergencyOpt = False,
    title: Annotated[str, typer.Option(help="what the change is for")] = "",
) -> tx.Body:
    """Propose adding, re-weighting or removing a validator, decided by a vote.

    If the vote passes, the change executes by itself at the end of the timelock and is in
    force two heights later. Refused at once if it could not execute now.

    Example:  gridtokenx tx propose-validator 3f2a...e1 6000 --key egat.key
    """
    value = count(power, "power")
    if value > tx.MAX_TOTAL_POWER:
        raise BadInput(f"power {value} is above the cap {tx.MAX_TOTAL_POWER}")
    action = tx.ValidatorChange(public_key(validator_key), value)
    return _validator_proposal(action, emergency, title)


@tx_command(tx_app, "propose-unjail")
def propose_unjail(
    validator: Annotated[str, Arg(metavar="ADDRESS", help="the jailed validator's gtx... address")],
    emergency: EmergencyOpt = False,
    title: Annotated[str, typer.Option(help="what the change is for")] = "",
) -> tx.Body:
    """Propose letting a validator jailed for equivocation count again, decided by a vote.

    Refused at once if the address is not a jailed validator.

    Example:  gridtokenx tx propose-unjail gtx1... --emergency --key erc.key
    """
    return _validator_proposal(tx.ValidatorUnjail(address(validator)), emergency, title)


@tx_command(tx_app, "vote")
def vote(
    proposal_id: Annotated[str, Arg(metavar="PROPOSAL_ID", help="the proposal's id")],
    vote_choice: Annotated[str, Arg(metavar="CHOICE", help="yes, no, abstain or veto")],
) -> tx.Body:
    """Vote on a proposal with the signing authority's governance weight.

    Example:  gridtokenx tx vote 1 yes --key mea.key
    """
    return tx.CastVote(
        count(proposal_id, "proposal id"), choice(tx.VoteChoice, vote_choice, "choice")
    )


@tx_command(tx_app, "withdraw-proposal")
def withdraw_proposal(
    proposal_id: Annotated[str, Arg(metavar="PROPOSAL_ID", help="the proposal's id")],
) -> tx.Body:
    """Withdraw the signer's own proposal while voting is open.

    Example:  gridtokenx tx withdraw-proposal 1 --key egat.key
    """
    return tx.WithdrawProposal(count(proposal_id, "proposal id"))


@tx_command(tx_app, "propose-interconnector")
def propose_interconnector(
    zone_a: Annotated[str, Arg(metavar="ZONE_A", help="one end, e.g. CEN")],
    zone_b: Annotated[str, Arg(metavar="ZONE_B", help="the other end, e.g. BKK")],
    capacity: Annotated[str, Arg(metavar="CAPACITY", help="rated capacity, e.g. 800MW")],
    loss: Annotated[str, Arg(metavar="LOSS", help="loss factor, e.g. 1.5% or 150bp")],
    title: Annotated[str, typer.Option(help="what the change is for")] = "",
) -> tx.Body:
    """Propose re-rating an interconnector (capacity and loss) or building a new one.

    Example:  gridtokenx tx propose-interconnector NTH NEA 300MW 2.5% --key egat.key
    """
    a, b = zone(zone_a), zone(zone_b)
    if a == b:
        raise BadInput(f"an interconnector joins two different zones, not {a} to itself")
    watts = power_w(capacity)
    if watts % 1000:
        raise BadInput(f"{capacity!r}: capacities are whole kW")
    action = tx.InterconnectorChange(a, b, watts // 1000, loss_bp(loss))
    return tx.SubmitProposal(tx.ProposalKind.PARAMETER, (action,), _title(title))


@tx_command(tx_app, "delegate-vote")
def delegate_vote(
    delegate: Annotated[
        str, Arg(metavar="CODE|ADDRESS", help="the delegate authority: EGAT, or its gtx... address")
    ] = "",
    clear: Annotated[bool, typer.Option("--clear", help="end the signer's delegation")] = False,
) -> tx.Body | ReadFirst:
    """Let another authority's votes carry the signer's governance weight, or --clear it.

    The signer's own vote on a proposal always overrides what its delegate cast for it.

    Examples:

        gridtokenx tx delegate-vote EGAT --key nepo.key

        gridtokenx tx delegate-vote --clear --key nepo.key
    """
    if clear == bool(delegate):
        raise BadInput("give the delegate (CODE or ADDRESS) or --clear, not both or neither")
    if clear:
        return tx.DelegateVote("")
    if not delegate.startswith("gtx"):
        if not re.fullmatch(r"[A-Za-z0-9]{1,16}", delegate):
            raise BadInput(f"delegate {delegate!r}: expected an authority code or a gtx... address")
        return tx.DelegateVote(delegate.upper())
    wanted = crypto.address_to_text(address(delegate))

    def by_address(api: Client, signer: bytes) -> tx.Body:
        codes = {a: code for code, a in api.get("/governance")["authorities"].items()}
        if wanted not in codes:
            raise Refused("INVALID_DELEGATE", f"{wanted} is not an authority")
        return tx.DelegateVote(codes[wanted])

    return by_address


@tx_command(order_app, "place")
def order_place(
    side: Annotated[str, Arg(metavar="SIDE", help="buy or sell")],
    zone_code: ZoneArg,
    interval: Annotated[
        str,
        Arg(
            metavar="INTERVAL",
            help="interval start: next, next+N, unix seconds or ISO time with offset",
        ),
    ],
    quantity: Annotated[
        str, Arg(metavar="QUANTITY", help="energy with its unit: 1.5kWh or 1500Wh")
    ],
    price: Annotated[
        str, Arg(metavar="PRICE", help="limit (or protection) price: 4.5THB/kWh or 450satang/kWh")
    ],
    kind: Annotated[str, typer.Option(help="limit or market")] = "limit",
    tif: Annotated[str, typer.Option(help="gtg (good till gate), ioc or fok")] = "gtg",
    renewable_only: Annotated[bool, typer.Option(help="buy only from renewable meters")] = False,
) -> tx.Body | ReadFirst:
    """Place an order for energy delivered in one 15-minute interval in one zone.

    INTERVAL `next` is the first interval still open for orders by the chain's clock,
    `next+N` the Nth after it.

    Examples:

        gridtokenx tx order place sell BKK next 1.5kWh 4THB/kWh --key home.key

        gridtokenx tx order place buy BKK 2026-01-01T10:00+07:00 500Wh 420satang/kWh --tif ioc \
            --key office.key
    """
    order = tx.PlaceOrder(
        choice(tx.Side, side, "side"),
        zone(zone_code),
        0 if preflight.is_relative(interval) else unix_time(interval),
        energy_wh(quantity),
        price_satang_per_kwh(price),
        choice(tx.OrderKind, kind, "--kind"),
        choice(tx.TimeInForce, tif, "--tif"),
        renewable_only,
    )
    if not preflight.is_relative(interval):
        return order
    return lambda api, signer: msgspec.structs.replace(
        order, interval_start=preflight.relative_interval(api, interval)
    )


@tx_command(order_app, "cancel")
def order_cancel(
    order_id: Annotated[str, Arg(metavar="ORDER_ID", help="the order's id")],
) -> tx.Body:
    """Cancel an open order of the signer's.

    Example:  gridtokenx tx order cancel 42 --key home.key
    """
    return tx.CancelOrder(count(order_id, "order id"))


@tx_command(order_app, "amend")
def order_amend(
    order_id: Annotated[str, Arg(metavar="ORDER_ID", help="the order's id")],
    quantity: Annotated[str, Arg(metavar="QUANTITY", help="new total quantity: 1kWh or 1000Wh")],
    price: Annotated[
        str, Arg(metavar="PRICE", help="new limit price: 4.2THB/kWh or 420satang/kWh")
    ],
) -> tx.Body:
    """Amend an open order's quantity and price.

    Lowering only the quantity keeps the order's place in the queue.

    Example:  gridtokenx tx order amend 42 1kWh 4.2THB/kWh --key home.key
    """
    return tx.AmendOrder(
        count(order_id, "order id"), energy_wh(quantity), price_satang_per_kwh(price)
    )


# --- certificates (tags 19-20) and their carbon ---------------------------------------------


@tx_command(tx_app, "transfer-certificate")
def transfer_certificate(
    certificate_id: CertificateArg,
    to: Annotated[str, Arg(metavar="ADDRESS", help="the new holder's gtx... address")],
) -> tx.Body:
    """Hand an active renewable energy certificate (1 MWh) to another participant.

    Example:  gridtokenx tx transfer-certificate 12 gtx1... --key farm.key
    """
    return tx.TransferCertificate(count(certificate_id, "certificate id"), address(to))


@tx_command(tx_app, "retire-certificate")
def retire_certificate(
    certificate_id: CertificateArg,
    beneficiary: Annotated[
        str, typer.Option(help="whom the claim is for, e.g. a company and reporting year")
    ],
) -> tx.Body:
    """Retire a held certificate: claim its MWh and avoided CO2e for a beneficiary, for good.

    Example:  gridtokenx tx retire-certificate 12 --beneficiary "Siam Office, Scope 2 2026" \\
        --key office.key
    """
    if not beneficiary.strip() or not beneficiary.isprintable():
        raise BadInput("--beneficiary must be printable text, not blank")
    return tx.RetireCertificate(count(certificate_id, "certificate id"), beneficiary)
