"""`gridtokenx db info/backup/restore/prune` and `Store.prune` on a real RocksDB store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridtokenx.chain import blocks
from gridtokenx.cli.main import app
from gridtokenx.consensus.simulation import CHAIN_ID
from gridtokenx.ledger import genesis
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.storage import store
from gridtokenx.storage.store import open_application
from gridtokenx.wire import tx
from tests.chain.test_replicated_chain import GENESIS_TIME, _transactions
from tests.cli.test_errors import error_lines
from tests.conftest import Cast

runner = CliRunner()


def out(result: object) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(str(getattr(result, "output", "")).split())


def _make_store(path: Path) -> bytes:
    sb = Sandbox()
    with store.Store(path) as db:
        db.save_genesis_state(sb.state)
        Cast(sb)
        db.commit_height(1, b"block", b"commit", [], sb.state.take_changes())
    return sb.state.root()


def test_backup_and_restore_round_trip(tmp_path: Path) -> None:
    root = _make_store(tmp_path / "data")
    info = runner.invoke(app, ["db", "info", str(tmp_path / "data")])
    assert info.exit_code == 0 and f"state root {root.hex()}" in out(info)
    assert "height 1" in out(info)
    backup = runner.invoke(app, ["db", "backup", str(tmp_path / "data"), str(tmp_path / "bk")])
    assert backup.exit_code == 0, backup.output
    restore = runner.invoke(app, ["db", "restore", str(tmp_path / "bk"), str(tmp_path / "new")])
    assert restore.exit_code == 0, restore.output
    with store.Store(tmp_path / "new") as db:
        assert db.height() == 1 and db.load_state().root() == root


def test_refusals(tmp_path: Path) -> None:
    _make_store(tmp_path / "data")
    not_a_store = runner.invoke(app, ["db", "info", str(tmp_path / "nothing")])
    # Bad input (exit 2) since the error contract; it was exit 1.
    assert "not a GridTokenX store" in error_lines(not_a_store, "BAD_INPUT", 2)[0]
    (tmp_path / "taken").mkdir()
    taken = runner.invoke(app, ["db", "backup", str(tmp_path / "data"), str(tmp_path / "taken")])
    assert "exists" in error_lines(taken, "EXISTS", 1)[0]
    runner.invoke(app, ["db", "backup", str(tmp_path / "data"), str(tmp_path / "bk")])
    existing = runner.invoke(app, ["db", "restore", str(tmp_path / "bk"), str(tmp_path / "data")])
    assert "--force" in error_lines(existing, "EXISTS", 1)[0]
    forced = runner.invoke(
        app, ["db", "restore", str(tmp_path / "bk"), str(tmp_path / "data"), "--force"]
    )
    assert forced.exit_code == 0, forced.output


def test_a_damaged_store_is_store_corrupt_in_one_line(tmp_path: Path) -> None:
    _make_store(tmp_path / "data")
    with store.Store(tmp_path / "data") as db:  # a state record that no longer decodes
        state = db.db.get_column_family("state")
        state[next(iter(state.keys()))] = b"\xc1 damaged"
        del state
    loaded = runner.invoke(app, ["db", "info", str(tmp_path / "data")])
    assert "does not decode" in error_lines(loaded, "STORE_CORRUPT", 1)[0]
    manifest = tmp_path / "data" / (tmp_path / "data" / "CURRENT").read_text().strip()
    manifest.write_bytes(b"\x00garbage" * 64)
    for command in (["db", "info"], ["report", "export", "--out", str(tmp_path / "x"), "--data"]):
        opened = runner.invoke(app, [*command, str(tmp_path / "data")])
        assert "backup" in error_lines(opened, "STORE_CORRUPT", 1)[0]


def test_info_as_json_names_the_head_state_and_history(tmp_path: Path) -> None:
    _chain(tmp_path / "data", 3)
    with store.Store(tmp_path / "data") as db:
        state = db.load_state()
        stored = db.block(3)
        assert stored is not None
        head = blocks.decode(stored[0])
        genesis_hash = db.genesis_hash()
    assert genesis_hash is not None
    shown = runner.invoke(app, ["db", "info", "--json", str(tmp_path / "data")])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == {
        "height": 3, "chain_id": CHAIN_ID, "head_hash": head.hash.hex(),
        "head_time": GENESIS_TIME + 3, "state_records": len(state),
        "state_root": state.root().hex(), "pruned_below": 0,
        "genesis_hash": genesis_hash.hex(),
    }  # fmt: skip
    with store.Store(tmp_path / "data") as db:
        db.prune(1)
    assert (
        json.loads(runner.invoke(app, ["db", "info", "--json", str(tmp_path / "data")]).output)[
            "pruned_below"
        ]
        == 3
    )


def test_info_as_json_on_a_damaged_head_is_store_corrupt(tmp_path: Path) -> None:
    _make_store(tmp_path / "data")  # its head "block" is not a block
    shown = runner.invoke(app, ["db", "info", "--json", str(tmp_path / "data")])
    assert "does not decode" in error_lines(shown, "STORE_CORRUPT", 1)[0]
    assert runner.invoke(app, ["db", "info", str(tmp_path / "data")]).exit_code == 0


# --- pruning --------------------------------------------------------------------------------
HEIGHTS = 8


def _chain(path: Path, heights: int = HEIGHTS) -> list[list[bytes]]:
    """A real chain in RocksDB through the application: one registration per block, so each
    height has a tx index entry to prune or keep. Returns the tx hashes of each height."""
    chain_app = open_application(genesis.devnet(CHAIN_ID, GENESIS_TIME, genesis.dev_keys()), path)
    per_height = []
    for height, raw in enumerate(_transactions(heights), start=1):
        chain_app.submit(raw)
        chain_app.commit(
            height, chain_app.build_block(height, GENESIS_TIME + height, b"\0" * 20), ()
        )
        per_height.append([tx.decode(raw).hash])
    chain_app.close()
    return per_height


def _snapshot(db: store.Store) -> tuple[bytes, dict[bytes, object]]:
    state = db.load_state()
    return state.root(), dict(state.items())


def test_prune_keeps_the_last_n_blocks_and_leaves_state_alone(tmp_path: Path) -> None:
    txs = _chain(tmp_path / "data")
    with store.Store(tmp_path / "data") as db:
        before = _snapshot(db)
        kept = {h: db.block(h) for h in range(HEIGHTS - 2, HEIGHTS + 1)}
        assert db.pruned_below() == 0 and db.block(1) is not None
        assert db.prune(3) == HEIGHTS - 2
        assert db.pruned_below() == HEIGHTS - 2
        assert [db.block(h) for h in range(1, HEIGHTS - 2)] == [None] * (HEIGHTS - 3)
        assert {h: db.block(h) for h in kept} == kept
        for height, hashes in enumerate(txs, start=1):
            location = [db.tx_location(h) for h in hashes]
            assert location == ([None] if height < HEIGHTS - 2 else [(height, 0)])
        assert _snapshot(db) == before  # state and state root untouched
        assert db.height() == HEIGHTS


def test_pruning_twice_is_idempotent_and_keep_beyond_the_height_is_a_no_op(
    tmp_path: Path,
) -> None:
    _chain(tmp_path / "data")
    with store.Store(tmp_path / "data") as db:
        every = [db.block(h) for h in range(1, HEIGHTS + 1)]
        assert db.prune(HEIGHTS) == 0 and db.prune(HEIGHTS + 5) == 0
        assert [db.block(h) for h in range(1, HEIGHTS + 1)] == every
        assert db.pruned_below() == 0
        assert db.prune(2) == db.prune(2) == HEIGHTS - 1
        assert [db.block(h) for h in range(HEIGHTS - 1, HEIGHTS + 1)] == every[-2:]
        assert db.prune(5) == HEIGHTS - 1  # a wider keep does not bring blocks back
        with pytest.raises(store.StoreError):
            db.prune(0)  # the head block must stay
        assert db.block(HEIGHTS) == every[-1]


def test_a_pruned_store_restarts_and_prunes_only_the_new_range(tmp_path: Path) -> None:
    _chain(tmp_path / "data")
    with store.Store(tmp_path / "data") as db:
        db.prune(2)
        root = db.load_state().root()
    spec = genesis.devnet(CHAIN_ID, GENESIS_TIME, genesis.dev_keys())
    chain_app = open_application(spec, tmp_path / "data")  # reloads the head block's hash and time
    try:
        assert chain_app.height == HEIGHTS and chain_app.state.root() == root
        height = HEIGHTS + 1
        chain_app.commit(
            height, chain_app.build_block(height, GENESIS_TIME + height, b"\0" * 20), ()
        )
        assert chain_app.store.prune(2) == HEIGHTS
        assert chain_app.store.block(HEIGHTS - 1) is None  # answers None for a pruned height
        assert (
            chain_app.store.block(HEIGHTS) is not None and chain_app.store.block(height) is not None
        )
    finally:
        chain_app.close()


def test_db_prune_command(tmp_path: Path) -> None:
    _chain(tmp_path / "home" / "data")
    home = str(tmp_path / "home")
    pruned = runner.invoke(app, ["db", "prune", "--home", home, "--keep", "3"])
    assert pruned.exit_code == 0, pruned.output
    assert f"height {HEIGHTS}" in out(pruned) and f"below {HEIGHTS - 2} pruned" in out(pruned)
    again = runner.invoke(app, ["db", "prune", "--home", home, "--keep", "3"])
    assert again.exit_code == 0 and f"below {HEIGHTS - 2} pruned" in out(again)
    info = runner.invoke(app, ["db", "info", str(tmp_path / "home" / "data")])
    assert f"below {HEIGHTS - 2} pruned" in out(info)


def test_db_prune_refusals_change_nothing(tmp_path: Path) -> None:
    _chain(tmp_path / "home" / "data")
    home = str(tmp_path / "home")
    zero = runner.invoke(app, ["db", "prune", "--home", home, "--keep", "0"])
    assert "at least 1" in error_lines(zero, "BAD_INPUT", 2)[0]
    missing = runner.invoke(app, ["db", "prune", "--home", str(tmp_path), "--keep", "1"])
    assert "not a GridTokenX store" in error_lines(missing, "BAD_INPUT", 2)[0]  # was exit 1
    with store.Store(tmp_path / "home" / "data"):  # a running node holds the lock
        locked = runner.invoke(app, ["db", "prune", "--home", home, "--keep", "1"])
    assert "still running" in error_lines(locked, "STORE_LOCKED", 1)[0]
    with store.Store(tmp_path / "home" / "data") as db:
        assert db.pruned_below() == 0 and db.block(1) is not None


def test_db_backup_of_a_held_store_points_to_home_and_mixed_forms_are_bad_input(
    tmp_path: Path,
) -> None:
    _chain(tmp_path / "home" / "data")
    data, dest = str(tmp_path / "home" / "data"), str(tmp_path / "bk")
    with store.Store(tmp_path / "home" / "data"):  # a running node holds the lock
        locked = runner.invoke(app, ["db", "backup", data, dest])
    assert "db backup --home HOME --out DIR" in error_lines(locked, "STORE_LOCKED", 1)[0]
    for args in ([data, "--out", dest], ["--home", str(tmp_path / "home")], [data]):
        mixed = runner.invoke(app, ["db", "backup", *args])
        assert "give" in error_lines(mixed, "BAD_INPUT", 2)[0]
    not_home = runner.invoke(app, ["db", "backup", "--home", str(tmp_path), "--out", dest])
    assert "not a node home" in error_lines(not_home, "BAD_INPUT", 2)[0]
    assert not (tmp_path / "bk").exists()
