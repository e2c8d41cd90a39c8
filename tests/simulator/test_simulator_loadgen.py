"""The simulator as a benchmark load: pre-signed setup and orders that a chain accepts."""

from __future__ import annotations

import pytest

from gridtokenx.ledger import genesis, invariants
from gridtokenx.ledger.sandbox import DEFAULT_GENESIS_TIME, Sandbox
from gridtokenx.simulator import SandboxSink
from gridtokenx.simulator.loadgen import market_load, pace
from gridtokenx.wire import tx

NOW = DEFAULT_GENESIS_TIME + 123  # not on an interval boundary


def test_the_load_applies_in_order_at_the_time_it_was_made_for() -> None:
    sb = Sandbox(genesis_time=NOW)
    sink = SandboxSink(sb)
    load = market_load(sb.genesis, genesis.dev_keys(), NOW, intervals=8, participants=20)
    assert load.first_interval % 900 == 0 and load.first_interval >= NOW + 3600
    for phase in load.setup:
        sink.submit(phase)
    sink.submit(load.orders)
    invariants.check_all(sb.state)
    decoded = [tx.decode(raw).tx.body for raw in load.orders]
    assert len(decoded) > 20 and all(isinstance(b, tx.PlaceOrder) for b in decoded)
    starts = {b.interval_start for b in decoded if isinstance(b, tx.PlaceOrder)}
    assert min(starts) >= load.first_interval
    assert max(starts) < load.first_interval + 8 * 900
    assert any(e.kind == "trade" for e in sink.events)


def test_the_same_seed_gives_the_same_bytes() -> None:
    spec = Sandbox(genesis_time=NOW).genesis
    one = market_load(spec, genesis.dev_keys(), NOW, intervals=2, participants=10, seed=3)
    two = market_load(spec, genesis.dev_keys(), NOW, intervals=2, participants=10, seed=3)
    assert one == two


def test_a_load_past_the_trading_horizon_is_refused() -> None:
    spec = Sandbox(genesis_time=NOW).genesis
    with pytest.raises(ValueError, match="trading horizon"):
        market_load(spec, genesis.dev_keys(), NOW, intervals=96, participants=10)


def test_pace_spreads_batches_at_the_target_rate() -> None:
    txs = [bytes([i]) for i in range(250)]
    schedule = pace(txs, rate_per_second=100, batch=100)
    assert [offset for offset, _ in schedule] == [0.0, 1.0, 2.0]
    assert [raw for _, batch in schedule for raw in batch] == txs
    with pytest.raises(ValueError, match="positive"):
        pace(txs, 0)
