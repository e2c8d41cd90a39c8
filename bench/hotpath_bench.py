"""Where a validator's CPU goes per committed order on the market-day mix, by function.

One validator's pipeline in this process, on RocksDB in a temporary folder, without the
network: a proposer application builds blocks of up to `--block` transactions from the
day mix (`simulator.loadgen.rolling_load`, the load of `devnet_bench.py --workload day`),
and the validator does what a node does with each transaction and block: admission
(decode and verify in the mempool's threads, then the mempool's rules), the proposal's
check, and the commit (execution, the state root, the synced write). Only the validator's
work is measured: its CPU time (process time, its verify threads included) in a plain run,
then its main thread's profile (cProfile) in a second run, grouped by what it is spent on
(shares only: the profiler's own cost per call inflates code of many small calls):

- ed25519: signature verification (the node's verifier, ed25519-zebra; PyNaCl's for the
  baseline);
- sha256: the state root's and the transactions' hashing (hashlib);
- rocksdb: the store's reads and writes (rocksdict);
- msgpack: canonical encoding and decoding (msgspec);
- python: everything else, the ledger and market rules, the tree and the glue in Python.

It prints CPU per committed order and per group, the hottest functions by their own time,
and writes bench/results/hotpath.json: the figures behind docs/adr/0007.

`--workload crossing` sends `devnet_bench.py`'s crossing orders instead (Bangkok only, no
grid paths). `--clock` fixes the chain's clock (a Unix time): the day mix is built from
the clock's quarter-hour and time of day (which intervals, how many agents offer, how
often a plan searches a path), so runs at different wall-clock times compare only when
they share one. `--surveillance` has the validator follow each commit with the ERC
surveillance, as a node with its API does (the validators of `devnet_bench.py`). The
garbage collector is set as `gridtokenx node start` sets it (`node.collector`).
`--follower-repeats N` (with `--surveillance`) keeps what the validator's follower was
told of each height (the block, receipts, end-of-block events and the node's decoded
transactions) and, once the run is over, hands the same commits to N fresh followers on the
same state, timing each one's thread CPU over the measured heights only: the follower's
CPU per committed order, min and median, beside a digest of the alerts raised, so that two
checkouts compare both cost and alerts (`--follower-profile` adds the follower's own
profile). A day's worth of blocks with settlements and alerts is
`bench/surveillance_bench.py`'s.
`GRIDTOKENX_TREE_PYTHON=1` hashes the state root's tree with its Python loops, not the
compiled ones (`bench/state_bench.py`), to pair the two.

    python bench/hotpath_bench.py [--orders 6000] [--block 1000] [--workload day|crossing]
                                  [--clock 1796536800] [--surveillance]
                                  [--follower-repeats 5 [--follower-profile]]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchkit
from gridtokenx.chain.application import Application
from gridtokenx.chain.blocks import Receipt
from gridtokenx.devnet.homes import devnet_genesis
from gridtokenx.ledger import genesis
from gridtokenx.ledger.context import Event
from gridtokenx.simulator import loadgen
from gridtokenx.storage.store import Store, open_application
from gridtokenx.surveillance.follower import Follower
from gridtokenx.wire import tx
from workload import MarketLoad

RESULTS = Path(__file__).parent / "results" / "hotpath.json"
CHAIN = "gridtokenx-hotpath"
STAGES = (
    ("admission (main thread)", "chain/mempool.py", "admit"),
    ("check_block", "chain/application.py", "check_block"),
    ("commit (all of it)", "chain/application.py", "commit"),
    ("execution: transition.apply", "ledger/transition.py", "apply"),
    ("market: trading._plan", "ledger/market/trading.py", "_plan"),
    ("grid: paths.find", "paths.py", "find"),
    ("state root: State.root", "ledger/state.py", "root"),
    ("store: commit_height", "storage/store.py", "commit_height"),
)
"""Entry points whose cumulative time (themselves and all they call) shows the stages."""
GROUPS = (
    ("ed25519", ("nacl", "crypto_sign", "ed25519_zebra", "ed_verify")),
    ("sha256", ("_hashlib", "openssl_sha256", "sha256")),
    ("rocksdb", ("rocksdict", "Rdict", "WriteBatch")),
    ("msgpack", ("msgspec", "msgpack")),
)


def _group(where: tuple[str, int, str]) -> str:
    file, _, name = where
    text = f"{file}:{name}"
    for group, marks in GROUPS:
        if any(mark in text for mark in marks):
            return group
    return "python"


class _Meter:
    """The validator's CPU (process time: its verify threads included) and, when
    profiling, its main thread's profile; the proposer's work stays outside both."""

    def __init__(self, profiled: bool) -> None:
        self.cpu = 0.0
        self.profile = cProfile.Profile() if profiled else None

    def __enter__(self) -> None:
        self._started = time.process_time()
        if self.profile is not None:
            self.profile.enable()

    def __exit__(self, *exc: object) -> None:
        if self.profile is not None:
            self.profile.disable()
        self.cpu += time.process_time() - self._started


def _admit(app: Application[Store], raws: list[bytes]) -> None:
    checked = [c for future in app.mempool.precheck(raws) for c in future.result()]
    refused = [a for a in app.admit(raws, checked) if not a.accepted]
    if refused:
        raise SystemExit(f"{len(refused)} refused, first: {refused[0].code} {refused[0].message}")


def _tune_collector() -> None:
    """The garbage collector as `gridtokenx node start` sets it (`node.collector`), so that
    the validator here pays what a node's process pays; CPython's defaults on a checkout
    without it, as its nodes ran (the JSON records which)."""
    try:
        from gridtokenx.node import collector
    except ImportError:
        return
    collector.tune()


def _follower(validator: Application[Store]) -> Follower:
    """Surveillance as a node with its API runs it, told of each commit. A checkout whose
    follower cannot take the node's decoded transactions (`committed_txs`) decodes them
    again, as such a node does."""
    decoded = getattr(validator, "committed_txs", None)
    if decoded is None:
        return Follower(validator.state)
    return Follower(validator.state, decoded=decoded)


Commit = tuple[int, bytes, list[Receipt], list[Event], list[tx.SignedTransaction] | None]
"""What a follower is told of one height, and the node's decoded transactions of it."""


