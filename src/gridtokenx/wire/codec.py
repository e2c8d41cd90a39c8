"""The one canonical binary encoding: MessagePack arrays in fixed field order (msgspec Structs).

Validators hash and sign bytes, so the same value must always produce the same bytes and
any other byte string must be refused. msgspec already encodes integers in their shortest
form and Structs as positional arrays; canonicality on the way in is enforced by re-encoding
the decoded value and requiring the identical bytes. That single check rejects every
alternative spelling (a wide integer, a str8 where fixstr fits, a defaulted trailing field
left out) without a hand-written parser; extra array elements never get that far, because
the Structs forbid unknown fields and refuse them as malformed. See docs/protocol.md for
the field-by-field layout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

import msgspec

T = TypeVar("T")

MAX_TX_SIZE: Final = 16 * 1024
"""Largest encoded signed transaction; a protocol constant because every node must agree."""


class DecodeError(ValueError):
    """Input bytes are not a valid canonical encoding. `code` is stable for the API."""

    code = "MALFORMED"


class Malformed(DecodeError):
    code = "MALFORMED"


class Truncated(DecodeError):
    code = "TRUNCATED"


class NonCanonical(DecodeError):
    code = "NON_CANONICAL"


class Oversized(DecodeError):
    code = "OVERSIZED"


class UnknownType(DecodeError):
    code = "UNKNOWN_TX_TYPE"


_encoder = msgspec.msgpack.Encoder()


DECODE_ERROR_CODES: Final = frozenset(
    c.code for c in (DecodeError, Malformed, Truncated, NonCanonical, Oversized, UnknownType)
)


encode: Final[Callable[[Any], bytes]] = _encoder.encode
"""Canonical bytes of a wire or state value: the encoder's own method, not a function that
calls it (a Python frame less for each of the records, events and transactions a block
encodes, several per order)."""


class CanonicalDecoder(Generic[T]):
    """Decodes one wire type and refuses anything that is not its canonical encoding.

    `tag_path` locates the type tag (as indices into nested arrays) so that an unknown tag
    can be reported as UnknownType rather than as generic malformed input.
    """

    def __init__(self, typ: type[T], max_size: int, tag_path: tuple[int, ...] = ()) -> None:
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(typ)
        self._max_size = max_size
        self._tag_path = tag_path
        self._known_tags = _known_tags(typ, tag_path)

    def decode(self, data: bytes) -> T:
        if len(data) > self._max_size:
            raise Oversized(f"{len(data)} bytes exceeds the limit of {self._max_size}")
        try:
            value = self._decoder.decode(data)
        except msgspec.ValidationError as exc:
            if self._tag_path and self._has_unknown_tag(data):
                raise UnknownType(f"unknown type tag: {exc}") from None
            raise Malformed(str(exc)) from None
        except msgspec.DecodeError as exc:
            if "truncated" in str(exc):
                raise Truncated(str(exc)) from None
            raise Malformed(str(exc)) from None
        except UnicodeDecodeError as exc:  # msgspec reports invalid UTF-8 in a str this way
            raise Malformed(f"invalid UTF-8 in a string: {exc.reason}") from None
        if _encoder.encode(value) != data:
            raise NonCanonical("bytes are not the canonical encoding of the value they decode to")
        return value

    def _has_unknown_tag(self, data: bytes) -> bool:
        try:
            node: Any = msgspec.msgpack.decode(data)
            for index in self._tag_path:
                node = node[index]
        except (msgspec.DecodeError, UnicodeDecodeError, IndexError, KeyError, TypeError):
            return False
        return isinstance(node, int) and node not in self._known_tags


def _known_tags(typ: Any, tag_path: tuple[int, ...]) -> frozenset[int]:
    """Tags of the tagged-union field that `tag_path` points into (empty when there is none)."""
    if not tag_path:
        return frozenset()
    node: Any = typ
    for index in tag_path[:-1]:
        info = msgspec.inspect.type_info(node)
        assert isinstance(info, msgspec.inspect.StructType)
        field_type = info.fields[index].type
        if isinstance(field_type, msgspec.inspect.UnionType):
            return frozenset(
                int(t.cls.__struct_config__.tag)  # type: ignore[arg-type]
                for t in field_type.types
                if isinstance(t, msgspec.inspect.StructType)
            )
        assert isinstance(field_type, msgspec.inspect.StructType)
        node = field_type.cls
    return frozenset()
