"""Snapshots on disk: taken from a real chain in RocksDB, offered once the next block (whose
header carries the snapshot's root: heights are pipelined) is committed, every chunk proves
against that root, a node that pruned its blocks still serves them, a few are kept,
and the chunks written into a new store give back the same state and root."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from gridtokenx.chain import blocks
from gridtokenx.chain.light_client import Hop
from gridtokenx.ledger import certificates, genesis
from gridtokenx.ledger import state_proofs as proofs
from gridtokenx.storage import snapshots
from gridtokenx.storage.store import Store, certificate_index_prefix, open_application
from gridtokenx.wire import tx

CHAIN_ID = "gridtokenx-snapshots"
T0 = 1_767_225_600


def _chain(path: Path, heights: int) -> genesis.Genesis:
    spec = genesis.devnet(CHAIN_ID, T0, genesis.dev_keys())
    _extend(spec, path, heights)
    return spec


def _extend(spec: genesis.Genesis, path: Path, heights: int) -> None:
    app = open_application(spec, path)
    for height in range(app.height + 1, app.height + heights + 1):
        app.commit(height, app.build_block(height, T0 + height, b"\0" * 20), ())
    app.close()


def _snapshot(spec: genesis.Genesis, path: Path, served: snapshots.Snapshots) -> int | None:
    """Take a snapshot of the chain at `path` and commit one more block, so it is offered."""
    with Store(path) as db:
        height = served.take(db)
    _extend(spec, path, 1)
    with Store(path) as db:
        served.complete(db)
    return height


def _chunks(served: snapshots.Snapshots, height: int, offer: snapshots.Offer) -> list[bytes]:
    found = [served.chunk(height, i) for i in range(len(offer.ranges))]
    assert all(c is not None for c in found)
    return [c for c in found if c is not None]


def test_a_snapshot_proves_against_its_header_and_restores_the_same_state(tmp_path: Path) -> None:
    spec = _chain(tmp_path / "data", 3)
    served = snapshots.Snapshots(tmp_path / "snapshots", chunk_bytes=1024)
    with Store(tmp_path / "data") as db:
        assert served.take(db) == 3
        assert served.take(db) is None  # nothing new
        assert served.offers() == [] and served.pending() == [3]  # block 4 is not there yet
        db.prune(1)  # the node drops its old blocks: the snapshot does not need them
        state = db.load_state()
    _extend(spec, tmp_path / "data", 1)
    with Store(tmp_path / "data") as db:
        assert served.complete(db) == [3] and served.pending() == []
    (raw,) = served.offers()
    offer = snapshots.decode_offer(raw)
    header, following = (blocks.decode(b).header for b in (offer.block, offer.next_block))
    assert (offer.height, header.height, following.height) == (3, 3, 4)
    assert following.state_root == offer.root == state.root()
    assert len(offer.ranges) >= 3 and proofs.partitions(offer.ranges, offer.depth)
    chunks = [snapshots.decode_chunk(c) for c in _chunks(served, 3, offer)]
    for chunk in chunks:
        snapshots.verify_chunk(chunk, offer, offer.root)
    assert served.chunk(3, len(offer.ranges)) is None and served.chunk(4, 0) is None

    with Store(tmp_path / "new") as new:
        for chunk in chunks:
            new.put_state_records(chunk.records)
        snapshots.finish_restore(new, offer, genesis.build_state(spec).root(), spec.hash())
    synced = open_application(spec, tmp_path / "new")  # opens as a chain at height 3
    try:
        assert synced.height == 3 and synced.store.pruned_below() == 3
        assert synced.state.root() == state.root()
        assert dict(synced.state.items()) == dict(state.items())
        assert synced.last_hash == blocks.decode(offer.block).hash
        synced.commit(4, synced.build_block(4, T0 + 4, b"\0" * 20), ())  # and goes on
    finally:
        synced.close()


def test_a_tampered_chunk_or_a_chunk_for_another_range_is_refused(tmp_path: Path) -> None:
    spec = _chain(tmp_path / "data", 1)
    served = snapshots.Snapshots(tmp_path / "snapshots", chunk_bytes=1024)
    _snapshot(spec, tmp_path / "data", served)
    offer = snapshots.decode_offer(served.offers()[0])
    root = offer.root
    first, second = (snapshots.decode_chunk(c) for c in _chunks(served, 1, offer)[:2])
    key, value = first.records[0]
    flipped = value[:-1] + bytes([value[-1] ^ 1])
    tampered = msgspec.structs.replace(first, records=[(key, flipped), *first.records[1:]])
    with pytest.raises(proofs.BadChunk):
        snapshots.verify_chunk(tampered, offer, root)
    garbage = msgspec.structs.replace(first, records=[(key, b"\x01\x02"), *first.records[1:]])
    with pytest.raises(proofs.BadChunk, match="not a stored state record"):
        snapshots.verify_chunk(garbage, offer, root)
    with pytest.raises(proofs.BadChunk, match="another bucket range"):
        snapshots.verify_chunk(msgspec.structs.replace(second, index=0), offer, root)
    with pytest.raises(proofs.BadChunk, match="not asked for"):
        snapshots.verify_chunk(msgspec.structs.replace(first, height=2), offer, root)
    with pytest.raises(proofs.BadChunk, match="does not prove"):
        snapshots.verify_chunk(first, offer, b"\x00" * 32)


def test_a_few_snapshots_are_kept(tmp_path: Path) -> None:
    spec = _chain(tmp_path / "data", 1)
    served = snapshots.Snapshots(tmp_path / "snapshots", keep=2)
    for height in (1, 2, 3):
        assert _snapshot(spec, tmp_path / "data", served) == height
    assert served.heights() == [2, 3]
    assert [snapshots.decode_offer(o).height for o in served.offers()] == [3, 2]
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == [
        "000000000002", "000000000003"]  # fmt: skip


def test_a_snapshot_being_fetched_outlives_newer_ones_until_its_fetch_goes_quiet(
    tmp_path: Path,
) -> None:
    now = [0.0]
    spec = _chain(tmp_path / "data", 1)
    served = snapshots.Snapshots(tmp_path / "snapshots", keep=1, clock=lambda: now[0])
    assert _snapshot(spec, tmp_path / "data", served) == 1
    offer = snapshots.decode_offer(served.offers()[0])
    first = served.chunk(1, 0)  # a joiner starts fetching snapshot 1
    assert first is not None
    now[0] += snapshots.PIN_S - 1
    assert _snapshot(spec, tmp_path / "data", served) == 2
    # Not offered any more, but every chunk still served to the fetch under way.
    assert [snapshots.decode_offer(o).height for o in served.offers()] == [2]
    assert served.heights() == [1, 2] and served.pinned() == [1]
    assert len(_chunks(served, 1, offer)) == len(offer.ranges)
    now[0] += snapshots.PIN_S + 1  # the fetch went quiet: the next tidy removes it
    assert _snapshot(spec, tmp_path / "data", served) == 3
    assert served.heights() == [3] and served.chunk(1, 0) is None
    # A peer that asks for a chunk of every snapshot pins at most PINNED_MAX old ones.
    for height in range(4, 8):
        assert served.chunk(height - 1, 0) is not None
        assert _snapshot(spec, tmp_path / "data", served) == height
    assert served.heights() == [5, 6, 7] and snapshots.PINNED_MAX == 2


class _Changes:
    """A recorder stand-in: the validator-set changes it would report (`Recorder.hops`)."""

    def __init__(self, hops: tuple[Hop, ...]) -> None:
        self._hops = hops

    def hops(self, height: int) -> tuple[Hop, ...]:
        return self._hops


def test_an_offer_carries_its_set_changes_unless_they_would_not_fit_its_frame(
    tmp_path: Path,
) -> None:
    spec = _chain(tmp_path / "data", 2)
    small, large = Hop(b"b" * 100, b"", ()), Hop(b"b" * snapshots.OFFER_BYTES_MAX, b"", ())
    for name, hops, carried in (("small", (small,), (small,)), ("large", (large,), ())):
        served = snapshots.Snapshots(tmp_path / name)
        with Store(tmp_path / "data") as db:
            height = served.take(db)
        _extend(spec, tmp_path / "data", 1)
        with Store(tmp_path / "data") as db:
            assert served.complete(db, _Changes(hops)) == [height]  # type: ignore[arg-type]
        assert snapshots.decode_offer(served.offers()[0]).hops == carried


def test_restoring_into_a_store_that_holds_a_chain_is_refused(tmp_path: Path) -> None:
    spec = _chain(tmp_path / "data", 1)
    served = snapshots.Snapshots(tmp_path / "snapshots")
    _snapshot(spec, tmp_path / "data", served)
    with Store(tmp_path / "data") as db:
        offer = snapshots.decode_offer(served.offers()[0])
        with pytest.raises(snapshots.StoreError, match="new store"):
            snapshots.finish_restore(db, offer, b"", spec.hash())


def test_a_cut_state_whose_root_the_next_header_does_not_carry_is_never_offered(
    tmp_path: Path,
) -> None:
    spec = _chain(tmp_path / "data", 2)
    served = snapshots.Snapshots(tmp_path / "snapshots")
    with Store(tmp_path / "data") as db:
        assert served.take(db) == 2
    pending = tmp_path / "snapshots" / f"{2:012d}" / "pending"
    cut = msgspec.msgpack.decode(pending.read_bytes())
    cut[-1] = bytes(32)  # the root the cut state had, as if it were another state's
    pending.write_bytes(msgspec.msgpack.encode(cut))
    _extend(spec, tmp_path / "data", 1)
    with Store(tmp_path / "data") as db, pytest.raises(snapshots.SnapshotError, match="root"):
        served.complete(db)
    assert served.offers() == [] and served.pending() == []
    assert not pending.parent.exists()


def _family(path: Path, name: str) -> dict[bytes, bytes]:
    with Store(path) as db:
        cf = db.db.get_column_family(name)
        try:
            return {k: v for k, v in cf.items() if isinstance(k, bytes) and isinstance(v, bytes)}
        finally:
            del cf


def _served_with_certificates(
    path: Path, served: snapshots.Snapshots, count: int
) -> tuple[genesis.Genesis, bytes]:
    """A store whose state holds `count` certificates besides the genesis records, with
    a snapshot of height 1 offered; returns the genesis and the snapshot's root."""
    spec = genesis.devnet(CHAIN_ID, T0, genesis.dev_keys())
    state = genesis.build_state(spec)
    view = state.overlay()
    for i in range(1, count + 1):
        owner = i.to_bytes(20)
        view.put(certificates.certificate_key(i), certificates.Certificate(
            i, owner, owner, owner, tx.MeterKind.SOLAR, "BKK", T0, T0, 1000 + i, 500, 500 + i,
            1, 20260101, 20260102 if i % 3 == 0 else 0))  # fmt: skip
    view.commit()
    with Store(path) as db:
        db.save_genesis_state(state, spec.hash())
        header = blocks.Header(CHAIN_ID, 1, T0 + 1, bytes(32), bytes(20), bytes(32),
                               state.root(), bytes(32), bytes(32))  # fmt: skip
        raw = blocks.Block(header, ()).encode()
        db.commit_height(1, raw, b"", [], {})
        assert served.take(db) == 1
        following = msgspec.structs.replace(header, height=2, prev_hash=blocks.decode(raw).hash)
        db.commit_height(2, blocks.Block(following, ()).encode(), b"", [], {})
        assert served.complete(db) == [1]
    return spec, state.root()


