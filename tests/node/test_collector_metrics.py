"""The garbage collector's series on a node's /metrics: collections, objects found in
reference cycles and CPU seconds by generation, so that an operator sees what the
collector costs (docs/observability.md)."""

from __future__ import annotations

import gc

from gridtokenx.node import collector
from gridtokenx.node.metrics import Metrics


def _full(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(f"gridtokenx_gc_{name}_total", {"generation": "2"})
    assert value is not None
    return value


def test_a_full_collection_is_counted_with_what_it_found_and_its_cpu() -> None:
    metrics = Metrics()
    before = {name: _full(metrics, name) for name in ("collections", "collected_objects")}
    cpu_before = _full(metrics, "cpu_seconds")
    for _ in range(100):  # cycles: only the collector frees them
        a: list[object] = []
        a.append(a)
    del a
    gc.collect()
    assert _full(metrics, "collections") == before["collections"] + 1
    assert _full(metrics, "collected_objects") >= before["collected_objects"] + 100
    assert _full(metrics, "cpu_seconds") > cpu_before


def test_the_collector_is_timed_once_however_many_nodes_a_process_runs() -> None:
    Metrics(), Metrics()
    collector.watch()
    assert sum(callback is collector._CLOCK for callback in gc.callbacks) == 1
