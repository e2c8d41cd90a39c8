"""What a node operator runs: `gridtokenx init` (encrypted key, all-or-nothing home), `node
start` on that home, a full node made by `init` syncing from a running devnet, `devnet
--validators N`, and a node that prunes as it goes. Processes bind to 127.0.0.1, waits are
bounded, and every process is stopped whatever happens."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from gridtokenx.cli.main import app
from gridtokenx.devnet.homes import devnet_genesis, devnet_validators, init_devnet
from gridtokenx.ledger import genesis
from gridtokenx.node import keystore
from gridtokenx.node.home import Config, load_genesis, read_config, read_status
from gridtokenx.storage.store import Store
from tests.cli.test_errors import error_lines
from tests.conftest import free_base_port
from tests.devnet.test_devnet_processes import (
    _assert_follows,
    _height,
    _start,
    _stop,
    _wait,
)

pytestmark = pytest.mark.process

runner = CliRunner()
PASSPHRASE = "correct horse battery staple"
ENV = {"GRIDTOKENX_PASSPHRASE": PASSPHRASE}
PEER = "127.0.0.1:26656:" + "ab" * 20


def out(result: object) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(str(getattr(result, "output", "")).split())


@pytest.fixture
def genesis_file(tmp_path: Path) -> Path:
    path = tmp_path / "genesis.json"
    path.write_bytes(devnet_genesis("gridtokenx-op-test", 0).encode())
    return path


def _init(home: Path, genesis_file: Path, *extra: str, env: dict[str, str] | None = None) -> Result:
    args = ["init", "--home", str(home), "--genesis", str(genesis_file), *extra]
    return runner.invoke(app, args, env=ENV if env is None else env)


def test_init_writes_an_encrypted_full_node_home(tmp_path: Path, genesis_file: Path) -> None:
    home = tmp_path / "node"
    result = _init(home, genesis_file, "--peer", PEER, "--listen-port", "27000", "--moniker", "n")
    assert result.exit_code == 0, out(result)
    assert sorted(p.name for p in home.iterdir()) == [
        "config.toml",
        "data",
        "genesis.json",
        "node_key.json",
    ]
    assert (home / "genesis.json").read_bytes() == genesis_file.read_bytes()
    key = keystore.load_key(home / "node_key.json", PASSPHRASE)  # encrypted, not insecure
    with pytest.raises(keystore.WrongPassphrase):
        keystore.load_key(home / "node_key.json", "not it")
    config = read_config(home)
    assert config.peers == (("127.0.0.1", 26656, "ab" * 20),)
    assert (config.listen_port, config.moniker, config.keep_blocks) == (27000, "n", 0)
    assert config.dial_all  # no voting power: a full node dials every peer
    assert f"peer id {key.address.hex()}" in out(result) and "full node" in out(result)
    assert not list(tmp_path.glob(".*"))  # no staging directory left behind


def test_init_addresses_for_a_node_on_a_network(tmp_path: Path, genesis_file: Path) -> None:
    """Every address a node binds or announces is an `init` flag; loopback stays the default
    for the API and metrics, so binding them elsewhere is the operator's explicit choice."""
    default = read_config_of(_init(tmp_path / "a", genesis_file), tmp_path / "a")
    assert (default.listen_host, default.api_host, default.metrics_host) == ("127.0.0.1",) * 3
    assert (default.external_host, default.api_port) == ("", 0)
    flags = ("--listen-host", "::", "--external-host", "node1.egat.example", "--api-port",
             "8080", "--api-host", "10.0.0.5", "--metrics-port", "9100", "--metrics-host",
             "fd00::5")  # fmt: skip
    config = read_config_of(_init(tmp_path / "b", genesis_file, *flags), tmp_path / "b")
    assert (config.listen_host, config.external_host) == ("::", "node1.egat.example")
    assert (config.api_host, config.api_port) == ("10.0.0.5", 8080)
    assert (config.metrics_host, config.metrics_port) == ("fd00::5", 9100)


