"""A node's state over its RocksDB store: records and the root's tree read on demand,
written with each height, bounded caches, a restart that reads the tree rather than
rehashing, and the migration of a store written before the tree was kept. Everything is
checked against the same writes applied to a state held wholly in memory."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.ledger import bucket_tree
from gridtokenx.ledger import state as state_module
from gridtokenx.ledger.accounts import Account
from gridtokenx.ledger.state import State
from gridtokenx.storage import options as store_options
from gridtokenx.storage.store import Store

Batch = dict[bytes, int | None]


def write(state: State, batch: Batch) -> None:
    view = state.overlay()
    for key, value in batch.items():
        if value is None:
            view.delete(key)
        else:
            view.put(key, Account(value, 0, 0))
    view.commit()


def commit(db: Store, state: State) -> None:
    """As a node's height does: the records' encodings the root made go to the store."""
    state.root()
    encoded: dict[bytes, bytes] = {}
    changes = state.take_changes(encoded)
    db.commit_height(db.height() + 1, b"b", b"c", [], changes, tree=state.take_tree_writes(),
                     encoded=encoded)  # fmt: skip


def same(a: State, b: State) -> None:
    assert a.root() == b.root()
    assert list(a.items()) == list(b.items())
    assert len(a) == len(b)
    assert list(a.scan(b"acct/1")) == list(b.scan(b"acct/1"))
    for i in range(0, 701, 7):  # read one by one, those absent too (`BucketTree.lacks`)
        key = b"acct/" + str(i).encode()
        assert a.get(key, Account) == b.get(key, Account)


keys = st.integers(0, 700).map(lambda i: b"acct/" + str(i).encode())
batches = st.lists(
    st.dictionaries(keys, st.one_of(st.none(), st.integers(0, 2**30)), max_size=300),
    min_size=1, max_size=5,
)  # fmt: skip


@pytest.fixture
def small_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Caches far below the state, so that most reads go to RocksDB."""
    monkeypatch.setattr(bucket_tree, "BUCKET_CACHE", 3)
    monkeypatch.setattr(bucket_tree, "NODE_CACHE", 5)
    monkeypatch.setattr(state_module, "RECORD_CACHE", 7)
    monkeypatch.setattr(bucket_tree, "PINNED_BLOBS", 1)  # the top blob only


@settings(max_examples=25, deadline=None)
@given(batches, batches, st.booleans(), st.sampled_from([1, bucket_tree.PINNED_BLOBS]))
def test_a_state_over_the_store_follows_the_same_writes_as_one_in_memory(
    tmp_path_factory: pytest.TempPathFactory, committed: list[Batch], trial: list[Batch],
    keep: bool, pin: int,
) -> None:  # fmt: skip
    """Heights committed, then a trial (rolled back, then replayed or not), across depth
    changes (256 and 4,096 records), with the store reopened in between; with every
    children level pinned, or only the top one."""
    pinned_before = bucket_tree.PINNED_BLOBS
    bucket_tree.PINNED_BLOBS = pin
    try:
        _follow(tmp_path_factory.mktemp("s") / "store", committed, trial, keep)
    finally:
        bucket_tree.PINNED_BLOBS = pinned_before


def _follow(path: Path, committed: list[Batch], trial: list[Batch], keep: bool) -> None:
    reference = State()
    with Store(path) as db:
        state = db.open_state()
        for batch in committed:
            write(state, batch)
            write(reference, batch)
            commit(db, state)
            same(state, reference)
    with Store(path) as db:
        state = db.open_state()  # reads the stored tree: nothing rehashed
        assert db.tree_meta() is not None
        same(state, reference)
        start = state.root()
        state.begin()
        for batch in trial:
            write(state, batch)
        kept = state.trial()
        state.rollback()
        assert state.root() == start
        same(state, reference)
        if keep:
            state.begin()
            state.replay(kept)
            state.release()
            for batch in trial:
                write(reference, batch)
            commit(db, state)
        same(state, reference)
        assert state.root() == reference.recompute_root()
    with Store(path) as db:
        same(db.open_state(), reference)


