"""Fixtures of the node tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from gridtokenx.node import logs


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """`logs.configure` replaces the root handlers: put the test runner's back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    ours = logging.getLogger(logs.ROOT).level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger(logs.ROOT).setLevel(ours)
    logging.captureWarnings(False)