@dataclass
class _Commits:
    """The commits the validator's follower was told of, kept to hand them to fresh
    followers after the run (`follow_again`); `measured` from the first order height."""

    kept: list[Commit] = field(default_factory=list)
    measured: int = 0


def _height(
    proposer: Application[Store],
    validator: Application[Store],
    now: int,
    meter: _Meter,
    follower: Follower | None = None,
    commits: _Commits | None = None,
) -> int:
    """One height: the proposer builds, the validator checks and both commit (and the
    validator's `follower`, if any, follows it); the number of transactions it carried."""
    height = proposer.height + 1
    raw = proposer.build_block(height, now, genesis.dev_keys()["EGAT"].address)
    with meter:
        if not validator.check_block(height, raw, now=now):
            raise SystemExit(f"the validator refused block {height}")
        receipts = validator.commit(height, raw, ())
        if follower is not None:
            follower.on_commit(height, raw, receipts, validator.store.block_events(height) or [])
    if commits is not None:
        events = validator.store.block_events(height) or []
        decoded = getattr(validator, "committed_txs", lambda _: None)(height)
        commits.kept.append((height, raw, receipts, events, decoded))
    proposer.commit(height, raw, ())
    return len(receipts)


def follow_again(
    validator: Application[Store], commits: _Commits, repeats: int, orders: int, profiled: bool
) -> dict[str, Any]:
    """Hand the kept commits to `repeats` fresh followers on the validator's state (its
    trades never change once written), each one's thread CPU over the measured heights:
    the follower's cost per committed order without the rest of the validator's."""
    spent: list[float] = []
    profile = cProfile.Profile() if profiled else None
    alerts: list[str] = []
    decoded = {c[0]: c[4] for c in commits.kept}
    for _ in range(repeats):
        follower = Follower(validator.state, decoded=decoded.get)
        for commit in commits.kept[: commits.measured]:
            follower.on_commit(*commit[:4])
        began = time.thread_time()
        if profile is not None:
            profile.enable()
        for commit in commits.kept[commits.measured :]:
            follower.on_commit(*commit[:4])
        if profile is not None:
            profile.disable()
        spent.append(time.thread_time() - began)
        alerts = [a.id for a in follower.alerts]
    per = [round(s * 1e6 / max(orders, 1), 2) for s in spent]
    figures: dict[str, Any] = {
        "follower_us_per_order_runs": per,
        "follower_us_per_order_min": min(per),
        "follower_us_per_order_median": statistics.median(per),
        "follower_alerts": len(alerts),
        "follower_alerts_digest": hashlib.sha256("".join(alerts).encode()).hexdigest()[:16],
    }
    if profile is None:
        return figures
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    rows = sorted(((own, calls, cum, where) for where, (_, calls, own, cum, _) in stats.items()),
                  reverse=True)  # fmt: skip
    scale = 1e6 / max(orders * repeats, 1)
    figures["follower_profile"] = [
        {
            "function": f"{Path(file).name}:{line}({name})",
            "own_us_per_order": round(own * scale, 2),
            "cumulative_us_per_order": round(cum * scale, 2),
            "calls_per_order": round(calls / max(orders * repeats, 1), 2),
        }
        for own, calls, cum, (file, line, name) in rows[:25]
    ]
    return figures