def test_a_restore_writes_the_tree_and_index_a_rebuild_from_the_records_would(
    tmp_path: Path,
) -> None:
    """Chunks added out of order build the same tree, bucket for bucket and node for node,
    as rebuilding it from the records, and the same certificate index as the source's."""
    served = snapshots.Snapshots(tmp_path / "snapshots", chunk_bytes=2048)
    spec, root = _served_with_certificates(tmp_path / "data", served, 300)
    offer = snapshots.decode_offer(served.offers()[0])
    assert offer.root == root and len(offer.ranges) >= 4
    chunks = [snapshots.decode_chunk(c) for c in _chunks(served, 1, offer)]
    verified = [snapshots.verify_chunk(chunk, offer, root) for chunk in chunks]
    assert sum(len(v.certificates) for v in verified) == 300

    genesis_root = genesis.build_state(spec).root()
    with Store(tmp_path / "restored", bulk=True) as new:
        restore = snapshots.Restore(new, offer)
        for v in [*verified[1::2], *verified[::2]]:  # every early chunk waits its turn
            restore.add(v)
        restore.finish(genesis_root, spec.hash())
    with Store(tmp_path / "rebuilt") as new:
        for chunk in chunks:
            new.put_state_records(chunk.records)
        snapshots.finish_restore(new, offer, genesis_root, spec.hash())
    for family in ("state", "tree", "index", "meta", "blocks"):
        assert _family(tmp_path / "restored", family) == _family(tmp_path / "rebuilt", family)
    assert _family(tmp_path / "restored", "index") == _family(tmp_path / "data", "index")
    with Store(tmp_path / "restored") as db:
        assert len(db.certificate_ids(certificate_index_prefix("all", "r"))) == 100
    synced = open_application(spec, tmp_path / "restored")
    try:
        assert synced.height == 1 and synced.state.root() == root
    finally:
        synced.close()


