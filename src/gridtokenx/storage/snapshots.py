"""State snapshots on disk: taken from a checkpoint of the store, cut into provable chunks,
served to nodes that state-sync, and written back into a new store on their side.

A snapshot is the state after a certified height h: every state record, as the store holds
it, in chunks of whole buckets of the state root's bucket tree (`ledger.bucket_tree`, at the
depth the snapshot's record count gives), each chunk with the sibling hashes that prove it
against that state's root. Heights are pipelined: a header carries the root *before* its
block, so the root of the state after h is in block h+1's header. The `Offer` carries block
h and its commit certificate (the chain the node continues from) and block h+1 with its
certificate (the root), so a node that has never seen the chain checks both certificates
against the validators it trusts, takes block h+1's state root, and from then on needs
nothing but the chunks. A snapshot is therefore cut at h and offered only once its node has
committed h+1 (`Snapshots.complete`); until then it waits as `pending`.
Chunks are cut by a fixed byte bound (CHUNK_BYTES), the same on every node, so honest
nodes offering the same height offer the same chunks and a receiver
can fetch each chunk from whichever of them it likes.

Taking a snapshot never stops the node: the store is checkpointed (hard links, a
consistent height), and the checkpoint is read, cut and written out in a worker thread;
the node goes on committing meanwhile. A snapshot does not need the chain's old blocks,
so a node that prunes them still serves snapshots. A snapshot directory holds `offer`
(written last: a directory without it is unfinished and removed) and `chunk-<i>` files,
each the exact frame payload that is sent, so serving is a file read.
"""

from __future__ import annotations

import itertools
import operator
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from gridtokenx.chain import blocks
from gridtokenx.chain.light_client import Hop
from gridtokenx.ledger import bucket_tree
from gridtokenx.ledger import state_proofs as proofs
from gridtokenx.ledger.certificates import Certificate
from gridtokenx.storage import validator_history
from gridtokenx.storage.store import Store, StoreError, record_decoder
from gridtokenx.storage.validator_history import Recorder

CHUNK_BYTES: Final = 1024 * 1024
"""Record bytes in one chunk at most (a bucket larger than that is a chunk of its own).
A protocol constant: every node cuts a state into the same chunks."""
KEEP: Final = 2  # snapshots a node keeps by default
PIN_S: Final = 60.0
"""A snapshot a peer asked a chunk of is kept this long after its last chunk request,
though newer ones are taken: a joiner fetching it would otherwise lose its source midway
(the ranges it holds are the old snapshot's) and start over."""
PINNED_MAX: Final = 2  # old snapshots kept for fetches at most (beyond `keep`)
OFFER_BYTES_MAX: Final = 4 * 1024 * 1024
"""An offer's frame limit (`p2p.gossip`'s for SNAPSHOT_OFFER, less headroom). An offer
whose validator-set changes (whole blocks) would not fit goes without them: joiners whose
chain kept its genesis set still take it, the others ignore it, as before the changes
were carried."""
_OFFER: Final = "offer"
_PENDING: Final = "pending"


class SnapshotError(StoreError):
    """A snapshot that cannot be taken or restored (the message says why)."""


class Offer(msgspec.Struct, frozen=True, array_like=True):
    """What a node can serve: the height, that height's block and commit certificate (the
    encoded votes, as stored), the next block and its certificate (whose header's state
    root is the snapshot's), the tree's depth, the bucket ranges of its chunks, and the
    validator-set changes up to h+1 (`chain.light_client`: how a joiner that trusts only
    the genesis set comes to trust the set that certified h and h+1)."""

    height: int
    block: bytes
    certificate: bytes
    next_block: bytes
    next_certificate: bytes
    depth: int
    ranges: tuple[tuple[int, int], ...]
    hops: tuple[Hop, ...] = ()

    @property
    def root(self) -> bytes:
        """The snapshot's state root: the one block h+1's header carries."""
        return blocks.decode(self.next_block).header.state_root


class _Pending(msgspec.Struct, frozen=True, array_like=True):
    """A snapshot cut and waiting for block h+1: the offer without it, and the root the
    cut state had (the next header must carry it)."""

    height: int
    block: bytes
    certificate: bytes
    depth: int
    ranges: tuple[tuple[int, int], ...]
    root: bytes


