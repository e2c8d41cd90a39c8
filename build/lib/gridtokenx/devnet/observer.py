"""A non-validating node of a local devnet inside this process, reading the chain."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from gridtokenx.api.server import start_api
from gridtokenx.chain.blocks import Receipt
from gridtokenx.ledger.context import Event
from gridtokenx.node.runtime import Node
from gridtokenx.node.service import run_node

T = TypeVar("T")


class Observer:
    """A non-validating full node of a local devnet inside this process, on its own event
    loop in a background thread, with its own store under `home`. It follows the chain from
    the validators and keeps every committed event (transaction receipts' events, then the
    block's end-of-block events, in commit order), so a program can read the chain's own
    state and events rather than trusting what it submitted. `call` runs a function on the
    node's loop, between commits, so it reads one committed state."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.events: list[Event] = []
        self.height = 0
        self._node: Node | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="observer", daemon=True)
        self.error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> Observer:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the observer node did not start")
        if self.error is not None:
            raise RuntimeError(f"the observer node failed: {self.error}") from self.error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the caller
            self.error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await run_node(
            self.home, passphrase="", stop=self._stop, on_node=self._attach, services=(start_api,)
        )

    def _attach(self, node: Node) -> None:
        self._node = node
        self.height = node.app.height
        node.add_commit_listener(self._on_commit)
        self._ready.set()

    def _on_commit(
        self, height: int, block: bytes, receipts: list[Receipt], end_events: list[Event]
    ) -> None:
        for receipt in receipts:
            self.events += receipt.events
        self.events += end_events
        self.height = height

    def call(self, fn: Callable[[Node], T], timeout: float = 30.0) -> T:
        """`fn(node)` on the node's loop; its result (or exception) here."""
        node, loop = self._node, self._loop
        if node is None or loop is None or not self._thread.is_alive():
            raise RuntimeError("the observer node is not running")
        result: Future[T] = Future()

        def run() -> None:
            try:
                result.set_result(fn(node))
            except BaseException as exc:  # handed to the caller
                result.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return result.result(timeout)

    def wait_height(self, height: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.height < height and self._thread.is_alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return self.height >= height

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(stop.set)
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Observer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
