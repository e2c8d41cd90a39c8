"""RocksDB storage for a node, through rocksdict: blocks, a transaction index, state, the
consensus write-ahead log and metadata, each in its own column family.

Everything one height produces (the block, its commit certificate, the transaction index
entries with each transaction's receipt events, the block's end-of-block events, every state
record the block wrote, and the new height) goes into one WriteBatch, written with sync:
after a crash the store holds either all of a height or none of it. Receipts are kept because
clients ask what their transaction did long after the node that ran it returned the events;
they are derived data (not in the state root), pruned with the block they belong to.

The `index` column family holds secondary indexes the API needs and consensus does not:
certificates by holder, by first owner and by status (`certificate_ids`), kept by
`storage.indexes` from the certificate records a height writes, in the same batch, from the
record each one replaces (read from the state column before the batch lands), so they never
disagree with the state; they are outside the state root, never pruned (they describe
current state, not history), and `rebuild_certificate_index` recomputes them from the state
alone (a store made before the index existed gets it when it is first opened).

State records are stored as `[type name, canonical bytes]` so that a node can load them
back into typed records; the state root is computed over the canonical bytes alone, so the
type tag never affects consensus.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import msgspec
from rocksdict import Checkpoint, Rdict, ReadOptions, WriteBatch, WriteOptions

from gridtokenx.chain import blocks
from gridtokenx.chain.application import Application
from gridtokenx.chain.blocks import StoredReceipt, decode_events
from gridtokenx.consensus.core import Persistent
from gridtokenx.ledger import (
    bucket_tree,
    certificates,
    genesis,
    transition,
)
from gridtokenx.ledger.bucket_tree import TreeWrites
from gridtokenx.ledger.certificates import Certificate
from gridtokenx.ledger.context import Event
from gridtokenx.ledger.state import R, State, wrong_type
from gridtokenx.storage import indexes
from gridtokenx.storage import options as store_options
from gridtokenx.storage.indexes import (  # callers list certificates with the store's name
    certificate_index_prefix as certificate_index_prefix,
)
from gridtokenx.storage.read_ahead import MISSING, ReadAhead
from gridtokenx.wire import codec, crypto, tx

COLUMN_FAMILIES: Final = ("blocks", "txs", "state", "wal", "meta", "pool", "index", "tree")
HEIGHT_KEY: Final = b"height"
WAL_KEY: Final = b"consensus"
PRUNED_KEY: Final = b"pruned_below"
CERT_INDEX_KEY: Final = b"index/certificates"  # in meta: the certificate index is built
CERT_PREFIX: Final = certificates.certificate_key(0)[:-8]
"""Where certificates sit in the state, for callers that scan a state for them (the store's
tests); the store itself recognises certificates by their type (`storage.indexes`)."""

RECORD_TYPES: Final = transition.RECORD_TYPES

_BY_NAME: Final = {t.__name__: t for t in RECORD_TYPES}
# A stored record names its type by class name alone (short, since every state record
# carries it), so two types sharing a name would decode one as the other after a restart.
if len(_BY_NAME) != len(RECORD_TYPES):
    raise TypeError("record type names in RECORD_TYPES must be unique")
_DECODERS: Final = {name: msgspec.msgpack.Decoder(t) for name, t in _BY_NAME.items()}
_PREFIXES: Final = {t: codec.encode((name, b""))[:-2] for name, t in _BY_NAME.items()}
"""A stored record's bytes before its body's: the pair's array header and the type name (a
MessagePack bin header follows, then the body: `encode_record`)."""
_ARRAY_DECODERS: Final = {name: msgspec.msgpack.Decoder(list[t]) for name, t in _BY_NAME.items()}  # type: ignore[valid-type]


class StoreError(RuntimeError):
    pass


class StoreUnavailable(StoreError):
    """The store does not open; the message names its directory and RocksDB's reason."""


class StoreLocked(StoreUnavailable):
    """Another process has the store open (RocksDB lets one process at a time): most often
    the home's node is still running."""


class StoreCorrupt(StoreUnavailable):
    """The store's files are damaged: RocksDB refuses them, or a record does not decode."""


class StoreOfAnotherChain(StoreUnavailable):
    """The store began from another genesis than the home's genesis.json: a home whose
    genesis was replaced (a new ceremony, the wrong file copied in) over an old store.
    Running on would serve and sign another chain's history under this one's name."""


_ROCKSDB_FILES: Final = ("MANIFEST-", "OPTIONS-", ".sst", ".log")


def _open_failure(path: Path, exc: Exception) -> StoreUnavailable:
    """What a failed `Rdict` open means (rocksdict raises a bare Exception carrying
    RocksDB's status text: "IO error: While lock file: .../LOCK: ...", "Corruption: ...")."""
    reason = " ".join(str(exc).split())
    if "/LOCK" in reason and reason.startswith("IO error"):
        where = "in this process" if "by current process" in reason else "in another process"
        return StoreLocked(f"{path} is open {where}")
    # The directory exists by now, so a file RocksDB cannot find is one the store lost.
    if reason.startswith("Corruption") or "No such file or directory" in reason:
        return StoreCorrupt(f"{path} is damaged ({reason})")
    return StoreUnavailable(f"cannot open {path} ({reason})")


