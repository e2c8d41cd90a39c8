"""`gridtokenx --help` and every command's help stay quick: they load no server, storage
or HTTP modules (FastAPI, uvicorn, RocksDB, httpx), which the commands import only when
they run. Checked by what a real process has imported, not by timing it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gridtokenx.cli.names import short

HEAVY = ("fastapi", "uvicorn", "rocksdict", "starlette", "httpx", "websockets",
         "gridtokenx.api", "gridtokenx.simulator", "gridtokenx.devnet", "gridtokenx.node.home",
         "gridtokenx.node.service", "gridtokenx.storage")  # fmt: skip
PROBE = """
import json, sys
from gridtokenx.cli.main import app
try:
    app(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {h.split(".")[0] for h in HEAVY}
               and any(m == h or m.startswith(h + ".") for h in HEAVY))
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["query", "--help"],
        ["query", "trades", "--help"],
        ["tx", "--help"],
        ["tx", "order", "place", "--help"],
        ["devnet", "--help"],
        ["node", "start", "--help"],
        ["demo", "--help"],
    ],
)
def test_help_imports_no_server_or_storage_module(args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(out.stderr.strip().splitlines()[-1])
    assert report["code"] == 0 and "Usage" in out.stdout, out.stderr
    assert report["heavy"] == [], f"`gridtokenx {' '.join(args)}` imported {report['heavy']}"


def test_a_shortened_address_keeps_both_ends() -> None:
    address = "gtxhwv5tab5ontns7wds3wn5kqydcupmp23ircfcyky"
    assert short(address) == "gtxhwv5t…cfcyky"
    assert short("gtxabc") == "gtxabc"