def test_init_peer_categories_for_a_validator_and_its_sentry(
    tmp_path: Path, genesis_file: Path
) -> None:
    default = read_config_of(_init(tmp_path / "a", genesis_file), tmp_path / "a").p2p
    assert (default.pex, default.private_peer_ids, default.unconditional_peer_ids) == (
        True, (), ()
    )  # fmt: skip
    validator = read_config_of(_init(tmp_path / "v", genesis_file, "--no-pex"), tmp_path / "v")
    assert not validator.p2p.pex
    hidden = "cd" * 20
    flags = ("--private-peer-id", hidden, "--unconditional-peer-id", hidden,
             "--unconditional-peer-id", "ef" * 20)  # fmt: skip
    sentry = read_config_of(_init(tmp_path / "s", genesis_file, *flags), tmp_path / "s").p2p
    assert sentry.private_peer_ids == (hidden,)
    assert sentry.unconditional_peer_ids == (hidden, "ef" * 20)


def read_config_of(result: Result, home: Path) -> Config:
    assert result.exit_code == 0, out(result)
    return read_config(home)


def test_init_with_a_genesis_validator_key(tmp_path: Path, genesis_file: Path) -> None:
    key_file = tmp_path / "egat.key"
    keystore.save_insecure_dev_key(key_file, genesis.dev_keys()["EGAT"])
    home = tmp_path / "egat"
    result = _init(home, genesis_file, "--key", str(key_file), "--insecure-dev-key", env={})
    assert result.exit_code == 0, out(result)
    assert "validator (genesis voting power 10000)" in out(result)
    assert not read_config(home).dial_all  # validators split the dialling
    loaded = keystore.load_key(home / "node_key.json", "", allow_insecure=True)
    assert loaded.address == genesis.dev_keys()["EGAT"].address


def test_init_refuses_an_existing_home_and_changes_nothing(
    tmp_path: Path, genesis_file: Path
) -> None:
    home = tmp_path / "node"
    assert _init(home, genesis_file).exit_code == 0
    before = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    again = _init(home, genesis_file, "--listen-port", "1")
    assert "not empty" in error_lines(again, "EXISTS", 1)[0]
    assert {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()} == before


# Under the error contract bad input exits 2 (it was 1, as the refusals still are).
@pytest.mark.parametrize(
    ("extra", "env", "message", "code"),
    [
        (("--peer", "127.0.0.1:26656"), ENV, "HOST:PORT:PEERID", "BAD_INPUT"),
        (("--peer", "127.0.0.1:x:" + "ab" * 20), ENV, "HOST:PORT:PEERID", "BAD_INPUT"),
        (("--peer", "127.0.0.1:26656:abcd"), ENV, "20-byte", "BAD_INPUT"),
        (("--listen-port", "70000"), ENV, "not a port", "BAD_INPUT"),
        (("--metrics-port", "-1"), ENV, "not a port", "BAD_INPUT"),
        (("--api-port", "65536"), ENV, "not a port", "BAD_INPUT"),
        (("--listen-host", "10.0.0"), ENV, "neither an IP address", "BAD_INPUT"),
        (("--api-host", "my host"), ENV, "neither an IP address", "BAD_INPUT"),
        (("--external-host", "-bad-"), ENV, "neither an IP address", "BAD_INPUT"),
        (("--keep-blocks", "-1"), ENV, "keep all", "BAD_INPUT"),
        (("--private-peer-id", "abcd"), ENV, "--private-peer-id: 'abcd' is not", "BAD_INPUT"),
        (("--unconditional-peer-id", "x" * 40), ENV, "--unconditional-peer-id:", "BAD_INPUT"),
        ((), {"GRIDTOKENX_PASSPHRASE": ""}, "no passphrase", "NO_PASSPHRASE"),
        (("--key", "missing.key"), ENV, "does not exist", "BAD_INPUT"),
    ],
)
def test_init_refusals_leave_no_home(
    tmp_path: Path,
    genesis_file: Path,
    extra: tuple[str, ...],
    env: dict[str, str],
    message: str,
    code: str,
) -> None:
    result = _init(tmp_path / "node", genesis_file, *extra, env=env)
    (said,) = error_lines(result, code, 2 if code == "BAD_INPUT" else 1)
    assert message in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["genesis.json"]