def _check_not_headless(path: Path) -> None:
    """A directory holding RocksDB's files without the CURRENT file naming its manifest is
    a damaged store: opening it with `create_if_missing` would write a new empty store
    among the old files (and fail half-way), so it is refused before RocksDB sees it."""
    if (path / "CURRENT").exists() or not path.is_dir():
        return
    if any(name in entry.name for entry in path.iterdir() for name in _ROCKSDB_FILES):
        raise StoreCorrupt(f"{path} is damaged (RocksDB files without a CURRENT file)")


_BIN8: Final = tuple(b"\xc4" + bytes([size]) for size in range(0x100))
"""The msgpack bin8 header of each size: a record's header looked up, not formatted."""


def encode_record(record: msgspec.Struct, body: bytes | None = None) -> bytes:
    """The stored form: `codec.encode((type name, codec.encode(record)))`, put together
    from the type's prefix and the record's bytes, the same bytes at about half the cost
    (`tests/storage`), once per record a height writes. `body`: the record's encoding
    when the caller has it (the state root encoded it: `State.take_changes`)."""
    prefix = _PREFIXES.get(type(record))
    if prefix is None:
        name = type(record).__name__
        raise StoreError(f"record type {name} is not registered in store.RECORD_TYPES")
    if body is None:
        body = codec.encode(record)
    size = len(body)
    if size < 0x100:
        return prefix + _BIN8[size] + body
    header = b"\xc5" + size.to_bytes(2) if size < 0x10000 else b"\xc6" + size.to_bytes(4)
    return prefix + header + body


def record_decoder(name: str, many: bool = False) -> msgspec.msgpack.Decoder[Any] | None:
    """The decoder of the record type a stored record names (None: no such type); with
    `many`, of an array of them (state sync checks a chunk's records a type at a time)."""
    return (_ARRAY_DECODERS if many else _DECODERS).get(name)


def decode_record(data: bytes) -> msgspec.Struct:
    name, raw = msgspec.msgpack.decode(data)
    decoded: msgspec.Struct = _DECODERS[name].decode(raw)
    return decoded


def _height_key(height: int) -> bytes:
    return height.to_bytes(8)


def _tx_hashes(body: bytes, height: int) -> list[bytes]:
    """The tx index keys of a stored block: a committed block holds canonical encodings
    only, so hashing its bytes gives the same id as `SignedTransaction.hash`."""
    try:
        txs = blocks.decode(body).txs
    except msgspec.DecodeError:
        raise StoreError(f"the stored block at height {height} does not decode") from None
    return [crypto.tagged_hash(tx.TX_HASH_DOMAIN, raw) for raw in txs]


def _block_hash(body: bytes, height: int) -> bytes:
    try:
        return blocks.decode(body).hash
    except msgspec.DecodeError:
        raise StoreError(f"the block at height {height} does not decode") from None


