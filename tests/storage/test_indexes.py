"""The store's certificate index (storage/indexes.py) on real RocksDB: certificates are
found among a height's writes by their type, a deleted certificate's key (which the
certificates context recognises) takes its entries with it, other records never touch the
index, and a rebuild finds the certificates among every state record."""

from __future__ import annotations

from pathlib import Path

import msgspec

from gridtokenx.ledger import certificates
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.storage import indexes, store
from gridtokenx.wire import tx
from tests.conftest import Cast

MWH = 1_000_000


def index_keys(db: store.Store) -> list[bytes]:
    cf = db.db.get_column_family("index")
    try:
        return [key for key, _ in cf.items()]
    finally:
        del cf


def certified(tmp_path: Path) -> tuple[Cast, store.Store, bytes]:
    """A store at height 1 holding certificates 1 and 2 of a Central solar farm."""
    net = Cast(Sandbox())
    db = store.Store(tmp_path / "db")
    db.save_genesis_state(net.sb.state)
    farm = net.register("index-farm", "CEN", tx.ParticipantKind.GENERATOR)
    meter = net.add_meter("index-farm", farm, "CEN", tx.MeterKind.SOLAR, 10_000_000)
    net.produce(meter, 2 * MWH)
    db.commit_height(1, b"b", b"c", [], net.sb.state.take_changes())
    return net, db, farm.address


def test_entries_name_each_listing_a_certificate_is_in(tmp_path: Path) -> None:
    net, db, farm = certified(tmp_path)
    issued = list(certificates.issued(net.sb.state))
    assert [c.id for c in issued] == [1, 2]
    assert indexes.entries(issued[0]) == {
        indexes.certificate_index_prefix("owner", "a", farm) + (1).to_bytes(8),
        indexes.certificate_index_prefix("issued", "a", farm) + (1).to_bytes(8),
        indexes.certificate_index_prefix("all", "a") + (1).to_bytes(8),
    }
    assert sorted(index_keys(db)) == sorted(indexes.entries(issued[0]) | indexes.entries(issued[1]))
    db.close()


def test_a_deleted_certificate_leaves_the_index_and_other_writes_never_touch_it(
    tmp_path: Path,
) -> None:
    net, db, farm = certified(tmp_path)
    before = index_keys(db)
    records = dict(net.sb.state.items())
    others = sorted(k for k, r in records.items() if not isinstance(r, certificates.Certificate))
    rewritten: dict[bytes, msgspec.Struct | None] = {k: records[k] for k in others[:50]}
    rewritten[others[-1]] = None  # and one deletion of another record
    db.commit_height(2, b"b", b"c", [], rewritten)
    assert index_keys(db) == before
    held = sorted(k for k in records if certificates.holds_certificate(k))
    assert all(isinstance(records[k], certificates.Certificate) for k in held) and len(held) == 2
    db.commit_height(3, b"b", b"c", [], {held[0]: None})  # certificate 1's key
    owned = indexes.certificate_index_prefix("owner", "a", farm)
    assert db.certificate_ids(owned) == [2]
    assert len(index_keys(db)) == len(before) - 3
    db.close()


def test_a_rebuild_finds_certificates_by_type_among_every_record(tmp_path: Path) -> None:
    _, db, _ = certified(tmp_path)
    kept = index_keys(db)
    assert db.rebuild_certificate_index() == 2
    assert index_keys(db) == kept
    db.close()


def test_listing_reads_newest_first_below_a_cursor(tmp_path: Path) -> None:
    _, db, farm = certified(tmp_path)
    every = indexes.certificate_index_prefix("all", "a")
    assert db.certificate_ids(every) == [2, 1]
    assert db.certificate_ids(every, before=2) == [1]
    assert db.certificate_ids(every, limit=1) == [2]
    assert db.certificate_ids(every, before=1) == []
    assert db.certificate_ids(indexes.certificate_index_prefix("owner", "r", farm)) == []
    db.close()
