"""What the client commands (`tx`, `query`) share on their command lines: parsers for
addresses, keys, zones, names and hashes, the arguments they type alike, and the options
every one of them takes (--node, --json), added to each command's own parameters.

Every parser raises `BadInput` (exit 2) with the value it could not read; quantities and
times are cli.units'.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from enum import IntEnum
from typing import Annotated, Any, Final, TypeVar

import typer

from gridtokenx.cli.errors import BadInput
from gridtokenx.wire import crypto

NODE_ENV: Final = "GRIDTOKENX_NODE"
DEFAULT_NODE: Final = "http://127.0.0.1:26850"
E = TypeVar("E", bound=IntEnum)


def address(text: str) -> bytes:
    try:
        return crypto.address_from_text(text)
    except crypto.InvalidAddress as exc:
        raise BadInput(f"address {text[:64]!r}: {exc}") from None


def address_text(text: str) -> str:
    """A `gtx...` address as given, checked (its canonical text)."""
    return crypto.address_to_text(address(text))


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
    """A member of an enum by its name, any case, `-` for `_` (`fill-or-kill`, `fok`)."""
    name = text.upper().replace("-", "_")
    try:
        return kind[_ALIASES.get(name, name)]
    except KeyError:
        names = ", ".join(m.name.lower().replace("_", "-") for m in kind)
        raise BadInput(f"{what} {text!r}: expected one of {names}") from None


def hash_hex(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise BadInput(f"transaction hash {text[:80]!r}: expected 64 hex digits")
    return text.lower()


def node_url(text: str) -> str:
    if not re.match(r"^https?://[^/\s]+", text):
        raise BadInput(f"--node {text!r}: expected http://HOST:PORT, e.g. {DEFAULT_NODE}")
    return text


# --- arguments typed alike ------------------------------------------------------------------
Arg = typer.Argument
ZoneArg = Annotated[str, Arg(metavar="ZONE", help="grid zone, e.g. BKK")]
IntervalArg = Annotated[
    str, Arg(metavar="INTERVAL", help="interval start: unix seconds or ISO time with offset")
]
AddressArg = Annotated[str, Arg(metavar="ADDRESS", help="a gtx... address")]
CertificateArg = Annotated[str, Arg(metavar="ID", help="the certificate's id")]


# --- options every client command takes ----------------------------------------------------
def option(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    kind = inspect.Parameter.KEYWORD_ONLY
    return inspect.Parameter(name, kind, default=default, annotation=annotation)


NODE_OPTION: Final = option(
    "node",
    DEFAULT_NODE,
    Annotated[str, typer.Option(envvar=NODE_ENV, help="the node's API URL")],
)
JSON_OPTION: Final = option(
    "json_out", False, Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")]
)


def expose(
    command: Callable[..., None],
    inner: Callable[..., Any],
    drop: int,
    extra: tuple[inspect.Parameter, ...],
) -> None:
    """Give `command` the parameters typer should offer: `inner`'s own (less the first
    `drop`, which the command supplies) followed by the shared options. Only those
    parameters' annotations are evaluated, so the dropped ones (the SDK client) can be
    imported for type checking alone and stay out of `gridtokenx --help`."""
    own = list(inspect.signature(inner).parameters.values())[drop:]
    scope = inner.__globals__
    typed = [
        p.replace(annotation=eval(p.annotation, scope)) if isinstance(p.annotation, str) else p
        for p in own
    ]
    command.__signature__ = inspect.Signature([*typed, *extra])  # type: ignore[attr-defined]
    command.__doc__ = inner.__doc__
