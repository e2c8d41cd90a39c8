"""The node's long-running tasks, watched: none may die silently or leave the node half-alive.

A task that keeps the node useful (the regossip loop, the transaction ingest) is restarted
when it fails, with one log line naming it and the error; one that fails more than
`restarts` times within `within_s` seconds is not a passing fault, and the node stops. A
task whose failure cannot be repaired by running it again (a proposer that could not build
its block, a consensus step that could not be written ahead) stops the node at once.
Stopping means `failed` holds the reason and the `on_failure` callbacks run: `run_node`
then shuts the node down and exits with status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from typing import Any, Final

_log: Final = logging.getLogger(__name__)

Work = Coroutine[Any, Any, None]


class Supervisor:
    def __init__(self, restarts: int = 5, within_s: float = 60.0) -> None:
        self.restarts = restarts
        self.within_s = within_s
        self.failed: str | None = None
        self.restarted: Counter[str] = Counter()  # by task name, for the metrics
        self.on_failure: list[Callable[[str], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def _track(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def keep(self, name: str, factory: Callable[[], Work]) -> asyncio.Task[None]:
        """Run `factory()` as a task, again after each failure (up to the limit)."""
        return self._track(asyncio.create_task(self._keep(name, factory), name=name))

    async def _keep(self, name: str, factory: Callable[[], Work]) -> None:
        loop = asyncio.get_running_loop()
        failures: deque[float] = deque()
        while self.failed is None:
            try:
                await factory()
                return
            except Exception as exc:
                now = loop.time()
                failures.append(now)
                while failures and now - failures[0] > self.within_s:
                    failures.popleft()
                if len(failures) > self.restarts:
                    self.fail(f"{name} failed {len(failures)} times in {self.within_s:g} s, "
                              f"last with {type(exc).__name__}: {exc}")  # fmt: skip
                    return
                _log.error("%s failed with %s: %s; restarting it", name, type(exc).__name__, exc)
                _log.debug("the failure in full", exc_info=True)
                self.restarted[name] += 1
                await asyncio.sleep(min(1.0, 0.05 * 2 ** len(failures)))

    def watch(self, name: str, work: Work) -> asyncio.Task[None]:
        """Run `work` once; if it fails, the node stops."""
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(lambda done: self._ended(name, done))
        return self._track(task)

    def _ended(self, name: str, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, Exception):
            self.fail(f"{name} failed with {type(exc).__name__}: {exc}")

    def fail(self, reason: str) -> None:
        """Stop the node for `reason` (the first reason is kept)."""
        if self.failed is not None:
            return
        self.failed = reason
        _log.error("stopping the node: %s", reason)
        _log.debug("where it was noticed", exc_info=True)
        for callback in self.on_failure:
            callback(reason)

    async def stop(self) -> None:
        """Cancel every task and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):  # reported already
                await task
