"""The node's log lines: one set of fields printed as plain key=value text or as JSON
lines, the format and level checked before a node starts, and repetitive events (a flood of
refused connections) summarised into a bounded number of lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from gridtokenx.cli.main import app
from gridtokenx.devnet.homes import init_devnet
from gridtokenx.node import logs
from gridtokenx.node.home import read_config, read_status, write_config
from gridtokenx.node.service import PeerReports
from gridtokenx.p2p.connection import PeerSettings
from gridtokenx.p2p.gossip import Gossip
from gridtokenx.wire.crypto import PrivateKey
from tests.cli.test_errors import error_lines

PLAIN = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<level>[A-Z]+) +(?P<logger>[\w.]+): "
    r"(?P<rest>.*)"
)


def _emit(log_format: str, level: str = "info") -> str:
    out = io.StringIO()
    logs.configure(log_format, level, out)
    log = logging.getLogger("gridtokenx.node.consensus")
    log.info("committed", extra={"height": 7, "round": 1, "txs": 3, "hash": b"\xab\xcd",
                                 "moniker": "Malee Solar", "empty": ""})  # fmt: skip
    log.debug("not at info")
    try:
        raise ValueError("boom")
    except ValueError:
        log.error("halted", exc_info=True, extra={"height": 8})
    logging.getLogger("other.library").info("a library's info is below warning")
    return out.getvalue()


def test_plain_lines_carry_the_fields_as_key_value(restored_logging: None) -> None:
    text = _emit("plain")
    first, second, *trace = text.splitlines()
    line = PLAIN.fullmatch(first)
    assert line is not None, first
    assert (line["level"], line["logger"]) == ("INFO", "node.consensus")
    assert line["rest"] == (
        'committed height=7 round=1 txs=3 hash=abcd moniker="Malee Solar" empty=""'
    )
    halted = PLAIN.fullmatch(second)
    assert halted is not None and halted["rest"] == "halted height=8"
    assert trace[0].startswith("Traceback") and trace[-1] == "ValueError: boom"
    assert "not at info" not in text and "library" not in text


def test_json_lines_carry_the_same_fields(restored_logging: None) -> None:
    first, second = (json.loads(line) for line in _emit("json").splitlines())
    assert list(first) == ["ts", "level", "logger", "msg", "height", "round", "txs", "hash",
                           "moniker", "empty"]  # fmt: skip
    assert first["level"] == "info" and first["logger"] == "node.consensus"
    assert (first["msg"], first["height"], first["round"], first["txs"]) == ("committed", 7, 1, 3)
    assert first["hash"] == "abcd" and first["moniker"] == "Malee Solar"
    assert second["msg"] == "halted" and "ValueError: boom" in second["error"]


def test_debug_level_shows_debug_lines(restored_logging: None) -> None:
    assert "not at info" in _emit("plain", "debug")


@pytest.mark.parametrize(
    ("log_format", "level", "named"),
    [("xml", "info", "log_format 'xml'"), ("json", "loud", "log_level 'loud'")],
)
def test_an_unknown_format_or_level_is_refused(
    restored_logging: None, log_format: str, level: str, named: str
) -> None:
    before = list(logging.getLogger().handlers)
    with pytest.raises(ValueError, match=named):
        logs.configure(log_format, level)
    assert logging.getLogger().handlers == before  # nothing changed


def test_a_digest_logs_each_reason_at_most_once_per_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    digest = logs.Digest(logging.getLogger("gridtokenx.test"), "peers refused", ("reason",),
                         every_s=10)  # fmt: skip
    caplog.set_level(logging.INFO, "gridtokenx.test")
    counts = {("per_ip",): 0, ("max_peers",): 0}
    for second in range(60):  # a minute of 1,000 refusals a second for one reason
        counts["per_ip",] += 1000
        if second == 30:
            counts["max_peers",] += 1
        digest.update(counts, float(second))
    assert digest.update(counts, 1000.0) == 1  # what came after the last line, once
    assert digest.update(counts, 2000.0) == 0  # nothing new: nothing said
    lines = [(r.reason, r.count) for r in caplog.records]  # type: ignore[attr-defined]
    per_ip = [count for reason, count in lines if reason == "per_ip"]
    assert len(per_ip) == 7 and sum(per_ip) == 60_000
    assert [count for reason, count in lines if reason == "max_peers"] == [1]


def test_a_flood_of_refused_connections_makes_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """300 connections that never finish their handshake, at a real listener: every one is
    refused and counted, and the node's digest says so in one line per period."""
    caplog.set_level(logging.INFO, "gridtokenx")

    async def flood() -> tuple[int, int]:
        settings = PeerSettings(handshake_timeout_s=0.5, max_handshakes=4)
        gossip = Gossip(PrivateKey.from_dev_label("logs-test/node"), _nothing, settings=settings)
        port = await gossip.listen()
        reports = PeerReports(every_s=10)
        lines = 0
        try:
            for second in range(30):  # bounded: 30 rounds of 10 connections
                for _ in range(10):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                await asyncio.sleep(0.02)
                lines += reports.update(gossip, float(second))
            for _ in range(200):  # bounded: until the listener has seen every one go
                if gossip.gate.refused.total() >= 300:
                    break
                await asyncio.sleep(0.02)
            lines += reports.update(gossip, 100.0)
            return lines, gossip.gate.refused.total()
        finally:
            await gossip.close()

    lines, refused = asyncio.run(asyncio.wait_for(flood(), 60))
    assert refused >= 300
    records = [r for r in caplog.records if r.getMessage() == "peers refused"]
    assert len(records) == lines and 1 <= lines <= 2 * (1 + 30 // 10 + 1)  # two reasons at most
    assert sum(r.count for r in records) == refused  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.getMessage() == "peer connected"]


