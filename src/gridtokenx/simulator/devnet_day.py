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
gives the processes time to start (a loaded machine takes seconds to boot four Python
nodes); the setup's registrations must then commit within the two setup intervals (30
chain minutes: 1800 / speed wall seconds), and each step's orders must reach the chain
before their gate closes. Whether this machine keeps up is measured,
not assumed: the setup's three phases are timed (`Pace`), and a day that could not keep
up at this speed stops before it starts with `TooSlow`, which names a speed the machine
sustains (the CLI then runs the day again at it). A deadline missed later, mid-day, ends
the same way. Nothing in the results depends on the speed: the day's steps are keyed to
chain time, and the fee vote runs on the demo's short periods (`DEMO_GOVERNANCE`), for
which the day waits between two fixed steps (day.py).
"""

from __future__ import annotations

import datetime
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from rich.console import Console

from gridtokenx.client import ApiError, Client
from gridtokenx.client.results import SurveillanceAlert
from gridtokenx.devnet.homes import DEVNET_VALIDATORS, devnet_genesis, init_devnet, init_full_node
from gridtokenx.devnet.observer import Observer
from gridtokenx.devnet.processes import Processes, free_base_port
from gridtokenx.ledger import genesis
from gridtokenx.ledger.params import Governance, Params
from gridtokenx.node.home import read_config
from gridtokenx.node.runtime import Node
from gridtokenx.simulator.day import DayConfig, MarketDay
from gridtokenx.simulator.devnet_sink import DevnetRejected, DevnetSink, Finality
from gridtokenx.simulator.sink import LateForTheChain
from gridtokenx.simulator.summary import DaySummary, facts_table, summarize
from gridtokenx.simulator.summary import render as summary_render
from gridtokenx.wire import crypto

CHAIN_ID: Final = "gridtokenx-demo"
VALIDATORS: Final = DEVNET_VALIDATORS  # EGAT, MEA, PEA, ERC
LEAD_SECONDS: Final = 15  # wall seconds from the chain's start to the day's setup time
MARKER: Final = ".gridtokenx-demo"  # marks a folder this module may wipe and reuse
BLOCK_MS: Final = 1000
BUILD_BUDGET_MS: Final = 40  # keep proposals fast: they must arrive within 5 chain seconds
BATCH: Final = 100  # transactions per API request,
BATCH_PAUSE: Final = 0.1  # seconds apart: a burst would delay proposals (see DevnetSink)
PROPOSE_MS: Final = 500  # a round whose proposal came too late is retried sooner
API_RATE: Final = 1000.0  # requests/s for the demo's own client (followers poll often)
DEMO_GOVERNANCE: Final = Governance(
    voting_period_heights=5,
    timelock_heights=1,
    emergency_voting_period_heights=3,
    emergency_timelock_heights=1,
)
"""The fee vote's periods on the demo chain: a few blocks, so the day can wait for it to
execute between its first two traded intervals at any speed (storyline.py). The votes are
sent as soon as the proposal is final, within the five heights."""
SPEEDS: Final = (900.0, 600.0, 480.0, 360.0, 240.0, 180.0, 120.0, 90.0, 60.0, 45.0, 30.0,
                 20.0, 15.0, 10.0, 5.0, 2.0, 1.0)  # fmt: skip
"""The speeds the demo suggests when the machine cannot keep up (fastest first)."""
LATE_CODES: Final = frozenset(
    {"GATE_CLOSED", "READING_BEFORE_REGISTRATION", "READING_OUTSIDE_WINDOW", "VOTING_CLOSED",
     "STALE_GRID_STATUS"}
)  # fmt: skip
"""Ledger codes of a transaction the chain's clock overtook: lateness, not a model bug."""
ALERT_PAGE: Final = 200  # the API's most alerts a page
HEADROOM: Final = 2.0  # a step must take at most half the wall time its deadline allows