def test_the_store_is_handed_the_roots_encodings_of_the_records_it_writes_only(
    tmp_path: Path,
) -> None:
    """`take_changes(encoded)` hands over the encoding the root made of each changed
    record, so the store does not encode it again; not one of a record a rollback undid
    (that record is not the one written now), and nothing of what earlier heights took."""
    with Store(tmp_path / "s") as db:
        state = db.open_state()
        write(state, {b"acct/1": 1, b"acct/2": 2})
        commit(db, state)
        write(state, {b"acct/1": 10, b"acct/3": 3, b"acct/2": None})
        state.root()
        state.begin()
        write(state, {b"acct/1": 11, b"acct/4": 4})
        state.root()  # the trial's records are encoded: none of them is kept
        state.rollback()
        encoded: dict[bytes, bytes] = {}
        changes = state.take_changes(encoded)
        assert [k for k, v in sorted(changes.items()) if v is not None] == [b"acct/1", b"acct/3"]
        assert encoded == {b"acct/3": msgspec.msgpack.encode(Account(3, 0, 0))}
        encoded.clear()
        assert state.take_changes(encoded) == {} and encoded == {}


def test_caches_stay_bounded_and_reads_go_to_the_store(tmp_path: Path, small_caches: None) -> None:
    rnd = random.Random(4)
    reference = State()
    with Store(tmp_path / "s") as db:
        state = db.open_state()
        for _ in range(12):
            batch: Batch = {}
            for _ in range(150):
                key = b"acct/" + str(rnd.randrange(1_500)).encode()
                batch[key] = None if rnd.random() < 0.2 else rnd.randrange(10**6)
            write(state, batch)
            write(reference, batch)
            commit(db, state)
            assert len(state._records) <= 7 + 150
            same(state, reference)
        assert state.tree.depth == 2


