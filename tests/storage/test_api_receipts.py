"""Receipts in the store: each committed transaction's events and each height's
end-of-block events are written in the height's one atomic batch (real RocksDB in a tmp
dir), survive reopening, index blocks by hash, and are pruned with their block."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridtokenx.chain import blocks
from gridtokenx.chain.application import Application
from gridtokenx.ledger import genesis
from gridtokenx.storage.store import Store, StoreError, open_application
from gridtokenx.wire import tx
from gridtokenx.wire.crypto import PrivateKey

CHAIN = "gridtokenx-receipts-test"
GENESIS_TIME = 1_767_225_600
SPEC = genesis.devnet(CHAIN, GENESIS_TIME, genesis.dev_keys())
MEA, EGAT = genesis.dev_keys()["MEA"], genesis.dev_keys()["EGAT"]


def _commit_block(app: Application, raws: list[bytes], at: int) -> bytes:
    for raw in raws:
        app.submit(raw)
    height = app.height + 1
    block = app.build_block(height, at, EGAT.address)
    app.commit(height, block, ())
    return block


def _register(nonce: int, label: str) -> bytes:
    who = PrivateKey.from_dev_label(f"receipts/{label}")
    body = tx.RegisterParticipant(who.address, "BKK", tx.ParticipantKind.HOUSEHOLD, label)
    return tx.make(MEA, CHAIN, nonce, body).encode()


def test_receipts_and_block_events_are_stored_with_the_height(tmp_path: Path) -> None:
    app = open_application(SPEC, tmp_path / "db")
    raws = [_register(0, "a"), _register(1, "b")]
    block = _commit_block(app, raws, GENESIS_TIME + 5)
    hashes = [tx.hash_of(r) for r in raws]
    for index, tx_hash in enumerate(hashes):
        receipt = app.receipt(tx_hash)
        assert receipt is not None and (receipt.height, receipt.index) == (1, index)
        assert [e.kind for e in receipt.events] == ["participant_registered"]
        assert receipt.events[0].attrs["zone"] == "BKK"
        assert isinstance(receipt.events[0].attrs["account"], bytes)
        assert app.store.tx_location(tx_hash) == (1, index)
    assert app.store.block_events(1) == []
    assert app.store.block_height(blocks.decode(block).hash) == 1
    assert app.receipt(b"\x01" * 32) is None
    assert app.store.block_events(2) is None
    app.close()
    with Store(tmp_path / "db") as db:  # reopened: all of it is on disk
        again = db.receipt(hashes[1])
        assert (
            again is not None
            and again.index == 1
            and again.events[0].kind == "participant_registered"
        )


def test_pruning_drops_receipts_events_and_the_hash_index_with_the_block(tmp_path: Path) -> None:
    app = open_application(SPEC, tmp_path / "db")
    first = _commit_block(app, [_register(0, "a")], GENESIS_TIME + 5)
    _commit_block(app, [], GENESIS_TIME + 6)
    _commit_block(app, [], GENESIS_TIME + 7)
    assert app.store.prune(keep=1) == 3
    assert app.receipt(tx.hash_of(_register(0, "a"))) is None
    assert (
        app.store.block_events(1) is None
        and app.store.block_height(blocks.decode(first).hash) is None
    )
    assert app.store.block_events(3) == []
    app.close()


def test_receipts_must_match_the_transactions(tmp_path: Path) -> None:
    with Store(tmp_path / "db") as db:
        with pytest.raises(StoreError, match="receipts"):
            db.commit_height(1, b"b", b"c", [b"\x01" * 32], {}, receipts=[])
        assert db.height() == 0
        db.commit_height(1, b"b", b"c", [b"\x01" * 32], {})  # the old form still works
        found = db.receipt(b"\x01" * 32)
        assert found is not None and found.events == [] and found.height == 1
