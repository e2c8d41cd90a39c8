"""A devnet's node.log files hold the nodes' logs, and their /metrics answer over HTTP.

Two validators run as `gridtokenx node start` processes on 127.0.0.1: EGAT logs JSON lines
as its config.json says, MEA plain text because `--log-format plain` overrides its config.
A registration is committed through the API and a few blocks are read by height; then the
node.log files are parsed back, and EGAT's /metrics is read with prometheus_client's
parser. Both processes are stopped at the end, whatever happens."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import pytest

from gridtokenx.client import Client
from gridtokenx.devnet.homes import init_devnet
from gridtokenx.devnet.processes import Processes
from gridtokenx.ledger import genesis
from gridtokenx.node.home import read_config, read_status
from gridtokenx.wire import tx
from gridtokenx.wire.crypto import PrivateKey
from tests.conftest import free_base_port
from tests.devnet.test_devnet_processes import _wait
from tests.node.test_observability import Samples, parse_line, samples_of, value

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]
VALIDATORS = ("EGAT", "MEA")


def _start(home: Path, *flags: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "gridtokenx", "node", "start", "--home", str(home), *flags]
    with open(home / "node.log", "ab") as log:  # the child keeps its own copy of the fd
        return subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))  # fmt: skip


def _height(home: Path) -> int:
    status = read_status(home)
    return int(status["height"]) if status else 0  # type: ignore[call-overload]


def _scrape(port: int) -> Samples:
    url = f"http://127.0.0.1:{port}/metrics"
    return samples_of(urllib.request.urlopen(url, timeout=5).read().decode())


def test_node_logs_in_both_formats_and_metrics_over_http(tmp_path: Path) -> None:
    homes = init_devnet(tmp_path, "gridtokenx-logs-test", int(time.time()), free_base_port(),
                        block_ms=200, validators=VALIDATORS, log_format="json")  # fmt: skip
    egat, mea = homes
    nodes = Processes(homes)  # started here, each with its own flags; stopped by it
    nodes.procs = [_start(egat), _start(mea, "--log-format", "plain")]
    config = read_config(egat)
    try:
        assert _wait(lambda: min(_height(h) for h in homes) >= 3, 60), [
            (h / "node.log").read_text()[-500:] for h in homes
        ]
        with Client(f"http://127.0.0.1:{config.api_port}") as api:
            who = PrivateKey.from_dev_label("logs-test/household")
            body = tx.RegisterParticipant(who.address, "BKK", tx.ParticipantKind.HOUSEHOLD, "M")
            committed = api.send_and_wait(genesis.dev_keys()["MEA"], body)
            assert committed.height is not None
            for height in (1, 2):
                httpx.get(f"{api.base_url}/api/v1/blocks/{height}", timeout=5).raise_for_status()
            assert httpx.get(f"{api.base_url}/no/such/path", timeout=5).status_code == 404
        samples = _scrape(config.metrics_port)
    finally:
        nodes.stop(grace=20)
    _check_log(egat, "json", committed.height)
    _check_log(mea, "plain", committed.height)
    _check_metrics(samples)


def _check_log(home: Path, log_format: str, tx_height: int) -> None:
    lines = [parse_line(line, log_format) for line in (home / "node.log").read_text().splitlines()]
    started = [f for f in lines if f["msg"] == "node started"]
    assert len(started) == 1 and lines[0] is started[0], lines[:3]
    first = started[0]
    assert first["chain_id"] == "gridtokenx-logs-test" and first["role"] == "validator"
    assert first["moniker"] == home.name.upper() and str(first["node_id"]) == (
        genesis.dev_keys()[home.name.upper()].address.hex()
    )
    assert int(first["height"]) == 0  # type: ignore[call-overload]
    commits = {int(f["height"]): f for f in lines if f["msg"] == "committed"}  # type: ignore[call-overload]
    assert set(range(1, tx_height + 1)) <= set(commits)
    assert int(commits[tx_height]["txs"]) == 1 and int(commits[tx_height]["round"]) >= 0  # type: ignore[call-overload]
    directions = [f["direction"] for f in lines if f["msg"] == "peer connected"]
    assert directions and set(directions) <= {"inbound", "outbound"}
    assert lines[-1]["msg"] == "node stopped"


def _check_metrics(samples: Samples) -> None:
    assert value(samples, "gridtokenx_height") >= 3
    assert value(samples, "gridtokenx_txs_total") == 1
    assert value(samples, "gridtokenx_peers") == 1
    inbound = value(samples, "gridtokenx_peers_connected", direction="inbound")
    outbound = value(samples, "gridtokenx_peers_connected", direction="outbound")
    assert (inbound, outbound) in ((0, 1), (1, 0))  # the smaller address dials the other
    for code in VALIDATORS:
        assert value(samples, "gridtokenx_validator_signatures_present_total", moniker=code) >= 1
    blocks = value(samples, "gridtokenx_api_request_duration_seconds_count", method="GET",
                   route="/api/v1/blocks/{height}", status="200")  # fmt: skip
    assert blocks == 2  # two heights, one series
    unmatched = value(samples, "gridtokenx_api_request_duration_seconds_count", method="GET",
                      route="unmatched", status="404")  # fmt: skip
    assert unmatched == 1
    routes = {
        labels["route"] for labels, _ in samples["gridtokenx_api_request_duration_seconds_count"]
    }
    assert not any("/blocks/1" in route or "/blocks/2" in route for route in routes)
    # The process's collector: `node.collector.tune` ran a full collection before the
    # node's metrics were made, and each generation has its CPU series.
    assert value(samples, "gridtokenx_gc_collections_total", generation="2") >= 1
    for generation in "012":
        assert value(samples, "gridtokenx_gc_cpu_seconds_total", generation=generation) >= 0