class TooSlow(RuntimeError):
    """This machine cannot replay the day at the configured speed; `suggested` is one it
    can (by the setup's measured pace), or 0 when even speed 1 would not do."""

    def __init__(self, speed: float, suggested: float, why: str) -> None:
        hint = f"try --speed {_speed_text(suggested)}" if suggested else "no speed would do"
        super().__init__(f"this machine is too slow for speed {_speed_text(speed)}: {hint} "
                         f"({why})")  # fmt: skip
        self.speed, self.suggested = speed, suggested


def _speed_text(speed: float) -> str:
    return f"{speed:g}"


def sustainable_speed(step_seconds: float, params: Params) -> float:
    """The fastest of `SPEEDS` at which a step of `step_seconds` wall seconds fits the
    wall time between an interval's orders and its gate closure, with `HEADROOM`."""
    window = params.interval_seconds - params.gate_closure_seconds  # chain seconds
    for speed in SPEEDS:
        if step_seconds * HEADROOM <= window / speed:
            return speed
    return 0.0


@dataclass(frozen=True)
class Pace:
    """What the setup measured: its phases' wall time (submission to final), the most
    transactions of the day's steps resemble (a few hundred readings and orders)."""

    setup_seconds: float
    phases: int = 3

    @property
    def step_seconds(self) -> float:
        return self.setup_seconds / self.phases


@dataclass(frozen=True)
class DemoConfig:
    participants: int = 300
    hours: float = 6.0  # 10:00-16:00, the solar day: with the setup, about 3.5 min at 120x
    speed: float = 120.0  # 4 simulated hours of 300 members held at 120x on 2 cores
    hot_season: bool = False
    seed: int = 1
    directory: Path = Path("devnet/demo")
    base_port: int = 0  # 0: a free one
    log_format: str = "plain"  # the validators' node.log lines: plain or json
    log_level: str = "info"
    date: datetime.date = DayConfig.date
    zones: tuple[str, ...] = ()  # empty: all seven
    storyline: bool = True
    season: bool | None = False  # a scenario's season (None: from the date); --hot-season wins
    lead_seconds: float = LEAD_SECONDS  # longer after a run whose boot ate the lead
    # Day-ahead curves before the auction gate, 12:00 the day before (day_ahead.py): the
    # chain then runs about 22 more hours before the window, 11 wall minutes at 120x
    auction: bool = False
    manipulators: tuple[str, ...] = ()  # manipulators.Role values mixed into the day
    start_minute: int | None = None  # local minute of the first interval; None: see `day`

    def problems(self) -> list[str]:
        found = []
        hours_ok = 0.25 <= self.hours <= 24 and float(self.hours * 4).is_integer()
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
        start = start if self.start_minute is None else self.start_minute
        return DayConfig(
            seed=self.seed,
            participants=self.participants,
            date=self.date,
            start_minute=start - start % 15,
            intervals=int(self.hours * 4),
            hot_season=True if self.hot_season else self.season,
            storyline=self.storyline,
            zones=self.zones,
            auction=self.auction,
            manipulators=self.manipulators,
        )

    def wall_seconds(self) -> float:
        """About how long the simulated part takes (setup, the auction and the window)."""
        p, day = Params(), self.day()
        before = day.first_interval(p) - day.setup_time(p)
        return (self.hours * 3600 + before) / self.speed + self.lead_seconds


