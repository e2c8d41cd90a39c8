"""Surveillance: recall on injected manipulation, honest participants flagged, and the
detectors' cost per block, over seeded simulated days.

For each seed the in-process market day runs twice: honest, and with every manipulating
agent mixed in (simulator.manipulators). Each day's committed blocks are then fed to the
surveillance engine `--repeats` times, timing every detector. The ground truth is read
from the ledger's records, never from the detectors:

- wash ring: an interval in which the ring's members traded among themselves;
- spoofer: an interval in which it cancelled orders;
- gate marker: an interval in which its (late, IOC) order traded;
- withholder: an interval in which its metered export exceeded what it offered by at
  least 20 kWh while bids in its zone expired unfilled (withholding at scarcity);
- dominant seller: an interval in which it sold at least half of its zone's sold energy.

An instance is caught when an alert of the matching detector names the agent for that
interval. Honest participants flagged are those any alert names (every detector), over
the honest participants of the day. The cost is given per block and per committed
transaction (the tape's share is the whole less the detectors'), and every alert raised
goes into `alerts_digest`, so that two checkouts are compared on cost and on alerts.
The garbage collector is set as `gridtokenx node start` sets it (`node.collector`): with
CPython's defaults its walks over the simulated day's live objects came on top of the
tape's own work (7.5-9.5 us a transaction for the tape at load 2-7, against 4.6-6.9 at
load 7-9 set as a node sets it, 6 December) and varied from run to run.

    python bench/surveillance_bench.py --seeds 3 --participants 300
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import msgspec

import benchkit
from gridtokenx.ledger import chain_info, metering
from gridtokenx.ledger.market import queries
from gridtokenx.ledger.market.records import OrderStatus
from gridtokenx.simulator.day import DayConfig
from gridtokenx.simulator.manipulators import ROLES, Role
from gridtokenx.simulator.surveilled import SurveilledDay, run_surveilled_day
from gridtokenx.surveillance import DETECTORS, Alert, Detector, Surveillance
from gridtokenx.surveillance.engine import DetectorFn
from gridtokenx.surveillance.follow import trade_orders
from gridtokenx.surveillance.scope import Scope
from gridtokenx.surveillance.tape import Tape
from gridtokenx.wire import crypto
from gridtokenx.wire.tx import Side

RESULTS = Path(__file__).parent / "results" / "surveillance_bench.json"
DETECTOR_OF = {
    Role.WASH_RING: Detector.WASH,
    Role.SPOOFER: Detector.SPOOFING,
    Role.GATE_MARKER: Detector.MARKING,
    Role.WITHHOLDER: Detector.WITHHOLDING,
    Role.DOMINANT_SELLER: Detector.MARKET_POWER,
}
DETECTOR_NAMES = frozenset(d.value for d in Detector)
WITHHELD_WH = 20_000
UNMET_WH = 5_000


def ground_truth(run: SurveilledDay) -> dict[Role, dict[int, set[bytes]]]:
    """Per role, the intervals (starts) in which the manipulation took place, with the
    accounts that carried it out: from the ledger's records."""
    state, day = run.sandbox.state, run.day
    cast = day.manipulators.members
    out: dict[Role, dict[int, set[bytes]]] = {role: {} for role in cast}
    orders = list(queries.orders(state))
    readings: dict[tuple[bytes, int], int] = defaultdict(int)
    for meter, start, record in metering.all_readings(state):
        del meter
        readings[record.owner, start] += record.export_wh
    for k in range(day.config.intervals):
        start = day.start(k)
        trades = queries.interval_trades(state, start)
        mine = [o for o in orders if o.interval_start == start]
        for role, members in cast.items():
            who = {m.key.address for m in members}
            zone = members[0].zone
            hit = False
            if role is Role.WASH_RING:
                hit = any(t.buyer in who and t.seller in who for t in trades)
            elif role is Role.SPOOFER:
                hit = any(o.owner in who and o.status is OrderStatus.CANCELLED for o in mine)
            elif role is Role.GATE_MARKER:
                hit = any(who & {t.buyer, t.seller} for t in trades)
            elif role is Role.WITHHOLDER:
                offered = sum(o.quantity_wh for o in mine if o.owner in who and o.side is Side.SELL)
                export = sum(readings[a, start] for a in who)
                unmet = sum(o.remaining_wh for o in mine if o.side is Side.BUY and o.zone == zone
                            and o.status is OrderStatus.EXPIRED)  # fmt: skip
                hit = export - offered >= WITHHELD_WH and unmet >= UNMET_WH
            else:
                sold = [t for t in trades if t.seller_zone == zone]
                total = sum(t.quantity_wh for t in sold)
                own = sum(t.quantity_wh for t in sold if t.seller in who)
                hit = total > 0 and own * 2 >= total
            if hit:
                out[role][start] = who
    return out