class RecordCountingStore(Store):
    """The real store, counting the records read from it one by one."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.record_reads: list[bytes] = []

    def record(self, key: bytes) -> msgspec.Struct | None:
        self.record_reads.append(key)
        return super().record(key)


class Seen:
    """A derived index over `acct/` that keeps the last record it was told of per key."""

    prefixes = (b"acct/",)

    def __init__(self, state: State) -> None:
        self.last: dict[bytes, msgspec.Struct | None] = {}

    def on_write(self, key: bytes, record: msgspec.Struct | None) -> None:
        self.last[key] = record


def test_a_trial_reads_no_record_it_only_writes_and_its_rollback_restores_them(
    tmp_path: Path,
) -> None:
    """After a restart nothing is in memory: a trial that writes records without reading
    them (a block's new orders and trades, mostly) journals them unread, so each costs no
    store read; a rollback reads the stored ones back, for the state and its indexes."""
    stored: Batch = {b"acct/" + str(i).encode(): i for i in range(50)}
    with Store(tmp_path / "s") as db:
        state = db.open_state()
        write(state, stored)
        commit(db, state)
        start = state.root()
    with RecordCountingStore(tmp_path / "s") as db:
        state = db.open_state()
        seen = state.index("seen", Seen)
        state.begin()
        changed: Batch = {b"acct/" + str(i).encode(): None if i % 3 else i for i in range(25, 75)}
        write(state, changed)  # half of them stored, half new; a third deleted
        assert db.record_reads == []
        state.rollback()
        assert sorted(db.record_reads) == sorted(changed)  # each once, new ones too
        assert state.root() == start
        for key in changed:
            value = stored.get(key)
            expected = None if value is None else Account(value, 0, 0)
            assert state.get(key, Account) == expected
            assert seen.last[key] == expected
        assert dict(state.items()) == {k: Account(v, 0, 0) for k, v in stored.items()}


def test_a_record_the_tree_shows_absent_is_not_read_from_the_store(tmp_path: Path) -> None:
    """A block reads records that do not exist yet (a party's first position in an
    interval): where memory holds the bucket the key would be in, the tree answers that
    it is absent, and the store is not asked. Where it does not, the store is."""
    stored: Batch = {b"acct/" + str(i).encode(): i for i in range(0, 400, 2)}  # 16 buckets
    with RecordCountingStore(tmp_path / "s") as db:
        state = db.open_state()
        write(state, stored)
        commit(db, state)  # the root read and holds every bucket (none is empty)
        absent = [b"acct/" + str(i).encode() for i in range(1, 400, 2)]
        assert all(state.get(key, Account) is None for key in absent)
        assert db.record_reads == []
    with RecordCountingStore(tmp_path / "s") as db:
        state = db.open_state()  # after a restart, no bucket is held
        assert state.get(absent[0], Account) is None
        assert db.record_reads == [absent[0]]


def test_a_record_written_and_handed_to_the_store_before_its_root_is_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record the tree has not hashed yet is not absent for it: one handed to the store
    (`take_changes`) and then dropped from memory (the record cache at its bound) before
    the next root is read back from the store, though the tree holds its bucket."""
    monkeypatch.setattr(state_module, "RECORD_CACHE", 7)
    with Store(tmp_path / "s") as db:
        state = db.open_state()
        write(state, {b"acct/" + str(i).encode(): i for i in range(400)})
        commit(db, state)  # every bucket held
        write(state, {b"acct/new": 5})
        db.commit_height(db.height() + 1, b"b", b"c", [], state.take_changes())  # no root
        write(state, {b"acct/" + str(i).encode(): i + 1 for i in range(20)})
        assert state._tree.bucket_of(b"acct/new") in state._tree._s.buckets  # not `tree`: a root
        db.commit_height(db.height() + 1, b"b", b"c", [], state.take_changes())
        assert b"acct/new" not in state._records  # handed over, then dropped from memory
        assert state.get(b"acct/new", Account) == Account(5, 0, 0)


class CountingStore(Store):
    """The real store, counting the children blobs the tree reads from it one by one or
    in batches (pinned levels are read whole at open, through `tree_children_level`)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.node_reads: list[int] = []  # the level of each blob read

    def tree_children(self, depth: int, level: int, parent: int) -> bytes | None:
        self.node_reads.append(level)
        return super().tree_children(depth, level, parent)

    def tree_children_many(self, depth: int, level: int, parents: list[int]) -> list[bytes | None]:
        self.node_reads += [level] * len(parents)
        return super().tree_children_many(depth, level, parents)


@pytest.mark.parametrize(("pin", "read_levels"), [(bucket_tree.PINNED_BLOBS, set()), (16, {0})])
def test_pinned_levels_are_read_whole_at_open_and_no_block_reads_them_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pin: int, read_levels: set[int]
) -> None:
    """5,000 records: depth 3, children levels of 256, 16 and 1 blobs. By default all are
    pinned, so blocks after a restart read no node from the store; pinning levels of at
    most 16 blobs leaves the bottom level read on demand (and only it)."""
    monkeypatch.setattr(bucket_tree, "PINNED_BLOBS", pin)
    rnd = random.Random(7)
    reference = State()
    first: Batch = {b"acct/" + str(i).encode(): i for i in range(5_000)}
    with Store(tmp_path / "s") as db:
        state = db.open_state()
        write(state, first)
        write(reference, first)
        commit(db, state)
    with CountingStore(tmp_path / "s") as db:
        state = db.open_state()
        assert state.tree.depth == 3 and db.node_reads == []
        for _ in range(3):
            batch: Batch = {b"acct/" + str(rnd.randrange(6_000)).encode(): rnd.randrange(9)
                            for _ in range(200)}  # fmt: skip
            write(state, batch)
            write(reference, batch)
            commit(db, state)
            assert state.root() == reference.root()
        assert set(db.node_reads) == read_levels
        assert len(db.node_reads) <= (0 if not read_levels else 256)
    with Store(tmp_path / "s") as db:
        same(db.open_state(), reference)


def test_the_block_cache_is_shared_and_sized_by_the_config(tmp_path: Path) -> None:
    """Every column family reads through one cache of `cache_mb`: reading records and the
    tree fills it, up to its capacity."""
    with Store(tmp_path / "s", cache_mb=1) as db:
        state = db.open_state()
        write(state, {b"acct/" + str(i).encode(): i for i in range(20_000)})
        commit(db, state)
        db.db.flush()
        assert db._cache.get_usage() <= 2**20
    with Store(tmp_path / "s", cache_mb=1) as db:
        before = db._cache.get_usage()
        state = db.open_state()
        assert state.root() and len(list(state.items())) == 20_000
        assert before < db._cache.get_usage() <= 2**20


def test_a_store_written_before_the_tree_was_kept_is_migrated_on_open(tmp_path: Path) -> None:
    """Old code wrote records only (and tools still may): the tree is rebuilt from them
    once, then kept, and the state goes on from there."""
    reference = State()
    batch: Batch = {b"acct/" + str(i).encode(): i for i in range(5_000)}  # depth 3
    write(reference, batch)
    with Store(tmp_path / "s") as db:
        db.commit_height(1, b"b", b"c", [], reference.take_changes())  # no tree
        assert db.tree_meta() is None
        state = db.open_state()
        assert db.tree_meta() is not None
        same(state, reference)
        write(state, {b"acct/7": None, b"acct/9999": 5})
        write(reference, {b"acct/7": None, b"acct/9999": 5})
        commit(db, state)
        db.commit_height(3, b"b", b"c", [], {})  # a height without tree writes: behind
        assert db.tree_meta() is None
    with Store(tmp_path / "s") as db:
        same(db.open_state(), reference)


def test_the_migration_leaves_the_tree_alone_in_its_table_files(tmp_path: Path) -> None:
    """The migration files every record's leaf by position, then deletes them with one
    range deletion: compacted at its end, the tree family's files hold the tree's entries
    only (buckets, children blobs, meta), no filing entries and no range deletion for
    every later bucket read to skip."""
    reference = State()
    write(reference, {b"acct/" + str(i).encode(): i for i in range(5_000)})  # depth 3
    with Store(tmp_path / "s") as db:
        db.commit_height(1, b"b", b"c", [], reference.take_changes())
        same(db.open_state(), reference)
        family = db.db.get_column_family("tree")
        found = dict(
            part.strip().split("=", 1)
            for part in family.property_value("rocksdb.aggregated-table-properties").split(";")
            if "=" in part
        )
        assert found["# range deletions"] == "0"
        assert int(found["# entries"]) < 5_000  # 4,096 buckets at most, 273 blobs, meta
        assert family.property_value("rocksdb.num-entries-active-mem-table") == "0"


def test_opening_reads_the_pinned_levels_without_filling_the_block_cache(tmp_path: Path) -> None:
    """The pinned levels are the tree's own memory: read into the block cache as well, at
    20 million records they pushed 512 MB of buckets out of it (and into the RSS). 70,000
    records: depth 4, a bottom level of 4,096 blobs (2 MB), pinned."""
    with Store(tmp_path / "s") as db:
        state = db.open_state()
        write(state, {b"acct/" + str(i).encode(): i for i in range(70_000)})
        commit(db, state)
        db.db.get_column_family("tree").flush()  # into a table file, read through the cache
    with Store(tmp_path / "s") as db:
        before = db._cache.get_usage()
        state = db.open_state()
        assert state.tree.depth == 4
        blob = state.tree.node(0, 0) + state.tree.node(0, 15)  # the bottom level is in memory
        assert len(blob) == 64 and blob != bucket_tree.EMPTY[0] * 2
        assert db._cache.get_usage() - before < 2**20


def test_a_batched_bucket_read_gives_what_single_reads_give(tmp_path: Path) -> None:
    """A block's buckets come from one multi-get (`tree_bucket_many`) through the table
    files' memory maps: the same blobs, in the order asked, as one read each, None for an
    empty bucket, for buckets in table files (flushed) and in the memtable (written by
    the last height, over flushed ones: the newer wins), asked twice or out of order."""
    with Store(tmp_path / "s") as db:
        state = db.open_state()
        write(state, {b"acct/" + str(i).encode(): i for i in range(300)})
        commit(db, state)
        db.db.get_column_family("tree").flush()
        write(
            state,
            {b"acct/" + str(i).encode(): None if i % 7 == 0 else -i for i in range(0, 300, 3)},
        )
        commit(db, state)  # these buckets are in the memtable, over the flushed ones
        depth, count = state.tree.depth, state.tree.bucket_count
        asked = [*range(count - 1, -1, -1), 5, 5, 0]
        many = db.tree_bucket_many(depth, asked)
        assert many == [db.tree_bucket(depth, index) for index in asked]
        assert None in many and len(many) == len(asked)  # 256 buckets, some left empty
        for index, blob in zip(asked, many, strict=True):
            leaves = state.tree.bucket_leaves(index)
            assert (bucket_tree.decode_bucket(blob) if blob else {}) == leaves


@pytest.mark.parametrize("mmap_reads", [True, False])
def test_table_files_are_read_through_memory_maps_unless_turned_off(
    tmp_path: Path, mmap_reads: bool
) -> None:
    """A cold bucket read is a page of a mapped table file, not a `pread` copy
    (`storage.options`), unless `[storage] mmap_reads` is off: the option RocksDB
    recorded for the store says which; the same store opens and reads either way."""
    with Store(tmp_path / "s") as db:
        state = db.open_state()
        write(state, {b"acct/" + str(i).encode(): i for i in range(50)})
        commit(db, state)
        root = state.root()
    with Store(tmp_path / "s", mmap_reads=mmap_reads) as db:
        assert db.open_state().root() == root
    recorded = max((tmp_path / "s").glob("OPTIONS-*"), key=lambda p: int(p.name[8:]))
    assert f"allow_mmap_reads={str(mmap_reads).lower()}" in recorded.read_text()


def test_a_block_s_buckets_are_read_ahead_while_it_executes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_caches: None
) -> None:
    """Each transaction commits its own overlay; every `WARM_BATCH` written keys the state
    asks the store to read their buckets ahead (before the root), the root takes those
    reads, and the roots stay those of a state held in memory, trials rolled back included."""
    monkeypatch.setattr(state_module, "WARM_BATCH", 4)
    rnd, reference = random.Random(9), State()
    with Store(tmp_path / "s", read_threads=3, read_ahead=True) as db:
        state = db.open_state()
        asked: list[int] = []
        warm = db.tree_warm

        def counted(depth: int, indexes: list[int]) -> None:
            asked.extend(indexes)
            warm(depth, indexes)

        monkeypatch.setattr(db, "tree_warm", counted)
        first: Batch = {b"acct/" + str(i).encode(): i for i in range(900)}
        write(state, first)
        write(reference, first)
        commit(db, state)  # 256 buckets, all in memory until the next height is written
        for height in range(8):
            if height % 3 == 2:  # a trial rolled back: nothing it read ahead stays
                state.begin()
                for i in range(20):
                    write(state, {b"acct/" + str(rnd.randrange(900)).encode(): -i})
                state.rollback()
            asked.clear()
            for _ in range(60):  # one transaction: two accounts
                batch: Batch = {b"acct/" + str(rnd.randrange(900)).encode(): rnd.randrange(99)
                                for _ in range(2)}  # fmt: skip
                write(state, batch)
                write(reference, batch)
            if height:  # after one more height, the caches hold only its buckets
                assert len(asked) > 20
            commit(db, state)
            same(state, reference)


def test_a_bucket_read_ahead_is_dropped_once_the_tree_is_written(tmp_path: Path) -> None:
    """A bucket read ahead, then a height that rewrites it: what the root is given is the
    bucket as stored now, not the read ahead (which was the store's when it was read)."""
    key = b"acct/7"
    with Store(tmp_path / "s", read_threads=2, read_ahead=True) as db:
        state = db.open_state()
        write(state, {b"acct/" + str(i).encode(): i for i in range(300)})
        commit(db, state)
        depth, index = state.tree.depth, state.tree.bucket_of(key)
        before = db.tree_bucket(depth, index)
        db.tree_warm(depth, [index])
        for read in db._tree_ahead.futures():  # the read done, before the height below
            read.result()
        write(state, {key: 12345})
        commit(db, state)
        now = db.tree_bucket(depth, index)
        assert now != before
        assert db.tree_bucket_many(depth, [index]) == [now]
        db.tree_warm(depth, [index])  # read ahead after the height: taken as it is
        assert db.tree_bucket_many(depth, [index, 0]) == [now, db.tree_bucket(depth, 0)]


def test_records_read_ahead_are_taken_once_and_dropped_once_the_state_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A block's records read ahead (`State.warm_records`) are what the state then reads,
    without a read of its own; one read ahead before a height that rewrites it is not
    used after that height (the store's record is)."""
    keys = [b"acct/" + str(i).encode() for i in range(100)]
    with Store(tmp_path / "s", read_threads=2, read_ahead=True) as db:
        state = db.open_state()
        write(state, dict.fromkeys(keys, 1))
        commit(db, state)
    with Store(tmp_path / "s", read_threads=2, read_ahead=True) as db:
        state = db.open_state()  # nothing in memory
        single: list[bytes] = []
        stored = db._stored
        monkeypatch.setattr(db, "_stored", lambda key: single.append(key) or stored(key))
        state.warm_records([*keys[:50], b"acct/none"])
        for read in db._records_ahead.futures():
            read.result()
        view = state.overlay()
        assert [view.get(key, Account) for key in keys[:50]] == [Account(1, 0, 0)] * 50
        assert view.get(b"acct/none", Account) is None
        assert single == []  # every one of them came from the reads ahead
        view.put(keys[60], Account(2, 0, 0))
        view.commit()
        state.warm_records([keys[70]])
        for read in db._records_ahead.futures():
            read.result()
        write(state, {keys[70]: 3})
        commit(db, state)  # rewrites keys[70] after its read ahead
        state._records.clear()  # as a bounded cache would have dropped it
        assert state.get(keys[70], Account) == Account(3, 0, 0)
        assert single == [keys[70]]


def test_reads_start_ahead_only_while_the_roots_reads_go_to_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left to measure, a store reads ahead only after a root's buckets had the disk read
    (a state that fits in memory does not pay the threads' hand-offs), and while it does,
    one root in PROBE_EVERY is read without them and counted again."""
    monkeypatch.setattr(store_options, "PROBE_EVERY", 3)
    with Store(tmp_path / "s", read_threads=2) as db:
        assert not db.reading_ahead  # nothing counted yet
        db.tree_bucket_many(1, list(range(100)))  # absent buckets: no disk read
        assert not db.reading_ahead
        monkeypatch.setattr(store_options, "COLD_READ_SHARE", -1.0)  # as if read from disk
        db.tree_bucket_many(1, list(range(100)))
        assert db.reading_ahead  # the next block's reads start ahead
        seen = []
        for _ in range(6):
            seen.append(db.reading_ahead)
            db.tree_bucket_many(1, list(range(100)))
        assert seen == [True, False, True, True, False, True]  # every third root counted again
        monkeypatch.setattr(store_options, "COLD_READ_SHARE", 1 / 16)
        while db.reading_ahead:  # until the next root in one batch reads no disk
            db.tree_bucket_many(1, list(range(100)))
        db.tree_bucket_many(1, list(range(100)))
        assert not db.reading_ahead
        db.tree_bucket_many(1, list(range(10)))  # too few reads to count: judged as before
        assert not db.reading_ahead
    with Store(tmp_path / "t", read_threads=0) as db:
        monkeypatch.setattr(store_options, "COLD_READ_SHARE", -1.0)
        db.tree_bucket_many(1, list(range(100)))
        assert not db.reading_ahead  # no reader threads: never
