"""The cyclic garbage collector of a node's process, set for a long-running server.

CPython's defaults suit short scripts: a young collection every 700 net allocations of
container objects, an older one every 10 of those, and a full one, which walks every
tracked object of the process, every 10 older ones (once enough survivors piled up). A
validator allocates hundreds of such objects per transaction (decoded transactions,
records, events, receipts), almost all freed by reference counting, never by the
collector, so most of a collection's walk finds nothing to free: on the crossing orders
of `bench/hotpath_bench.py` (a proposer and a validator in one process) it collected 500
times and took 41-47 us of CPU per order, against 12-18 us with these settings
(docs/adr/0007). Collected less often, most of those objects are gone before a
collection sees them. What startup built (modules, classes, the API's schemas) lives as
long as the process: `gc.freeze` takes it out of every later walk.

The ledger's state and bytes never depend on when the collector runs (nothing in them
has a finalizer), so this changes CPU and pauses, not results.

Set so, a validator at 3,000 crossing orders/s makes 13-20 young collections per
60,000 orders (20 seconds), none older or full, and they find next to nothing since a side
book no longer held a cycle through itself (6 December): what they cost then is the walk
of what is alive, 15-19 ms each, 3.6-5 us per order. Four times the threshold made a
seventh of the collections, each four times as long (57-77 ms pauses), for about 1.7 us
per order less, unseen in the validator's CPU per order (158-178 us either way): left as
it is (docs/adr/0007). Since the decoded transactions, the market's records and the
events are untracked (`gc=False`: frozen values that cannot form a cycle), the same run
makes 6-7 young collections and they cost 1.4-1.8 us per order. `watch` times the
collections for the node's metrics (`gridtokenx_gc_*`, docs/observability.md)."""

from __future__ import annotations

import gc
import time
from typing import Final

THRESHOLDS: Final = (50_000, 20, 10)
"""Young collections every 50,000 net allocations (CPython: 700), older ones every 20 of
those (10); full ones as CPython decides (every 10 older ones, and only once the objects
waiting for one are a quarter of those already old)."""


def tune() -> None:
    """Once the node's code is loaded: what exists now is frozen out of the collector's
    walks, and collections come less often (`THRESHOLDS`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


class _Clock:
    """The collector's CPU seconds by generation, timed by `gc.callbacks` around each
    collection (the thread that triggers one runs it whole, holding the GIL, so a
    collection's start and stop are seen by the same thread, one collection at a time)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.seconds[info["generation"]] += time.thread_time() - self._started


_CLOCK: Final = _Clock()


def watch() -> None:
    """Time the collector from now on, once per process however often it is called (each
    node of a process calls it with its metrics). It runs per collection, not per object
    or transaction: a few hundred collections a minute at saturation."""
    if _CLOCK not in gc.callbacks:
        gc.callbacks.append(_CLOCK)


def seconds() -> tuple[float, float, float]:
    """CPU seconds the collector took per generation since `watch`."""
    young, older, full = _CLOCK.seconds
    return young, older, full
