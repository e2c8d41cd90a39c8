"""`gridtokenx db info/backup/restore` on a real RocksDB store."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from conftest import Cast
from gridtokenx import store
from gridtokenx.cli import app
from gridtokenx.sandbox import Sandbox

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
    assert not_a_store.exit_code == 1 and "not a GridTokenX store" in out(not_a_store)
    (tmp_path / "taken").mkdir()
    taken = runner.invoke(app, ["db", "backup", str(tmp_path / "data"), str(tmp_path / "taken")])
    assert taken.exit_code == 1 and "exists" in out(taken)
    runner.invoke(app, ["db", "backup", str(tmp_path / "data"), str(tmp_path / "bk")])
    existing = runner.invoke(app, ["db", "restore", str(tmp_path / "bk"), str(tmp_path / "data")])
    assert existing.exit_code == 1 and "--force" in out(existing)
    forced = runner.invoke(
        app, ["db", "restore", str(tmp_path / "bk"), str(tmp_path / "data"), "--force"]
    )
    assert forced.exit_code == 0, forced.output
