"""What a transaction sees besides state: the block it is in, and what it reports back."""

from __future__ import annotations

import msgspec


class BlockContext(msgspec.Struct, frozen=True):
    """The block's height and timestamp (unix seconds): the only clock the ledger knows."""

    height: int
    time: int


EventValue = int | str | bytes


class Event(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Something a transaction did, for receipts and API streams (e.g. `minted`, `transfer`).
    Untracked by the cyclic collector: its attributes are numbers, strings and bytes, and
    a block's events live until its receipts are written and followed."""

    kind: str
    attrs: dict[str, EventValue]
