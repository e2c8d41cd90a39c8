"""CPU profile of a running node, for an operator who asks where its time goes.

With GRIDTOKENX_PROFILE set to a file path, `gridtokenx node start` profiles its event
loop's thread (cProfile, timed by that thread's own CPU clock, so time spent waiting for
peers, the disk or the loop's next event is not counted) from start to stop and writes
the statistics there when the node stops, for `python -m pstats` or snakeviz ("{pid}"
in the path becomes the process id: several nodes started with one environment, as
`bench/devnet_bench.py` starts them, write a file each). The mempool's verify threads and
RocksDB's own threads are outside it (their CPU shows per thread in /proc/PID/task).
Every call profiled reads the thread's CPU clock, a system call: a node under load runs
several times slower profiled (half its CPU then goes to the kernel), so read the shares,
not the absolute times, and never leave it on in production.
"""

from __future__ import annotations

import contextlib
import cProfile
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

PROFILE_ENV: Final = "GRIDTOKENX_PROFILE"
_log: Final = logging.getLogger(__name__)


@contextlib.contextmanager
def cpu_profile(environ: dict[str, str] | None = None) -> Iterator[cProfile.Profile | None]:
    """Profile the calling thread's CPU while the block runs when PROFILE_ENV names a
    file (its folder must exist), and write the statistics there as the block ends; do
    nothing otherwise."""
    target = (os.environ if environ is None else environ).get(PROFILE_ENV, "")
    if not target:
        yield None
        return
    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    try:
        yield profile
    finally:
        profile.disable()
        path = Path(target.replace("{pid}", str(os.getpid())))
        profile.dump_stats(path)
        _log.info("CPU profile written", extra={"path": str(path)})
