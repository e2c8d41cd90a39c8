"""The node's supervisor: a failing task is restarted with one log line, one that keeps
failing stops the node, and a node whose consensus step fails stops for good (run_node
raises NodeFailed) rather than running half-alive."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import msgspec
import pytest

from gridtokenx.devnet.homes import init_devnet
from gridtokenx.node.home import read_config, write_config
from gridtokenx.node.runtime import Node
from gridtokenx.node.service import NodeFailed, run_node
from gridtokenx.node.supervisor import Supervisor
from tests.conftest import free_base_port


def test_a_failing_task_is_restarted_with_one_line_per_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise ConnectionResetError(f"failure {len(runs)}")

    async def scenario() -> Supervisor:
        supervisor = Supervisor(restarts=3)
        await asyncio.wait_for(supervisor.keep("flaky", flaky), 5)
        return supervisor

    with caplog.at_level(logging.INFO, logger="gridtokenx.node.supervisor"):
        supervisor = asyncio.run(scenario())
    assert runs == [0, 1, 2] and supervisor.restarted["flaky"] == 2
    assert supervisor.failed is None
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "flaky failed with ConnectionResetError: failure 1; restarting it",
        "flaky failed with ConnectionResetError: failure 2; restarting it",
    ]
    assert not any(r.exc_info for r in caplog.records)  # one line, no traceback


def test_a_task_that_keeps_failing_stops_the_node() -> None:
    told: list[str] = []

    async def broken() -> None:
        raise RuntimeError("always")

    async def scenario() -> Supervisor:
        supervisor = Supervisor(restarts=2, within_s=60)
        supervisor.on_failure.append(told.append)
        await asyncio.wait_for(supervisor.keep("broken", broken), 5)
        supervisor.watch("once", broken())
        await asyncio.sleep(0.05)
        await supervisor.stop()
        return supervisor

    supervisor = asyncio.run(scenario())
    assert supervisor.failed == "broken failed 3 times in 60 s, last with RuntimeError: always"
    assert told == [supervisor.failed]  # the first reason only


def test_a_node_whose_consensus_step_fails_stops_with_node_failed(tmp_path: Path) -> None:
    """A validator alone on its devnet commits on its own. When its WAL can no longer be
    written, consensus cannot go on safely: run_node shuts the node down and raises."""
    (home,) = init_devnet(
        tmp_path, "gridtokenx-supervisor-test", int(time.time()), free_base_port(1),
        block_ms=100, validators=("EGAT",),
    )  # fmt: skip
    config = msgspec.structs.replace(read_config(home), metrics_port=0, api_port=0)
    write_config(home, config)
    failed_at: list[int] = []

    def sabotage(node: Node) -> None:
        save = node.app.store.save_wal

        def failing(state: object) -> None:
            if node.app.height >= 3:
                failed_at.append(node.app.height)
                raise OSError("disk full")
            save(state)  # type: ignore[arg-type]

        node.app.store.save_wal = failing  # type: ignore[method-assign]

    async def scenario() -> None:
        await run_node(home, passphrase="", on_node=sabotage, max_seconds=30)

    started = time.monotonic()
    with pytest.raises(NodeFailed, match="disk full"):
        asyncio.run(asyncio.wait_for(scenario(), 60))
    assert time.monotonic() - started < 25  # it stopped, rather than running on to the end
    assert failed_at == [3]  # the first failure stopped it: no step after it was tried
