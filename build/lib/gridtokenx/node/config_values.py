"""What a config setting's value may be, by the field's type: values from the file and
from environment variables converted to it, what was expected said in words when they do
not convert, and values written back as TOML text.

Typed by the struct field's annotation (constraints included, through `msgspec.Meta`), so
a field added to the config gets all of this without code here. Peer address lists are
the one special form: "HOST:PORT:PEERID" strings in the file, as `gridtokenx init --peer`
takes them, rather than arrays of arrays.
"""

from __future__ import annotations

import math
import tomllib
import typing
from typing import Any

import msgspec
import msgspec.inspect as mi

from gridtokenx.wire.crypto import ADDRESS_SIZE

PEER_LIST = tuple[tuple[str, int, str], ...]
"""Peer addresses (host, port, peer id hex): written as "HOST:PORT:PEERID" strings, the
form `gridtokenx init --peer` takes."""


def bare(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp


def to_file(tp: Any, value: Any) -> Any:
    """`value` as the file holds it: TOML's types, peer addresses as strings."""
    if bare(tp) == PEER_LIST:
        return [f"{host}:{port}:{peer}" for host, port, peer in value]
    return msgspec.to_builtins(value)


def convert(tp: Any, value: Any) -> Any:
    """`value` as the field's type, or ValueError saying what it must be."""
    if bare(tp) == PEER_LIST and isinstance(value, list):
        value = [(parse_peer(item) or item) if isinstance(item, str) else item for item in value]
    try:
        return msgspec.convert(value, tp)
    except msgspec.ValidationError:
        raise ValueError(expected(tp)) from None


def parse_peer(text: str) -> tuple[str, int, str] | None:
    """HOST:PORT:PEERID as (host, port, peer id in lower-case hex), or None when it is not
    one: the form of config.toml's peers and of `gridtokenx init --peer`. The host may be
    an IPv6 address (the port and id are the last two fields)."""
    host, _, peer_id = text.rpartition(":")
    host, _, port = host.rpartition(":")
    try:
        raw = bytes.fromhex(peer_id)
    except ValueError:
        raw = b""
    number = int(port) if port.isascii() and port.isdigit() else 0
    if not host or not 1 <= number <= 65_535 or len(raw) != ADDRESS_SIZE:
        return None
    return host, number, raw.hex()


def expected(tp: Any) -> str:
    """What a value of type `tp` must be, in words: "an integer from 0 to 65535"."""
    if bare(tp) == PEER_LIST:
        return 'an array of "HOST:PORT:PEERID" strings (PEERID: 40 hex digits)'
    return _words(mi.type_info(tp))


def _words(info: mi.Type) -> str:
    if isinstance(info, mi.Metadata):
        return _words(info.type)
    if isinstance(info, mi.BoolType):
        return "true or false"
    if isinstance(info, mi.IntType | mi.FloatType):
        noun = "an integer" if isinstance(info, mi.IntType) else "a number"
        return noun + _range(info.ge, info.gt, info.le, info.lt)
    if isinstance(info, mi.StrType):
        return "a string"
    if isinstance(info, mi.VarTupleType | mi.ListType):
        return f"an array of {_plural(_words(info.item_type))}"
    if isinstance(info, mi.LiteralType):
        return "one of " + ", ".join(shown(v) for v in info.values)
    return f"a {type(info).__name__.removesuffix('Type').lower()}"


def _plural(noun: str) -> str:
    """ "an integer from 0 to 9" as "integers from 0 to 9", for "an array of ..."."""
    for one, many in (("an integer", "integers"), ("a number", "numbers"), ("a string", "strings")):
        if noun.startswith(one):
            return many + noun.removeprefix(one)
    return noun


def _range(ge: Any, gt: Any, le: Any, lt: Any) -> str:
    if ge is not None and le is not None:
        return f" from {ge} to {le}"
    bounds = [("of at least", ge), ("above", gt), ("of at most", le), ("below", lt)]
    said = [f"{word} {bound}" for word, bound in bounds if bound is not None]
    return (" " + " and ".join(said)) if said else ""


def from_env(tp: Any, text: str) -> Any:
    """An environment variable's text as a value of the file: strings verbatim, arrays
    comma-separated, everything else a TOML value (left as text when it is none, so the
    type check names what it should be)."""
    info = mi.type_info(tp)
    if isinstance(info, mi.Metadata):
        info = info.type
    if isinstance(info, mi.StrType):
        return text
    if isinstance(info, mi.VarTupleType | mi.ListType):
        items = [item.strip() for item in text.split(",") if item.strip()]
        return [i if bare(tp) == PEER_LIST else _scalar(i, info.item_type) for i in items]
    return _scalar(text, info)


def _scalar(text: str, info: mi.Type) -> Any:
    if isinstance(info, mi.StrType) or "\n" in text or "\r" in text:
        return text
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return parsed["v"] if parsed.keys() == {"v"} else text


def shown(value: Any) -> str:
    """A value as the operator wrote it, for a message."""
    try:
        return toml_value(value)
    except TypeError:
        return str(value)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}  # fmt: skip


def toml_value(value: Any) -> str:
    """A TOML value: booleans, integers, floats, strings, arrays and tables of them (what
    a config can hold but None, which TOML lacks). `tomllib` reads back exactly `value`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return '"' + "".join(_ESCAPES.get(c) or _control(c) for c in value) + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items())
            + "}"
        )
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _control(c: str) -> str:
    return f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c