def _load(
    workload: str, spec: genesis.Genesis, now: int, orders: int, participants: int
) -> tuple[list[list[bytes]], list[bytes]]:
    """The setup phases and the orders of `workload`."""
    if workload == "crossing":
        crossing = MarketLoad(spec, now, accounts_per_side=participants // 2)
        setup = crossing.setup()
        return setup, list(crossing.orders(orders))
    day = loadgen.rolling_load(
        spec, genesis.dev_keys(), now, orders, 1_000.0, participants, key_prefix="hotpath"
    )
    return day.setup, day.orders


def run(
    orders: int,
    block: int,
    folder: Path,
    profiled: bool,
    participants: int = 600,
    workload: str = "day",
    clock: int | None = None,
    surveillance: bool = False,
    follower_repeats: int = 0,
    follower_profile: bool = False,
) -> dict[str, Any]:
    """The workload's orders through a proposer and a validator: the validator's CPU per
    committed order, and with `profiled` its main thread's profile grouped as the module
    docstring says (signature checks run in the mempool's threads, which cProfile does
    not see: `ed25519_us_per_verify` stands for them). `clock`: the chain's time, else
    the wall clock's."""
    now = int(time.time()) if clock is None else clock
    spec = devnet_genesis(CHAIN, now - 60)
    setup, order_txs = _load(workload, spec, now, orders, participants)
    proposer = open_application(spec, folder / "proposer")
    validator = open_application(spec, folder / "validator")
    follower = _follower(validator) if surveillance else None
    commits = _Commits() if follower is not None and follower_repeats else None
    meter, unmetered = _Meter(profiled), _Meter(False)
    committed, heights = 0, 0
    roots: list[str] = []  # after each measured height: old and new code must agree
    try:
        for phase in setup:  # the participants, meters, licences and funds
            for app in (proposer, validator):
                _admit(app, phase)
            while len(validator.mempool):
                _height(proposer, validator, now, unmetered, follower, commits)
        if commits is not None:
            commits.measured = len(commits.kept)
        for i in range(0, len(order_txs), block):
            batch = order_txs[i : i + block]
            _admit(proposer, batch)
            with meter:
                _admit(validator, batch)
            while len(validator.mempool):
                committed += _height(proposer, validator, now, meter, follower, commits)
                heights += 1
                roots.append(validator.state.root().hex())
        followed = {}
        if commits is not None:
            followed = follow_again(
                validator, commits, follower_repeats, committed, follower_profile
            )
    finally:
        proposer.close()
        validator.close()
    per = 1e6 / max(committed, 1)
    sample = [tx.decode(raw) for raw in order_txs[:1_000]]
    verify_rate = benchkit.raw_verify_rate(sample)
    node_rate = benchkit.node_verify_rate(sample)
    figures: dict[str, Any] = {
        "orders_committed": committed,
        "heights": heights,
        "validator_cpu_us_per_order": round(meter.cpu * per, 1),
        "ed25519_verifies_per_s": round(verify_rate),
        "ed25519_us_per_verify": round(1e6 / verify_rate, 1),
        "node_ed25519_us_per_verify": round(1e6 / node_rate, 1),
        "state_roots": roots,
        **followed,
    }
    if meter.profile is None:
        return figures
    raw_stats: dict[Any, Any] = pstats.Stats(meter.profile).stats  # type: ignore[attr-defined]
    total = sum(own for _, _, own, _, _ in raw_stats.values())
    groups: dict[str, float] = {}
    functions = []
    for where, (_, calls, own, cumulative, _) in raw_stats.items():
        groups[_group(where)] = groups.get(_group(where), 0.0) + own
        functions.append((own, calls, cumulative, where))
    functions.sort(reverse=True)
    stages = {
        label: round(sum(c for (file, _, name), (_, _, _, c, _) in raw_stats.items()
                         if file.endswith(suffix) and name == function) * per, 1)
        for label, suffix, function in STAGES
    }  # fmt: skip
    return figures | {
        "stages_cumulative_us_per_order": stages,
        "profiled_main_thread_us_per_order": round(total * per, 1),
        "groups_us_per_order": {g: round(s * per, 1) for g, s in sorted(groups.items())},
        "hottest": [
            {
                "function": f"{Path(file).name}:{line}({name})",
                "own_us_per_order": round(own * per, 2),
                "cumulative_us_per_order": round(cumulative * per, 2),
                "calls_per_order": round(calls / max(committed, 1), 2),
            }
            for own, calls, cumulative, (file, line, name) in functions[:30]
        ],
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=6_000)
    parser.add_argument("--block", type=int, default=1_000)
    parser.add_argument("--participants", type=int, default=600, help="the day's agents")
    parser.add_argument("--workload", choices=("day", "crossing"), default="day")
    parser.add_argument(
        "--clock", type=int, default=None, help="the chain's time, Unix seconds (default: now)"
    )
    parser.add_argument("--no-profile", action="store_true", help="the plain run only")
    parser.add_argument(
        "--surveillance", action="store_true", help="the validator follows each commit with "
        "surveillance, as a node with its API does (devnet_bench's validators)"
    )  # fmt: skip
    parser.add_argument(
        "--follower-repeats", type=int, default=0, help="with --surveillance: hand the "
        "measured commits to this many fresh followers after the run, timing each"
    )  # fmt: skip
    parser.add_argument("--follower-profile", action="store_true", help="profile those followers")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.follower_repeats and not args.surveillance:
        parser.error("--follower-repeats needs --surveillance")
    hashing = benchkit.tree_hashing()
    started_load = list(os.getloadavg())
    shape = (args.participants, args.workload, args.clock, args.surveillance)
    following = (args.follower_repeats, args.follower_profile)
    with tempfile.TemporaryDirectory(prefix="gridtokenx-hotpath-") as tmp:
        plain = run(args.orders, args.block, Path(tmp) / "plain", False, *shape, *following)
    if args.no_profile:
        figures = plain
    else:
        with tempfile.TemporaryDirectory(prefix="gridtokenx-hotpath-") as tmp:
            figures = run(args.orders, args.block, Path(tmp) / "profiled", True, *shape)
        figures["validator_cpu_us_per_order_profiled"] = figures.pop("validator_cpu_us_per_order")
        figures["validator_cpu_us_per_order"] = plain["validator_cpu_us_per_order"]
    result: dict[str, object] = {
        "benchmark": "hotpath",
        "tree_hashing": hashing,
        "python": platform.python_version(),
        "orders": args.orders,
        "block": args.block,
        "participants": args.participants,
        "workload": args.workload,
        "clock": args.clock,
        "surveillance": args.surveillance,
        "collector_thresholds": list(gc.get_threshold()),
        "collector_frozen_objects": gc.get_freeze_count(),
        "load_average_at_start": started_load,
        "load_average_at_end": list(os.getloadavg()),
        **figures,
    }
    print(
        f"{args.workload}: {figures['orders_committed']} orders in {figures['heights']} "
        f"heights: validator {figures['validator_cpu_us_per_order']} us of CPU per order "
        f"(profiled: {figures.get('validator_cpu_us_per_order_profiled', '-')}); raw Ed25519 "
        f"{figures['ed25519_verifies_per_s']}/s ({figures['ed25519_us_per_verify']} us per "
        f"verify; the node's verifier {figures['node_ed25519_us_per_verify']} us), load "
        f"{started_load[0]:.1f}"
    )
    if "follower_us_per_order_runs" in figures:
        print(
            f"follower, {args.follower_repeats} fresh ones over the same commits: "
            f"{figures['follower_us_per_order_runs']} us of thread CPU per order (min "
            f"{figures['follower_us_per_order_min']}, median "
            f"{figures['follower_us_per_order_median']}); {figures['follower_alerts']} alerts, "
            f"digest {figures['follower_alerts_digest']}"
        )
        for row in figures.get("follower_profile", [])[:15]:
            print(f"  {row['own_us_per_order']:>8} us own {row['cumulative_us_per_order']:>8} "
                  f"cum {row['calls_per_order']:>6}/order  {row['function']}")  # fmt: skip
    if args.no_profile:
        benchkit.write(result, args.output)
        return result
    print("profiled main thread, by stage (cumulative):")
    for stage, us in figures["stages_cumulative_us_per_order"].items():
        print(f"  {stage:<30} {us:>8} us/order")
    print("profiled main thread, by group:")
    for group, us in figures["groups_us_per_order"].items():
        print(f"  {group:<8} {us:>8} us/order")
    for row in figures["hottest"][:15]:
        print(f"  {row['own_us_per_order']:>8} us own  {row['calls_per_order']:>6}/order  "
              f"{row['function']}")  # fmt: skip
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    _tune_collector()  # the process's own setting, not a caller's (tests call main)
    main(sys.argv[1:])
