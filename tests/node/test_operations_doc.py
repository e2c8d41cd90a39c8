"""docs/operations.md and deploy/gridtokenx.service hold up: the systemd unit runs `node
start` on the home it names with the hardening the guide describes, `node start` exits 0
on SIGTERM with its logs on stdout (what a supervisor needs), every `gridtokenx ...`
command the guide quotes names a real command and real options (so a renamed flag fails
here), and `init --no-pex` makes a validator that dials every sentry it names."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from gridtokenx.cli.main import app
from gridtokenx.devnet.homes import init_devnet
from gridtokenx.ledger import genesis
from gridtokenx.node import keystore
from gridtokenx.node.home import read_config
from tests.conftest import free_base_port

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "gridtokenx.service"
GUIDE = ROOT / "docs" / "operations.md"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_runs_node_start_on_its_home_and_is_hardened() -> None:
    service = _unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/gridtokenx") and argv[1:3] == ["node", "start"]
    home = argv[argv.index("--home") + 1]
    assert home == "/var/lib/gridtokenx"
    assert service["ReadWritePaths"] == home  # the one place the node may write
    assert service["Type"] == "simple" and service["User"] == "gridtokenx"
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 30 and service["LimitNOFILE"] == "65536"
    for key, value in (("NoNewPrivileges", "true"), ("ProtectSystem", "strict"),
                       ("PrivateTmp", "true"), ("ProtectHome", "true")):  # fmt: skip
        assert service[key] == value, key
    # The passphrase comes from a root-only file, never from the unit itself.
    assert service["EnvironmentFile"].startswith("/etc/gridtokenx/")
    assert not any(k == "Environment" and "PASSPHRASE" in v for k, v in service.items())
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_reads_the_passphrase_variable_the_node_reads() -> None:
    from gridtokenx.node.home import PASSPHRASE_ENV

    assert PASSPHRASE_ENV in UNIT.read_text()
    assert PASSPHRASE_ENV in GUIDE.read_text()


@pytest.mark.process
def test_node_start_logs_to_stdout_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    base = free_base_port(1)
    home = init_devnet(tmp_path, "gridtokenx-sigterm", int(time.time()), base,
                       validators=("EGAT",))[0]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDTOKENX_")}
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridtokenx", "node", "start", "--home", str(home)],
            stdout=out, stderr=err, env=env,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "committed height=" not in stdout.read_text():
            assert proc.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, "no committed line within 60 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, stderr.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    logged = stdout.read_text()
    assert "node started" in logged and 'reason="asked to stop"' in logged
    assert stderr.read_text() == ""  # stderr is for the one error line of a failed start


def _guide_commands() -> list[str]:
    """Every `gridtokenx ...` line in the guide's fenced blocks (after a `$ ` prompt or
    not), with its backslash continuations joined."""
    commands: list[str] = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", GUIDE.read_text(), re.M | re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i].strip().removeprefix("$ ").removeprefix("# ")
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1] + " " + lines[i].strip()
            if line.startswith("gridtokenx "):
                commands.append(line.split("  #")[0])
            i += 1
    return commands


def _check(command: str, root: Any) -> list[str]:
    """What in `command` the CLI does not have: a command path or an option. `root` is the
    click group Typer builds (Typer may vendor click, so groups are known by `commands`)."""
    words = shlex.split(command)[1:]
    node = root
    while hasattr(node, "commands") and words and not words[0].startswith("-"):
        sub = node.commands.get(words[0])
        if sub is None:
            return [f"{command}: no command {words[0]!r}"]
        node, words = sub, words[1:]
    if hasattr(node, "commands"):
        return [f"{command}: {node.name} needs a subcommand"]
    options = {opt for param in node.params for opt in (*param.opts, *param.secondary_opts)}
    return [
        f"{command}: {node.name} has no option {word.split('=')[0]}"
        for word in words
        if word.startswith("--") and word.split("=")[0] not in options
    ]


def test_every_command_in_the_guide_is_real() -> None:
    root = typer.main.get_command(app)
    commands = _guide_commands()
    assert len(commands) >= 15  # the deployment guide and the ceremony
    for flag in ("--no-pex", "--external-host", "--private-peer-id", "--keep"):
        assert any(flag in c for c in commands), flag  # the deployment section is parsed
    problems = [p for command in commands for p in _check(command, root)]
    assert problems == []


def test_the_checker_catches_a_renamed_flag() -> None:
    root = typer.main.get_command(app)
    assert _check("gridtokenx init --home h --genesis g --no-pex", root) == []
    assert _check("gridtokenx init --home h --listen-addr 0.0.0.0", root) == [
        "gridtokenx init --home h --listen-addr 0.0.0.0: init has no option --listen-addr"
    ]
    assert _check("gridtokenx db squash --home h", root)[0].endswith("no command 'squash'")


def test_init_no_pex_makes_a_validator_that_dials_every_sentry(tmp_path: Path) -> None:
    spec = genesis.devnet("gridtokenx-nopex", 1_700_000_000, genesis.dev_keys())
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_bytes(spec.encode())
    key_file = tmp_path / "egat.key"
    keystore.save_insecure_dev_key(key_file, genesis.dev_keys()["EGAT"])
    sentries = [f"10.0.0.{20 + i}:26656:{'%040x' % (i + 1)}" for i in range(5)]
    home = tmp_path / "egat"
    result = CliRunner().invoke(app, [
        "init", "--home", str(home), "--genesis", str(genesis_file), "--key", str(key_file),
        "--insecure-dev-key", "--no-pex", "--listen-host", "10.0.0.10",
        *[arg for peer in sentries for arg in ("--peer", peer)]], env={})  # fmt: skip
    assert result.exit_code == 0, result.output
    config = read_config(home)
    # Sentries dial only their own validator, so a validator without peer exchange must
    # dial the others' sentries itself: all of them, not the half a split would give it.
    assert (config.p2p.pex, config.dial_all, len(config.peers)) == (False, True, 5)
