"""`python -m gridtokenx.devnet.faults.launch OFFSET_FILE HOME`: run the node of HOME as
`gridtokenx node start` does, with its wall clock offset by the milliseconds written in
OFFSET_FILE, and with a full traceback on stderr (its `node.log`) if it dies of an
unexpected exception.

A host whose clock is off is off for every reader of the wall clock in the process, so the
launcher replaces `time.time` and `time.time_ns` before the node is imported: the
node's chain clock (`node.home.chain_clock`, which returns `time.time` at speed 1), its
block times and its proposals' checks all see the skewed time, while `time.monotonic`
(asyncio's timers, the consensus timeouts) is untouched, as a stepped wall clock leaves
the monotonic one. A thread re-reads the file a few times a second, so the harness can step
a running node's clock (`clock` faults) without restarting it. `datetime.now` reads the
clock by itself and is not skewed; the node does not use it for consensus.

The node runs exactly as `node start` runs it (`node.service.run_node` with the API as its
service, on uvloop, with the home's insecure dev key), but not through the command line,
whose error contract prints one line and never a traceback: a crash the harness provokes
is worth its traceback to whoever fixes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Final

POLL_S: Final = 0.1


class SkewedClock:
    """The real wall clock plus an offset in milliseconds read from a file."""

    def __init__(self, path: Path, real: Callable[[], float] = time.time) -> None:
        self.path, self.real = path, real
        self.offset_s = 0.0
        self.refresh()

    def refresh(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            text = self.path.read_text().strip()
            self.offset_s = int(text or "0") / 1000

    def time(self) -> float:
        return self.real() + self.offset_s

    def time_ns(self) -> int:
        return int(self.time() * 1e9)

    def follow(self, stop: threading.Event) -> None:
        while not stop.wait(POLL_S):
            self.refresh()


def install(clock: SkewedClock) -> threading.Event:
    """Make `time.time` and `time.time_ns` the skewed clock; a daemon thread follows the
    file until the returned event is set."""
    setattr(time, "time", clock.time)  # noqa: B010 - replacing the module's function
    setattr(time, "time_ns", clock.time_ns)  # noqa: B010
    stop = threading.Event()
    threading.Thread(target=clock.follow, args=(stop,), daemon=True, name="clock").start()
    return stop


def run(home: Path) -> None:
    """`node start`'s loop and services, imported only now (after the clock is skewed)."""
    import uvloop

    from gridtokenx.api.server import start_api
    from gridtokenx.node import logs
    from gridtokenx.node.home import read_config
    from gridtokenx.node.service import run_node

    config = read_config(home)  # the node's log lines, on stderr: the harness keeps it
    logs.configure(config.log_format, config.log_level, sys.stderr)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run_node(home, passphrase="", services=(start_api,)))


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit("usage: python -m gridtokenx.devnet.faults.launch OFFSET_FILE HOME")
    install(SkewedClock(Path(argv[0])))
    try:
        run(Path(argv[1]))
    except KeyboardInterrupt:
        pass
    except Exception:
        traceback.print_exc()  # the whole story, for the node's log
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
