"""The command line as an operator runs it: real subprocesses and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridtokenx.cli.main import app

pytestmark = pytest.mark.process

runner = CliRunner()


def test_demo_runs_and_reports_conservation() -> None:
    result = runner.invoke(app, ["demo-ledger", "--intervals", "8"])
    assert result.exit_code == 0, result.output
    assert "conserved" in result.output
    assert "DUPLICATE_READING" in result.output
    assert "UNLICENSED_SELLER" in result.output


def test_console_script_is_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gridtokenx", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "demo" in out.stdout


def test_genesis_create_then_validate(tmp_path: Path) -> None:
    path = tmp_path / "devnet" / "genesis.json"
    created = runner.invoke(
        app, ["genesis", "create", "--out", str(path), "--insecure-dev-keys", "--genesis-time", "0"]
    )
    assert created.exit_code == 0, created.output
    assert json.loads(path.read_text())["chain_id"] == "gridtokenx-devnet-1"
    validated = runner.invoke(app, ["genesis", "validate", str(path)])
    assert validated.exit_code == 0, validated.output
    assert "valid" in validated.output


def test_genesis_create_refuses_without_explicit_dev_keys_or_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    assert runner.invoke(app, ["genesis", "create", "--out", str(path)]).exit_code == 2
    assert not path.exists()
    args = ["genesis", "create", "--out", str(path), "--insecure-dev-keys"]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, args).exit_code == 1


def test_genesis_validate_reports_problems(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    runner.invoke(app, ["genesis", "create", "--out", str(path), "--insecure-dev-keys"])
    doc = json.loads(path.read_text())
    doc["zones"][0]["distribution_authority"] = "ERC"
    doc["params"]["interval_seconds"] = 7
    path.write_text(json.dumps(doc))
    result = runner.invoke(app, ["genesis", "validate", str(path)])
    assert result.exit_code == 1
    assert "not a distributor" in result.output and "interval_seconds" in result.output
    missing = runner.invoke(app, ["genesis", "validate", str(tmp_path / "none.json")])
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_keys_new_encrypted_then_show(tmp_path: Path) -> None:
    path = tmp_path / "operator.key"
    env = {"GRIDTOKENX_PASSPHRASE": "correct horse battery staple"}
    made = runner.invoke(app, ["keys", "new", str(path)], env=env)
    assert made.exit_code == 0, made.output
    address = made.output.split()[0]
    assert address.startswith("gtx")
    shown = runner.invoke(app, ["keys", "show", str(path)], env=env)
    assert shown.exit_code == 0 and address in shown.output
    wrong = runner.invoke(app, ["keys", "show", str(path)], env={"GRIDTOKENX_PASSPHRASE": "no"})
    assert wrong.exit_code == 1 and "passphrase" in wrong.output
    again = runner.invoke(app, ["keys", "new", str(path)], env=env)
    assert again.exit_code == 1


def test_insecure_dev_key_needs_the_flag_to_read(tmp_path: Path) -> None:
    path = tmp_path / "dev.key"
    assert runner.invoke(app, ["keys", "new", str(path), "--insecure-dev"]).exit_code == 0
    refused = runner.invoke(app, ["keys", "show", str(path)], env={"GRIDTOKENX_PASSPHRASE": "x"})
    assert refused.exit_code == 1 and "insecure" in refused.output.lower()
    shown = runner.invoke(app, ["keys", "show", str(path), "--allow-insecure"])
    assert shown.exit_code == 0 and "gtx" in shown.output
