"""A full node joins a running devnet (node processes on 127.0.0.1) by state sync and
follows the chain: `state_sync_join`. The namespace version is in test_netns.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gridtokenx.devnet.netns.nodes import Nodes, on_loopback
from gridtokenx.devnet.processes import free_base_port
from tests.devnet.state_sync_join import INTERVAL, join_by_state_sync

pytestmark = pytest.mark.process


def test_a_full_node_joins_a_running_devnet_by_state_sync(tmp_path: Path) -> None:
    nodes = Nodes(tmp_path, on_loopback(free_base_port(3)))
    started, head = asyncio.run(join_by_state_sync(nodes))
    assert started >= INTERVAL and head > started