def test_init_refuses_a_bad_or_missing_genesis(tmp_path: Path, genesis_file: Path) -> None:
    doc = json.loads(genesis_file.read_text())
    doc["zones"][0]["distribution_authority"] = "ERC"
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    bad = _init(tmp_path / "node", tmp_path / "bad.json")
    assert any("not a distributor" in p for p in error_lines(bad, "INVALID_GENESIS", 1))
    missing = _init(tmp_path / "node", tmp_path / "none.json")
    assert "does not exist" in error_lines(missing, "BAD_INPUT", 2)[0]  # was exit 1
    assert not (tmp_path / "node").exists()


def _read_until(fd: int, seen: bytearray, token: bytes, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while token not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                seen += os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
    return token in seen


def test_init_in_a_terminal_asks_for_the_passphrase_twice(
    tmp_path: Path, genesis_file: Path
) -> None:
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "GRIDTOKENX_PASSPHRASE"}
    home = tmp_path / "node"
    command = ["init", "--home", str(home), "--genesis", str(genesis_file)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridtokenx", *command],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()
    try:
        for prompt in (b"passphrase", b"Repeat"):
            assert _read_until(master, seen, prompt), bytes(seen)
            time.sleep(0.3)  # getpass flushes input typed before it turns echo off
            os.write(master, b"typed in a terminal\n")
        assert _read_until(master, seen, b"role"), bytes(seen)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)
    assert b"typed in a terminal" not in seen  # never echoed
    key = keystore.load_key(home / "node_key.json", "typed in a terminal")
    assert key.address.hex().encode() in seen