def _timed(name: str, fn: DetectorFn, spent: dict[str, float]) -> DetectorFn:
    def run_one(tape: Tape, scope: Scope, start: int) -> list[Alert]:
        began = time.perf_counter()
        try:
            return fn(tape, scope, start)
        finally:
            spent[name] += time.perf_counter() - began

    return run_one


def surveil(run: SurveilledDay, repeats: int) -> tuple[list[Alert], dict[str, float], int]:
    """Feed the day's blocks to a fresh engine `repeats` times; the alerts of the last run,
    the median seconds per detector (and for following the blocks), and the block count."""
    state = run.sandbox.state
    timings: dict[str, list[float]] = defaultdict(list)
    alerts: list[Alert] = []
    for _ in range(repeats):
        spent: dict[str, float] = defaultdict(float)
        detectors = {d: _timed(d.value, fn, spent) for d, fn in DETECTORS.items()}
        engine = Surveillance(chain_info.params(state), trade_orders(state), None, detectors)
        began = time.perf_counter()
        for block in run.blocks:
            engine.observe(block)
        total = time.perf_counter() - began
        spent["all (tape and detectors)"] = total
        for name, seconds in spent.items():
            timings[name].append(seconds)
        alerts = engine.alerts
    return alerts, {n: statistics.median(v) for n, v in timings.items()}, len(run.blocks)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--participants", type=int, default=300)
    parser.add_argument("--intervals", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    instances: dict[str, int] = defaultdict(int)
    caught: dict[str, int] = defaultdict(int)
    honest_flagged: dict[str, dict[str, int]] = {"honest_day": defaultdict(int),
                                                 "manipulated_day": defaultdict(int)}  # fmt: skip
    honest_total = {"honest_day": 0, "manipulated_day": 0}
    cost: dict[str, list[float]] = defaultdict(list)
    per_tx: dict[str, list[float]] = defaultdict(list)
    digest = hashlib.sha256()  # every alert of every day, in order: two checkouts compare
    blocks_total = txs_total = 0
    for seed in range(1, args.seeds + 1):
        for label, roles in (("honest_day", ()), ("manipulated_day", tuple(ROLES))):
            config = DayConfig(seed=seed, participants=args.participants,
                               intervals=args.intervals, manipulators=roles)  # fmt: skip
            run = run_surveilled_day(config)
            alerts, seconds, blocks = surveil(run, args.repeats)
            blocks_total += blocks
            txs = sum(len(b.txs) for b in run.blocks)
            txs_total += txs
            for name, s in seconds.items():
                cost[name].append(s / blocks)
                per_tx[name].append(s / txs)
            per_tx["tape (all less the detectors)"].append(
                (seconds["all (tape and detectors)"]
                 - sum(v for n, v in seconds.items() if n in DETECTOR_NAMES)) / txs
            )  # fmt: skip
            for a in alerts:
                digest.update(msgspec.msgpack.encode(a))
            cast = {m.key.address for m in run.day.manipulators.all}
            honest = {crypto.address_to_text(m.key.address) for m in run.day.population.members
                      if m.key.address not in cast}  # fmt: skip
            honest_total[label] += len(honest)
            per_detector: dict[str, set[str]] = defaultdict(set)
            for a in alerts:
                per_detector[a.detector.value] |= honest & set(a.accounts)
            per_detector["any"] = set().union(*per_detector.values()) if per_detector else set()
            for name, found in per_detector.items():
                honest_flagged[label][name] += len(found)
            for role, truth in ground_truth(run).items():
                wanted = DETECTOR_OF[role]
                for start, who in truth.items():
                    names = {crypto.address_to_text(a) for a in who}
                    instances[role.value] += 1
                    caught[role.value] += any(
                        a.detector is wanted and a.interval == start and names & set(a.accounts)
                        for a in alerts
                    )
    recall = {r: round(100 * caught[r] / instances[r], 1) if instances[r] else None
              for r in instances}  # fmt: skip
    flagged_pct = {
        label: {n: round(100 * v / honest_total[label], 2) for n, v in sorted(counts.items())}
        for label, counts in honest_flagged.items()
    }
    result: dict[str, object] = {
        "seeds": args.seeds,
        "participants": args.participants,
        "intervals": args.intervals,
        "repeats": args.repeats,
        "instances": dict(instances),
        "caught": dict(caught),
        "recall_percent": recall,
        "honest_participants_flagged_percent": flagged_pct,
        "honest_participants_per_day": honest_total["honest_day"] // args.seeds,
        "cost_ms_per_block_median": {
            n: round(1000 * statistics.median(v), 3) for n, v in sorted(cost.items())
        },
        "cost_us_per_transaction_median": {
            n: round(1e6 * statistics.median(v), 2) for n, v in sorted(per_tx.items())
        },
        "blocks": blocks_total,
        "transactions": txs_total,
        "collector_thresholds": list(gc.get_threshold()),
        "alerts_digest": digest.hexdigest()[:16],
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    benchkit.print_figures(result)
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    from gridtokenx.node import collector

    collector.tune()  # the process's own setting, not a caller's (tests call main)
    main()
