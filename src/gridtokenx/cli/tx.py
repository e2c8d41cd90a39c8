"""The command line as a client of a node's API: `gridtokenx tx ...`, `gridtokenx query ...`
and `gridtokenx keys import/list`, all on top of the SDK (`gridtokenx.client`).

Transactions are built and signed here with a key from the encrypted keystore, so keys never
leave the machine that runs the command. Amounts on the command line always carry their
unit (`1.5kWh`, `1500Wh`, `12.50THB`, `450satang/kWh`): the ledger counts whole Wh and
satang, and a bare number could mean either a unit or a thousand of them, so it is refused
(only `0` needs no unit). Times are unix seconds or ISO 8601 with an explicit offset, since
a naive local time means something different on every machine.

Every failure is one line on stderr, `error: CODE: message`, with the API's or ledger's
stable code where there is one, and exit status 2 for bad input (nothing was sent) or 1
for a refusal, a timeout or an unreachable node. Never a traceback: a script branches on
the status and the code, a person reads the message.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn, TypeVar

import httpx
import orjson
import typer
from rich.console import Console, Group, RenderableType
from rich.table import Table

from gridtokenx.client import ApiError, Client, FinalityTimeout, Receipt, TxDropped
from gridtokenx.node import keystore
from gridtokenx.wire import crypto, tx

NODE_ENV: Final = "GRIDTOKENX_NODE"
KEY_ENV: Final = "GRIDTOKENX_KEY"
PASSPHRASE_ENV: Final = "GRIDTOKENX_PASSPHRASE"
DEFAULT_NODE: Final = "http://127.0.0.1:26850"
DEFAULT_KEYS_DIR: Final = Path("~/.gridtokenx/keys")
U64_MAX: Final = 2**63 - 1
EXIT_BAD_INPUT: Final = 2
EXIT_REFUSED: Final = 1

console = Console()
E = TypeVar("E", bound=IntEnum)


class BadInput(Exception):
    """Input the command refuses before anything reaches the node (exit 2)."""


class Refused(Exception):
    """A refusal the command decides itself, with a stable code (exit 1)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- parsing: units, times, identities --------------------------------------------------
_QUANTITY: Final = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z/%]+)\s*$")
ENERGY_UNITS: Final = {"wh": 1, "kwh": 1_000, "mwh": 1_000_000, "grid": 1_000}
MONEY_UNITS: Final = {"satang": 1, "thb": 100, "baht": 100}
PRICE_UNITS: Final = {"satang/kwh": 1, "thb/kwh": 100, "baht/kwh": 100}
POWER_UNITS: Final = {"w": 1, "kw": 1_000, "mw": 1_000_000}
LOSS_UNITS: Final = {"bp": 1, "%": 100}


def _quantity(text: str, units: dict[str, int], base: str, example: str) -> int:
    """An integer count of `base` units from a number and an explicit unit, exactly (no
    floats): `1.5kWh` is 1500 Wh, `1.0005kWh` is refused because it is not whole Wh."""
    if text.strip() == "0":
        return 0
    found = _QUANTITY.match(text) if len(text) <= 40 else None
    if found is None or found.group(2).lower() not in units:
        names = ", ".join(units)
        raise BadInput(f"{text!r}: expected a number with a unit ({names}), e.g. {example}")
    value = Fraction(found.group(1)) * units[found.group(2).lower()]
    if value.denominator != 1:
        raise BadInput(f"{text!r} is not a whole number of {base}")
    if value > U64_MAX:
        raise BadInput(f"{text!r} is too large (at most {U64_MAX} {base})")
    return int(value)


def energy_wh(text: str) -> int:
    return _quantity(text, ENERGY_UNITS, "Wh", "1.5kWh or 1500Wh")


def money_satang(text: str) -> int:
    return _quantity(text, MONEY_UNITS, "satang", "12.50THB or 1250satang")


def price_satang_per_kwh(text: str) -> int:
    return _quantity(text, PRICE_UNITS, "satang/kWh", "4.5THB/kWh or 450satang/kWh")


def power_w(text: str) -> int:
    return _quantity(text, POWER_UNITS, "W", "5kW or 5000W")


def loss_bp(text: str) -> int:
    value = _quantity(text, LOSS_UNITS, "basis points", "2.5% or 250bp")
    if value >= 10_000:
        raise BadInput(f"{text!r}: a loss must be below 100%")
    return value


