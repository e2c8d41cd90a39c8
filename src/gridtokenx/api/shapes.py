"""The JSON shape of a ledger record, derived from the record's own type.

The API answers with the ledger's records as `views.plain` writes them (integers stay
integers, enums become their names, 20-byte values become `gtx...` addresses, other bytes
hex). Writing a response model per record by hand would restate every field and drift
from the ledger; `view_of` reads the msgspec Struct's fields instead and builds the
pydantic model the OpenAPI document shows and FastAPI checks each answer against, so a
field added to a record appears in the schema at once, and a field the model lacks is a
500 in the tests rather than a silent gap.

Which bytes are addresses cannot be told from the type (both are `bytes`), so it is told
from the field's name (`ADDRESS_FIELDS`); a wrong guess fails the pattern check of the
very first answer that holds the field."""

from __future__ import annotations

import enum
import functools
import types
import typing
from typing import Annotated, Any, Final, Literal, Union

import msgspec
from pydantic import BaseModel, ConfigDict, Field, create_model

from gridtokenx.wire import crypto

ADDRESS_PATTERN: Final = rf"^{crypto.ADDRESS_PREFIX}[a-z2-7]{{40}}$"
"""`gtx` + lowercase base32 of the 20-byte address and its 5-byte checksum (wire.crypto)."""
HASH_PATTERN: Final = r"^[0-9a-f]{64}$"
HEX_PATTERN: Final = r"^(?:[0-9a-f]{2})*$"

Address = Annotated[
    str,
    Field(
        pattern=ADDRESS_PATTERN,
        examples=["gtxztoy4xvlicyf2t33t6nutz24ztwsmf6zykbj6n3i"],
        description="an address: gtx + 40 lowercase base32 characters (checksummed)",
    ),
]
Hash = Annotated[str, Field(pattern=HASH_PATTERN, description="a SHA-256 hash, 64 hex digits")]
Hex = Annotated[str, Field(pattern=HEX_PATTERN, description="bytes, lowercase hex")]

ADDRESS_FIELDS: Final = frozenset(
    {"address", "owner", "issued_to", "meter", "meters", "proposer", "buyer", "seller",
     "participant", "holder", "voter", "validator", "fee_collector", "on_behalf"}
)  # fmt: skip
HASH_FIELDS: Final = frozenset(
    {"hash", "prev_hash", "tx_root", "state_root", "validators_hash", "evidence_hash",
     "block_hash", "tx_hash"}
)  # fmt: skip


class View(BaseModel):
    """A response object: exactly its fields, so an answer with a field the model lacks
    fails its check instead of losing the field."""

    model_config = ConfigDict(extra="forbid")


def bytes_type(name: str) -> Any:
    if name in ADDRESS_FIELDS:
        return Address
    return Hash if name in HASH_FIELDS else Hex


def view_type(name: str, tp: Any) -> Any:
    """The JSON type of one field of a record (see the module docstring)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        mapped = tuple(view_type(name, arg) for arg in args)
        return functools.reduce(lambda a, b: a | b, mapped)
    if origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        return list[view_type(name, args[0])]  # type: ignore[misc]
    if origin is tuple:  # a fixed shape, as (holder, kind)
        return tuple[tuple(view_type(name, arg) for arg in args)]  # type: ignore[misc]
    if origin is dict:
        return dict[str, view_type(name, args[1])]  # type: ignore[misc]
    if tp is bytes:
        return bytes_type(name)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return Literal[tuple(member.name for member in tp)]
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return view_of(tp)
    return tp


@functools.cache
def view_of(record: type[msgspec.Struct]) -> type[View]:
    """The response model of a ledger record as `views.plain` writes it."""
    return extend(record, record.__name__)


def extend(record: type[msgspec.Struct], name: str, **extra: Any) -> type[View]:
    """A model named `name`: `extra` fields (name=type) in front of the record's own, as
    `views.record(value, **extra)` writes them; an extra field of the record's own name
    replaces it."""
    hints = typing.get_type_hints(record)
    fields: dict[str, Any] = {key: (tp, ...) for key, tp in extra.items()}
    for field in record.__struct_fields__:
        fields.setdefault(field, (view_type(field, hints[field]), ...))
    model: type[View] = create_model(name, __base__=View, __doc__=record.__doc__, **fields)
    return model
