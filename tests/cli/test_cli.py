"""The command line as an operator runs it: real subprocesses and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridtokenx.cli.main import app
from tests.cli.test_errors import error_lines

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
    error_lines(runner.invoke(app, ["genesis", "create", "--out", str(path)]), "BAD_INPUT", 2)
    assert not path.exists()
    args = ["genesis", "create", "--out", str(path), "--insecure-dev-keys"]
    assert runner.invoke(app, args).exit_code == 0
    error_lines(runner.invoke(app, args), "EXISTS", 1)


def test_genesis_validate_reports_problems(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    runner.invoke(app, ["genesis", "create", "--out", str(path), "--insecure-dev-keys"])
    doc = json.loads(path.read_text())
    doc["zones"][0]["distribution_authority"] = "ERC"
    doc["params"]["interval_seconds"] = 7
    path.write_text(json.dumps(doc))
    result = runner.invoke(app, ["genesis", "validate", str(path)])
    problems = " ".join(error_lines(result, "INVALID_GENESIS", 1))
    assert "not a distributor" in problems and "interval_seconds" in problems
    missing = runner.invoke(app, ["genesis", "validate", str(tmp_path / "none.json")])
    assert "does not exist" in error_lines(missing, "BAD_INPUT", 2)[0]  # was exit 1


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
    assert "passphrase" in error_lines(wrong, "KEYSTORE", 1)[0]
    again = runner.invoke(app, ["keys", "new", str(path)], env=env)
    error_lines(again, "KEY_EXISTS", 1)


def test_insecure_dev_key_needs_the_flag_to_read(tmp_path: Path) -> None:
    path = tmp_path / "dev.key"
    assert runner.invoke(app, ["keys", "new", str(path), "--insecure-dev"]).exit_code == 0
    refused = runner.invoke(app, ["keys", "show", str(path)], env={"GRIDTOKENX_PASSPHRASE": "x"})
    assert "insecure" in error_lines(refused, "INSECURE_KEY", 1)[0].lower()
    shown = runner.invoke(app, ["keys", "show", str(path), "--allow-insecure"])
    assert shown.exit_code == 0 and "gtx" in shown.output


def test_the_demo_options_default_to_the_demo_config() -> None:
    """cli.demo repeats DemoConfig's defaults so that `--help` need not import the simulator."""
    from gridtokenx.cli import demo
    from gridtokenx.simulator.devnet_day import DemoConfig

    defaults = (demo.DEFAULT_HOURS, demo.DEFAULT_SPEED, demo.DEFAULT_DIRECTORY)
    assert defaults == (DemoConfig.hours, DemoConfig.speed, DemoConfig.directory)


def test_help_loads_no_heavy_module() -> None:
    """`gridtokenx --help` stays quick: FastAPI, httpx, RocksDB, the simulator and the
    reporting (pyarrow) load only in the commands that use them."""
    heavy = ("fastapi", "httpx", "rocksdict", "pyarrow", "gridtokenx.simulator", "uvicorn")
    probe = (
        "import sys\n"
        "from gridtokenx.cli.main import app\n"
        "from typer.testing import CliRunner\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
