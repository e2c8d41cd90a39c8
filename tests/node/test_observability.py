"""What an operator sees of running nodes: four validators in one process (NEPO's share of
the power offline) commit transactions, then a full node joins late and catches up. Their
log lines (plain and JSON) are parsed back, and a scrape of a node's registry is read with
prometheus_client's own text parser."""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gridtokenx.ledger import genesis
from gridtokenx.node import logs
from gridtokenx.node.runtime import Node
from gridtokenx.node.telemetry import BEHIND
from gridtokenx.storage.store import open_application
from gridtokenx.wire import crypto
from gridtokenx.wire.crypto import PrivateKey
from tests.node.test_logs import PLAIN
from tests.node.test_node import CHAIN, GENESIS_TIME, KEYS, RUNNING, _network, _registrations

FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse_line(line: str, log_format: str) -> dict[str, object]:
    """A log line back into its fields, whichever format wrote it."""
    if log_format == "json":
        parsed: dict[str, object] = json.loads(line)
        return parsed
    head = PLAIN.fullmatch(line)
    assert head is not None, line
    msg, _, rest = head["rest"].partition(" ")
    while "=" not in rest.split(" ")[0] and rest:  # a message of several words
        word, _, rest = rest.partition(" ")
        msg += " " + word
    found: dict[str, object] = {"level": head["level"].lower(), "logger": head["logger"]}
    found["msg"] = msg
    for key, value in FIELD.findall(rest):
        found[key] = json.loads(value) if value.startswith('"') or value.isdigit() else value
    return found


def scrape(node: Node) -> Samples:
    """Every sample of the node's registry, by sample name, as Prometheus would read it."""
    return samples_of(generate_latest(node.metrics.registry).decode())