def unix_time(text: str) -> int:
    """Unix seconds, or ISO 8601 with an offset (`2026-01-01T08:00+07:00`, `...Z`)."""
    if text.isdigit() and len(text) <= 19:
        return _u64(int(text), text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{text!r}: expected unix seconds or ISO 8601 time") from None
    if when.tzinfo is None:
        raise BadInput(f"{text!r} has no UTC offset: add one, e.g. {text}+07:00 for Bangkok")
    if when.microsecond:
        raise BadInput(f"{text!r}: times are whole seconds")
    return _u64(int(when.timestamp()), text)


def _u64(value: int, text: str) -> int:
    if not 0 <= value <= U64_MAX:
        raise BadInput(f"{text!r} is out of range (0 to {U64_MAX})")
    return value


def count(text: str, what: str) -> int:
    if not text.isdigit() or len(text) > 19:
        raise BadInput(f"{what} {text!r} must be a non-negative integer")
    return _u64(int(text), text)


def address(text: str) -> bytes:
    try:
        return crypto.address_from_text(text)
    except crypto.InvalidAddress as exc:
        raise BadInput(f"address {text[:64]!r}: {exc}") from None


def public_key(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != crypto.PUBLIC_KEY_SIZE:
        raise BadInput(
            f"public key {text[:80]!r}: expected {2 * crypto.PUBLIC_KEY_SIZE} hex digits"
        )
    return raw


def zone(text: str) -> str:
    code = text.upper()
    if not re.fullmatch(r"[A-Z]{2,8}", code):
        raise BadInput(f"zone {text!r}: expected a zone code of 2-8 letters, e.g. BKK")
    return code


_ALIASES: Final = {"GTG": "GOOD_TILL_GATE", "IOC": "IMMEDIATE_OR_CANCEL", "FOK": "FILL_OR_KILL"}


def choice(kind: type[E], text: str, what: str) -> E:
    name = text.upper().replace("-", "_")
    try:
        return kind[_ALIASES.get(name, name)]
    except KeyError:
        names = ", ".join(m.name.lower().replace("_", "-") for m in kind)
        raise BadInput(f"{what} {text!r}: expected one of {names}") from None


def seed_from_hex(text: str) -> bytes:
    """An Ed25519 private key as hex: the 32-byte seed, or libsodium's 64-byte secret key
    (seed then public key, checked to match)."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise BadInput("the private key is not hex") from None
    if len(raw) == 2 * crypto.SEED_SIZE:
        if crypto.PrivateKey(raw[: crypto.SEED_SIZE]).public_key != raw[crypto.SEED_SIZE :]:
            raise BadInput("the 64-byte key's second half is not the public key of its seed")
        raw = raw[: crypto.SEED_SIZE]
    if len(raw) != crypto.SEED_SIZE:
        raise BadInput(f"the private key must be {crypto.SEED_SIZE} bytes (64 hex digits)")
    return raw


# --- failures: one line on stderr, a code, an exit status --------------------------------
def _fail(code: str, message: str, status: int) -> NoReturn:
    print(f"error: {code}: {' '.join(message.split())}", file=sys.stderr)
    raise typer.Exit(status)


@contextlib.contextmanager
def reported(node: str = "") -> Iterator[None]:
    """Turn every failure into `error: CODE: message` and its exit status."""
    try:
        yield
    except BadInput as exc:
        _fail("BAD_INPUT", str(exc), EXIT_BAD_INPUT)
    except Refused as exc:
        _fail(exc.code, str(exc), EXIT_REFUSED)
    except ApiError as exc:
        bad = exc.code == "INVALID_REQUEST"
        _fail(exc.code, exc.message, EXIT_BAD_INPUT if bad else EXIT_REFUSED)
    except TxDropped as exc:
        _fail(exc.reason, f"transaction {exc.tx_hash} was dropped", EXIT_REFUSED)
    except FinalityTimeout as exc:
        _fail("FINALITY_TIMEOUT", str(exc), EXIT_REFUSED)
    except keystore.KeystoreError as exc:
        _fail("KEYSTORE", str(exc), EXIT_REFUSED)
    except httpx.HTTPError as exc:
        _fail("UNREACHABLE", f"{node or 'the node'}: {exc or type(exc).__name__}", EXIT_REFUSED)
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # the promise is no traceback, whatever went wrong
        _fail("UNEXPECTED", f"{type(exc).__name__}: {exc}", EXIT_REFUSED)


def node_url(text: str) -> str:
    if not re.match(r"^https?://[^/\s]+", text):
        raise BadInput(f"--node {text!r}: expected http://HOST:PORT, e.g. {DEFAULT_NODE}")
    return text


# --- keys ---------------------------------------------------------------------------------
def passphrase(confirm: bool) -> str:
    """From the environment for scripts, else prompted without echo; never a prompt that a
    script without a terminal would hang on."""
    value = os.environ.get(PASSPHRASE_ENV, "")
    if value:
        return value
    if not sys.stdin.isatty():
        raise Refused("NO_PASSPHRASE", f"set {PASSPHRASE_ENV} or run in a terminal to be asked")
    return str(typer.prompt("passphrase", hide_input=True, confirmation_prompt=confirm))


def key_header(path: Path) -> dict[str, Any] | None:
    """The readable header of a keystore file, or None for anything that is not one."""
    try:
        document = orjson.loads(path.read_bytes()[:65_536])
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(document, dict) or document.get("version") != keystore.VERSION:
        return None
    return document if isinstance(document.get("address"), str) else None


def load_signing_key(path: Path, allow_insecure: bool) -> crypto.PrivateKey:
    header = key_header(path) if path.is_file() else None
    if header is None:
        raise BadInput(f"--key {path}: not a key file (create one with `gridtokenx keys new`)")
    if header.get("insecure") is True:
        if not allow_insecure:
            raise Refused("INSECURE_KEY", f"{path} is an unencrypted dev key: --allow-insecure")
        return keystore.load_key(path, "", allow_insecure=True)
    return keystore.load_key(path, passphrase(confirm=False))


def keys_import(
    path: Annotated[Path, typer.Argument(help="the new key file (never overwritten)")],
    private_key_hex: Annotated[
        str | None,
        typer.Option(help="the 32-byte seed in hex (visible in shell history: prefer a file)"),
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option(help="a file holding the hex seed; - reads standard input")
    ] = None,
) -> None:
    """Save an existing Ed25519 key encrypted under a passphrase (argon2id).

    Examples:

        gridtokenx keys import alice.key --from-file seed.hex

        echo $SEED | gridtokenx keys import alice.key --from-file -
    """
    with reported():
        if (private_key_hex is None) == (from_file is None):
            raise BadInput("give exactly one of --private-key-hex and --from-file")
        if from_file is None:
            text = private_key_hex or ""
        elif str(from_file) == "-":
            text = sys.stdin.read(4096)
        else:
            try:
                text = from_file.read_text()[:4096]
            except OSError as exc:
                raise BadInput(f"cannot read {from_file}: {exc.strerror or exc}") from None
        key = crypto.PrivateKey(seed_from_hex(text))
        if path.exists():
            raise Refused("KEY_EXISTS", f"{path} exists; choose a new file")
        keystore.save_key(path, key, passphrase(confirm=True))
        console.print(f"{crypto.address_to_text(key.address)}  imported to {path}", soft_wrap=True)


def keys_list(
    directory: Annotated[
        Path | None, typer.Argument(help="default ~/.gridtokenx/keys", show_default=False)
    ] = None,
    dir_option: Annotated[
        Path | None, typer.Option("--dir", help="the same as DIR", show_default=False)
    ] = None,
    decrypt: Annotated[
        bool, typer.Option(help="decrypt encrypted files (passphrase) to show public keys")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Address, public key and insecure flag of every key file in a directory.

    An encrypted file keeps its public key inside the ciphertext, so its public key shows
    only with --decrypt; a file that does not open is listed with why.

    Example:  gridtokenx keys list ./keys --decrypt
    """
    with reported():
        if directory is not None and dir_option is not None:
            raise BadInput("give DIR or --dir, not both")
        folder = (directory or dir_option or DEFAULT_KEYS_DIR).expanduser()
        if not folder.is_dir():
            raise BadInput(f"{folder} is not a directory")
        secret = passphrase(confirm=False) if decrypt else ""
        rows = [
            _key_row(path, header, decrypt, secret)
            for path in sorted(folder.iterdir())
            if path.is_file() and (header := key_header(path)) is not None
        ]
        if json_out:
            print_json(rows)
            return
        table = Table(title=f"keys in {folder}")
        for column in ("file", "address", "public key", "insecure"):
            table.add_column(column, overflow="fold")
        for row in rows:
            shown = row["public_key"] or row.get("note", "")
            table.add_row(row["file"], row["address"], shown, "yes" if row["insecure"] else "no")
        console.print(table)


def _key_row(path: Path, header: dict[str, Any], decrypt: bool, secret: str) -> dict[str, Any]:
    insecure = header.get("insecure") is True
    row: dict[str, Any] = {
        "file": path.name,
        "address": header["address"],
        "public_key": None,
        "insecure": insecure,
    }
    if insecure or decrypt:
        try:
            key = keystore.load_key(path, secret, allow_insecure=True)
            row["public_key"] = key.public_key.hex()
        except keystore.KeystoreError as exc:
            row["note"] = str(exc)
    else:
        row["note"] = "(encrypted: --decrypt shows it)"
    return row


# --- output -------------------------------------------------------------------------------
def print_json(data: Any) -> None:
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _cell(value: Any) -> str:
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
        table.add_row(*(_cell(record.get(name)) for name in columns))
    if not items:
        table.caption = "(none)"
    return table


def record_table(data: dict[str, Any], title: str = "") -> Table:
    table = Table(title=title or None, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in _flat(data):
        table.add_row(name, _cell(value))
    return table


def generic(data: Any, title: str = "") -> RenderableType:
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        table = rows_table(data["items"], title)
        if data.get("next"):
            table.caption = f"more: --after {data['next']}"
        return table
    if isinstance(data, list):
        return rows_table(data, title)
    if isinstance(data, dict):
        return record_table(data, title)
    return _cell(data)


def events_table(events: list[dict[str, Any]]) -> Table:
    table = Table(title="events")
    table.add_column("kind")
    table.add_column("attributes", overflow="fold")
    for event in events:
        attrs = event.get("attrs") or {}
        table.add_row(str(event.get("kind")), " ".join(f"{k}={_cell(v)}" for k, v in attrs.items()))
    return table


def receipt_view(receipt: dict[str, Any]) -> RenderableType:
    status = receipt["status"]
    if status == "committed":
        line = f"committed at height {receipt['height']} (index {receipt['index']})"
        return Group(line, events_table(receipt.get("events", [])))
    reason = f": {receipt['reason']}" if receipt.get("reason") else ""
    return f"{status}{reason}"


def kwh(wh: int) -> str:
    """Wh as kWh, exactly (no float rounding): 1500 -> 1.5."""
    return f"{wh // 1000:,}.{wh % 1000:03d}".rstrip("0").rstrip(".")


def thb(satang: int) -> str:
    return f"{satang // 100:,}.{satang % 100:02d}"


# --- tx -----------------------------------------------------------------------------------
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


def _option(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    kind = inspect.Parameter.KEYWORD_ONLY
    return inspect.Parameter(name, kind, default=default, annotation=annotation)


NODE_OPTION: Final = _option(
    "node",
    DEFAULT_NODE,
    Annotated[str, typer.Option(envvar=NODE_ENV, help="the node's API URL")],
)
JSON_OPTION: Final = _option(
    "json_out", False, Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")]
)
TX_OPTIONS: Final = (
    NODE_OPTION,
    _option(
        "key",
        ...,
        Annotated[Path, typer.Option(envvar=KEY_ENV, help="the signer's key file", metavar="PATH")],
    ),
    _option(
        "wait", True, Annotated[bool, typer.Option(help="wait for finality and show the outcome")]
    ),
    JSON_OPTION,
    _option("fee", "0", Annotated[str, typer.Option(help="fee paid in THB, e.g. 1THB; 0 if free")]),
    _option("timeout", 30.0, Annotated[float, typer.Option(help="seconds to wait for finality")]),
    _option(
        "allow_insecure",
        False,
        Annotated[bool, typer.Option("--allow-insecure", help="accept an unencrypted dev key")],
    ),
)
QUERY_OPTIONS: Final = (NODE_OPTION, JSON_OPTION)

F = TypeVar("F", bound=Callable[..., Any])


def _expose(
    command: Callable[..., None],
    inner: Callable[..., Any],
    drop: int,
    extra: tuple[inspect.Parameter, ...],
) -> None:
    """Give `command` the parameters typer should offer: `inner`'s own (less the first
    `drop`, which the command supplies) followed by the shared options."""
    own = list(inspect.signature(inner, eval_str=True).parameters.values())[drop:]
    command.__signature__ = inspect.Signature([*own, *extra])  # type: ignore[attr-defined]
    command.__doc__ = inner.__doc__


def tx_command(app: typer.Typer, name: str) -> Callable[[F], F]:
    """Register a function that turns its arguments into a transaction body as `tx NAME`,
    with the shared options: parse everything first (bad input exits 2 and sends nothing),
    then load the key, sign, submit and wait."""

    def register(build: F) -> F:
        def command(**kwargs: Any) -> None:
            options = TxOptions(**{p.name: kwargs.pop(p.name) for p in TX_OPTIONS})
            with reported(options.node):
                body = build(**kwargs)
                fee = money_satang(options.fee)
                url = node_url(options.node)
                if options.timeout <= 0:
                    raise BadInput("--timeout must be positive")
                key = load_signing_key(options.key, options.allow_insecure)
                with Client(url) as api:
                    if callable(body):  # a body that needs a read first (delegate-vote ADDRESS)
                        body = body(api)
                    submit(api, key, body, fee, options)

        _expose(command, build, 0, TX_OPTIONS)
        app.command(name)(command)
        return build

    return register


def submit(api: Client, key: crypto.PrivateKey, body: tx.Body, fee: int, opt: TxOptions) -> None:
    try:
        tx_hash = api.send(key, body, fee)
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
    if not opt.json_out:
        console.print(f"tx {tx_hash}", soft_wrap=True)
    receipt = api.wait(tx_hash, opt.timeout)
    if opt.json_out:
        print_json(_receipt_json(receipt))
    else:
        console.print(receipt_view(_receipt_json(receipt)))


def _receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "hash": receipt.hash,
        "status": receipt.status,
        "height": receipt.height,
        "index": receipt.index,
        "events": receipt.events,
    }


Arg = typer.Argument
ZoneArg = Annotated[str, Arg(metavar="ZONE", help="grid zone, e.g. BKK")]
IntervalArg = Annotated[
    str, Arg(metavar="INTERVAL", help="interval start: unix seconds or ISO time with offset")
]
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
    interval: IntervalArg,
    import_total: Annotated[
        str, Arg(metavar="IMPORT", help="cumulative import register, e.g. 1200.5kWh")
    ],
    export_total: Annotated[str, Arg(metavar="EXPORT", help="cumulative export register")],
) -> tx.Body:
    """Submit a meter reading: cumulative registers at the end of a 15-minute interval.

    The meter's own key signs it (--key is the meter's key file); GRID is minted from it.

    Example:  gridtokenx tx reading 2026-01-01T08:00+07:00 0Wh 1.2kWh --key meter.key
    """
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
) -> tx.Body | Callable[[Client], tx.Body]:
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

    def by_address(api: Client) -> tx.Body:
        codes = {a: code for code, a in api.get("/governance")["authorities"].items()}
        if wanted not in codes:
            raise Refused("INVALID_DELEGATE", f"{wanted} is not an authority")
        return tx.DelegateVote(codes[wanted])

    return by_address


@tx_command(order_app, "place")
def order_place(
    side: Annotated[str, Arg(metavar="SIDE", help="buy or sell")],
    zone_code: ZoneArg,
    interval: IntervalArg,
    quantity: Annotated[
        str, Arg(metavar="QUANTITY", help="energy with its unit: 1.5kWh or 1500Wh")
    ],
    price: Annotated[
        str, Arg(metavar="PRICE", help="limit (or protection) price: 4.5THB/kWh or 450satang/kWh")
    ],
    kind: Annotated[str, typer.Option(help="limit or market")] = "limit",
    tif: Annotated[str, typer.Option(help="gtg (good till gate), ioc or fok")] = "gtg",
    renewable_only: Annotated[bool, typer.Option(help="buy only from renewable meters")] = False,
) -> tx.Body:
    """Place an order for energy delivered in one 15-minute interval in one zone.

    Examples:

        gridtokenx tx order place sell BKK 2026-01-01T10:00+07:00 1.5kWh 4THB/kWh --key home.key

        gridtokenx tx order place buy BKK 1767236400 500Wh 420satang/kWh --tif ioc --key office.key
    """
    return tx.PlaceOrder(
        choice(tx.Side, side, "side"),
        zone(zone_code),
        unix_time(interval),
        energy_wh(quantity),
        price_satang_per_kwh(price),
        choice(tx.OrderKind, kind, "--kind"),
        choice(tx.TimeInForce, tif, "--tif"),
        renewable_only,
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


# --- query --------------------------------------------------------------------------------
query_app = typer.Typer(
    help="Read the ledger through a node's API (tables, or JSON with --json).",
    no_args_is_help=True,
)
Render = Callable[[Any], RenderableType]


def query_command(name: str, render: Render | None = None) -> Callable[[F], F]:
    """Register `fetch(api, ...)` as `query NAME` with --node and --json: it parses its
    arguments, reads the API and returns JSON data, shown as `render` draws it."""

    def register(fetch: F) -> F:
        def command(**kwargs: Any) -> None:
            url, json_out = kwargs.pop("node"), kwargs.pop("json_out")
            with reported(url), Client(node_url(url)) as api:
                data = fetch(api, **kwargs)
                if json_out:
                    print_json(data)
                else:
                    console.print((render or generic)(data))

        _expose(command, fetch, 1, QUERY_OPTIONS)
        query_app.command(name)(command)
        return fetch

    return register


AddressArg = Annotated[str, Arg(metavar="ADDRESS", help="a gtx... address")]


def _text(raw: bytes) -> str:
    return crypto.address_to_text(raw)


def _balance_view(data: dict[str, Any]) -> RenderableType:
    return record_table(
        {
            "address": data["address"],
            "GRID": f"{kwh(data['grid_wh'])} kWh ({data['grid_wh']} Wh)",
            "THB": f"{thb(data['thb_satang'])} THB ({data['thb_satang']} satang)",
            "next nonce": data["nonce"],
        }
    )


@query_command("balance", _balance_view)
def query_balance(api: Client, who: AddressArg) -> Any:
    """GRID and THB balances and the next nonce.

    Example:  gridtokenx query balance gtx1...
    """
    return api.get(f"/accounts/{_text(address(who))}")


def _account_view(data: dict[str, Any]) -> RenderableType:
    parts: list[RenderableType] = [_balance_view(data["account"])]
    if data["participant"] is not None:
        parts.append(record_table(data["participant"], "participant"))
    parts += [rows_table(data[name], name) for name in ("meters", "licences", "open_orders")]
    return Group(*parts)


@query_command("account", _account_view)
def query_account(api: Client, who: AddressArg) -> Any:
    """Balances, participant record, meters, licences and open orders of one account.

    Example:  gridtokenx query account gtx1... --json
    """
    text = _text(address(who))
    try:
        participant = api.get(f"/participants/{text}")
    except ApiError as exc:
        if exc.code != "NOT_FOUND":
            raise
        participant = None
    return {
        "account": api.get(f"/accounts/{text}"),
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
        return api.get(f"/participants/{_text(address(who))}")
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
    text = _text(address(who))
    if readings:
        return api.get(f"/meters/{text}/readings", limit=limit, after=after)
    return api.get(f"/meters/{text}")


@query_command("licences")
def query_licences(
    api: Client,
    holder: Annotated[
        str | None, typer.Option(help="only this holder's", show_default=False)
    ] = None,
    limit: LimitOpt = 100,
    after: AfterOpt = None,
) -> Any:
    """Licences with whether each is valid at the latest block time.

    Example:  gridtokenx query licences --holder gtx1...
    """
    who = None if holder is None else _text(address(holder))
    return api.get("/licences", holder=who, limit=limit, after=after)


@query_command("orders")
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
        return api.get("/orders", account=_text(address(account)), limit=limit, after=after)
    if zone_code is None or interval is None:
        raise BadInput("--zone and --interval go together")
    start = unix_time(interval)
    return api.get("/orders", zone=zone(zone_code), interval=start, limit=limit, after=after)


def _book_view(data: dict[str, Any]) -> RenderableType:
    table = Table(title=f"{data.get('zone', '')} interval {data.get('interval', '')}")
    for column in (
        "bid orders",
        "bid kWh",
        "bid satang/kWh",
        "ask satang/kWh",
        "ask kWh",
        "ask orders",
    ):
        table.add_column(column, justify="right")
    bids, asks = data.get("bids", []), data.get("asks", [])
    for i in range(max(len(bids), len(asks))):
        bid = bids[i] if i < len(bids) else None
        ask = asks[i] if i < len(asks) else None
        left = (
            [str(bid["orders"]), kwh(bid["quantity_wh"]), str(bid["price"])]
            if bid
            else ["", "", ""]
        )
        right = (
            [str(ask["price"]), kwh(ask["quantity_wh"]), str(ask["orders"])]
            if ask
            else ["", "", ""]
        )
        table.add_row(*left, *right)
    if not bids and not asks:
        table.caption = "(empty book)"
    return table


@query_command("book", _book_view)
def query_book(
    api: Client,
    zone_code: ZoneArg,
    interval: IntervalArg,
    levels: Annotated[int, typer.Option(min=1, max=500, help="price levels per side")] = 20,
) -> Any:
    """Order-book depth per price level, best first.

    Example:  gridtokenx query book BKK 2026-01-01T10:00+07:00 --levels 5
    """
    code, start = zone(zone_code), unix_time(interval)
    return {"zone": code, "interval": start, **api.get(f"/book/{code}/{start}", levels=levels)}


@query_command("trades")
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
    """An interval's trades, or the latest trades newest first.

    Example:  gridtokenx query trades --zone BKK --limit 10
    """
    start = None if interval is None else unix_time(interval)
    code = None if zone_code is None else zone(zone_code)
    return api.get("/trades", interval=start, zone=code, limit=limit, after=after)


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


def _tx_hash(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise BadInput(f"transaction hash {text[:80]!r}: expected 64 hex digits")
    return text.lower()


@query_command("tx", receipt_view)
def query_tx(
    api: Client, tx_hash: Annotated[str, Arg(metavar="HASH", help="the transaction id")]
) -> Any:
    """A transaction's status: pending, committed (height, index, events) or dropped (why).

    Example:  gridtokenx query tx 5be1...9c
    """
    return api.get(f"/txs/{_tx_hash(tx_hash)}")


def _validators_view(data: dict[str, Any]) -> RenderableType:
    members = rows_table(data["members"], f"validators at height {data['height']}")
    members.caption = f"total power signing next: {data['total_power']}"
    parts: list[RenderableType] = [members]
    if data.get("pending"):
        parts.append(rows_table(data["pending"], "pending changes"))
    return Group(*parts)


@query_command("validators", _validators_view)
def query_validators(api: Client) -> Any:
    """The validator set: power, jailed, pending changes.

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


# --- certificates (tags 19-20) and their carbon ---------------------------------------------
CertificateArg = Annotated[str, Arg(metavar="ID", help="the certificate's id")]


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


def _decimal(value: int, places: int) -> str:
    """An integer count of 10**-places units as an exact decimal: (1500, 3) -> 1.5."""
    unit = 10**places
    return f"{value // unit:,}.{value % unit:0{places}d}".rstrip("0").rstrip(".")


def mwh(wh: int) -> str:
    return _decimal(wh, 6)


def kg(grams: int) -> str:
    return _decimal(grams, 3)


def _paged(table: Table, page: dict[str, Any]) -> Table:
    """A page's table, captioned with the cursor of the next page (or as empty)."""
    if not page["items"]:
        table.caption = "(none)"
    elif page.get("next"):
        table.caption = f"more: --after {page['next']}"
    return table


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
    return _paged(table, data)


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
    text = _text(address(who))
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


def local_date(text: str, what: str) -> int:
    """A local date as YYYYMMDD, given as YYYYMMDD or YYYY-MM-DD."""
    digits = text.replace("-", "") if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else text
    try:
        if not re.fullmatch(r"\d{8}", digits):
            raise ValueError
        datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise BadInput(f"{what} {text!r}: expected a date YYYYMMDD or YYYY-MM-DD") from None
    return int(digits)


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
    return api.carbon(_text(address(who or "")), from_day=first, to_day=last)


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
    return _paged(table, data)


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
            z["code"], z.get("name", ""), halt, _cell(balance.get("generation_kw")),
            _cell(balance.get("demand_kw")), _cell(dist.get("load_kw")),
            _cell(dist.get("headroom_kw")),
        )  # fmt: skip
    links = Table(title="interconnectors")
    for column in ("link", "capacity kW", "measured kW", "flow kW", "loss %"):
        links.add_column(column, justify="right")
    for link in data["interconnectors"]:
        measured = link.get("measured") or {}
        links.add_row(
            f"{link['zone_a']}-{link['zone_b']}", f"{link['capacity_kw']:,}",
            _cell(measured.get("capacity_kw")), _cell(measured.get("flow_kw")),
            _decimal(link["loss_basis_points"], 2),
        )  # fmt: skip
    frequency = data.get("frequency")
    line = (
        "frequency: not reported yet"
        if frequency is None
        else f"frequency: {_decimal(frequency['frequency_mhz'], 3)} Hz "
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
