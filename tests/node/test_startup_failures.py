"""A node that cannot start says why in one line and exits 1, never half-alive (issue 13):
its store held by another process (a running node of the same home, or any process with
the store open), a damaged store, a P2P, metrics or API port in use. Each is
`gridtokenx node start` as an operator runs it, in a process; and in-process, `run_node`
closes what it had opened (the store, the P2P port) before it raises. A home the node
cannot start from (a config value out of range, an address the machine does not have, an
unreadable config, a file where the store should be) is one line as well. Processes bind
to 127.0.0.1, waits are bounded and every process is stopped."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from gridtokenx.devnet.homes import init_devnet
from gridtokenx.node.home import load_genesis, read_config, read_status, write_config
from gridtokenx.node.service import run_node
from gridtokenx.storage.store import Store, open_application
from tests.cli.test_errors import error_lines
from tests.conftest import free_base_port
from tests.devnet.test_devnet_processes import _height, _start, _stop, _wait

pytestmark = pytest.mark.process


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A one-validator devnet home (ports: P2P base, metrics base + 100, API base + 200)
    whose store holds its genesis, as a node that ran once leaves it."""
    (made,) = init_devnet(tmp_path, "gridtokenx-startup", int(time.time()), free_base_port(1),
                          validators=("EGAT",))  # fmt: skip
    open_application(load_genesis(made / "genesis.json"), made / "data").close()
    return made


