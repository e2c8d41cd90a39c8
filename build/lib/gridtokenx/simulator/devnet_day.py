"""A market day on a real devnet: what `gridtokenx demo` runs.

Four authorities (EGAT, MEA, PEA, ERC) validate as separate processes on 127.0.0.1, each
with its API and RocksDB store under one folder, their clocks accelerated alike (node/home.py),
so that a day's 15-minute intervals pass in seconds. The day's transactions go through the
first validator's API (`DevnetSink`). The summary is read from the chain, not from the
agents: an in-process, non-validating full node (`Observer`, its own store under
the same folder) follows the validators, keeps every committed event, and
`summary.summarize` reads its state and events once it holds the block that settles the
last interval. Finality latency is measured by the sink, from each submission to the first
sight of the block that commits it.

The chain's clock starts `LEAD_SECONDS` wall seconds before the day's setup time, which
gives the processes time to start; the setup's registrations must then commit within the
setup interval (15 chain minutes: 900 / speed wall seconds), so very high speeds fail
with a clear error rather than a wrong day.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from rich.console import Console

from gridtokenx.client import Client
from gridtokenx.devnet.homes import DEVNET_VALIDATORS, devnet_genesis, init_devnet, init_full_node
from gridtokenx.devnet.observer import Observer
from gridtokenx.devnet.processes import Processes, free_base_port
from gridtokenx.ledger import genesis
from gridtokenx.ledger.params import Params
from gridtokenx.node.home import read_config
from gridtokenx.node.runtime import Node
from gridtokenx.simulator.day import DayConfig, MarketDay
from gridtokenx.simulator.devnet_sink import DevnetSink, Finality
from gridtokenx.simulator.summary import DaySummary, facts_table, summarize
from gridtokenx.simulator.summary import render as summary_render

CHAIN_ID: Final = "gridtokenx-demo"
VALIDATORS: Final = DEVNET_VALIDATORS  # EGAT, MEA, PEA, ERC
LEAD_SECONDS: Final = 6  # wall seconds from the chain's start to the day's setup time
MARKER: Final = ".gridtokenx-demo"  # marks a folder this module may wipe and reuse
BLOCK_MS: Final = 1000
BUILD_BUDGET_MS: Final = 40  # keep proposals fast: they must arrive within 5 chain seconds
BATCH: Final = 100  # transactions per API request,
BATCH_PAUSE: Final = 0.1  # seconds apart: a burst would delay proposals (see DevnetSink)
PROPOSE_MS: Final = 500  # a round whose proposal came too late is retried sooner
API_RATE: Final = 1000.0  # requests/s for the demo's own client (followers poll often)


@dataclass(frozen=True)
class DemoConfig:
    participants: int = 300
    hours: float = 6  # 10:00-16:00, the solar day: with the setup, about 3.5 min at 120x
    speed: float = 120.0  # 4 simulated hours of 300 members held at 120x on 2 cores
    hot_season: bool = False
    seed: int = 1
    directory: Path = Path("devnet/demo")
    base_port: int = 0  # 0: a free one
    log_format: str = "plain"  # the validators' node.log lines: plain or json
    log_level: str = "info"

    def problems(self) -> list[str]:
        found = []
        hours_ok = 0.25 <= self.hours <= 24 and (self.hours * 4).is_integer()
        if not hours_ok:
            found.append("hours must be 0.25 to 24 in whole 15-minute intervals")
        if not 1 <= self.speed <= 900:
            found.append("speed must be 1 to 900 (chain seconds per wall second)")
        if self.participants > 600:
            found.append("participants must be at most 600 on a demo devnet")
        return found + (self.day().problems(Params()) if hours_ok else [])

    def day(self) -> DayConfig:
        """The simulated window: the whole day from midnight for 24 hours, otherwise
        `hours` around 13:00 (the solar afternoon, when most energy changes hands)."""
        minutes = int(self.hours * 60)
        start = 0 if minutes == 1440 else max(0, min(1440 - minutes, 780 - minutes // 2))
        return DayConfig(
            seed=self.seed,
            participants=self.participants,
            start_minute=start - start % 15,
            intervals=int(self.hours * 4),
            hot_season=self.hot_season,
        )

    def wall_seconds(self) -> float:
        """About how long the simulated part takes (setup and the window)."""
        return (self.hours * 3600 + 2 * 900) / self.speed + LEAD_SECONDS


@dataclass
class DemoResult:
    summary: DaySummary
    finality: Finality
    submitted: int
    api_url: str
    wall_seconds: float


def prepare_directory(directory: Path) -> None:
    """A fresh folder for the demo; one left by an earlier demo is wiped, anything else is
    refused (it could be a real node's home)."""
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MARKER).exists():
            raise FileExistsError(
                f"{directory} exists and was not made by `gridtokenx demo`; choose another --dir"
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("made by gridtokenx demo; deleted by the next run\n")


class DemoDevnet:
    """The validators' processes and the observer of one demo run; `stop` ends them all."""

    def __init__(self, config: DemoConfig) -> None:
        if problems := config.problems():
            raise ValueError("invalid demo: " + "; ".join(problems))
        self.config = config
        self.day_config = config.day()
        directory = config.directory
        prepare_directory(directory)
        self.base = config.base_port or free_base_port(len(VALIDATORS) + 1)
        setup_time = self.day_config.setup_time(Params())  # the devnet's parameters
        self.genesis_time = setup_time - int(LEAD_SECONDS * config.speed)
        self.spec = devnet_genesis(CHAIN_ID, self.genesis_time, VALIDATORS)
        self.api_url = ""  # EGAT's, once the homes are written
        self.homes: list[Path] = []
        self.processes = Processes([])
        self.observer: Observer | None = None

    def _init_homes(self) -> None:
        """The homes, written just before the processes start: the clock's origin is now,
        so the chain reaches the setup time LEAD_SECONDS from here."""
        directory = self.config.directory
        self.homes = init_devnet(
            directory, CHAIN_ID, self.genesis_time, self.base, BLOCK_MS, VALIDATORS,
            clock_origin=int(time.time()), clock_speed=self.config.speed,
            build_budget_ms=BUILD_BUDGET_MS, api_rate_per_second=API_RATE, propose_ms=PROPOSE_MS,
            log_format=self.config.log_format, log_level=self.config.log_level,
        )  # fmt: skip
        observer_home = init_full_node(directory / "observer", self.homes, self.base + 4)
        self.api_url = f"http://127.0.0.1:{read_config(self.homes[0]).api_port}"
        self.processes = Processes(self.homes)
        self.observer = Observer(observer_home)

    @property
    def window(self) -> tuple[int, int]:
        """Chain times of the setup and of the block that settles the last interval."""
        p = self.spec.params
        end = self.day_config.first_interval(p) + self.day_config.intervals * p.interval_seconds
        return self.day_config.setup_time(p), end + 1

    def start(self, timeout: float = 60.0) -> DemoDevnet:
        self._init_homes()
        self.processes.start()
        assert self.observer is not None
        self.observer.start()
        deadline = time.monotonic() + timeout
        with Client(self.api_url, timeout=2.0) as api:
            while True:
                if not self.processes.alive():
                    raise RuntimeError(f"a validator stopped; see node.log in {self.homes}")
                try:
                    if int(api.health()["peers"]) >= len(self.homes) - 1:
                        return self
                except Exception:  # not serving yet
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the devnet's API at {self.api_url} did not come up")
                time.sleep(0.2)

    def run_day(self, on_block: Callable[[int], None] | None = None) -> DemoResult:
        """Setup, then the day through the first validator's API; the summary from the
        observer once it holds the block that settled the last interval."""
        started = time.monotonic()
        with Client(self.api_url, timeout=30.0) as api:
            sink = DevnetSink(api, on_block=on_block, batch=BATCH, batch_pause=BATCH_PAUSE)
            authorities = genesis.dev_keys()
            # The chain is new (prepare_directory), so only the authorities can have sent
            # anything: ask for their nonces now rather than one request per member while
            # the accelerated clock runs towards a gate closure.
            known = {k.address: sink.next_nonce(k.address) for k in authorities.values()}
            day = MarketDay(self.day_config, self.spec, authorities,
                            lambda address: known.get(address, 0))  # fmt: skip
            sink.advance_to(self.day_config.setup_time(self.spec.params))
            day.run(sink)
            observer = self.observer
            if observer is None or not observer.wait_height(sink.seen_height, 60.0):
                raise TimeoutError("the observer did not follow the chain to the day's end")
            first, n = day.first_interval, self.day_config.intervals
            events = observer.events

            def read(node: Node) -> DaySummary:  # on the observer's loop: one committed state
                return summarize(node.app.state, list(events), first, n, node.app.height)

            summary = observer.call(read)
        elapsed = time.monotonic() - started
        return DemoResult(summary, sink.finality, sink.submitted, self.api_url, elapsed)

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
        self.processes.stop()

    def __enter__(self) -> DemoDevnet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def render(result: DemoResult, console: Console) -> None:
    """The day's summary (from the chain), then how the devnet carried it."""
    summary_render(result.summary, console)
    f = result.finality
    console.print(
        facts_table(
            "Devnet (EGAT, MEA, PEA, ERC)",
            (
                ("transactions submitted / committed", f"{result.submitted:,} / {f.committed:,}"),
                ("finality from submission, p50 / p99", f"{f.percentile(0.5):.2f} s / "
                                                        f"{f.percentile(0.99):.2f} s"),
                ("finality, mean / worst", f"{f.mean:.2f} s / {f.percentile(1.0):.2f} s"),
                ("wall time of the day", f"{result.wall_seconds:.0f} s"),
            ),
        )
    )  # fmt: skip


__all__ = ["DemoConfig", "DemoDevnet", "DemoResult", "prepare_directory", "render"]
