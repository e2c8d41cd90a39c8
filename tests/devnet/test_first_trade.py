"""docs/first-trade.md, run as written: its first `sh` block starts `gridtokenx devnet
--fund` (on free ports), the others run in order in one bash script with `set -eu` in a
fresh folder, exactly as a reader pastes them. A new participant registers with a meter,
sells 1 kWh for the next interval and a funded participant buys it: the trade must commit
within 60 seconds of starting the devnet. Ctrl-C then stops the devnet with exit 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gridtokenx.client import Client
from gridtokenx.devnet.processes import free_base_port
from gridtokenx.node import keystore
from gridtokenx.wire import crypto

pytestmark = pytest.mark.process

DOC = Path(__file__).parents[2] / "docs" / "first-trade.md"
FIRST_TRADE_SECONDS = 60  # issue 15: a new participant sells within a minute of starting
MARK = "@@ block {} done at "


def sh_blocks(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"```sh\n(.*?)```", text, re.S)]


def walkthrough_script(blocks: list[str]) -> str:
    """The blocks after the devnet's, each followed by a line that says when it ended."""
    lines = ["set -eu"]
    for i, block in enumerate(blocks, 1):
        lines += [block.rstrip("\n"), f'echo "{MARK.format(i)}$(date +%s.%N)"']
    return "\n".join(lines) + "\n"


def test_the_walkthroughs_blocks_are_what_the_test_runs() -> None:
    blocks = sh_blocks(DOC.read_text())
    assert blocks[0].strip() == "gridtokenx devnet --fund 1"
    joined = "".join(blocks)
    for step in ("register-participant", "register-meter", "order place sell BKK next",
                 "order place buy BKK next", "grant-licence", "issue-thb"):  # fmt: skip
        assert step in joined


def test_a_new_participant_sells_within_a_minute_of_starting_a_funded_devnet(
    tmp_path: Path,
) -> None:
    blocks = sh_blocks(DOC.read_text())
    base = free_base_port(4)
    shims = tmp_path / "bin"
    shims.mkdir()
    shim = shims / "gridtokenx"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m gridtokenx "$@"\n')
    shim.chmod(0o755)
    url = f"http://127.0.0.1:{base + 200}"
    env = dict(os.environ, PATH=f"{shims}:{os.environ['PATH']}", GRIDTOKENX_NODE=url)
    work = tmp_path / "work"
    work.mkdir()
    devnet_args = [*blocks[0].split()[1:], "--base-port", str(base)]
    started = time.time()
    devnet = subprocess.Popen([sys.executable, "-m", "gridtokenx", *devnet_args], cwd=work,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)  # fmt: skip
    try:
        accounts = work / "devnet" / "accounts.json"
        while not accounts.exists():
            assert devnet.poll() is None, devnet.communicate()[0]
            assert time.time() - started < FIRST_TRADE_SECONDS, "the devnet was not funded"
            time.sleep(0.2)
        funded = time.time() - started
        run = subprocess.run(["bash", "-c", walkthrough_script(blocks[1:])], cwd=work, env=env,
                             capture_output=True, text=True, timeout=180)  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        ended = {int(m.group(1)): float(m.group(2))
                 for m in re.finditer(r"@@ block (\d+) done at (\S+)", run.stdout)}  # fmt: skip
        buy_block = next(i for i, b in enumerate(blocks[1:], 1) if "order place buy" in b)
        seconds = ended[buy_block] - started
        print(f"funded after {funded:.1f} s, first trade {seconds:.1f} s after the start")
        assert seconds <= FIRST_TRADE_SECONDS, f"the first trade took {seconds:.1f} s"
        bought = run.stdout.split(MARK.format(buy_block - 1))[1].split(MARK.format(buy_block))[0]
        assert "trade" in bought and "committed at height" in bought
        me = keystore.load_key(work / "keys" / "me.key", "", allow_insecure=True)
        seller = crypto.address_to_text(me.address)
        with Client(url) as api:
            trades = [t for t in api.trades() if t["seller"] == seller]
            assert len(trades) == 1 and trades[0]["quantity_wh"] == 1_000
            assert trades[0]["price"] == 400  # satang/kWh: the resting sell's price
            assert api.balance(me).thb_satang == 50_000  # issued by the custodian of block 4
    finally:
        if devnet.poll() is None:
            devnet.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            out, _ = devnet.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            devnet.kill()
            out, _ = devnet.communicate()
    assert devnet.returncode == 0, out
    assert "dev-1" in out and "devnet/keys/dev-1.key" in out
