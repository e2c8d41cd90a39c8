"""Running a scenario end to end: homes and network, processes, setup, load and schedule
together, settling, asking the nodes about what is not committed, stopping everything, and
the checker on the stores.

`run` is the synchronous entry (the tests, bench/availability_bench.py);
whatever happens (a failure, Ctrl-C) every process it started is stopped, first cleanly
and, if the loop itself was interrupted, with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import httpx

from gridtokenx.client import ApiError, AsyncClient
from gridtokenx.devnet.faults import checker, load, report
from gridtokenx.devnet.faults.cluster import Cluster
from gridtokenx.devnet.faults.network import ProxyNetwork
from gridtokenx.devnet.faults.observe import Follower
from gridtokenx.devnet.faults.report import FaultNote, Observed
from gridtokenx.devnet.faults.scenario import Scenario
from gridtokenx.devnet.processes import free_base_port
from gridtokenx.node.home import load_genesis

READY_S: Final = 90.0
SETUP_PHASE_S: Final = 120.0
API_TIMEOUT_S: Final = 2.0
SETUP_BATCH: Final = 500

Log = Callable[[str], None]


class SetupFailed(RuntimeError):
    """The devnet did not come up, or the load's setup did not commit: nothing to check."""


class RunClock:
    """Seconds on the harness's monotonic clock from `zero()` (the load's start)."""

    def __init__(self) -> None:
        self.origin = time.monotonic()

    def zero(self) -> None:
        self.origin = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.origin


def run(
    scenario: Scenario, root: Path | None = None, *, base_port: int | None = None,
    orders: load.OrdersSource | None = None, log: Log = print,
) -> dict[str, Any]:  # fmt: skip
    """Run `scenario` in `root` (a temporary folder when None) and return its report;
    `orders` makes the market orders of a load with orders (see `load.OrdersSource`)."""
    if problems := scenario.problems():
        raise ValueError("; ".join(problems))
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gtx-faults-")))
        clock = RunClock()
        cluster = Cluster(scenario, root, ProxyNetwork(), clock)
        try:
            return asyncio.run(_run(scenario, cluster, clock, base_port, orders, log))
        finally:
            cluster.kill_remaining()


async def _run(
    scenario: Scenario, cluster: Cluster, clock: RunClock, base_port: int | None,
    orders: load.OrdersSource | None, log: Log,
) -> dict[str, Any]:  # fmt: skip
    count = len(scenario.node_names())
    try:  # the homes, the proxies, and the load signed before any node starts
        await cluster.create(base_port or free_base_port(count))
        spec = load_genesis(next(iter(cluster.nodes.values())).home / "genesis.json")
        plan = load.build(spec, scenario.load, int(time.time()), orders)
    except BaseException:
        await cluster.network.stop()
        raise
    log(f"{scenario.name}: {count} nodes, {sum(map(len, plan.setup))} setup and "
        f"{len(plan.stream)} load transactions signed")  # fmt: skip
    apis = {n: AsyncClient(p.api, timeout=API_TIMEOUT_S) for n, p in cluster.nodes.items()}
    generator = load.Generator(apis, clock, redundancy=scenario.load.redundancy)
    follower = Follower(apis, clock)
    stop = asyncio.Event()
    following = asyncio.create_task(follower.run(stop))
    supervising = asyncio.create_task(cluster.supervise(stop))  # crashes noted, restarted
    try:
        cluster.start_all()
        await _ready(cluster, apis, log)
        await commit_setup(generator, follower, plan, log)
        observed = await _perturbed(scenario, cluster, generator, follower, plan, clock, log)
        statuses = await _settle(scenario, cluster, generator, follower, log)
    finally:
        stop.set()
        await following
        await supervising
        for api in apis.values():
            await api.close()
        await cluster.stop_all()
    observed.commits = dict(follower.first_seen)
    observed.crashes = cluster.crashes
    observed.network_events = dict(cluster.network.events)
    acked = {h: s.node for h, s in generator.acked().items()}
    stores = {n: p.home / "data" for n, p in cluster.nodes.items()}
    verdict = checker.check(spec, stores, acked, statuses)
    result = report.summarize(scenario, observed, verdict)
    for line in report.lines(result):
        log(line)
    return result


async def _ready(cluster: Cluster, apis: dict[str, AsyncClient], log: Log) -> None:
    """Every node answers and is connected to every peer it should have."""
    validators = sum(1 for n in cluster.nodes.values() if n.validator)
    full = len(cluster.nodes) - validators
    want = {n: (validators - 1 + full if p.validator else validators)
            for n, p in cluster.nodes.items()}  # fmt: skip
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        peers = {}
        for name, api in apis.items():
            with contextlib.suppress(httpx.HTTPError, ApiError):
                peers[name] = int((await api.health())["peers"])
        if all(peers.get(n, -1) >= w for n, w in want.items()):
            log(f"devnet ready: peers {peers}")
            return
        await asyncio.sleep(0.3)
    raise SetupFailed(f"the nodes did not connect within {READY_S:.0f} s: {_tails(cluster)}")


