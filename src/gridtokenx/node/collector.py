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
has a finalizer), so this changes CPU and pauses, not results."""

from __future__ import annotations

import gc
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
