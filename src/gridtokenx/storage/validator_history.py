"""The heights at which the chain's validator set changed, kept so a node can prove them to
a node that joins by state sync (`chain.light_client`): for each change, the first block the
new set signed, its certificate and the set's members.

A change shows in the stored headers (`validators_hash` differs from the previous
height's), but a header names its set only by hash, and the members of a past set are not
in the state any more. So the history also keeps the sets the committed state has decided
(`validator_set.for_height` of the next two heights, read after each commit, while they are
still there) and takes a hop's members from them. It lives in the store's meta column, so
it survives restarts and the pruning of old blocks; a node that joined by state sync starts
it from the hops it verified (`start`). Headers are read a bounded number at a time, so
catching up after a restart does not hold the node's loop; a gap it cannot read (pruned
blocks) or a set it never saw decided makes the history `broken`: no hops are offered then
(a joiner whose chain changed its set cannot use this node's snapshots, nothing worse).
"""

from __future__ import annotations

from typing import Final

import msgspec

from gridtokenx.chain import blocks
from gridtokenx.chain.light_client import Hop, members_of
from gridtokenx.ledger import validator_set
from gridtokenx.storage.store import Store

KEY: Final = b"validator_history"
STEP: Final = 256  # headers read per `Recorder.observe` at most
SAVE_EVERY: Final = 32  # heights between saves when nothing changed (a restart rereads them)
KNOWN: Final = 8  # decided sets kept for their first header
Members = tuple[tuple[bytes, bytes, int], ...]


class History(msgspec.Struct, frozen=True, array_like=True):
    """Headers up to `seen` were read; `last_hash` is the set hash at `seen`; `known` the
    decided sets by hash (newest last); `broken` when a change could not be proved."""

    seen: int = 0
    last_hash: bytes = b""
    hops: tuple[Hop, ...] = ()
    known: tuple[tuple[bytes, Members], ...] = ()
    broken: bool = False


class _HeaderOnly(msgspec.Struct, frozen=True, array_like=True):
    header: blocks.Header  # the block's other fields are skipped, not decoded


_decoder: Final = msgspec.msgpack.Decoder(History)
_header: Final = msgspec.msgpack.Decoder(_HeaderOnly)


def height_of(hop: Hop) -> int:
    return _header.decode(hop.block).header.height


def load(store: Store) -> History:
    raw = store.get_meta(KEY)
    return History() if raw is None else _decoder.decode(raw)


def start(store: Store, height: int, block: bytes, hops: tuple[Hop, ...]) -> None:
    """A state-synced store's history: the hops its offer proved, read up to `height`."""
    header = blocks.decode(block).header
    kept = tuple(h for h in hops if height_of(h) <= height)
    known = tuple(_decided(store, {}, height).items())
    history = History(height, header.validators_hash, kept, known)
    store.put_meta(KEY, msgspec.msgpack.encode(history))


def _decided(store: Store, known: dict[bytes, Members], head: int) -> dict[bytes, Members]:
    """`known` with the sets of the two heights after `head` moved to its end (newest)."""
    for ahead in (head + 1, head + 2):
        validators = validator_set.for_height(store, ahead)
        key = validator_set.set_hash(validators)
        members = known.pop(key, None)  # spelt out only for a set not known yet
        known[key] = members_of(validators) if members is None else members
    return known


class Recorder:
    """Keeps one store's history current; `observe` after each commit, on the node's loop."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.history = load(store)
        self._saved = self.history.seen

    def hops(self, height: int) -> tuple[Hop, ...] | None:
        """The changes up to `height`; None while the history has not read that far; none
        when it cannot prove them (`broken`: joiners then trust the genesis set alone)."""
        if self.history.broken:
            return ()
        if self.history.seen < height:
            return None
        return tuple(h for h in self.history.hops if height_of(h) <= height)

    def observe(self) -> History:
        """Note the sets the committed state has decided, then read up to STEP more
        stored headers into the history (saved when it changed)."""
        h = self.history
        if h.broken:
            return h
        head = self.store.height()
        known = _decided(self.store, dict(h.known), head)
        changed = tuple(known.items())[-KNOWN:] != h.known
        seen, last_hash, hops = h.seen, h.last_hash, list(h.hops)
        for height in range(seen + 1, min(head, seen + STEP) + 1):
            stored = self.store.block(height)
            header = None if stored is None else _header.decode(stored[0]).header
            if stored is None or header is None:  # pruned before it was read
                return self._save(History(seen, last_hash, tuple(hops), (), broken=True))
            if last_hash and header.validators_hash != last_hash:
                members = known.get(header.validators_hash)
                if members is None:  # decided while this node was not recording
                    return self._save(History(seen, last_hash, tuple(hops), (), broken=True))
                hops.append(Hop(stored[0], stored[1], members))
                changed = True
            seen, last_hash = height, header.validators_hash
        trimmed = tuple(known.items())[-KNOWN:]
        self.history = History(seen, last_hash, tuple(hops), trimmed)
        if changed or seen - self._saved >= SAVE_EVERY:
            self._save(self.history)
        return self.history

    def catch_up(self) -> History:
        """Observe until every stored header is read (offline: `Snapshots.take`)."""
        while not self.history.broken and self.history.seen < self.store.height():
            self.observe()
        return self.history

    def _save(self, history: History) -> History:
        self.history = history
        self._saved = history.seen
        self.store.put_meta(KEY, msgspec.msgpack.encode(history))
        return history