def test_a_restore_missing_a_chunk_or_a_record_renamed_to_another_type_is_refused(
    tmp_path: Path,
) -> None:
    spec = _chain(tmp_path / "data", 1)
    served = snapshots.Snapshots(tmp_path / "snapshots", chunk_bytes=1024)
    _snapshot(spec, tmp_path / "data", served)
    offer = snapshots.decode_offer(served.offers()[0])
    chunks = [snapshots.decode_chunk(c) for c in _chunks(served, 1, offer)]
    key, value = chunks[0].records[0]
    name, raw = msgspec.msgpack.decode(value)
    other = "Certificate" if name != "Certificate" else "Account"
    renamed = msgspec.structs.replace(chunks[0], records=[
        (key, msgspec.msgpack.encode((other, raw))), *chunks[0].records[1:]])  # fmt: skip
    with pytest.raises(proofs.BadChunk, match=f"not a {other}"):
        snapshots.verify_chunk(renamed, offer, offer.root)
    unknown = msgspec.structs.replace(chunks[0], records=[
        (key, msgspec.msgpack.encode(("Nothing", raw))), *chunks[0].records[1:]])  # fmt: skip
    with pytest.raises(proofs.BadChunk, match="unknown type"):
        snapshots.verify_chunk(unknown, offer, offer.root)
    with Store(tmp_path / "new", bulk=True) as new:
        restore = snapshots.Restore(new, offer)
        for chunk in chunks[1:]:
            restore.add(snapshots.verify_chunk(chunk, offer, offer.root))
        with pytest.raises(snapshots.SnapshotError, match="1 chunks"):
            restore.finish(b"", spec.hash())