def _node_start(home: Path, passphrase: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GRIDTOKENX_PASSPHRASE"}
    if passphrase is not None:
        env["GRIDTOKENX_PASSPHRASE"] = passphrase
    return subprocess.run(
        [sys.executable, "-m", "gridtokenx", "node", "start", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_node_start_with_a_wrong_or_missing_passphrase_is_a_clear_error(
    tmp_path: Path, genesis_file: Path
) -> None:
    home = tmp_path / "node"
    assert _init(home, genesis_file).exit_code == 0
    wrong = _node_start(home, "nope")  # the error contract: on stderr now, not stdout
    assert "wrong passphrase" in error_lines(wrong, "KEYSTORE", 1)[0]
    assert "Traceback" not in wrong.stdout + wrong.stderr
    unset = _node_start(home, None)
    assert "no passphrase" in error_lines(unset, "NO_PASSPHRASE", 1)[0]
    assert not (home / "status.json").exists()  # the node never started


def test_a_full_node_made_by_init_syncs_from_a_running_devnet(
    tmp_path: Path, genesis_file: Path
) -> None:
    base = free_base_port(5)
    homes = init_devnet(tmp_path / "devnet", "gridtokenx-op", int(time.time()), base, 200)
    procs = {h: _start(h) for h in homes}
    try:
        peers = []
        for h in homes:
            key = keystore.load_key(h / "node_key.json", "", allow_insecure=True)
            peers += [
                "--peer",
                f"127.0.0.1:{read_config(h).listen_port}:{key.address.hex()}",
            ]
        full = tmp_path / "full"
        made = _init(full, homes[0] / "genesis.json", "--listen-port", str(base + 4), *peers)
        assert made.exit_code == 0 and "full node" in out(made)
        assert _wait(lambda: all(_height(h) >= 4 for h in homes), 60)
        procs[full] = _start(full, GRIDTOKENX_PASSPHRASE=PASSPHRASE)
        _assert_follows(procs, homes, full)
        assert read_config(full).dial_all
    finally:
        _stop(procs)


def _powers(home: Path) -> dict[str, int]:
    return {a.code: a.voting_power for a in load_genesis(home / "genesis.json").authorities}


def test_devnet_command_with_one_validator_commits_alone(tmp_path: Path) -> None:
    base = free_base_port(1)
    directory = tmp_path / "devnet"
    command = ["devnet", "--validators", "1", "--dir", str(directory), "--base-port", str(base)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridtokenx", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so cleanup reaches the validator
    )
    egat = directory / "egat"
    try:
        assert _wait(lambda: _height(egat) >= 3, 30), _height(egat)
        assert sorted(p.name for p in directory.iterdir()) == ["egat", "keys"]
        # The authorities without a node keep their dev keys, to vote or to start a node.
        assert sorted(p.name for p in (directory / "keys").iterdir()) == [
            "erc.key", "mea.key", "nepo.key", "pea.key",
        ]  # fmt: skip
        assert _powers(egat) == {"EGAT": 10_000, "MEA": 0, "PEA": 0, "ERC": 0, "NEPO": 0}
        status = read_status(egat)
        assert status is not None
        child = int(str(status["pid"]))
        proc.send_signal(signal.SIGINT)  # Ctrl-C stops the validators too
        assert proc.wait(20) == 0
        assert _wait(lambda: not _alive(child), 10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_five_validators_with_nepo_at_its_genesis_power(tmp_path: Path) -> None:
    codes = devnet_validators(5)
    assert codes == ("EGAT", "MEA", "PEA", "ERC", "NEPO")
    base = free_base_port(5)
    homes = init_devnet(tmp_path, "gridtokenx-five", int(time.time()), base, 200, codes)
    assert _powers(homes[0]) == {
        "EGAT": 10_000,
        "MEA": 8_000,
        "PEA": 8_000,
        "ERC": 7_000,
        "NEPO": 6_000,
    }
    assert [h.name for h in homes] == ["egat", "mea", "pea", "erc", "nepo"]
    assert all(len(read_config(h).peers) == 4 for h in homes)
    procs = {h: _start(h) for h in homes}
    try:
        # A liveness bound: five processes starting at once on a loaded 2-core machine may
        # each take seconds to import and bind (at load 15-30, 20 s was not always enough).
        assert _wait(lambda: all(_height(h) >= 3 for h in homes), 60), [_height(h) for h in homes]
    finally:
        _stop(procs)


@pytest.mark.parametrize("count", ["0", "6"])
def test_devnet_command_refuses_other_sizes(tmp_path: Path, count: str) -> None:
    result = runner.invoke(app, ["devnet", "--validators", count, "--dir", str(tmp_path / "d")])
    assert "1 to 5" in error_lines(result, "BAD_INPUT", 2)[0]
    assert not (tmp_path / "d").exists()


def _horizon(home: Path) -> int:
    status = read_status(home)
    return int(status["pruned_below"]) if status else 0  # type: ignore[call-overload]


def test_a_node_with_keep_blocks_prunes_as_it_runs_and_restarts(tmp_path: Path) -> None:
    (home,) = init_devnet(
        tmp_path, "gridtokenx-prune", int(time.time()), free_base_port(1), 200, ("EGAT",)
    )
    config = read_config(home)
    text = (home / "config.toml").read_text()  # as an operator edits it
    (home / "config.toml").write_text(text.replace("keep_blocks = 0", "keep_blocks = 2"))
    assert read_config(home).keep_blocks == 2 and config.keep_blocks == 0
    procs = {home: _start(home)}
    try:
        assert _wait(lambda: _horizon(home) >= 3, 30), read_status(home)
        _stop(procs)
        stopped = _height(home)
        with Store(home / "data") as db:
            assert db.block(1) is None and db.block(db.height()) is not None
            horizon = db.pruned_below()  # blocks may commit after the last prune: not exact
            assert horizon >= 3 and db.block(horizon - 1) is None
            assert db.block(horizon) is not None
        procs[home] = _start(home)  # restarts on a pruned store and goes on
        assert _wait(lambda: _height(home) >= stopped + 2, 30), (stopped, _height(home))
    finally:
        _stop(procs)
