"""The error contract (cli.errors) held by every command group: a failure is only
`error: CODE: message` lines on stderr, nothing on stdout, exit 2 for bad input (nothing
done) and 1 for a refusal or failure; Click's own usage errors and anything unexpected end
the same way, never as a traceback. `error_lines` is the check other tests use too."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gridtokenx.cli import errors
from gridtokenx.cli.main import app
from gridtokenx.client import ApiError, FinalityTimeout, TxDropped
from gridtokenx.devnet.homes import devnet_genesis
from gridtokenx.node import keystore
from gridtokenx.wire import crypto
from tests.conftest import free_base_port, key

runner = CliRunner()
LINE = re.compile(r"error: (?P<code>[A-Z][A-Z0-9_]*): (?P<message>\S.*)")
PASSPHRASE = "correct horse battery staple"


def error_lines(result: Any, code: str, status: int) -> list[str]:
    """Check the contract on a CliRunner result or a finished process: exit `status`,
    nothing on stdout, at least one stderr line and every one `error: CODE: message` with
    `code`; returns the messages."""
    exit_code = getattr(result, "exit_code", getattr(result, "returncode", None))
    assert exit_code == status, (exit_code, result.stdout, result.stderr)
    assert result.stdout == "", result.stdout
    found = [LINE.fullmatch(line) for line in result.stderr.splitlines()]
    assert found and all(found), result.stderr
    assert {m["code"] for m in found if m} == {code}, result.stderr
    return [m["message"] for m in found if m]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """A genesis, an encrypted and a dev key, a non-empty folder and paths that do not exist."""
    genesis = tmp_path / "genesis.json"
    genesis.write_bytes(devnet_genesis("gridtokenx-contract", 0).encode())
    keystore.save_key(tmp_path / "secret.key", key("contract/secret"), PASSPHRASE)
    keystore.save_insecure_dev_key(tmp_path / "dev.key", key("contract/dev"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("taken")
    return {
        "genesis": str(genesis),
        "secret": str(tmp_path / "secret.key"),
        "dev": str(tmp_path / "dev.key"),
        "full": str(tmp_path / "full"),
        "missing": str(tmp_path / "missing"),
        "new": str(tmp_path / "new"),
        "to": crypto.address_to_text(key("contract/to").address),
        "node": f"http://127.0.0.1:{_closed_port()}",
    }


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


ENV = {"GRIDTOKENX_PASSPHRASE": PASSPHRASE}
# Per command group: a command line that is bad input (2), and one refused or failed (1).
CASES = [
    ("genesis", ["genesis", "create", "--out", "{new}"], {}, "BAD_INPUT", 2),
    ("genesis", ["genesis", "validate", "{missing}"], {}, "BAD_INPUT", 2),
    ("genesis", ["genesis", "create", "--insecure-dev-keys", "--out", "{genesis}"], {},
     "EXISTS", 1),
    ("keys", ["keys", "show", "{missing}"], ENV, "BAD_INPUT", 2),
    ("keys", ["keys", "import", "{new}", "--private-key-hex", "zz"], ENV, "BAD_INPUT", 2),
    ("keys", ["keys", "show", "{secret}"], {"GRIDTOKENX_PASSPHRASE": "wrong"}, "KEYSTORE", 1),
    ("keys", ["keys", "show", "{dev}"], ENV, "INSECURE_KEY", 1),
    ("keys", ["keys", "new", "{new}"], {"GRIDTOKENX_PASSPHRASE": ""}, "NO_PASSPHRASE", 1),
    ("keys", ["keys", "new", "{secret}"], ENV, "KEY_EXISTS", 1),
    ("node", ["init", "--home", "{new}", "--genesis", "{genesis}", "--peer", "x:1"], ENV,
     "BAD_INPUT", 2),
    ("node", ["init", "--home", "{full}", "--genesis", "{genesis}"], ENV, "EXISTS", 1),
    ("node", ["node", "start", "--home", "{full}"], ENV, "BAD_INPUT", 2),
    ("node", ["status", "--home", "{full}"], {}, "BAD_INPUT", 2),  # not a node home
    ("node", ["status", "--node", "{node}"], {}, "UNREACHABLE", 1),
    ("db", ["db", "info", "{full}"], {}, "BAD_INPUT", 2),
    ("db", ["db", "prune", "--home", "{full}", "--keep", "0"], {}, "BAD_INPUT", 2),
    ("db", ["db", "backup", "{missing}", "{full}"], {}, "EXISTS", 1),
    ("devnet", ["devnet", "--validators", "6", "--dir", "{new}"], {}, "BAD_INPUT", 2),
    ("demo", ["demo", "--hours", "0", "--dir", "{new}"], {}, "BAD_INPUT", 2),
    ("demo", ["demo", "--dir", "{full}"], {}, "EXISTS", 1),
    ("demo", ["demo-ledger", "--intervals", "-1"], {}, "BAD_INPUT", 2),
    ("tx", ["tx", "transfer", "THB", "{to}", "5", "--key", "{dev}", "--allow-insecure",
            "--node", "{node}"], {}, "BAD_INPUT", 2),
    ("tx", ["tx", "redeem-thb", "1THB", "--key", "{dev}", "--node", "{node}"], {},
     "INSECURE_KEY", 1),
    ("tx", ["tx", "redeem-thb", "1THB", "--key", "{dev}", "--allow-insecure", "--node",
            "{node}"], {}, "UNREACHABLE", 1),
    ("query", ["query", "balance", "gtx-typo", "--node", "{node}"], {}, "BAD_INPUT", 2),
    ("query", ["query", "health", "--node", "{node}"], {}, "UNREACHABLE", 1),
    ("report", ["report", "export", "--data", "{full}", "--out", "{new}", "--format", "xlsx"],
     {}, "BAD_INPUT", 2),
    ("report", ["report", "export", "--data", "{missing}", "--out", "{full}"], {}, "EXISTS", 1),
    ("report", ["report", "export", "--out", "{new}"], {}, "BAD_INPUT", 2),  # no store named
    ("report", ["report", "export", "--home", "{full}", "--out", "{new}"], {}, "BAD_INPUT", 2),
    ("report", ["report", "verify", "--data", "{missing}", "--export", "{full}"], {},
     "BAD_INPUT", 2),
    ("usage", ["no-such-command"], {}, "BAD_INPUT", 2),
    ("usage", ["query", "trades", "--limit", "0"], {}, "BAD_INPUT", 2),
    ("usage", ["tx", "transfer", "THB"], {}, "BAD_INPUT", 2),
    ("usage", ["db", "prune", "--home", "x", "--keep", "many"], {}, "BAD_INPUT", 2),
]  # fmt: skip


@pytest.mark.parametrize(
    ("group", "args", "env", "code", "status"), CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES]
)
def test_every_group_fails_by_the_contract(
    files: dict[str, str],
    group: str,
    args: list[str],
    env: dict[str, str],
    code: str,
    status: int,
) -> None:
    before = sorted(p.name for p in Path(files["full"]).parent.iterdir())
    result = runner.invoke(app, [a.format(**files) for a in args], env=env)
    (message,) = error_lines(result, code, status)
    assert "Traceback" not in message and "\x1b" not in message  # no colour, no trace
    assert sorted(p.name for p in Path(files["full"]).parent.iterdir()) == before


def test_a_genesis_with_problems_is_one_line_for_each(tmp_path: Path) -> None:
    doc = json.loads(devnet_genesis("gridtokenx-contract", 0).encode())
    doc["zones"][0]["distribution_authority"] = "ERC"
    doc["params"]["interval_seconds"] = 7
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    problems = error_lines(runner.invoke(app, ["genesis", "validate", str(path)]),
                           "INVALID_GENESIS", 1)  # fmt: skip
    assert len(problems) >= 2 and all(p.startswith(f"{path}: ") for p in problems), problems
    assert any("interval_seconds" in p for p in problems)
    assert any("not a distributor" in p for p in problems)


def test_usage_errors_name_the_help_and_no_args_still_shows_help() -> None:
    (message,) = error_lines(runner.invoke(app, ["query", "trades", "--limit", "0"]),
                             "BAD_INPUT", 2)  # fmt: skip
    assert "--limit" in message and message.endswith(" query trades --help`)")
    shown = runner.invoke(app, ["tx"])
    assert shown.exit_code == 2 and "order" in shown.stdout and shown.stderr == ""
    assert runner.invoke(app, ["--help"]).exit_code == 0


def test_anything_unexpected_is_one_line_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(home: Path) -> None:
        raise RuntimeError("the disk\nfell off")

    monkeypatch.setattr("gridtokenx.node.home.read_status", broken)
    # a home whose API is off: `status` reads its status.json, which fails unexpectedly
    (tmp_path / "config.json").write_text('{"listen_port": 1, "peers": [], "api_port": 0}')
    result = runner.invoke(app, ["status", "--home", str(tmp_path)])
    assert error_lines(result, "UNEXPECTED", 1) == ["RuntimeError: the disk fell off"]


def test_the_sdk_and_keystore_errors_mean_the_same_in_every_command() -> None:
    request = httpx.Request("GET", "http://127.0.0.1:9/api/v1/health")
    assert errors.classify(ApiError(400, "INVALID_REQUEST", "bad limit")) == (
        "INVALID_REQUEST", ["bad limit"], 2,
    )  # fmt: skip
    assert errors.classify(ApiError(409, "NONCE_GAP", "gap"))[::2] == ("NONCE_GAP", 1)
    assert errors.classify(TxDropped("ab", "GATE_CLOSED")) == (
        "GATE_CLOSED",
        ["transaction ab was dropped: Gate closure for the interval has passed: no new "
         "orders or amendments"],
        1,
    )  # fmt: skip
    assert errors.classify(FinalityTimeout("ab", 2.0))[::2] == ("FINALITY_TIMEOUT", 1)
    assert errors.classify(keystore.WrongPassphrase("k: wrong"))[::2] == ("KEYSTORE", 1)
    refused = httpx.ConnectError("refused", request=request)
    assert errors.classify(refused) == ("UNREACHABLE", ["http://127.0.0.1:9: refused"], 1)
    assert errors.classify(errors.Refused("X", "a", "b")) == ("X", ("a", "b"), 1)
    assert errors.classify(ValueError("v"))[::2] == ("UNEXPECTED", 1)


@pytest.mark.process
def test_a_devnet_whose_validator_stops_fails(tmp_path: Path) -> None:
    """EGAT's API port is taken, so its validator stops at start-up: the devnet command
    ends with DEVNET_STOPPED instead of waiting with no validator."""
    base = free_base_port(1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 200))
        taken.listen()
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "gridtokenx", "devnet", "--validators", "1",
             "--dir", str(tmp_path / "d"), "--base-port", str(base)],
            capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    done.stdout = re.sub(r"heights \[[^\]]*\]\s*", "", done.stdout)  # its progress line
    (message,) = error_lines(done, "DEVNET_STOPPED", 1)
    assert "node.log" in message and time.monotonic() - started < 90