def _tails(cluster: Cluster) -> str:
    return "; ".join(f"{n}: {p.log_tail(300)!r}" for n, p in cluster.nodes.items())


async def commit_setup(
    generator: load.Generator, follower: Follower, plan: load.LoadPlan, log: Log
) -> None:
    """Each setup phase sent and committed before the next (accounts exist before they are
    licensed, and are funded before they pay); raises SetupFailed if one is not."""
    for number, phase in enumerate(plan.setup):
        for i in range(0, len(phase), SETUP_BATCH):
            await generator.send(phase[i : i + SETUP_BATCH], "setup")
        hashes = [h for h, s in generator.acked("setup").items()]
        if len(hashes) < sum(len(p) for p in plan.setup[: number + 1]):
            raise SetupFailed(f"setup phase {number + 1}: not every transaction was taken: "
                              f"{generator.errors}")  # fmt: skip
        if not await follower.wait_final(hashes, SETUP_PHASE_S):
            raise SetupFailed(f"setup phase {number + 1} did not commit in {SETUP_PHASE_S} s")
    # Every node has executed the setup before the load begins: a node a height or two
    # behind the first to commit would refuse the new accounts' first orders as
    # UNKNOWN_SENDER, and their later nonces would wait for ever behind the gap.
    if not await follower.wait_reached(list(generator.apis), follower.top, SETUP_PHASE_S):
        raise SetupFailed(f"not every node reached the setup's height {follower.top}: "
                          f"{follower.heights}")  # fmt: skip
    log(f"setup committed at height {follower.top} on every node")


async def _perturbed(
    scenario: Scenario, cluster: Cluster, generator: load.Generator, follower: Follower,
    plan: load.LoadPlan, clock: RunClock, log: Log,
) -> Observed:  # fmt: skip
    """The load and the schedule together, from the run clock's zero; every fault undone
    by the end."""
    clock.zero()
    notes = [FaultNote(f) for f in scenario.faults]
    faults = [_fault(i, note, cluster, clock, log) for i, note in enumerate(notes)]
    driving = load.drive(generator, plan.stream, scenario.load, scenario.load.seconds)
    lag, _ = await asyncio.gather(driving, asyncio.gather(*faults))
    window = max(scenario.seconds, clock())
    return Observed(window, {}, follower.final_at, generator.sent, notes, [], lag,
                    generator.errors)  # fmt: skip


async def _fault(i: int, note: FaultNote, cluster: Cluster, clock: RunClock, log: Log) -> None:
    fault = note.fault
    await asyncio.sleep(max(0.0, fault.at - clock()))
    note.began = clock()
    log(f"{note.began:7.1f} s  begin {fault.label()}")
    try:
        note.notes += await cluster.begin(i, fault)
    except Exception as exc:  # noted, and the run goes on: the end still undoes it
        note.notes.append(f"begin failed: {exc!r}")
    await asyncio.sleep(max(0.0, fault.end - clock()))
    try:
        await cluster.end(i, fault)
    except Exception as exc:
        note.notes.append(f"end failed: {exc!r}")
    note.ended = clock()
    log(f"{note.ended:7.1f} s  end {fault.kind}")


async def _settle(
    scenario: Scenario, cluster: Cluster, generator: load.Generator, follower: Follower,
    log: Log,
) -> dict[str, str]:  # fmt: skip
    """Give acknowledged transactions `settle_seconds` to commit and the nodes time to
    reach one height; then ask each acknowledging node about its transactions not seen
    committed."""
    acked = generator.acked()
    final = await follower.wait_final(list(acked), scenario.settle_seconds)
    converged = await follower.wait_converged(list(cluster.nodes), 30.0)
    log(f"settled: all final {final}, heights {follower.heights} converged {converged}")
    statuses: dict[str, str] = {}
    for tx_hash, sent in acked.items():
        if tx_hash not in follower.final_at:
            statuses[tx_hash] = await status_of(generator.apis[sent.node], tx_hash)
    return statuses


async def status_of(api: AsyncClient, tx_hash: str) -> str:
    """What a node says of a transaction, in the checker's words (see `checker.check`)."""
    try:
        receipt = await api.tx(tx_hash)
    except ApiError as exc:
        return "unknown" if exc.code == "NOT_FOUND" else f"error:{exc.code}"
    except httpx.HTTPError:
        return "unreachable"
    if receipt.status == "failed":  # in a block all the same
        return "committed"
    return f"dropped:{receipt.reason}" if receipt.status == "dropped" else str(receipt.status)
