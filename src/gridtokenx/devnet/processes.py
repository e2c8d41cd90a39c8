"""A local devnet's nodes as `gridtokenx node start` processes, and free ports for them."""

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Final

from gridtokenx.node.home import without_overrides

PORT_OFFSETS: Final = (0, 100, 200)  # node, Prometheus metrics, API: base + offset + i


def free_base_port(count: int, low: int = 20_000, high: int = 32_000) -> int:
    """A base port in [low, high) whose node, metrics and API ports for `count` nodes are
    all free on 127.0.0.1 now. The range stays below Linux's ephemeral ports (from 32768),
    so outgoing connections do not take them; test workers pass disjoint ranges."""
    rng = random.Random()
    span = max(PORT_OFFSETS) + count
    taken = set().union(*_HANDED_OUT)
    for _ in range(200):  # bounded
        base = rng.randrange(low, high - span)
        ports = {base + offset + i for offset in PORT_OFFSETS for i in range(count)}
        if not ports & taken and all(_bindable(port) for port in ports):
            _HANDED_OUT.append(frozenset(ports))
            return base
    raise RuntimeError(f"no free ports in {low}-{high} on 127.0.0.1")


# The ports of the last few bases handed out: free when probed, but a caller starts its
# nodes later, so two calls before either binds (two devnets started side by side) must not
# get overlapping ports from the probe alone.
_HANDED_OUT: Final[collections.deque[frozenset[int]]] = collections.deque(maxlen=16)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Processes:
    """Nodes of local homes as `gridtokenx node start` processes (their logs, on stdout,
    and anything on stderr appended to `node.log` in each home); `stop` ends every one of
    them, first with SIGTERM (a clean shutdown that closes the store) and then, after
    `grace` seconds, with SIGKILL."""

    def __init__(self, homes: Sequence[Path]) -> None:
        self.homes = list(homes)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> Processes:
        env = dict(without_overrides(os.environ), PYTHONUNBUFFERED="1")  # the homes decide
        for home in self.homes:
            with open(home / "node.log", "ab") as log:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "gridtokenx", "node", "start", "--home", str(home)],
                        stdout=log,
                        stderr=log,
                        stdin=subprocess.DEVNULL,
                        env=env,
                    )
                )
        return self

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def stop(self, grace: float = 10.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def __enter__(self) -> Processes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises KeyboardInterrupt as Ctrl-C does. Python's
    default SIGTERM ends the process at once, skipping every `finally`, so a `kill` (from a
    script, systemd or a container runtime) of `gridtokenx devnet` or `demo` left its nodes
    running without it, holding their ports and stores. Only the main thread can take
    signals; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
