"""Ports for devnets started side by side: a probe finds ports free, but the nodes bind
them later, so two calls before either devnet binds must still get disjoint ports."""

from __future__ import annotations

import pytest

from gridtokenx.devnet.processes import PORT_OFFSETS, free_base_port

# Above every test worker's range (20,000-32,000) and below Linux's ephemeral ports.
LOW = 32_000


def _ports(base: int, count: int) -> set[int]:
    return {base + offset + i for offset in PORT_OFFSETS for i in range(count)}


def test_two_calls_before_binding_never_share_a_port() -> None:
    count = 4
    high = LOW + max(PORT_OFFSETS) + count + 3  # three bases, each overlapping the others
    first = free_base_port(count, LOW, high)
    with pytest.raises(RuntimeError, match="no free ports"):
        free_base_port(count, LOW, high)  # the only bases left share ports with the first
    assert first in range(LOW, high)


def test_bases_handed_out_in_a_row_are_disjoint() -> None:
    count = 5
    bases = [free_base_port(count, LOW, LOW + 700) for _ in range(3)]
    sets = [_ports(base, count) for base in bases]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2]), bases