class Store:
    def __init__(self, path: Path, cache_mb: int = store_options.DEFAULT_CACHE_MB,
                 bulk: bool = False, mmap_reads: bool = True,
                 read_threads: int = store_options.READ_THREADS,
                 read_ahead: bool | None = None) -> None:  # fmt: skip
        """Open (or create) the store at `path`, with a block cache of `cache_mb`
        (`storage.options`; `bulk`: a store a state sync writes, `put_restored`;
        `mmap_reads`: its table files read through memory maps; `read_threads`: the
        threads a block's tree reads are spread over, `tree_bucket_many` and
        `tree_warm`, 0 for none; `read_ahead`: whether a block's reads start ahead on
        them, None to judge by whether its roots' reads go to the disk, `reading_ahead`). One that
        cannot open raises `StoreUnavailable`: `StoreLocked` when another process holds
        it, `StoreCorrupt` when its files are damaged; nothing is left open either way."""
        self.path = path
        self._families: dict[str, Rdict] = {}
        self._read_threads = read_threads
        self._read_ahead = read_ahead
        self._cold = False  # the last root read in one batch had the disk read (COLD_READ_SHARE)
        self._roots = 0  # roots' bucket reads so far (`tree_bucket_many`)
        self._readers: ThreadPoolExecutor | None = None  # started by the first large read
        self._tree_ahead = ReadAhead()  # buckets (`tree_warm`)
        self._records_ahead = ReadAhead()  # state records (`records_warm`)
        _check_not_headless(path)
        if path.exists() and not path.is_dir():
            raise StoreUnavailable(f"{path} is not a directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only or full disk
            raise StoreUnavailable(f"cannot create {path} ({exc.strerror or exc})") from None
        options, cache = store_options.database(cache_mb, bulk, mmap_reads)
        families = {name: store_options.family(name, cache, bulk) for name in COLUMN_FAMILIES}
        self._cache = cache  # shared by every family's table
        try:
            self._db: Rdict | None = Rdict(str(path), options=options, column_families=families)
        except Exception as exc:  # rocksdict's errors are bare Exceptions
            raise _open_failure(path, exc) from None
        self._sync = WriteOptions()
        self._sync.sync = True
        self._unlogged = WriteOptions()
        # A property, though rocksdict's stub declares a method.
        self._unlogged.disable_wal = True  # type: ignore[method-assign, assignment]
        try:
            if self._get("meta", CERT_INDEX_KEY) is None:
                self.rebuild_certificate_index()
        except BaseException:
            self.close()
            raise

    # --- plumbing --------------------------------------------------------------------------
    @property
    def db(self) -> Rdict:
        if self._db is None:
            raise StoreError("the store is closed")
        return self._db

    def _cf(self, name: str) -> Any:
        return self.db.get_column_family_handle(name)

    def _family(self, family: str) -> Rdict:
        cf = self._families.get(family)
        if cf is None:  # opening a family's handle costs more than the read itself
            cf = self._families[family] = self.db.get_column_family(family)
        return cf

    def _get(self, family: str, key: bytes) -> bytes | None:
        value: bytes | None = self._family(family).get(key)
        return value

    def _get_many(self, family: str, keys: list[bytes]) -> list[bytes | None]:
        asked: list[str | int | float | bytes | bool] = list(keys)
        found = self._family(family).get(asked)
        assert isinstance(found, list)
        return found

    def _reader_pool(self) -> ThreadPoolExecutor | None:
        if self._readers is None and self._read_threads > 0 and self._db is not None:
            self._readers = ThreadPoolExecutor(self._read_threads, "store-read")
        return self._readers

    def _get_spread(self, family: str, keys: list[bytes]) -> list[bytes | None]:
        """`_get_many` over the reader threads, in slices: rocksdict lets go of the
        interpreter lock inside a multi-get, so the slices' reads that miss the page
        cache wait for the disk side by side instead of one after another (2,000 random
        buckets of the 20-million-record store under a 2 GB memory limit: 67-98 ms in
        one multi-get, 27-29 ms over 16 threads; ADR 0007)."""
        pool = self._reader_pool()
        if pool is None or len(keys) < 2 * store_options.READ_SLICE:
            return self._get_many(family, keys)
        slices = min(self._read_threads, len(keys) // store_options.READ_SLICE)
        step = -(-len(keys) // slices)
        cf = self._family(family)
        parts = [list[str | int | float | bytes | bool](keys[i : i + step])
                 for i in range(0, len(keys), step)]  # fmt: skip
        found: list[bytes | None] = []
        for part in pool.map(cf.get, parts):
            assert isinstance(part, list)
            found.extend(part)
        return found

    def close(self) -> None:
        if self._readers is not None:  # no read may outlive the database
            self._readers.shutdown(wait=True, cancel_futures=True)
            self._readers = None
        self._families.clear()  # every handle goes before the database closes
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- heights ---------------------------------------------------------------------------
    def height(self) -> int:
        """The last height fully written (0 before the first block)."""
        raw = self._get("meta", HEIGHT_KEY)
        return 0 if raw is None else int.from_bytes(raw)

    def commit_height(
        self,
        height: int,
        block: bytes,
        commit: bytes,
        tx_hashes: list[bytes],
        changes: dict[bytes, msgspec.Struct | None],
        receipts: list[bytes] | None = None,
        end_events: bytes | None = None,
        block_hash: bytes | None = None,
        tree: TreeWrites | None = None,
        forget: list[bytes] | None = None,
        encoded: dict[bytes, bytes] | None = None,
    ) -> None:
        """Write everything of one height in one synced batch, or nothing.

        `receipts` holds each transaction's encoded events (`encode_events`), in the order
        of `tx_hashes`; `end_events` the encoded events of the end of the block;
        `block_hash` indexes the block for `block_height`; `tree` the state root's tree
        changes (`State.take_tree_writes`): without them the stored tree is left behind
        and rebuilt from the records when the store is next opened; `forget` the hashes
        of saved pending transactions to delete (`save_pending`), those the height took
        out of the mempool; `encoded` the records' encodings the state root made, by key
        (`State.take_changes`), so that they are not encoded again."""
        if height != self.height() + 1:
            raise StoreError(f"height {height} does not follow {self.height()}")
        if receipts is not None and len(receipts) != len(tx_hashes):
            raise StoreError(f"{len(receipts)} receipts for {len(tx_hashes)} transactions")
        batch = WriteBatch(raw_mode=True)
        put, at = batch.put, _height_key(height)
        blocks_cf, txs, state, meta = (self._cf(n) for n in ("blocks", "txs", "state", "meta"))
        put(b"b" + at, block, blocks_cf)
        put(b"c" + at, commit, blocks_cf)
        if block_hash is not None:
            put(b"h" + block_hash, at, blocks_cf)
        if end_events is not None:
            put(b"e" + at, end_events, blocks_cf)
        events = [b""] * len(tx_hashes) if receipts is None else receipts
        for index, tx_hash in enumerate(tx_hashes):  # a loop per transaction and per record:
            put(tx_hash, at + index.to_bytes(4) + events[index], txs)  # names bound once
        bodies = encoded or {}
        for key, record in changes.items():
            if record is None:
                batch.delete(key, state)
            else:
                put(key, encode_record(record, bodies.get(key)), state)
        self._index_certificates(batch, changes)
        if tree is not None:
            self._write_tree(batch, tree, height)
        if forget:
            pool = self._cf("pool")
            for tx_hash in forget:
                batch.delete(tx_hash, pool)
        batch.put(HEIGHT_KEY, _height_key(height), meta)
        self.db.write(batch, self._sync)
        self._state_written()
        if tree is not None:
            self._tree_written()

    # --- secondary indexes (not consensus data, kept by storage.indexes) -------------------
    def _stored(self, key: bytes) -> msgspec.Struct | None:
        raw = self._get("state", key)
        return None if raw is None else self._decode(key, raw)

    def _decode(self, key: bytes, raw: bytes) -> msgspec.Struct:
        """A stored record; a damaged one raises `StoreCorrupt`, so a node never runs on a
        state it misread (records are read when first needed, so this is when it shows)."""
        try:
            return decode_record(raw)
        except (msgspec.MsgspecError, KeyError, ValueError, TypeError):
            raise StoreCorrupt(
                f"{self.path} is damaged (the state record {key.hex()} does not decode)"
            ) from None

    def get(self, key: bytes, typ: type[R]) -> R | None:
        """One state record as of the head, without loading the whole state: the store is
        a `ledger.state.Records`, so the ledger's queries (`accounts.supply`,
        `chain_info.params`) read it directly."""
        record = self._stored(key)
        if record is None:
            return None
        if not isinstance(record, typ):
            raise wrong_type(key, record, typ)
        return record

    def _index_certificates(
        self, batch: WriteBatch, changes: dict[bytes, msgspec.Struct | None]
    ) -> None:
        indexes.update(batch, self._cf("index"), changes, self._stored)

    def rebuild_certificate_index(self) -> int:
        """Recompute the certificate index from the state column alone (every index entry
        dropped, then one per certificate record); returns the number of certificates.
        Every record is read to find the certificates by type: done once per store, when
        it is created or was made before the index existed."""
        batch = WriteBatch(raw_mode=True)
        found = indexes.rebuild(batch, self._cf("index"), self._records())
        batch.put(CERT_INDEX_KEY, b"1", self._cf("meta"))
        self.db.write(batch, self._sync)
        return found

    def certificate_ids(
        self, prefix: bytes, before: int | None = None, limit: int = 100
    ) -> list[int]:
        """Up to `limit` certificate ids under an index prefix (`certificate_index_prefix`),
        highest (newest) first, below `before` if given: one bounded range read."""
        start = indexes.scan_start(prefix, before)
        keys = (key for key, _ in self._scan("index", prefix, start, backwards=True))
        return indexes.certificate_ids(keys, prefix, before, limit)

    def _scan(
        self,
        family: str,
        prefix: bytes,
        start: bytes | None = None,
        backwards: bool = False,
        cache: bool = True,
    ) -> Iterator[tuple[bytes, bytes]]:
        """Keys with `prefix` from `start` (default: the prefix itself), in key order or
        backwards, stopping at the first key outside the prefix. `cache` off: the blocks
        read stay out of the block cache (a scan whose values the caller keeps)."""
        cf = self.db.get_column_family(family)
        options = None
        if not cache:
            options = ReadOptions()
            options.fill_cache(False)  # type: ignore[call-arg]  # the stub omits `v`
        try:
            items = cf.items(backwards=backwards, from_key=start or prefix, read_opt=options)
            for key, value in items:
                assert isinstance(key, bytes) and isinstance(value, bytes)
                if not key.startswith(prefix):
                    break
                yield key, value
        finally:
            del cf

    # --- the mempool's transactions, kept across a restart ---------------------------------
    def save_pending(self, txs: list[tuple[bytes, bytes]]) -> None:
        """(hash, raw) of admitted transactions. Not synced: RocksDB's log reaches the
        operating system before this returns, so a killed process loses none of them
        (a power cut may lose the last ones, which peers hold too)."""
        if txs:
            batch = WriteBatch(raw_mode=True)
            pool = self._cf("pool")
            for tx_hash, raw in txs:
                batch.put(tx_hash, raw, pool)
            self.db.write(batch)

    def forget_pending(self, hashes: list[bytes]) -> None:
        if hashes:
            batch = WriteBatch(raw_mode=True)
            pool = self._cf("pool")
            for tx_hash in hashes:
                batch.delete(tx_hash, pool)
            self.db.write(batch)

    def pending(self) -> list[bytes]:
        cf = self.db.get_column_family("pool")
        try:
            return [raw for _, raw in cf.items()]
        finally:
            del cf

    def block(self, height: int) -> tuple[bytes, bytes] | None:
        """(block bytes, commit certificate bytes) of a stored height."""
        block = self._get("blocks", b"b" + _height_key(height))
        commit = self._get("blocks", b"c" + _height_key(height))
        return None if block is None or commit is None else (block, commit)

    def block_height(self, block_hash: bytes) -> int | None:
        """The height of a stored block, by its hash."""
        raw = self._get("blocks", b"h" + block_hash)
        return None if raw is None else int.from_bytes(raw)

    def block_events(self, height: int) -> list[Event] | None:
        """The end-of-block events of a stored height (settlements, expiries, jailings);
        None for a height not stored, or stored before receipts were kept."""
        raw = self._get("blocks", b"e" + _height_key(height))
        return None if raw is None else decode_events(raw)

    def receipt(self, tx_hash: bytes) -> StoredReceipt | None:
        raw = self._get("txs", tx_hash)
        if raw is None:
            return None
        events = decode_events(raw[12:]) if len(raw) > 12 else []
        return StoredReceipt(int.from_bytes(raw[:8]), int.from_bytes(raw[8:12]), events)

    def pruned_below(self) -> int:
        """Every height below this one has lost its block, certificate and tx index entries
        (0: nothing was ever pruned, this store can serve block sync from height 1)."""
        raw = self._get("meta", PRUNED_KEY)
        return 0 if raw is None else int.from_bytes(raw)

    def prune(self, keep: int) -> int:
        """Keep the blocks of the last `keep` heights and delete older ones; returns the new
        horizon (`pruned_below`).

        Only history goes: the state column already holds just the current records, so the
        state root is untouched. The head block always stays (`keep` >= 1) because the
        application reloads its hash and time on restart. Each call deletes only the heights
        between the previous horizon and the new one, all in one synced batch with the new
        horizon, so calling it often is cheap, a crash mid-way loses nothing, and a second
        call with the same `keep` changes nothing.
        """
        if keep < 1:
            raise StoreError(f"keep must be at least 1 (the head block), not {keep}")
        previous = self.pruned_below()
        horizon = self.height() - keep + 1
        if horizon <= max(previous, 1):
            return previous
        batch = WriteBatch(raw_mode=True)
        block_cf, txs_cf = self._cf("blocks"), self._cf("txs")
        for height in range(max(previous, 1), horizon):
            body = self._get("blocks", b"b" + _height_key(height))
            if body is not None:
                for tx_hash in _tx_hashes(body, height):
                    batch.delete(tx_hash, txs_cf)
                batch.delete(b"h" + _block_hash(body, height), block_cf)
            batch.delete(b"b" + _height_key(height), block_cf)
            batch.delete(b"c" + _height_key(height), block_cf)
            batch.delete(b"e" + _height_key(height), block_cf)
        batch.put(PRUNED_KEY, _height_key(horizon), self._cf("meta"))
        self.db.write(batch, self._sync)
        return horizon

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        raw = self._get("txs", tx_hash)
        return None if raw is None else (int.from_bytes(raw[:8]), int.from_bytes(raw[8:12]))

    # --- state -----------------------------------------------------------------------------
    def save_genesis_state(self, state: State, genesis_hash: bytes | None = None) -> None:
        """The genesis state, as height 0's writes (only into an empty store), and the hash
        of the genesis it came from, which every later open checks."""
        if self.height() != 0 or self.has_genesis():
            raise StoreError("the store already holds a chain")
        batch = WriteBatch(raw_mode=True)
        cf = self._cf("state")
        changes = state.take_changes()
        for key, record in changes.items():
            if record is not None:
                batch.put(key, encode_record(record), cf)
        self._index_certificates(batch, changes)
        batch.put(b"genesis", state.root(), self._cf("meta"))
        if genesis_hash is not None:
            batch.put(b"genesis_hash", genesis_hash, self._cf("meta"))
        self.db.write(batch, self._sync)
        self._state_written()

    def has_genesis(self) -> bool:
        return self._get("meta", b"genesis") is not None

    def genesis_root(self) -> bytes | None:
        """The state root of the genesis state this store began from."""
        return self._get("meta", b"genesis")

    def genesis_hash(self) -> bytes | None:
        """The hash of the genesis this store began from (None: a store from before
        December 2026, which recorded only the genesis state root)."""
        return self._get("meta", b"genesis_hash")

    def check_genesis(self, spec: genesis.Genesis) -> None:
        """Raise `StoreOfAnotherChain` unless this store began from `spec`: its genesis
        hash where the store recorded one, and its genesis state root always (which a
        store from before the hash was recorded can be checked by)."""
        problem = None
        held = self.genesis_hash()
        if held is not None:  # the hash decides (the root's formula changed in 2026-12)
            if held != spec.hash():
                problem = f"genesis hash {held.hex()[:16]}..., not {spec.hash().hex()[:16]}..."
        elif (root := genesis.build_state(spec).root()) != self.genesis_root():
            held_root = (self.genesis_root() or b"").hex()[:16]
            problem = f"genesis state root {held_root}..., not {root.hex()[:16]}..."
        if problem is not None:
            raise StoreOfAnotherChain(
                f"{self.path} began from another genesis ({problem} of chain "
                f"{spec.chain_id!r}): move the store aside to sync this chain, or put back "
                "the genesis.json it was made with"
            )

    def _records(self) -> Iterator[tuple[bytes, msgspec.Struct]]:
        """Every state record, decoded; a damaged one (or a block RocksDB finds corrupt as
        it reads) raises `StoreCorrupt`, so a node never starts from a state it misread."""
        cf = self.db.get_column_family("state")
        try:
            for key, value in cf.items():
                assert isinstance(key, bytes) and isinstance(value, bytes)
                yield key, self._decode(key, value)
        except StoreCorrupt:
            raise
        except Exception as exc:
            if str(exc).startswith("Corruption"):  # RocksDB's, as a bare Exception
                raise StoreCorrupt(f"{self.path} is damaged ({exc})") from None
            raise
        finally:
            del cf

    def load_state(self) -> State:
        """Every record in memory (tools that walk the whole state); a node runs over
        `open_state` instead."""
        return State.restore(self._records())

    # --- the state root's tree (column family `tree`) ---------------------------------------
    # b"m": depth (1 byte), record count (8), top node (32), the height it is current at (8)
    # b"b" + depth + bucket (4 bytes): a bucket (`bucket_tree.encode_bucket`)
    # b"c" + depth + level + parent (4 bytes): the 16 hashes of its children on that level

    def open_state(self) -> State:
        """The state as a node runs it: records and the tree read from here on demand.
        A store whose tree is missing or behind its records (written before the tree was
        kept, or by a tool that wrote records only) has it rebuilt from the records
        first: one pass over the state, done once."""
        if self.tree_meta() is None:
            self.rebuild_tree()
        return State(self)

    def rebuild_tree(self) -> None:
        """Recompute the tree from the state column and store it (the migration of a
        store made before the tree was kept), in two streaming passes so memory stays
        flat: each record's leaf is filed under its 32-bit position (RocksDB sorts them),
        then the positions are read back in order, bucket after bucket, and the tree is
        built upwards as each children blob completes. A leaf comes from the record's
        stored canonical bytes, without decoding the record. An interrupted rebuild
        leaves no current tree, so the next open starts it again."""
        cf, page = self._cf("tree"), 50_000
        batch, pending, count = WriteBatch(raw_mode=True), 0, 0
        batch.delete_range(b"", b"\xff", cf)
        state = self.db.get_column_family("state")
        try:
            for key, value in state.items():
                assert isinstance(key, bytes) and isinstance(value, bytes)
                try:
                    _, raw = msgspec.msgpack.decode(value)
                except (msgspec.MsgspecError, ValueError, TypeError):
                    raise StoreCorrupt(
                        f"{self.path} is damaged (the state record {key.hex()} does not decode)"
                    ) from None
                position = bucket_tree.key_position(key).to_bytes(4)
                batch.put(b"t" + position + key, bucket_tree.leaf_hash(key, raw), cf)
                count, pending = count + 1, pending + 1
                if pending >= page:
                    self.db.write(batch)
                    batch, pending = WriteBatch(raw_mode=True), 0
        finally:
            del state
        self.db.write(batch)
        depth = bucket_tree.depth_for(count)
        batch, tag = WriteBatch(raw_mode=True), bytes([depth])

        def emit(level: int, parent: int, blob: bytes) -> None:
            batch.put(b"c" + tag + bytes([level]) + parent.to_bytes(4), blob, cf)

        builder = bucket_tree.TreeBuilder(depth, emit)

        def close(index: int, leaves: dict[bytes, bytes]) -> None:
            builder.add_bucket(index, leaves)
            batch.put(b"b" + tag + index.to_bytes(4), bucket_tree.encode_bucket(leaves), cf)

        index, leaves = -1, dict[bytes, bytes]()
        for stored, leaf in self._scan("tree", b"t"):
            found = bucket_tree.bucket_at(int.from_bytes(stored[1:5]), depth)
            if found != index and leaves:
                close(index, leaves)
                leaves = {}
            index, leaves[stored[5:]] = found, leaf
            if batch.len() >= page:
                self.db.write(batch)
                batch = WriteBatch(raw_mode=True)
        if leaves:
            close(index, leaves)
        top = builder.finish()
        batch.delete_range(b"t", b"u", cf)
        height = self.height()
        batch.put(b"m", tag + count.to_bytes(8) + top + _height_key(height), cf)
        self.db.write(batch, self._sync)
        # The filing pass left a leaf per record behind a range deletion, as much again as
        # the tree (1.2 GB of the family's 3.2 at 20 million records), and the tree itself
        # in several levels: compacted now, once, the family is the tree alone in one
        # level. Left to RocksDB's own compactions, a restart took 9.6 instead of 4.6 s
        # there and the root's bucket reads cost more until they had run.
        self.db.get_column_family("tree").compact_range(None, None)
        self._tree_written()

    def _write_tree(self, batch: WriteBatch, writes: TreeWrites, height: int) -> None:
        cf = self._cf("tree")
        if writes.dropped is not None:
            for kind in b"bc":
                start = bytes([kind, writes.dropped])
                batch.delete_range(start, bytes([kind, writes.dropped + 1]), cf)
        depth = bytes([writes.depth])
        tag, put = b"b" + depth, batch.put  # a loop per bucket written: 2.6 a crossing order
        for index, blob in writes.buckets.items():
            if blob is None:
                batch.delete(tag + index.to_bytes(4), cf)
            else:
                put(tag + index.to_bytes(4), blob, cf)
        for level, blobs in writes.children.items():
            tag = b"c" + depth + bytes([level])
            for parent, blob in blobs.items():
                key = tag + parent.to_bytes(4)
                if blob is None:
                    batch.delete(key, cf)
                else:
                    batch.put(key, blob, cf)
        meta = depth + writes.count.to_bytes(8) + writes.top + _height_key(height)
        batch.put(b"m", meta, cf)

    def tree_meta(self) -> tuple[int, int, bytes] | None:
        """(depth, record count, top node) of the stored tree, None unless it is current."""
        raw = self._get("tree", b"m")
        if raw is None or int.from_bytes(raw[41:49]) != self.height():
            return None
        return raw[0], int.from_bytes(raw[1:9]), raw[9:41]

    def tree_bucket(self, depth: int, index: int) -> bytes | None:
        return self._get("tree", b"b" + bytes([depth]) + index.to_bytes(4))

    def tree_children(self, depth: int, level: int, parent: int) -> bytes | None:
        return self._get("tree", b"c" + bytes([depth, level]) + parent.to_bytes(4))

    @property
    def reading_ahead(self) -> bool:
        """Do a block's reads start ahead on the reader threads now (`tree_warm`,
        `records_warm`, and the root's own reads spread over them)? Always or never when
        the store was opened saying so; otherwise while the last root read in one batch
        had the disk read for its buckets (COLD_READ_SHARE: they are not in memory), but
        for one block in PROBE_EVERY, whose root reads in one batch again. A state that
        fits in memory, as a devnet's does, gains nothing from them and paid their
        hand-offs."""
        if self._read_threads <= 0 or self._read_ahead is False:
            return False
        if self._read_ahead:
            return True
        return self._cold and self._roots % store_options.PROBE_EVERY != 0

    def tree_bucket_many(self, depth: int, indexes: list[int]) -> list[bytes | None]:
        """The buckets, those read ahead by `tree_warm` and done taken from there (the
        rest of what was read ahead is forgotten), the others read now: over the reader
        threads while reading ahead, else in one multi-get whose disk reads are counted
        (`reading_ahead`)."""
        ahead = self._tree_ahead.take_all()
        keys = _bucket_keys(depth, indexes)
        spread = self.reading_ahead
        self._roots += 1
        if ahead:
            rest = [key for key in keys if key not in ahead]
            ahead.update(zip(rest, self._get_spread("tree", rest), strict=True))
            return [ahead[key] for key in keys]
        if spread:
            return self._get_spread("tree", keys)
        before = _disk_reads()
        found = self._get_many("tree", keys)
        if len(keys) >= 2 * store_options.READ_SLICE:  # a few reads say little
            read = _disk_reads() - before
            self._cold = read > store_options.COLD_READ_SHARE * len(keys)
        return found

    def tree_warm(self, depth: int, indexes: list[int]) -> None:
        """Start reading these buckets on a reader thread, for `tree_bucket_many` to take
        (`State` asks for the buckets of the keys a block has written so far while the
        block still executes, so their reads wait for the disk beside the execution, not
        at the root). A read is kept only while the tree family is as it was when it
        was asked for: any write to the family since (a height's, `_tree_written`)
        drops it, so a bucket read ahead is never older than the store's."""
        pool = self._reader_pool() if self.reading_ahead else None
        if pool is not None:
            self._tree_ahead.start(pool, self._family("tree"), _bucket_keys(depth, indexes))

    def _tree_written(self) -> None:
        """After any write to the tree family: what was read ahead before it may be old."""
        self._tree_ahead.written()

    def records_warm(self, keys: list[bytes]) -> None:
        """Start reading these state records on the reader threads, in slices, for
        `record` to take (`State.warm_records`: a block's senders before it executes),
        under the same rule as `tree_warm`, dropped by any write to the state family."""
        pool = self._reader_pool() if self.reading_ahead else None
        size = 2 * store_options.READ_SLICE
        if pool is not None:
            family = self._family("state")
            for at in range(0, len(keys), size):
                self._records_ahead.start(pool, family, keys[at : at + size])

    def _state_written(self) -> None:
        self._records_ahead.written()

    def tree_children_many(self, depth: int, level: int, parents: list[int]) -> list[bytes | None]:
        tag = b"c" + bytes([depth, level])
        return self._get_many("tree", [tag + parent.to_bytes(4) for parent in parents])

    def tree_buckets(self, depth: int) -> Iterator[tuple[int, bytes]]:
        prefix = b"b" + bytes([depth])
        for key, blob in self._scan("tree", prefix):
            yield int.from_bytes(key[2:]), blob

    def tree_children_level(self, depth: int, level: int) -> Iterator[tuple[int, bytes]]:
        # pinned: the tree keeps them, so they would only push the buckets out of the cache
        for key, blob in self._scan("tree", b"c" + bytes([depth, level]), cache=False):
            yield int.from_bytes(key[3:]), blob

    def record(self, key: bytes) -> msgspec.Struct | None:
        """One committed record (`ledger.state.StateSource`), read ahead or now."""
        ahead = self._records_ahead.take(key)
        if ahead is MISSING:
            return self._stored(key)
        return None if ahead is None else self._decode(key, ahead)  # type: ignore[arg-type]

    def records(self, prefix: bytes) -> Iterator[tuple[bytes, msgspec.Struct]]:
        for key, value in self._scan("state", prefix):
            yield key, self._decode(key, value)

    # --- state sync (`storage.snapshots`) --------------------------------------------------
    def put_state_records(self, records: list[tuple[bytes, bytes]]) -> None:
        """Records of a verified snapshot chunk, in their stored form, into a store being
        state-synced (unsynced: `finish_state_sync` writes with sync)."""
        batch = WriteBatch(raw_mode=True)
        cf = self._cf("state")
        for key, value in records:
            batch.put(key, value, cf)
        self.db.write(batch)
        self._state_written()

    def put_restored(self, records: list[tuple[bytes, bytes]], depth: int,
                     buckets: list[tuple[int, bytes]],
                     certs: list[tuple[bytes, Certificate]]) -> None:  # fmt: skip
        """A verified snapshot chunk (`snapshots.Restore`) into a store being state-synced:
        its records in stored form, its tree buckets at `depth` (`bucket_tree.encode_bucket`
        blobs) and its certificates' index entries, in one batch without the write-ahead
        log (a join that fails throws the store away; `flush_restored` makes them
        durable). Open such a store `bulk`."""
        batch = WriteBatch(raw_mode=True)
        state, tree, index = (self._cf(n) for n in ("state", "tree", "index"))
        for key, value in records:
            batch.put(key, value, state)
        tag = b"b" + bytes([depth])
        for bucket, blob in buckets:
            batch.put(tag + bucket.to_bytes(4), blob, tree)
        for _, certificate in certs:
            for entry in sorted(indexes.entries(certificate)):
                batch.put(entry, b"", index)
        self.db.write(batch, self._unlogged)
        self._state_written()
        self._tree_written()

    def put_tree_children(self, depth: int, blobs: list[tuple[int, int, bytes]]) -> None:
        """Children blobs (level, parent, blob) of a tree a state sync builds, unlogged."""
        batch, cf = WriteBatch(raw_mode=True), self._cf("tree")
        for level, parent, blob in blobs:
            batch.put(b"c" + bytes([depth, level]) + parent.to_bytes(4), blob, cf)
        self.db.write(batch, self._unlogged)
        self._tree_written()

    def flush_restored(self) -> None:
        """Put what `put_restored` wrote (without the write-ahead log) on disk."""
        for name in store_options.BULK:
            self.db.get_column_family(name).flush()

    def put_tree_meta(self, depth: int, count: int, top: bytes) -> None:
        """Mark the tree a state sync wrote (`flush_restored` first) current at this
        height."""
        meta = bytes([depth]) + count.to_bytes(8) + top + _height_key(self.height())
        self.db.get_column_family("tree").put(b"m", meta, self._sync)
        self._tree_written()

    def finish_state_sync(
        self, height: int, block: bytes, commit: bytes, genesis_root: bytes, genesis_hash: bytes,
        certificates_indexed: bool = False,
    ) -> None:  # fmt: skip
        """Make a store whose state records a snapshot wrote a chain at `height`: its block
        and certificate, the genesis it began from, and nothing below it (`pruned_below`).
        The certificate index is rebuilt from the records unless `certificates_indexed`
        (`put_restored` wrote it chunk by chunk)."""
        if self.height() != 0:
            raise StoreError("only a new store is state-synced")
        batch = WriteBatch(raw_mode=True)
        blocks_cf, meta = self._cf("blocks"), self._cf("meta")
        batch.put(b"b" + _height_key(height), block, blocks_cf)
        batch.put(b"c" + _height_key(height), commit, blocks_cf)
        batch.put(b"h" + _block_hash(block, height), _height_key(height), blocks_cf)
        batch.put(b"genesis", genesis_root, meta)
        batch.put(b"genesis_hash", genesis_hash, meta)
        batch.put(PRUNED_KEY, _height_key(height), meta)
        batch.put(HEIGHT_KEY, _height_key(height), meta)
        if certificates_indexed:
            batch.put(CERT_INDEX_KEY, b"1", meta)
        self.db.write(batch, self._sync)
        if not certificates_indexed:
            self.rebuild_certificate_index()

    def get_meta(self, name: bytes) -> bytes | None:
        """A value other modules keep beside the chain (`storage.validator_history`)."""
        return self._get("meta", b"x/" + name)

    def put_meta(self, name: bytes, value: bytes) -> None:
        self.db.get_column_family("meta").put(b"x/" + name, value)

    # --- consensus write-ahead log ---------------------------------------------------------
    def save_wal(self, persistent: Persistent) -> None:
        """Synced before the validator sends anything its consensus core asked it to send."""
        batch = WriteBatch(raw_mode=True)
        batch.put(WAL_KEY, codec.encode(persistent), self._cf("wal"))
        self.db.write(batch, self._sync)

    def load_wal(self) -> Persistent | None:
        raw = self._get("wal", WAL_KEY)
        try:
            return None if raw is None else msgspec.msgpack.decode(raw, type=Persistent)
        except msgspec.MsgspecError:
            raise StoreCorrupt(
                f"{self.path} is damaged (its consensus WAL does not decode)"
            ) from None

    # --- backups ---------------------------------------------------------------------------
    def checkpoint(self, destination: Path) -> None:
        """A consistent copy of the whole store (hard links where the filesystem allows).
        RocksDB flushes the memtables first, so the copy holds every write made before
        the call, and a height's batch is in it whole or not at all; the store stays open
        and writable meanwhile, which is how a running node backs itself up."""
        if destination.exists():
            raise StoreError(f"{destination} exists")
        Checkpoint(self.db).create_checkpoint(str(destination))


def open_application(
    spec: genesis.Genesis, path: Path, cache_mb: int = store_options.DEFAULT_CACHE_MB,
    mmap_reads: bool = True, read_threads: int = store_options.READ_THREADS,
) -> Application[Store]:  # fmt: skip
    """Open (or create) a node's store at `path` (`cache_mb`: its block cache;
    `mmap_reads`: its table files read through memory maps; `read_threads`: its tree's
    reader threads) and the application over it,
    starting from genesis when the store is new. A store that does not open or load
    raises `StoreUnavailable` (`StoreLocked`, `StoreCorrupt`, `StoreOfAnotherChain`) and
    is closed again."""
    store = Store(path, cache_mb, mmap_reads=mmap_reads, read_threads=read_threads)
    try:
        if not store.has_genesis():
            store.save_genesis_state(genesis.build_state(spec), spec.hash())
            return Application(
                spec.chain_id, store.open_state(), store, last_time=spec.genesis_time
            )
        store.check_genesis(spec)
        app = Application(spec.chain_id, store.open_state(), store, last_time=spec.genesis_time)
        app.resume()
    except BaseException:
        store.close()
        raise
    return app


def _disk_reads() -> int:
    """What the calling thread has had read from the disk so far: major page faults (a
    memory-mapped table file's page not in memory) and block reads (`read` of one)."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_majflt + usage.ru_inblock


def _bucket_keys(depth: int, indexes: list[int]) -> list[bytes]:
    """The tree family's keys of the buckets at `indexes` of a tree of `depth`."""
    tag = b"b" + bytes([depth])
    return [tag + index.to_bytes(4) for index in indexes]
