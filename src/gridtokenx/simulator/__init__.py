"""The Thai market-day simulator: profiles, a population, agents and a day driver.

`run_day_in_sandbox` replays a day through a single-process ledger and returns the summary
read back from it; `MarketDay.run` takes any `Sink` (`devnet_sink.DevnetSink` drives a
devnet through the SDK, and `devnet_day` runs `gridtokenx demo` with it); `loadgen` turns
the same agents into pre-signed load for benchmarks. With `DayConfig.storyline` the day
also carries the grid operators' reports (`operators`), a fee vote and certificate claims
(`storyline`). See docs/simulator.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gridtokenx.ledger import genesis
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.simulator.day import DayConfig, MarketDay, Step
from gridtokenx.simulator.sink import ChainReader, SandboxSink, SimulationRejected, Sink
from gridtokenx.simulator.summary import DaySummary, render, summarize

__all__ = [
    "ChainReader",
    "DayConfig",
    "DaySummary",
    "MarketDay",
    "SandboxSink",
    "SimulationRejected",
    "Sink",
    "Step",
    "day_in_blocks",
    "render",
    "run_day_in_sandbox",
    "sandbox_for",
    "summarize",
]

CHAIN_ID = "gridtokenx-sim"


def sandbox_for(config: DayConfig, params: Params | None = None) -> Sandbox:
    """A devnet-genesis sandbox whose clock starts at the day's setup time."""
    p = params or Params()
    keys = genesis.dev_keys()
    spec = genesis.devnet(CHAIN_ID, config.setup_time(p), keys)
    if params is not None:
        spec = genesis.Genesis(spec.chain_id, spec.genesis_time, spec.authorities, spec.zones,
                               spec.interconnectors, spec.fee_collector, params)  # fmt: skip
    return Sandbox(spec=spec)


def run_day_in_sandbox(
    config: DayConfig,
    *,
    on_step: Callable[[Sandbox, Step], None] | None = None,
    params: Params | None = None,
) -> DaySummary:
    """Replay the day through an in-process ledger; `on_step` sees the sandbox after each
    block's transactions (tests check the invariants there)."""
    sandbox = sandbox_for(config, params)
    sink = SandboxSink(sandbox)
    day = MarketDay(config, sandbox.genesis, sandbox.authority_keys, sink.next_nonce)
    day.run(sink, None if on_step is None else (lambda step: on_step(sandbox, step)))
    height = sandbox.height - 1  # the last ended block (advance_to started the next)
    return summarize(sandbox.state, sink.events, day.first_interval, config.intervals, height)


@dataclass
class DayBlocks:
    """A simulated day as blocks: the genesis and, per block, its time and the signed
    transactions the day sent in it (what a node would have committed)."""

    genesis: genesis.Genesis
    blocks: list[tuple[int, list[bytes]]] = field(default_factory=list)


def day_in_blocks(config: DayConfig, params: Params | None = None) -> DayBlocks:
    """Run the day in a sandbox and keep each block's transactions, so that a test or a
    golden vector can commit the same day through the application into a RocksDB store."""
    sandbox = sandbox_for(config, params)
    recorded = DayBlocks(sandbox.genesis, [(sandbox.time, [])])

    class Recording(SandboxSink):
        def submit(self, txs: list[bytes]) -> None:
            recorded.blocks[-1][1].extend(txs)
            super().submit(txs)

        def advance_to(self, unix_time: int) -> None:
            super().advance_to(unix_time)
            recorded.blocks.append((unix_time, []))

    sink = Recording(sandbox)
    MarketDay(config, sandbox.genesis, sandbox.authority_keys, sink.next_nonce).run(sink, None)
    return recorded