@dataclass
class DemoResult:
    summary: DaySummary
    finality: Finality
    submitted: int
    api_url: str
    wall_seconds: float
    speed: float = 0.0
    pace: Pace | None = None
    alerts: list[SurveillanceAlert] = field(default_factory=list)  # EGAT's node's
    names: dict[str, str] = field(default_factory=dict)  # address text -> member name

    @property
    def dashboard_url(self) -> str:
        """The dashboard on the day's last traded interval: the accelerated clock runs on
        past the day, and the dashboard shows the interval its address names (its prices
        chart that interval's day), so it stays on the simulated day."""
        p = Params()
        last = self.summary.first_interval + (self.summary.intervals - 1) * p.interval_seconds
        return f"{self.api_url}/?interval={last}"


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
        self.genesis_time = setup_time - int(config.lead_seconds * config.speed)
        self.boot_seconds = 0.0  # from writing the homes to every validator's API up
        self.spec = devnet_genesis(CHAIN_ID, self.genesis_time, VALIDATORS, DEMO_GOVERNANCE)
        self.api_url = ""  # EGAT's, once the homes are written
        self.homes: list[Path] = []
        self.processes = Processes([])
        self.observer: Observer | None = None

    def _init_homes(self) -> None:
        """The homes, written just before the processes start: the clock's origin is now,
        so the chain reaches the setup time `lead_seconds` from here."""
        directory = self.config.directory
        self.homes = init_devnet(
            directory, CHAIN_ID, self.genesis_time, self.base, BLOCK_MS, VALIDATORS,
            clock_origin=int(time.time()), clock_speed=self.config.speed,
            build_budget_ms=BUILD_BUDGET_MS, api_rate_per_second=API_RATE, propose_ms=PROPOSE_MS,
            log_format=self.config.log_format, log_level=self.config.log_level,
            governance=DEMO_GOVERNANCE,
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

    def start(self, timeout: float = 120.0) -> DemoDevnet:
        booted = time.monotonic()
        self._init_homes()
        self.processes.start()
        assert self.observer is not None
        self.observer.start()
        deadline = time.monotonic() + timeout
        with Client(self.api_url, timeout=2.0) as api:
            while True:
                if not self.processes.alive():
                    raise RuntimeError(f"a validator stopped: {self.stopped()}")
                try:
                    if int(api.health()["peers"]) >= len(self.homes) - 1:
                        self.boot_seconds = time.monotonic() - booted
                        return self
                except Exception:  # not serving yet
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the devnet's API at {self.api_url} did not come up")
                time.sleep(0.2)

    def run_day(self, on_block: Callable[[int], None] | None = None) -> DemoResult:
        """Setup, then the day through the first validator's API; the summary from the
        observer once it holds the block that settled the last interval. Raises `TooSlow`
        when the machine did not, or would not, keep up with the clock."""
        started = time.monotonic()
        speed, params = self.config.speed, self.spec.params
        paces: list[Pace] = []
        setup_started = [0.0]

        def measured() -> None:  # the setup is final: will the steps keep up?
            pace = Pace(time.monotonic() - setup_started[0])
            paces.append(pace)
            suggested = sustainable_speed(pace.step_seconds, params)
            if suggested < speed:
                raise TooSlow(speed, suggested, f"the setup took {pace.setup_seconds:.1f} s, "
                              f"{pace.step_seconds:.1f} s a phase")  # fmt: skip

        with Client(self.api_url, timeout=30.0) as api:
            sink = DevnetSink(api, on_block=on_block, batch=BATCH, batch_pause=BATCH_PAUSE)
            authorities = genesis.dev_keys()
            # The chain is new (prepare_directory), so only the authorities can have sent
            # anything: ask for their nonces now rather than one request per member while
            # the accelerated clock runs towards a gate closure.
            known = {k.address: sink.next_nonce(k.address) for k in authorities.values()}
            day = MarketDay(self.day_config, self.spec, authorities,
                            lambda address: known.get(address, 0))  # fmt: skip
            setup_started[0] = time.monotonic()
            try:
                day.run(sink, on_setup=measured)
            except LateForTheChain as exc:
                raise self._too_slow(paces, str(exc)) from exc
            except DevnetRejected as exc:
                if exc.code not in LATE_CODES:
                    raise
                raise self._too_slow(paces, str(exc)) from exc
            observer = self.observer
            if observer is None or not observer.wait_height(sink.seen_height, 60.0):
                raise TimeoutError("the observer did not follow the chain to the day's end")
            first, n = day.first_interval, self.day_config.intervals
            events = observer.events

            def read(node: Node) -> DaySummary:  # on the observer's loop: one committed state
                return summarize(node.app.state, list(events), first, n, node.app.height)

            summary = observer.call(read)
            alerts = surveillance_alerts(api, sink.seen_height)
        elapsed = time.monotonic() - started
        names = {crypto.address_to_text(m.key.address): m.name for m in day.population.members}
        return DemoResult(summary, sink.finality, sink.submitted, self.api_url, elapsed,
                          speed, paces[0] if paces else None, alerts, names)  # fmt: skip

    def next_lead(self) -> float:
        """The lead for a run after this one: enough for this machine's boot (measured)
        with room for the setup, never less than before."""
        return max(self.config.lead_seconds, round(2 * self.boot_seconds + 5, 1))

    def _too_slow(self, paces: list[Pace], why: str) -> TooSlow:
        """A deadline was missed: suggest the measured speed, or half this one at most."""
        speed = self.config.speed
        lower = [s for s in SPEEDS if s <= speed / 2]
        suggested = lower[0] if lower else 0.0
        if paces:
            suggested = min(suggested, sustainable_speed(paces[0].step_seconds,
                                                         self.spec.params))  # fmt: skip
        return TooSlow(speed, suggested, why)

    def stopped(self) -> str:
        """Which validators ended, with their exit codes (e.g. "EGAT (exit 1)")."""
        ended = [f"{home.name.upper()} (exit {proc.returncode})"
                 for home, proc in zip(self.homes, self.processes.procs, strict=False)
                 if proc.poll() is not None]  # fmt: skip
        return ", ".join(ended) or "none"

    def logs(self) -> list[Path]:
        """The logs that can say why a run failed: the validators' node.log files with a
        warning or error line first, then the demo's own (its observer node), then the
        other node.log files."""
        directory = self.config.directory
        nodes = [home / "node.log" for home in self.homes if (home / "node.log").exists()]
        troubled = [log for log in nodes if _has_trouble(log)]
        own = [directory / "demo.log"] if (directory / "demo.log").exists() else []
        return troubled + own + [log for log in nodes if log not in troubled]

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
        self.processes.stop()

    def __enter__(self) -> DemoDevnet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def surveillance_alerts(api: Client, height: int, timeout: float = 60.0) -> list[SurveillanceAlert]:
    """Every alert the node's surveillance raised once it has judged `height` (each
    interval is judged in the block that settles it); [] when the node runs none."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            page = api.surveillance_alerts(limit=ALERT_PAGE)
        except ApiError as exc:
            if exc.code == "NOT_FOUND":
                return []
            raise
        if page.height >= height:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the node's surveillance did not reach height {height}")
        time.sleep(0.2)
    found = list(page.items)
    while len(found) < page.total:
        found += api.surveillance_alerts(limit=ALERT_PAGE, offset=len(found)).items
    return found


def _alert_rows(result: DemoResult) -> tuple[tuple[str, str], ...]:
    by: dict[str, tuple[int, set[str]]] = {}
    for alert in result.alerts:
        count, who = by.get(alert.detector, (0, set()))
        by[alert.detector] = (count + 1, who | {result.names.get(a, a) for a in alert.accounts})
    rows = []
    for detector, (count, who) in sorted(by.items()):
        more = f" and {len(who) - 6} more" if len(who) > 6 else ""
        rows.append((f"{detector}: {count} alerts", ", ".join(sorted(who)[:6]) + more))
    return tuple(rows) or (("alerts", "none"),)


def _has_trouble(log: Path) -> bool:
    with open(log, errors="replace") as lines:
        return any(" WARNING " in line or " ERROR " in line or '"level":"error"' in line
                   or '"level":"warning"' in line or line.startswith("error:")
                   for line in lines)  # fmt: skip


def _pace_rows(result: DemoResult) -> tuple[tuple[str, str], ...]:
    if result.pace is None:
        return ()
    fastest = sustainable_speed(result.pace.step_seconds, Params())
    return (("setup phase, measured / fastest speed it allows",
             f"{result.pace.step_seconds:.2f} s / x{fastest:g}"),
            ("speed of this run", f"x{result.speed:g}"))  # fmt: skip


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
                *_pace_rows(result),
            ),
        )
    )  # fmt: skip
    console.print(facts_table("ERC surveillance (EGAT's node, /api/v1/surveillance/alerts)",
                              _alert_rows(result)))  # fmt: skip


__all__ = [
    "DemoConfig",
    "DemoDevnet",
    "DemoResult",
    "Pace",
    "TooSlow",
    "prepare_directory",
    "render",
    "sustainable_speed",
]
