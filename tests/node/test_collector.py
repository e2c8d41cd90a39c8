"""The node process's garbage collector settings (`node.collector`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gridtokenx.node import collector


@pytest.fixture
def restored() -> Iterator[None]:
    """`tune` is process-wide: the test's process gets CPython's settings back."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tune_freezes_what_is_loaded_and_collects_less_often(restored: None) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    collector.tune()
    assert gc.get_threshold() == collector.THRESHOLDS
    assert gc.get_threshold()[0] > 700  # CPython's young threshold
    assert gc.get_freeze_count() > 1_000  # the modules loaded, out of every later walk
