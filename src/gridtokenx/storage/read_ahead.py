"""Reads of one column family started on the store's reader threads before they are
needed, kept for the read that needs them, and never older than the store.

A block's reads are known before it needs them: its state root's buckets from the keys it
writes, its records from its transactions (each one's sender). Under a memory limit
smaller than the store most of them wait for the disk, one after another when a single
thread makes them; started early on reader threads they wait side by side and beside the
execution (rocksdict lets go of the interpreter lock inside a multi-get).

A read started before the family is written may return what the write replaced, so every
write to the family (`written`) drops what was read or is being read before it; and a read
not done when it is needed is not waited for (the caller reads again: it finds the pages
in memory, or waits for the same disk read, where waiting for a reader thread to be
scheduled on a loaded machine took longer).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

from rocksdict import Rdict

MISSING: Final = object()
"""`take`'s answer for a key not read ahead (None is a key read ahead and not there)."""


class ReadAhead:
    def __init__(self) -> None:
        self._reads: list[tuple[int, list[bytes], Future[Any]]] = []
        self._found: dict[bytes, bytes | None] = {}
        self._epoch = 0  # writes to the family so far

    def start(self, pool: ThreadPoolExecutor, family: Rdict, keys: list[bytes]) -> None:
        """Read `keys` on one of `pool`'s threads."""
        asked: list[str | int | float | bytes | bool] = list(keys)
        self._reads.append((self._epoch, keys, pool.submit(family.get, asked)))

    def _collect(self) -> None:
        """Move what the finished reads found into `_found`; keep the others waiting."""
        waiting = []
        for epoch, keys, read in self._reads:
            if not read.done():
                waiting.append((epoch, keys, read))
            elif epoch == self._epoch and read.exception() is None:
                self._found.update(zip(keys, read.result(), strict=True))
        self._reads = waiting

    def take(self, key: bytes) -> object:
        """The value read ahead for `key` (None: not in the store), or `MISSING`."""
        found = self._found.pop(key, MISSING)
        if found is MISSING and self._reads:
            self._collect()
            found = self._found.pop(key, MISSING)
        return found

    def take_all(self) -> dict[bytes, bytes | None]:
        """Everything read ahead and done; reads not done are forgotten."""
        self._collect()
        found, self._found, self._reads = self._found, {}, []
        return found

    def written(self) -> None:
        """The family was written: nothing read before may be used."""
        self._epoch += 1
        self._reads.clear()
        self._found.clear()

    def futures(self) -> list[Future[Any]]:
        """The reads under way (for tests that wait for them)."""
        return [read for _, _, read in self._reads]