async def _nothing(kind: object, payload: bytes, peer: bytes) -> bool:
    return True


@pytest.mark.parametrize(
    ("flags", "config", "code", "status", "named"),
    [
        (["--log-format", "xml"], {}, "BAD_INPUT", 2, "--log-format 'xml'"),
        (["--log-level", "chatty"], {}, "BAD_INPUT", 2, "--log-level 'chatty'"),
        ([], {"log_level": "chatty"}, "INVALID_HOME", 1, "log_level 'chatty'"),
    ],
)
def test_node_start_refuses_an_unknown_log_format_or_level(
    tmp_path: Path, restored_logging: None, flags: list[str], config: dict[str, str],
    code: str, status: int, named: str,
) -> None:  # fmt: skip
    """Before it opens anything: the store stays unopened, no status is written."""
    (home,) = init_devnet(tmp_path, "gridtokenx-logs-test", 0, 20_000, validators=("EGAT",))
    write_config(home, msgspec.structs.replace(read_config(home), **config))
    result = CliRunner().invoke(app, ["node", "start", "--home", str(home), *flags])
    (message,) = error_lines(result, code, status)
    assert named in message
    assert read_status(home) is None and not (home / "data").exists()  # never opened


def test_why_transactions_were_refused_or_dropped_is_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A node said nothing about the transactions it turned away or gave up on. Now its
    mempool counts them by the ledger's code: one digest line per code per period, a debug
    line per transaction with its hash, and a Prometheus counter."""
    from prometheus_client import generate_latest

    from gridtokenx.chain.mempool import EVICTED, Mempool
    from gridtokenx.node.metrics import Metrics
    from gridtokenx.node.supervisor import Supervisor
    from gridtokenx.wire import tx

    caplog.set_level(logging.DEBUG, "gridtokenx")
    key, other = (PrivateKey.from_dev_label(f"logs-test/{n}") for n in ("sender", "other"))
    mempool = Mempool("logs-chain", max_txs=1)

    def signed(chain: str, nonce: int, fee: int = 10, by: PrivateKey = key) -> bytes:
        body = tx.Transfer(tx.Asset.THB, by.address, 1)
        return tx.Transaction(chain, nonce, by.public_key, fee, body).sign(by).encode()

    known = {key.address: 0, other.address: 0}
    try:
        results = mempool.add_batch(
            [signed("other-chain", 0), signed("logs-chain", 0),
             signed("logs-chain", 0, fee=99, by=other)],
            known.get, 0,
        )  # fmt: skip
        # The third (another sender's, paying more) evicts the second.
        assert [r.accepted for r in results] == [False, True, True]
        assert mempool.add(signed("logs-chain", 5), {}.get, 0).code == "UNKNOWN_SENDER"
        assert mempool.refused == {"WRONG_CHAIN_ID": 1, "UNKNOWN_SENDER": 1}
        assert mempool.dropped == {EVICTED: 1}

        reports = PeerReports(every_s=10)
        gossip = Gossip(PrivateKey.from_dev_label("logs-test/node"), _nothing)
        assert reports.update(gossip, 0.0, mempool) == 3
        assert reports.update(gossip, 5.0, mempool) == 0  # nothing new
        metrics = Metrics()
        metrics.watch(gossip, Supervisor(), mempool)
        exposition = generate_latest(metrics.registry).decode()
    finally:
        mempool.close()
    digest = {(r.getMessage(), getattr(r, "code", getattr(r, "reason", None))): r.count  # type: ignore[attr-defined]
              for r in caplog.records if r.getMessage().startswith("transactions ")}  # fmt: skip
    assert digest == {("transactions refused", "WRONG_CHAIN_ID"): 1,
                      ("transactions refused", "UNKNOWN_SENDER"): 1,
                      ("transactions dropped", EVICTED): 1}  # fmt: skip
    each = [r for r in caplog.records if r.getMessage() == "transaction refused"]
    assert len(each) == 2 and all(len(r.tx) == 64 for r in each)  # type: ignore[attr-defined]
    assert 'gridtokenx_mempool_refused_total{code="WRONG_CHAIN_ID"} 1.0' in exposition
    assert f'gridtokenx_mempool_dropped_total{{reason="{EVICTED}"}} 1.0' in exposition
