"""Operating a running node from its home, as an operator does: `gridtokenx status` over
the network (and status.json when the API is off), `db backup --home` and `report export
--home` while the node runs (a checkpoint the node takes between two commits), and a
restore of that backup into a fresh home that starts and follows the chain from where the
backup left it. `node start` runs as a process; processes bind to 127.0.0.1, every wait is
bounded and every process is stopped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from gridtokenx.cli.main import app
from gridtokenx.client import Client
from gridtokenx.devnet.homes import init_devnet
from gridtokenx.ledger import genesis
from gridtokenx.node.home import read_config, write_config
from gridtokenx.storage.store import Store
from gridtokenx.wire import tx
from gridtokenx.wire.crypto import PrivateKey
from tests.cli.test_errors import error_lines
from tests.conftest import free_base_port
from tests.devnet.test_devnet_processes import _height, _start, _stop, _wait

pytestmark = pytest.mark.process

runner = CliRunner()
KEYS = genesis.dev_keys()


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.stderr)
    return result.stdout


def _licence(url: str) -> None:
    """A participant and its licence, so the export has rows (the licences report)."""
    who = PrivateKey.from_dev_label("live-backup/farm")
    with Client(url) as api:
        api.send_and_wait(KEYS["MEA"], tx.RegisterParticipant(
            who.address, "BKK", tx.ParticipantKind.GENERATOR, "Solar farm"))  # fmt: skip
        api.send_and_wait(KEYS["ERC"], tx.GrantLicence(
            who.address, tx.LicenceKind.SELLER, int(time.time()) + 86_400))  # fmt: skip


def _root(data: Path) -> tuple[int, str]:
    with Store(data) as store:
        return store.height(), store.load_state().root().hex()


def test_back_up_export_and_restore_a_running_node(tmp_path: Path) -> None:
    base = free_base_port(2)
    (home,) = init_devnet(tmp_path / "net", "gridtokenx-live-backup", int(time.time()), base,
                          block_ms=200, validators=("EGAT",))  # fmt: skip
    url = f"http://127.0.0.1:{read_config(home).api_port}"
    procs = {home: _start(home)}
    try:
        assert _wait(lambda: _height(home) >= 3, 60), _height(home)
        _licence(url)
        # status over the network, readable and as JSON
        shown = " ".join(_cli("status", "--home", str(home)).split())
        assert f"id {KEYS['EGAT'].address.hex()}" in shown and "catching up no" in shown
        assert "validator, voting power 10000" in shown
        status = json.loads(_cli("status", "--node", url, "--json"))
        assert status["chain_id"] == "gridtokenx-live-backup" and status["latest_height"] >= 3
        # a backup and an export while the node runs
        backed = " ".join(_cli("db", "backup", "--home", str(home), "--out",
                               str(tmp_path / "backup")).split())  # fmt: skip
        height, root = _root(tmp_path / "backup")
        assert f"height {height}," in backed and f"state root {root}" in backed
        assert height >= status["latest_height"]
        _cli("report", "export", "--home", str(home), "--out", str(tmp_path / "live"),
             "--to-height", str(height))  # fmt: skip
        verified = _cli("report", "verify", "--home", str(home), "--export", str(tmp_path / "live"))
        assert "matches the chain" in verified
        assert list((home / "checkpoints").iterdir()) == []  # the scratch copies are gone
        assert _wait(lambda: _height(home) >= height + 3, 30)  # the node went on meanwhile
    finally:
        _stop(procs)
    # the same export from the stopped node's own store: the same rows
    _cli("report", "export", "--data", str(home / "data"), "--out", str(tmp_path / "stopped"),
         "--to-height", str(height))  # fmt: skip
    live = {p.name: p.read_bytes() for p in (tmp_path / "live").iterdir()}
    assert live == {p.name: p.read_bytes() for p in (tmp_path / "stopped").iterdir()}
    assert b"licence_granted" in live["licences.csv"]
    _restores_into_a_fresh_home(tmp_path, home, base, height, root)


def _restores_into_a_fresh_home(tmp_path: Path, home: Path, base: int, height: int,
                                root: str) -> None:  # fmt: skip
    """A full node's home whose store is the backup: it starts at the backup's height and
    state root and follows the validator from there to identical blocks and state."""
    fresh = tmp_path / "fresh"
    peer = f"127.0.0.1:{base}:{KEYS['EGAT'].address.hex()}"
    ports = ("--listen-port", str(base + 1), "--api-port", str(base + 201))
    _cli("init", "--home", str(fresh), "--genesis", str(home / "genesis.json"), *ports,
         "--peer", peer, "--insecure-dev-key")  # fmt: skip
    _cli("db", "restore", str(tmp_path / "backup"), str(fresh / "data"), "--force")
    assert _root(fresh / "data") == (height, root)
    procs = {home: _start(home), fresh: _start(fresh)}
    try:
        assert _wait(lambda: _height(home) > height + 2, 30)
        target = _height(home)
        assert _wait(lambda: _height(fresh) >= target, 60), (_height(fresh), target)
    finally:
        _stop(procs)
    common = min(_height(home), _height(fresh))
    with Store(home / "data") as a, Store(fresh / "data") as b:
        assert [a.block(n) for n in range(height, common + 1)] == [
            b.block(n) for n in range(height, common + 1)
        ]
        if a.height() == b.height():
            assert a.load_state().root() == b.load_state().root()


def test_status_with_the_api_off_shows_status_json_and_says_so(tmp_path: Path) -> None:
    (home,) = init_devnet(tmp_path, "gridtokenx-status-off", int(time.time()), free_base_port(1),
                          block_ms=200, validators=("EGAT",))  # fmt: skip
    write_config(home, msgspec.structs.replace(read_config(home), api_port=0))
    missing = runner.invoke(app, ["status", "--home", str(home)])
    assert "has the node run?" in error_lines(missing, "NO_STATUS", 1)[0]
    procs = {home: _start(home)}
    try:
        assert _wait(lambda: _height(home) >= 2, 60)
        result = runner.invoke(app, ["status", "--home", str(home), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["height"] >= 2
        assert "API of" in result.stderr and "api_port 0" in result.stderr
        refused = runner.invoke(app, ["db", "backup", "--home", str(home), "--out",
                                      str(tmp_path / "b")])  # fmt: skip
        assert "API is off" in error_lines(refused, "STORE_LOCKED", 1)[0]
        assert not (tmp_path / "b").exists()
    finally:
        _stop(procs)


def test_status_of_a_node_that_does_not_answer_is_unreachable(tmp_path: Path) -> None:
    port = free_base_port(1) + 200
    result = runner.invoke(app, ["status", "--node", f"http://127.0.0.1:{port}"])
    assert f"127.0.0.1:{port}" in error_lines(result, "UNREACHABLE", 1)[0]
    bad = runner.invoke(app, ["status", "--node", "127.0.0.1:1"])
    error_lines(bad, "BAD_INPUT", 2)


def test_version_is_quick_and_loads_nothing_heavy() -> None:
    probe = (
        "import sys\n"
        "from gridtokenx.cli.main import app\n"
        "from typer.testing import CliRunner\n"
        "result = CliRunner().invoke(app, ['--version'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(result.output.strip())\n"
        "heavy = ('fastapi', 'httpx', 'rocksdict', 'pyarrow', 'uvicorn', 'gridtokenx.simulator')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    from gridtokenx import __version__

    assert out.stdout.split("\n")[:2] == [f"gridtokenx {__version__}", "[]"]


@pytest.mark.parametrize(
    ("host", "url"),
    [("127.0.0.1", "http://127.0.0.1:8080"), ("0.0.0.0", "http://127.0.0.1:8080"),
     ("::", "http://[::1]:8080"), ("fd00::5", "http://[fd00::5]:8080"),
     ("10.0.0.5", "http://10.0.0.5:8080")],
)  # fmt: skip
def test_a_homes_api_is_dialled_where_this_machine_reaches_it(host: str, url: str) -> None:
    from gridtokenx.cli.online import api_of
    from gridtokenx.node.home import Config

    assert api_of(Config(1, (), api_port=8080, api_host=host)) == (url, True)
