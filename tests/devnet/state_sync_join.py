"""One check, run on loopback (test_state_sync_devnet.py) and on network hosts
(test_netns.py): two validators take a snapshot every INTERVAL heights; a new full node
started with `state_sync` joins from one, never holding a block below it, and follows the
chain. Stopped, its store holds the validators' block at its head and the state after it:
the root the validators' next header carries (heights are pipelined), or the validator's
own when it stopped at the same height."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from gridtokenx.chain import blocks
from gridtokenx.devnet.netns.nodes import Nodes
from gridtokenx.node.home import read_config, read_status, write_config
from gridtokenx.storage.store import Store

INTERVAL = 15
VALIDATORS = ("EGAT", "MEA")


def _configure(home: Path, **changes: object) -> None:
    write_config(home, msgspec.structs.replace(read_config(home), **changes))


def _height(home: Path) -> int:
    status = read_status(home) or {}
    return int(status.get("height", 0))  # type: ignore[call-overload]


async def _until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # bounded
        if check():
            return True
        await asyncio.sleep(0.3)
    return check()


def _snapshots(home: Path) -> list[int]:
    directory = home / "snapshots"
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if (p / "offer").is_file())


async def join_by_state_sync(nodes: Nodes) -> tuple[int, int]:
    """Run the check (see the module docstring); returns (the snapshot height the joiner
    started from, the height it reached)."""
    nodes.block_ms = 250
    nodes.create(VALIDATORS, 0)
    homes = [nodes.nodes[n].home for n in nodes.validators]
    for home in homes:
        _configure(home, snapshot_interval=INTERVAL)
    nodes.start()
    joiner = None
    try:
        snapshotted = await _until(lambda: all(_snapshots(h) for h in homes), 120)
        assert snapshotted, [nodes.nodes[n].log_tail() for n in nodes.validators]
        joiner = nodes.add_full_node("joiner")
        _configure(joiner.home, state_sync=True)
        joiner.start()
        target = max(_height(h) for h in homes) + 10
        assert await _until(lambda: _height(joiner.home) >= target, 120), joiner.log_tail()
        status = read_status(joiner.home) or {}
        started = int(status["pruned_below"])  # type: ignore[call-overload]
        assert started >= INTERVAL and started % INTERVAL == 0, status
    finally:
        await asyncio.gather(*(node.stop() for node in nodes.nodes.values()))
    with Store(joiner.home / "data") as synced, Store(homes[0] / "data") as validator:
        head = synced.height()
        assert synced.block(started - 1) is None and synced.block(started) is not None
        ours, theirs = synced.block(head), validator.block(head)
        assert ours is not None and ours == theirs
        following = validator.block(head + 1)
        if following is None:
            assert validator.height() == head
            expected = validator.load_state().root()
        else:
            expected = blocks.decode(following[0]).header.state_root
        assert synced.load_state().root() == expected
    return started, head