def samples_of(text: str) -> Samples:
    """The samples of a /metrics page, read with prometheus_client's own parser."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    matching = [v for got, v in samples.get(name, []) if labels.items() <= got.items()]
    assert len(matching) == 1, (name, labels, samples.get(name))
    return matching[0]


async def _until(check: object, seconds: float) -> bool:
    for _ in range(int(seconds / 0.05)):  # bounded
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return False


async def _follower(tmp_path: Path, validators: list[Node]) -> Node:
    """A full node (no voting power) that joins the running validators late."""
    spec = genesis.devnet(CHAIN, GENESIS_TIME, KEYS)
    key = PrivateKey.from_dev_label("observability-test/full-node")
    node = Node(key, open_application(spec, tmp_path / "full"), validators[0].core.timeouts,
                clock=lambda: GENESIS_TIME + 10)  # fmt: skip
    await node.gossip.listen()
    await node.start()
    for v in validators:
        port = v.gossip._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        await node.gossip.dial("127.0.0.1", port, expect=v.key.address)
    return node


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_logs_and_metrics_of_a_network_with_a_late_full_node(
    tmp_path: Path, log_format: str, restored_logging: None
) -> None:
    out = io.StringIO()
    logs.configure(log_format, "info", out)

    async def scenario() -> tuple[list[Samples], int]:
        nodes = await _network(tmp_path)
        follower = None
        try:
            for node in nodes:
                await node.start()
            for raw in _registrations(5):
                await nodes[1].submit(raw)
            assert await _until(lambda: all(n.app.height >= 8 for n in nodes)
                                and len(nodes[0].app.mempool) == 0, 40)  # fmt: skip
            joined = min(n.app.height for n in nodes)  # the least the follower must reach
            follower = await _follower(tmp_path, nodes)
            target = max(n.app.height for n in nodes)
            # Caught up: past the height it joined at, and within a height of its peers
            # (on a busy machine it may fall behind again for a moment: it says so).
            assert await _until(lambda: follower.app.height >= target + 1
                                and not follower.telemetry.catching_up, 40)  # fmt: skip
            await asyncio.sleep(0.3)  # a moment for late precommits and the sync's last line
            return [scrape(n) for n in (*nodes, follower)], joined
        finally:
            for node in [*nodes, *([follower] if follower else [])]:
                await node.stop()

    scrapes, joined = asyncio.run(asyncio.wait_for(scenario(), 90))
    lines = [parse_line(line, log_format) for line in out.getvalue().splitlines()]
    _check_logs(lines, joined)
    _check_validator_metrics(scrapes[0], scrapes[3])
    _check_follower_metrics(scrapes[4])


def _check_logs(lines: list[dict[str, object]], joined: int) -> None:
    """`joined`: the least height of the validators when the follower joined."""
    commits = [f for f in lines if f["msg"] == "committed"]
    assert commits and all(f["level"] == "info" for f in commits)
    assert {int(f["height"]) for f in commits} >= set(range(1, 9))  # type: ignore[call-overload]
    assert all(int(f["round"]) >= 0 and int(f["bytes"]) > 0 for f in commits)  # type: ignore[call-overload]
    # Each validator logs each height once: the five registrations appear four times.
    assert sum(int(f["txs"]) for f in commits if int(f["height"]) <= 8) == 4 * 5  # type: ignore[call-overload]
    # The proposer's line tells what its pool held, what a block could run and the bound.
    built = [f for f in commits if "build_s" in f and int(f["txs"]) > 0]  # type: ignore[call-overload]
    assert built, "no proposer's line of a block with transactions"
    for f in built:
        txs, ready, held, limit = (int(float(f[k])) for k in ("txs", "ready", "held", "limit"))  # type: ignore[arg-type]
        assert txs <= min(ready, limit) and ready <= held, f
    connected = [f for f in lines if f["msg"] == "peer connected"]
    assert {f["direction"] for f in connected} == {"inbound", "outbound"}
    # The follower's; under load a validator may fall two heights behind and say so too.
    catching = [f for f in lines if f["msg"] == "catching up" and f["height"] == 0]
    assert len(catching) == 1 and int(catching[0]["target"]) >= 8  # type: ignore[call-overload]
    # Caught up: the last height it committed is less than telemetry.BEHIND short of the
    # height a peer showed (`_follow`: best - (height + 1) < BEHIND), and the peers it
    # heard were at `joined` or past it. Not against the validators' height afterwards:
    # they keep committing (empty heights) while the follower syncs, and in clean-clone
    # runs it said "caught up" at 7 while they went on to 10, with `joined` 9 (December
    # 2026).
    caught = [f for f in lines if f["msg"] == "caught up" and int(f["blocks"]) >= 6]  # type: ignore[call-overload]
    assert len(caught) == 1 and int(caught[0]["height"]) >= joined - BEHIND  # type: ignore[call-overload]


def _check_validator_metrics(egat: Samples, erc: Samples) -> None:
    assert value(egat, "gridtokenx_height") >= 8
    assert value(egat, "gridtokenx_txs_total") == 5
    assert value(egat, "gridtokenx_block_size_bytes") > 0
    assert value(egat, "gridtokenx_block_interval_seconds_count") >= 7
    # Rounds are timed when this node decides them itself, not when a peer's commit came
    # first (the busier the machine, the more often).
    assert value(egat, "gridtokenx_round_duration_seconds_count") >= 1
    # _network: each node dials the later ones; EGAT is first and ERC last.
    assert value(egat, "gridtokenx_peers_connected", direction="outbound") == 3
    assert value(erc, "gridtokenx_peers_connected", direction="inbound") == 3 + 1  # follower
    assert value(erc, "gridtokenx_peers_connected", direction="outbound") == 0
    assert value(egat, "gridtokenx_validators") == 5
    assert value(egat, "gridtokenx_validators_power") == 39_000
    assert value(egat, "gridtokenx_validator_power", moniker="NEPO") == 6_000
    settled = value(egat, "gridtokenx_validator_signatures_missed_total", moniker="NEPO")
    assert settled >= 7  # offline: missed every height settled so far
    for code in RUNNING:
        present = value(egat, "gridtokenx_validator_signatures_present_total", moniker=code)
        missed = [v for labels, v in egat["gridtokenx_validator_signatures_missed_total"]
                  if labels["moniker"] == code]  # fmt: skip
        assert present >= 1 and present + sum(missed) == settled
        address = crypto.address_to_text(KEYS[code].address)
        assert value(egat, "gridtokenx_validator_power", validator=address) > 0
    assert (
        value(egat, "gridtokenx_mempool_txs") == 0 and value(egat, "gridtokenx_mempool_bytes") == 0
    )
    assert value(egat, "gridtokenx_p2p_sent_bytes_total", lane="consensus") > 0
    assert value(egat, "gridtokenx_p2p_received_bytes_total", lane="consensus") > 0
    assert value(egat, "gridtokenx_p2p_received_bytes_total", lane="tx") > 0  # the relay
    assert value(egat, "gridtokenx_sync_catching_up") == 0


def _check_follower_metrics(follower: Samples) -> None:
    assert value(follower, "gridtokenx_sync_blocks_total") >= 2
    assert value(follower, "gridtokenx_sync_catching_up") == 0
    assert value(follower, "gridtokenx_sync_target_height") >= 8
    assert value(follower, "gridtokenx_txs_total") == 5
    assert value(follower, "gridtokenx_peers_connected", direction="outbound") == 4