class Chunk(msgspec.Struct, frozen=True, array_like=True):
    """Chunk `index` of the snapshot at `height`: the records of buckets [first, end) as
    (key, stored bytes), in key order, and the proof's sibling hashes."""

    height: int
    index: int
    first: int
    end: int
    records: list[tuple[bytes, bytes]]
    siblings: proofs.Siblings


class ChunkRequest(msgspec.Struct, frozen=True, array_like=True):
    height: int
    index: int


_offer: Final = msgspec.msgpack.Decoder(Offer)
_chunk: Final = msgspec.msgpack.Decoder(Chunk)
_pending: Final = msgspec.msgpack.Decoder(_Pending)
_stored: Final = msgspec.msgpack.Decoder(tuple[str, bytes])
_certificate: Final = msgspec.msgpack.Decoder(Certificate)


def decode_offer(raw: bytes) -> Offer:
    return _offer.decode(raw)


def decode_chunk(raw: bytes) -> Chunk:
    return _chunk.decode(raw)


@dataclass(frozen=True)
class Verified:
    """A chunk that proved (`verify_chunk`): its records in stored form, its buckets as
    the tree stores them with their hashes (`proofs.Proved`), and its certificates,
    decoded, for the store's certificate index."""

    index: int
    records: list[tuple[bytes, bytes]]
    buckets: list[tuple[int, bytes, bytes]]
    certificates: list[tuple[bytes, Certificate]]


def verify_chunk(chunk: Chunk, offer: Offer, root: bytes) -> Verified:
    """Check a received chunk against the offer it was asked under and the certified state
    root; raises `proofs.BadChunk`, also for a record that does not decode as the type it
    names (the root commits to a record's canonical bytes, not to that name, so a peer
    could rename one: caught here, for what does not decode, rather than when the node
    first reads it)."""
    if chunk.height != offer.height or not 0 <= chunk.index < len(offer.ranges):
        raise proofs.BadChunk(f"chunk {chunk.index} of height {chunk.height} was not asked for")
    if (chunk.first, chunk.end) != tuple(offer.ranges[chunk.index]):
        raise proofs.BadChunk(f"chunk {chunk.index} covers another bucket range")
    try:  # one C call a record (a joining node checks millions)
        named = list(map(_stored.decode, [value for _, value in chunk.records]))
    except msgspec.MsgspecError as exc:
        raise proofs.BadChunk(f"not a stored state record ({exc})") from None
    keys = [key for key, _ in chunk.records]
    canonical = list(zip(keys, map(_canonical_of, named), strict=True))
    proved = proofs.verify(proofs.Range(chunk.first, chunk.end, canonical), offer.depth,
                           chunk.siblings, root)  # fmt: skip
    return Verified(chunk.index, chunk.records, proved.buckets, _typed(keys, named))


_canonical_of: Final = operator.itemgetter(1)


def verify_encoded(raw: bytes, offer: Offer) -> Verified:
    """`verify_chunk` of an encoded chunk against the offer's root, for a worker process:
    the answer leaves out the records (the caller decoded them already; sending them
    back would cost more than decoding)."""
    try:
        chunk = decode_chunk(raw)
    except msgspec.DecodeError as exc:
        raise proofs.BadChunk(f"not a chunk ({exc})") from None
    verified = verify_chunk(chunk, offer, offer.root)
    return Verified(verified.index, [], verified.buckets, verified.certificates)