def _node_start(home: Path) -> subprocess.CompletedProcess[str]:
    """`gridtokenx node start` of a home that should not start: it must exit by itself."""
    return subprocess.run(
        [sys.executable, "-m", "gridtokenx", "node", "start", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdin=subprocess.DEVNULL,
    )


def _one_line(result: subprocess.CompletedProcess[str], code: str) -> str:
    """The contract's one stderr line with `code` and exit 1, no traceback; its message."""
    assert "Traceback" not in result.stderr, result.stderr
    (message,) = error_lines(result, code, 1)
    return message


def test_a_store_another_process_holds_is_one_line(home: Path) -> None:
    with Store(home / "data"):  # RocksDB's lock is per process: this one holds it
        failed = _node_start(home)
    message = _one_line(failed, "STORE_LOCKED")
    assert str(home / "data") in message and "still running" in message
    assert read_status(home) is None  # it never ran


def test_a_second_node_of_a_running_home_is_one_line_and_the_first_runs_on(home: Path) -> None:
    procs = {home: _start(home)}
    try:
        assert _wait(lambda: _height(home) >= 2, 60)
        second = _node_start(home)
        assert str(home / "data") in _one_line(second, "STORE_LOCKED")
        height = _height(home)
        assert _wait(lambda: _height(home) > height + 1, 30)  # undisturbed
        assert procs[home].poll() is None
    finally:
        _stop(procs)


def _manifest(data: Path) -> Path:
    return data / (data / "CURRENT").read_text().strip()


@pytest.mark.parametrize(
    "damage",
    ["manifest", "current", "no current"],
)
def test_a_damaged_store_is_one_line_and_left_as_it_was(home: Path, damage: str) -> None:
    data = home / "data"
    if damage == "manifest":
        _manifest(data).write_bytes(b"\x00garbage" * 64)
    elif damage == "current":
        (data / "CURRENT").write_text("MANIFEST-999999\n")
    else:
        (data / "CURRENT").unlink()
    before = sorted(p.name for p in data.iterdir())
    message = _one_line(_node_start(home), "STORE_CORRUPT")
    assert str(data) in message and "backup" in message
    after = sorted(p.name for p in data.iterdir() if not p.name.startswith("LOG"))
    assert after == [name for name in before if not name.startswith("LOG")]  # nothing new


def test_a_store_of_another_genesis_is_one_line_and_left_as_it_was(home: Path) -> None:
    """The home's genesis.json replaced (a new ceremony, the wrong file copied in) over a
    store that began from the old one: the node refuses to serve another chain's history
    under this genesis, names both hashes, and writes nothing."""
    spec = load_genesis(home / "genesis.json")
    other = msgspec.structs.replace(spec, chain_id=spec.chain_id + "-other")
    original = (home / "genesis.json").read_bytes()
    (home / "genesis.json").write_bytes(msgspec.json.encode(other))
    message = _one_line(_node_start(home), "STORE_OF_ANOTHER_CHAIN")
    assert str(home / "data") in message and "another genesis" in message
    assert spec.hash().hex()[:16] in message and other.hash().hex()[:16] in message
    assert read_status(home) is None  # it never ran
    (home / "genesis.json").write_bytes(original)  # the right genesis back: it opens
    with Store(home / "data") as db:
        assert db.genesis_hash() == spec.hash() and db.height() == 0


@pytest.mark.parametrize(
    ("offset", "setting"), [(0, "p2p.listen_port"), (100, "metrics.port"), (200, "api.port")]
)
def test_a_port_in_use_is_one_line(home: Path, offset: int, setting: str) -> None:
    port = read_config(home).listen_port + offset
    with _taken(port):
        message = _one_line(_node_start(home), "PORT_IN_USE")
    assert str(home) in message and f"127.0.0.1:{port}" in message and setting in message
    with Store(home / "data") as db:  # the failed node left the store as it found it
        assert db.height() <= 1


def _taken(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:`port` (another program's), for a `with`."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock


# --- in-process: run_node closes what it opened before it raises ---------------------------
def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def metrics_taken(home: Path) -> Iterator[int]:
    port = read_config(home).metrics_port
    with _taken(port):
        yield port


def test_run_node_with_the_metrics_port_taken_closes_its_store_and_p2p_port(
    home: Path, metrics_taken: int
) -> None:
    """The P2P port is bound before the metrics port: a node failing on the second must
    free the first and close its store, or an embedding program (and a retry in the same
    process) finds both held."""
    with pytest.raises(OSError) as failed:  # node.service.PortInUse
        asyncio.run(run_node(home, max_seconds=1))
    with Store(home / "data") as db:  # would be "lock hold by current process" if left open
        assert db.has_genesis()
    assert _free(read_config(home).listen_port)
    assert f"127.0.0.1:{metrics_taken}" in str(failed.value)
    assert "metrics.port in config.toml (or GRIDTOKENX_METRICS_PORT)" in str(failed.value)


# --- a home the node cannot start from: one line too ---------------------------------------
def _set(home: Path, **changes: object) -> None:
    write_config(home, msgspec.structs.replace(read_config(home), **changes))


def _edit(home: Path, old: str, new: str) -> None:
    """Change config.toml's text as an operator would in an editor."""
    text = (home / "config.toml").read_text()
    assert old in text
    (home / "config.toml").write_text(text.replace(old, new, 1))


def _not_a_directory(home: Path) -> None:
    shutil.rmtree(home / "data")
    (home / "data").write_text("not a store")


@pytest.mark.parametrize(
    ("spoil", "code", "says"),
    [
        (lambda h: _set(h, listen_port=99_999), "INVALID_HOME",
         "config.toml: p2p.listen_port must be an integer from 0 to 65535, not 99999"),
        (lambda h: _set(h, api_keep_alive_s=0), "INVALID_HOME", "api.keep_alive_s"),
        (lambda h: _set(h, api_header_timeout_s=-1), "INVALID_HOME", "api.header_timeout_s"),
        (lambda h: _set(h, api_host="192.0.2.1"), "INVALID_HOME", "change api.host"),
        (lambda h: _edit(h, "max_peers =", "max_peer ="), "INVALID_HOME",
         "config.toml: unknown key p2p.max_peer (did you mean p2p.max_peers?)"),
        (lambda h: _edit(h, "max_peers = 50", 'max_peers = "fifty"'), "INVALID_HOME",
         'config.toml: p2p.max_peers must be an integer, not "fifty"'),
        (lambda h: _edit(h, "max_per_ip = 8", "max_per_ip = 0"), "INVALID_HOME",
         "config.toml: p2p.max_per_ip = 0 refused: p2p limits and timeouts must be positive"),
        (lambda h: _set(h, api_tls_cert=str(h / "node.crt")), "INVALID_HOME",
         "api_tls_cert and api_tls_key go together"),
        (lambda h: _set(h, api_tls_cert=str(h / "node.crt"), api_tls_key=str(h / "node.key")),
         "INVALID_HOME", "api_tls_cert"),
        (lambda h: ((h / "config.toml").unlink(), (h / "config.toml").mkdir()), "INVALID_HOME",
         "Is a directory"),
        (_not_a_directory, "STORE_UNAVAILABLE", "not a directory"),
    ],
)  # fmt: skip
def test_an_unusable_home_is_one_line(
    home: Path, spoil: Callable[[Path], object], code: str, says: str
) -> None:
    spoil(home)
    message = _one_line(_node_start(home), code)  # a process: a node that ran would time out
    assert says in message and str(home) in message
