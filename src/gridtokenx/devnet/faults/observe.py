"""Watching the chain from outside, through every node's API: when each height was first
committed anywhere, and so when each transaction became final.

One task per node asks `GET /health` every `POLL_S` (with a short timeout, so a paused
node costs its own task only); the first node to report a height dates it. One more task
fetches each new block once (`GET /blocks/{height}`, from a node that has it) and dates
its transactions with the height's time. These times are the harness's own (monotonic,
from the run's start): a node's clock may be skewed on purpose, and block headers carry
whole seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import httpx

from gridtokenx.client import ApiError, AsyncClient

POLL_S: Final = 0.1


@dataclass
class Follower:
    apis: dict[str, AsyncClient]
    clock: Callable[[], float]
    heights: dict[str, int] = field(default_factory=dict)  # node -> last reported height
    first_seen: dict[int, float] = field(default_factory=dict)  # height -> run time
    final_at: dict[str, float] = field(default_factory=dict)  # tx hash -> run time
    fetched: int = 0  # every height up to this one has its transactions dated
    top: int = 0
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow until `stop` is set."""
        tasks = [asyncio.create_task(self._poll(name, stop)) for name in self.apis]
        tasks.append(asyncio.create_task(self._fetch(stop)))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _poll(self, name: str, stop: asyncio.Event) -> None:
        api = self.apis[name]
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError, ApiError, KeyError, ValueError):
                height = int((await api.health())["height"])
                self.heights[name] = height
                if height > self.top:
                    now = self.clock()
                    for h in range(self.top + 1, height + 1):
                        self.first_seen[h] = now
                    self.top = height
                    self._new.set()
            await asyncio.sleep(POLL_S)

    async def _fetch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            while self.fetched < self.top:
                h = self.fetched + 1
                if not await self._fetch_one(h):
                    break
                self.fetched = h
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), 1.0)  # also retries a failed fetch

    async def _fetch_one(self, height: int) -> bool:
        holders = [n for n, h in self.heights.items() if h >= height]
        for name in holders:
            with contextlib.suppress(httpx.HTTPError, ApiError, KeyError):
                block = await self.apis[name].block(height)
                at = self.first_seen[height]
                for tx_hash in block.get("txs", []):
                    self.final_at.setdefault(str(tx_hash), at)
                return True
        return False

    async def _until(self, holds: Callable[[], bool], timeout: float, poll: float) -> bool:
        deadline = self.clock() + timeout
        while self.clock() < deadline:
            if holds():
                return True
            await asyncio.sleep(poll)
        return holds()

    async def wait_final(self, hashes: list[str], timeout: float) -> bool:
        """Whether every one of `hashes` was seen in a block within `timeout` seconds."""
        return await self._until(lambda: all(h in self.final_at for h in hashes), timeout, 0.1)

    async def wait_reached(self, names: list[str], height: int, timeout: float) -> bool:
        """Whether every node in `names` reported at least `height` within `timeout`."""
        return await self._until(
            lambda: all(self.heights.get(n, -1) >= height for n in names), timeout, 0.1
        )

    async def wait_converged(self, names: list[str], timeout: float) -> bool:
        """Whether every node in `names` reported the same height, the highest seen."""
        return await self._until(
            lambda: {self.heights.get(n, -1) for n in names} == {self.top}, timeout, 0.2
        )