def _typed(keys: list[bytes], named: list[tuple[str, bytes]]) -> list[tuple[bytes, Certificate]]:
    """Decode every record as the type it names; raises `BadChunk` for an unknown type or
    bytes that are not one. Returns the certificates. Called once the chunk proved, so
    every record's bytes are the validators' (one whole record each): the records of a
    type are decoded as one array, one C call for the lot."""
    certificates: list[tuple[bytes, Certificate]] = []
    name_of = operator.itemgetter(0)  # sorting by the name alone: no bytes compared
    for name, group in itertools.groupby(sorted(named, key=name_of), key=name_of):
        decoder = record_decoder(name, many=True)
        if decoder is None:
            raise proofs.BadChunk(f"a state record of unknown type {name!r}")
        raws = list(map(_canonical_of, group))
        array = b"\xdd" + len(raws).to_bytes(4) + b"".join(raws)  # a msgpack array32
        try:
            decoder.decode(array)
        except msgspec.MsgspecError as exc:
            raise proofs.BadChunk(f"a state record is not a {name} ({exc})") from None
        if name == Certificate.__name__:
            pairs = zip(keys, named, strict=True)
            certificates = [(k, _certificate.decode(raw)) for k, (n, raw) in pairs if n == name]
    return certificates


# --- taking and serving --------------------------------------------------------------------
class Snapshots:
    """The snapshots of one node, in `directory` (one subdirectory per height)."""

    def __init__(self, directory: Path, keep: int = KEEP, chunk_bytes: int = CHUNK_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        """`chunk_bytes` is CHUNK_BYTES on a network (tests cut small states finer)."""
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.directory = directory
        self.keep = keep
        self.chunk_bytes = chunk_bytes
        self.clock = clock
        self._offers: dict[int, bytes] = {}
        self._pins: dict[int, float] = {}  # height -> kept until (a fetch in progress)

    def _at(self, height: int) -> Path:
        return self.directory / f"{height:012d}"

    def heights(self) -> list[int]:
        """Heights of the finished snapshots, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [int(p.name) for p in self.directory.iterdir()
                 if p.name.isdigit() and (p / _OFFER).is_file()]  # fmt: skip
        return sorted(found)

    def offers(self) -> list[bytes]:
        """The encoded offers of the newest `keep` finished snapshots, newest first (older
        ones kept for a fetch in progress are served, not offered)."""
        answer = []
        for height in reversed(self.heights()[-self.keep :]):
            if height not in self._offers:
                self._offers[height] = (self._at(height) / _OFFER).read_bytes()
            answer.append(self._offers[height])
        return answer

    def chunk(self, height: int, index: int) -> bytes | None:
        """A chunk's frame payload, or None when this node has no such chunk."""
        if index < 0:
            return None
        try:
            found = (self._at(height) / f"chunk-{index}").read_bytes()
        except OSError:
            return None
        self._pins[height] = self.clock() + PIN_S  # a fetch is under way: keep it
        return found

    def pinned(self) -> list[int]:
        """Heights a fetch asked a chunk of within the last PIN_S seconds, oldest first."""
        now = self.clock()
        for height, until in list(self._pins.items()):
            if until <= now:
                self._pins.pop(height, None)
        return sorted(self._pins)

    def take(self, store: Store) -> int | None:
        """Snapshot the store's current height (`checkpoint`, then `build`, here); returns
        the height, or None when there is nothing new to take. It is offered once the
        store holds the next height (`complete`)."""
        height = self.build(self.checkpoint(store))
        self.complete(store)
        return height

    def pending(self) -> list[int]:
        """Heights cut and waiting for their next block before they are offered."""
        if not self.directory.is_dir():
            return []
        found = [int(p.name) for p in self.directory.iterdir() if p.name.isdigit()
                 and (p / _PENDING).is_file() and not (p / _OFFER).is_file()]  # fmt: skip
        return sorted(found)

    def complete(self, store: Store, recorder: Recorder | None = None) -> list[int]:
        """Offer the pending snapshots whose next block `store` now holds (block h+1's
        header carries the root of the state after h) and whose validator-set changes
        `recorder` has read; returns the heights offered. A next header with another
        root means the snapshot is not the chain's state: it is removed and reported.
        Without a `recorder` (offline), one reads the whole stored history here."""
        if recorder is None:
            recorder = Recorder(store)
            recorder.catch_up()
        offered = []
        for height in self.pending():
            target = self._at(height)
            stored = store.block(height + 1)
            hops = recorder.hops(height + 1)
            if stored is None or hops is None:
                continue
            cut = _pending.decode((target / _PENDING).read_bytes())
            next_root = blocks.decode(stored[0]).header.state_root
            if next_root != cut.root:
                shutil.rmtree(target, ignore_errors=True)
                raise SnapshotError(f"the state cut at height {height} does not have the "
                                    f"root block {height + 1} carries")  # fmt: skip
            offer = Offer(height, cut.block, cut.certificate, stored[0], stored[1], cut.depth,
                          cut.ranges, hops)  # fmt: skip
            encoded = msgspec.msgpack.encode(offer)
            if len(encoded) > OFFER_BYTES_MAX:
                encoded = msgspec.msgpack.encode(msgspec.structs.replace(offer, hops=()))
            (target / f"{_OFFER}.tmp").write_bytes(encoded)
            (target / f"{_OFFER}.tmp").replace(target / _OFFER)
            offered.append(height)
        if offered:
            self._tidy()
        return offered

    def checkpoint(self, store: Store) -> Path:
        """A consistent copy of the store to build a snapshot from: quick (hard links),
        done on the node's loop, so the copy holds exactly one committed height."""
        self.directory.mkdir(parents=True, exist_ok=True)
        copy_path = self.directory / f".checkpoint-{os.getpid()}"
        shutil.rmtree(copy_path, ignore_errors=True)
        store.checkpoint(copy_path)
        return copy_path

    def build(self, copy_path: Path) -> int | None:
        """Cut the snapshot of a `checkpoint` (blocking: a worker thread's work), remove
        the checkpoint, and keep the newest `keep` snapshots; returns the height taken,
        or None when the checkpoint's height has one already (or is 0)."""
        try:
            with Store(copy_path) as copy:
                height = copy.height()
                if height == 0 or height in self.heights() or height in self.pending():
                    return None
                self._write(copy, height)
        finally:
            shutil.rmtree(copy_path, ignore_errors=True)
        self._tidy()
        return height

    def _write(self, copy: Store, height: int) -> None:
        stored = copy.block(height)
        if stored is None:
            raise SnapshotError(f"the block at height {height} is not in the store")
        state = copy.open_state()  # over the copy's own tree (rebuilt if not current)
        root, tree = state.root(), state.tree
        grouped = proofs.group(_state_items(copy), tree.depth)
        sizes = {i: sum(len(k) + len(v) for k, v in rs) for i, rs in grouped.items()}
        ranges = proofs.cut(sizes, self.chunk_bytes, tree.depth)
        target = self._at(height)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        for index, (first, end) in enumerate(ranges):
            records = [kv for i in range(first, end) for kv in grouped.get(i, ())]
            siblings = proofs.siblings_of(tree.prove_range(first, end - 1))
            chunk = Chunk(height, index, first, end, records, siblings)
            (target / f"chunk-{index}").write_bytes(msgspec.msgpack.encode(chunk))
        cut = _Pending(height, stored[0], stored[1], tree.depth, tuple(ranges), root)
        (target / f"{_PENDING}.tmp").write_bytes(msgspec.msgpack.encode(cut))
        (target / f"{_PENDING}.tmp").replace(target / _PENDING)

    def _tidy(self) -> None:
        """Keep the newest `keep` snapshots, a newer one being cut, and up to PINNED_MAX
        older ones a peer is fetching (so a peer cannot make this node keep them all)."""
        finished = self.heights()
        old = finished[: -self.keep]
        fetched = [h for h in self.pinned() if h in old][-PINNED_MAX:]
        for height in old:
            if height not in fetched:
                shutil.rmtree(self._at(height), ignore_errors=True)
                self._offers.pop(height, None)
        newest = finished[-1] if finished else -1
        kept = set(finished[-self.keep :]) | set(fetched)
        kept |= {h for h in self.pending() if h > newest}
        for path in self.directory.iterdir():
            if path.name.isdigit() and int(path.name) not in kept:
                shutil.rmtree(path, ignore_errors=True)


def _state_items(store: Store) -> Iterator[tuple[bytes, bytes]]:
    """Every state record of `store` as (key, stored bytes)."""
    cf = store.db.get_column_family("state")
    try:
        for key, value in cf.items():
            assert isinstance(key, bytes) and isinstance(value, bytes)
            yield key, value
    finally:
        del cf


# --- restoring -----------------------------------------------------------------------------
class Restore:
    """Writes the verified chunks of `offer` into a new store as they come (`add`), and
    builds the tree from their bucket hashes (`finish`): the buckets as the chunks proved
    them, the levels above fed bucket by bucket in index order (a chunk that comes early
    waits for those before it, a few hashes each). The tree is complete once the last
    chunk is in, and nothing is read back or hashed again: rebuilding it from the records
    (`Store.rebuild_tree`) was most of a join's writing time."""

    def __init__(self, store: Store, offer: Offer) -> None:
        self.store = store
        self.offer = offer
        self.count = 0  # records written
        self.chunks = 0  # chunks written
        self._next = 0  # the chunk whose hashes the builder takes next
        self._early: dict[int, list[tuple[int, bytes]]] = {}
        self._children: list[tuple[int, int, bytes]] = []
        self._builder = bucket_tree.TreeBuilder(offer.depth, self._emit)

    def _emit(self, level: int, parent: int, blob: bytes) -> None:
        self._children.append((level, parent, blob))

    def add(self, verified: Verified) -> None:
        """Write a chunk `verify_chunk` passed (each chunk once)."""
        buckets = [(index, blob) for index, _, blob in verified.buckets]
        self.store.put_restored(verified.records, self.offer.depth, buckets,
                                verified.certificates)  # fmt: skip
        self.count += len(verified.records)
        self.chunks += 1
        self._early[verified.index] = [(index, h) for index, h, _ in verified.buckets]
        while self._next in self._early:
            for index, hashed in self._early.pop(self._next):
                self._builder.add_hash(index, hashed)
            self._next += 1
        if len(self._children) >= 4096:
            self.store.put_tree_children(self.offer.depth, self._children)
            self._children = []

    def finish(self, genesis_root: bytes, genesis_hash: bytes) -> None:
        """Complete the store once every chunk was added: the tree's top checked against
        the certified root, then the height, its block and certificate, the genesis it
        began from and the validator-set history (`finish_restore`). Raises
        `SnapshotError` when a chunk is missing or the tree does not give the root."""
        offer, missing = self.offer, len(self.offer.ranges) - self.chunks
        if missing or self._next != len(offer.ranges):
            raise SnapshotError(f"{missing} chunks of the snapshot were not restored")
        top = self._builder.finish()
        self.store.put_tree_children(offer.depth, self._children)
        self._children = []
        self.store.flush_restored()
        _check_root(bucket_tree.root_hash(offer.depth, top), offer.root)
        if bucket_tree.depth_for(self.count) != offer.depth:  # a proved root rules it out
            raise SnapshotError(f"{self.count} records in a tree of depth {offer.depth}")
        _finish(self.store, offer, genesis_root, genesis_hash, indexed=True)
        self.store.put_tree_meta(offer.depth, self.count, top)


def _check_root(found: bytes, root: bytes) -> None:
    if found != root:
        raise SnapshotError(
            f"the restored state's root {found.hex()[:16]}... is not the certified "
            f"{root.hex()[:16]}..."
        )


def _finish(store: Store, offer: Offer, genesis_root: bytes, genesis_hash: bytes,
            indexed: bool) -> None:  # fmt: skip
    store.finish_state_sync(offer.height, offer.block, offer.certificate, genesis_root,
                            genesis_hash, certificates_indexed=indexed)  # fmt: skip
    validator_history.start(store, offer.height, offer.block, offer.hops)


def finish_restore(store: Store, offer: Offer, genesis_root: bytes, genesis_hash: bytes) -> None:
    """Complete a store whose every chunk of `offer` was verified and written as records
    alone (`Store.put_state_records`, not `Restore`): the height, its block and
    certificate, then the tree rebuilt from the records (`Store.rebuild_tree`) and its
    root checked against the certified one (block h+1's header). Raises `SnapshotError`
    when the state read back does not have that root (the caller throws the store away)."""
    _finish(store, offer, genesis_root, genesis_hash, indexed=False)
    store.rebuild_tree()
    meta = store.tree_meta()
    assert meta is not None, "a tree just rebuilt is current"
    _check_root(bucket_tree.root_hash(meta[0], meta[2]), offer.root)
