"""The mesh's control frames on the wire: the payload of gossip's one control kind.

`p2p.mesh` speaks in dataclasses and leaves bytes to its driver; here they become a tagged
msgpack array (the tag first) and back. Decoding checks everything a peer could get wrong
or abuse (an unknown topic, an id that is not a 32-byte hash, more ids than one frame may
carry, a negative or endless backoff), so the mesh only ever sees well-formed frames and a
malformed one costs its sender score like any other.
"""

from __future__ import annotations

from typing import Final

import msgspec

from gridtokenx.p2p.mesh import (
    ID_BYTES,
    Frame,
    Graft,
    IDontWant,
    IHave,
    IWant,
    Params,
    Prune,
    Subscribe,
    Topic,
)

MAX_IDS: Final = Params().max_ihave_ids
MAX_BACKOFF_MS: Final = 3_600_000
MAX_BYTES: Final = MAX_IDS * (ID_BYTES + 2) + 64
"""The largest control payload: a full IHAVE (each id costs its bytes and a header)."""


class _Subscribe(msgspec.Struct, array_like=True, frozen=True, tag=0):
    topics: list[int]


class _Graft(msgspec.Struct, array_like=True, frozen=True, tag=1):
    topic: int


class _Prune(msgspec.Struct, array_like=True, frozen=True, tag=2):
    topic: int
    backoff_ms: int


class _IHave(msgspec.Struct, array_like=True, frozen=True, tag=3):
    topic: int
    ids: list[bytes]


class _IWant(msgspec.Struct, array_like=True, frozen=True, tag=4):
    ids: list[bytes]


class _IDontWant(msgspec.Struct, array_like=True, frozen=True, tag=5):
    ids: list[bytes]


_Wire = _Subscribe | _Graft | _Prune | _IHave | _IWant | _IDontWant
_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(_Wire)


def encode(frame: Frame) -> bytes:
    """A control frame as bytes (a full message travels as its own envelope instead)."""
    wire: _Wire
    if isinstance(frame, Subscribe):
        wire = _Subscribe(sorted(int(t) for t in frame.topics))
    elif isinstance(frame, Graft):
        wire = _Graft(int(frame.topic))
    elif isinstance(frame, Prune):
        wire = _Prune(int(frame.topic), round(frame.backoff_s * 1000))
    elif isinstance(frame, IHave):
        wire = _IHave(int(frame.topic), list(frame.ids))
    elif isinstance(frame, IWant):
        wire = _IWant(list(frame.ids))
    elif isinstance(frame, IDontWant):
        wire = _IDontWant(list(frame.ids))
    else:
        raise TypeError(f"{type(frame).__name__} is not a control frame")
    return _encoder.encode(wire)


def _topic(value: int) -> Topic:
    try:
        return Topic(value)
    except ValueError:
        raise ValueError(f"unknown topic {value}") from None


def _ids(ids: list[bytes]) -> tuple[bytes, ...]:
    if len(ids) > MAX_IDS:
        raise ValueError(f"{len(ids)} ids in one frame, at most {MAX_IDS}")
    if any(len(i) != ID_BYTES for i in ids):
        raise ValueError(f"a message id is {ID_BYTES} bytes")
    return tuple(ids)


def decode(payload: bytes) -> Frame:
    """A peer's control frame; ValueError for anything malformed."""
    if len(payload) > MAX_BYTES:
        raise ValueError(f"control frame of {len(payload)} bytes, at most {MAX_BYTES}")
    try:
        wire = _decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a control frame: {exc}") from None
    if isinstance(wire, _Subscribe):
        if len(wire.topics) > len(Topic):
            raise ValueError("more topics than there are")
        return Subscribe(frozenset(_topic(t) for t in wire.topics))
    if isinstance(wire, _Graft):
        return Graft(_topic(wire.topic))
    if isinstance(wire, _Prune):
        if not 0 <= wire.backoff_ms <= MAX_BACKOFF_MS:
            raise ValueError(f"backoff of {wire.backoff_ms} ms")
        return Prune(_topic(wire.topic), wire.backoff_ms / 1000)
    if isinstance(wire, _IHave):
        return IHave(_topic(wire.topic), _ids(wire.ids))
    if isinstance(wire, _IWant):
        return IWant(_ids(wire.ids))
    return IDontWant(_ids(wire.ids))
