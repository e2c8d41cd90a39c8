"""The RocksDB store: one atomic batch per height, state that reloads to the same root, the
consensus write-ahead log, and checkpoints. Real RocksDB in a temporary folder, no mocks."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from gridtokenx.consensus.core import Persistent, Step
from gridtokenx.ledger import chain_info, genesis
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.ledger.state import State
from gridtokenx.simulator.scenario import run as run_scenario
from gridtokenx.storage import store
from gridtokenx.storage.store import Store, StoreOfAnotherChain, open_application
from tests.conftest import Cast


def _persist_genesis(path: Path, state: State) -> store.Store:
    s = store.Store(path)
    s.save_genesis_state(state)
    return s


def test_genesis_and_heights_reload_to_the_same_state_root(tmp_path: Path) -> None:
    sb = Sandbox()
    db = _persist_genesis(tmp_path / "db", sb.state)
    net = Cast(sb)  # registrations, meters, a licence and THB: many record types
    db.commit_height(1, b"block-1", b"commit-1", [b"\x01" * 32], sb.state.take_changes())
    db.close()
    reopened = store.Store(tmp_path / "db")
    loaded = reopened.load_state()
    assert loaded.root() == net.sb.state.root()
    assert dict(loaded.items()) == dict(net.sb.state.items())
    assert reopened.height() == 1
    assert reopened.block(1) == (b"block-1", b"commit-1")
    assert reopened.tx_location(b"\x01" * 32) == (1, 0)
    assert reopened.block(2) is None and reopened.tx_location(b"\x02" * 32) is None
    reopened.close()


def test_every_record_type_of_a_market_day_round_trips(tmp_path: Path) -> None:
    result = run_scenario(6)  # registry, metering, tokens, market orders, trades, settlement
    state = result.sandbox.state
    names = {type(r).__name__ for _, r in state.items()}
    assert {"Order", "Trade", "ZoneReport", "ReadingRecord", "Licence"} <= names
    with store.Store(tmp_path / "db") as db:
        db.save_genesis_state(state)  # everything the day wrote
        loaded = db.load_state()
    assert loaded.root() == state.root() == loaded.recompute_root()
    # Same root is not enough: two record types of the same shape encode alike, and each
    # record must come back as the type the ledger reads it as (market's `Counter` once
    # came back as governance's, and the first order after a restart raised TypeError).
    assert [(k, type(r)) for k, r in loaded.items()] == [(k, type(r)) for k, r in state.items()]
    assert dict(loaded.items()) == dict(state.items())


def test_record_type_names_are_unique() -> None:
    names = [t.__name__ for t in store.RECORD_TYPES]
    assert len(names) == len(set(names))


def test_a_height_must_follow_the_last(tmp_path: Path) -> None:
    with store.Store(tmp_path / "db") as db:
        with pytest.raises(store.StoreError):
            db.commit_height(2, b"b", b"c", [], {})
        db.commit_height(1, b"b", b"c", [], {})
        with pytest.raises(store.StoreError):
            db.commit_height(1, b"b", b"c", [], {})
        assert db.height() == 1


def test_genesis_is_written_once(tmp_path: Path) -> None:
    with _persist_genesis(tmp_path / "db", Sandbox().state) as db, pytest.raises(store.StoreError):
        db.save_genesis_state(Sandbox().state)


def test_unregistered_record_types_are_refused(tmp_path: Path) -> None:
    class Stray(msgspec.Struct):
        x: int

    with store.Store(tmp_path / "db") as db, pytest.raises(store.StoreError):
        db.commit_height(1, b"b", b"c", [], {b"stray": Stray(1)})
    with store.Store(tmp_path / "db") as db:
        assert db.height() == 0  # nothing of the failed height was written


def test_deleted_records_are_deleted_on_disk(tmp_path: Path) -> None:
    sb = Sandbox()
    with _persist_genesis(tmp_path / "db", sb.state) as db:
        view = sb.state.overlay()
        view.delete(chain_info.PARAMS_KEY)
        view.commit()
        db.commit_height(1, b"b", b"c", [], sb.state.take_changes())
        assert db.load_state().get(chain_info.PARAMS_KEY, msgspec.Struct) is None


def test_consensus_wal_survives_reopening(tmp_path: Path) -> None:
    wal = Persistent(7, round=2, step=Step.PRECOMMIT, locked_block=b"x", locked_round=1)
    with store.Store(tmp_path / "db") as db:
        assert db.load_wal() is None
        db.save_wal(wal)
    with store.Store(tmp_path / "db") as db:
        assert db.load_wal() == wal


def test_checkpoint_is_a_consistent_copy(tmp_path: Path) -> None:
    sb = Sandbox()
    with _persist_genesis(tmp_path / "db", sb.state) as db:
        db.commit_height(1, b"b1", b"c1", [], {})
        db.checkpoint(tmp_path / "backup")
        db.commit_height(2, b"b2", b"c2", [], {})
        with pytest.raises(store.StoreError):
            db.checkpoint(tmp_path / "backup")
    with store.Store(tmp_path / "backup") as backup:
        assert backup.height() == 1
        assert backup.load_state().root() == sb.state.root()


# --- a store that does not open: typed, with nothing left open --------------------------------
def _genesis_store(path: Path) -> None:
    store.open_application(Sandbox().genesis, path).close()


def test_a_store_open_elsewhere_is_store_locked(tmp_path: Path) -> None:
    _genesis_store(tmp_path / "s")
    with store.Store(tmp_path / "s"), pytest.raises(store.StoreLocked) as locked:
        store.Store(tmp_path / "s")  # RocksDB's lock holds within a process too
    assert str(tmp_path / "s") in str(locked.value)


@pytest.mark.parametrize("damage", ["manifest", "missing manifest", "no current"])
def test_damaged_files_are_store_corrupt_and_left_alone(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "s"
    _genesis_store(path)
    manifest = path / (path / "CURRENT").read_text().strip()
    if damage == "manifest":
        manifest.write_bytes(b"\x00garbage" * 64)
    elif damage == "missing manifest":
        manifest.unlink()
    else:
        (path / "CURRENT").unlink()
    before = sorted(p.name for p in path.iterdir() if not p.name.startswith("LOG"))
    with pytest.raises(store.StoreCorrupt) as damaged:
        store.Store(path)
    assert str(path) in str(damaged.value)
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith("LOG")) == before


def test_a_record_that_does_not_decode_is_store_corrupt_when_read(tmp_path: Path) -> None:
    """A node reads records when it first needs them: a damaged one raises StoreCorrupt
    then (and whenever the whole state is loaded or its tree rebuilt), never a misread."""
    path = tmp_path / "s"
    _genesis_store(path)
    with store.Store(path) as db:
        state = db.db.get_column_family("state")
        damaged = next(iter(state.keys()))
        assert isinstance(damaged, bytes)
        state[damaged] = b"\xc1 not msgpack"
        del state
        with pytest.raises(store.StoreCorrupt, match="does not decode"):
            db.load_state()
        with pytest.raises(store.StoreCorrupt, match="does not decode"):
            db.rebuild_tree()
    app = store.open_application(Sandbox().genesis, path)
    try:
        with pytest.raises(store.StoreCorrupt, match="does not decode"):
            app.state.get(damaged, msgspec.Struct)
    finally:
        app.close()


def test_a_wal_that_does_not_decode_is_store_corrupt(tmp_path: Path) -> None:
    with store.Store(tmp_path / "s") as db:
        db.db.get_column_family("wal")[store.WAL_KEY] = b"\xc1 not msgpack"
        with pytest.raises(store.StoreCorrupt, match="WAL does not decode"):
            db.load_wal()


def test_a_store_opens_only_with_the_genesis_it_began_from(tmp_path: Path) -> None:
    """The genesis hash recorded at creation is checked at every open; a store made before
    it was recorded is checked by its genesis state root (here: other voting powers)."""
    keys = genesis.dev_keys()
    spec = genesis.devnet("store-genesis", 1_700_000_000, keys)
    open_application(spec, tmp_path / "new").close()
    with Store(tmp_path / "new") as db:
        assert db.genesis_hash() == spec.hash()
    renamed = msgspec.structs.replace(spec, chain_id="store-genesis-2")
    with pytest.raises(StoreOfAnotherChain, match="another genesis"):
        open_application(renamed, tmp_path / "new")
    open_application(spec, tmp_path / "new").close()  # closed after the refusal: opens again

    with Store(tmp_path / "old") as db:  # as a store from before the hash was kept
        db.save_genesis_state(genesis.build_state(spec))
        assert db.genesis_hash() is None
    open_application(spec, tmp_path / "old").close()
    public = {c: k.public_key for c, k in keys.items()}
    powers = genesis.thai("store-genesis", 1_700_000_000, public, powers={"EGAT": 1})
    with pytest.raises(StoreOfAnotherChain, match="genesis state root"):
        open_application(powers, tmp_path / "old")


@pytest.mark.parametrize("size", [0, 1, 255, 256, 65_535, 65_536, 70_000])
def test_a_record_is_stored_as_its_type_name_and_encoding_whatever_its_size(size: int) -> None:
    """`encode_record` builds the pair from the type's prefix and a bin header of the
    body's size class (8, 16 or 32 bits): the same bytes as encoding the pair, which is
    what every stored record has been; a type not registered is refused."""
    state = Sandbox().state
    for _, record in state.items():
        body = msgspec.msgpack.encode(record) if size == 0 else bytes(size)
        pair = msgspec.msgpack.encode((type(record).__name__, body))
        assert store.encode_record(record, body) == pair
        if size == 0:
            assert store.encode_record(record) == pair
            assert store.decode_record(pair) == record

    class Stranger(msgspec.Struct):
        x: int

    with pytest.raises(store.StoreError, match="Stranger"):
        store.encode_record(Stranger(1))
