"""The figures of a run: how available the chain was, how fast acknowledged transactions
became final, and what each perturbation did, from the harness's observations (times on
the run clock: seconds from the load's start) and the checker's verdict."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gridtokenx.devnet.faults.checker import Verdict
from gridtokenx.devnet.faults.cluster import Crash
from gridtokenx.devnet.faults.load import Sent
from gridtokenx.devnet.faults.scenario import Fault, Scenario


@dataclass
class FaultNote:
    fault: Fault
    began: float | None = None
    ended: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Observed:
    """Everything the harness saw during the run."""

    window: float  # seconds from the load's start to the end of the last fault
    commits: dict[int, float]  # height -> when some node first reported it
    final_at: dict[str, float]  # tx hash -> when its block was first seen
    sent: dict[str, Sent]
    faults: list[FaultNote]
    crashes: list[Crash]
    pace_lag_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    network_events: dict[str, int] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The smallest value with at least `q` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def gaps(times: Sequence[float], start: float, end: float) -> list[tuple[float, float]]:
    """(from, length) of every interval without a commit in [start, end]."""
    inside = sorted(t for t in times if start <= t <= end)
    edges = [start, *inside, end]
    return [(a, b - a) for a, b in itertools.pairwise(edges)]


def timeline(times: Sequence[float], seconds: float) -> list[int]:
    """Commits in each whole second of [0, seconds)."""
    counts = [0] * max(0, math.ceil(seconds))
    for t in times:
        if 0 <= t < len(counts):
            counts[int(t)] += 1
    return counts


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _finality(obs: Observed, hashes: list[str], target: float) -> dict[str, Any]:
    """Finality of acknowledged `hashes`, from the submission a node acknowledged (the
    chain's figure) and from the first attempt (what a client that first tried a node
    that did not answer waited); one never seen final counts as missing the target."""
    final = [h for h in hashes if h in obs.final_at]
    latencies = [obs.final_at[h] - (obs.sent[h].sent or obs.sent[h].submitted) for h in final]
    first = [obs.final_at[h] - obs.sent[h].submitted for h in final]
    within = sum(1 for v in latencies if v <= target)
    return {
        "final_seen": len(latencies),
        "finality_p50_s": _rounded(percentile(latencies, 0.5)),
        "finality_p99_s": _rounded(percentile(latencies, 0.99)),
        "finality_max_s": _rounded(max(latencies, default=None)),
        "final_within_target_fraction": round(within / len(hashes), 6) if hashes else None,
        "from_first_attempt_p99_s": _rounded(percentile(first, 0.99)),
    }


def _acked_load(obs: Observed) -> list[tuple[str, Sent]]:
    return [(h, s) for h, s in obs.sent.items() if s.phase == "load" and s.acked is not None]


def _fault_rows(obs: Observed, times: list[float], target: float) -> list[dict[str, Any]]:
    rows = []
    all_gaps = gaps(times, 0.0, obs.window)
    for note in obs.faults:
        start = note.began if note.began is not None else note.fault.at
        end = note.ended if note.ended is not None else note.fault.end
        touching = [
            length for at, length in all_gaps if at <= end + target and at + length >= start
        ]
        during = [h for h, s in _acked_load(obs) if start <= s.submitted <= end]
        # Acknowledged with the target's time to spare before the fault ended, and final
        # only after it (or never): held back by the fault, e.g. at a node cut off.
        held = [h for h in during if obs.sent[h].submitted <= end - target
                and obs.final_at.get(h, math.inf) > end]  # fmt: skip
        rows.append({
            "fault": note.fault.label(),
            "began": _rounded(note.began), "ended": _rounded(note.ended),
            "commits": sum(1 for t in times if start <= t <= end),
            "longest_stall_s": _rounded(max(touching, default=0.0)),
            "acknowledged_during": len(during),
            "final_only_after_the_fault": len(held),
            **{k: v for k, v in _finality(obs, during, target).items() if k != "final_seen"},
            "notes": note.notes,
        })  # fmt: skip
    return rows


def summarize(scenario: Scenario, obs: Observed, verdict: Verdict) -> dict[str, Any]:
    """The run as one JSON-able dict (the order is the order a reader wants)."""
    target = scenario.finality_target_s
    times = sorted(obs.commits.values())
    window_gaps = gaps(times, 0.0, obs.window)
    per_second = timeline(times, obs.window)
    longest = max(window_gaps, key=lambda g: g[1], default=(0.0, 0.0))
    load_acked = [h for h, _ in _acked_load(obs)]
    lost = len(verdict.lost)
    outcomes = Counter(s.outcome.split(":")[0] for s in obs.sent.values() if s.phase == "load")
    refused = Counter(s.outcome[8:] for s in obs.sent.values() if s.outcome.startswith("refused:"))
    return {
        "scenario": scenario.name,
        "safe": verdict.safe,
        "nothing_lost": not verdict.lost,
        "window_s": round(obs.window, 1),
        "heights": verdict.heights,
        "checked_height": verdict.checked_height,
        "state_root": verdict.state_root,
        "seconds_with_commit_fraction": (
            round(sum(1 for c in per_second if c) / len(per_second), 4) if per_second else None
        ),
        "longest_stall_s": round(longest[1], 3),
        "longest_stall_from_s": round(longest[0], 3),
        "stalls_over_target": [(round(a, 1), round(n, 2)) for a, n in window_gaps if n > target],
        "submitted": sum(1 for s in obs.sent.values() if s.phase == "load"),
        "acknowledged": len(load_acked),
        "acknowledged_with_setup": len(verdict.committed) + len(verdict.dropped) + lost,
        "committed": len(verdict.committed),
        "dropped": len(verdict.dropped),
        "dropped_reasons": dict(Counter(verdict.dropped.values())),
        "lost": lost,
        "lost_examples": [
            {"tx": h, "node": obs.sent[h].node, "status": st}
            for h, st in list(verdict.lost.items())[:10]
        ],
        "refused": dict(refused),
        "refused_examples": [
            {"tx": h, "node": s.node, "code": s.outcome[8:], "at_s": round(s.sent or 0.0, 3)}
            for h, s in obs.sent.items()
            if s.outcome.startswith("refused:")
        ][:10],
        "unsent": outcomes.get("unsent", 0),
        "committed_unacknowledged": outcomes.get("committed_unacknowledged", 0),
        **_finality(obs, load_acked, target),
        "finality_target_s": target,
        "violations": verdict.violations,
        "crashes": [asdict(c) for c in obs.crashes],
        "faults": _fault_rows(obs, times, target),
        "generator_errors": obs.errors,
        "network_events": obs.network_events,
        "pace_lag_max_s": round(obs.pace_lag_s, 3),
        "commits_per_second": per_second,
    }


def lines(report: dict[str, Any]) -> list[str]:
    """The figures a person reads first, one per line."""
    out = [
        f"scenario {report['scenario']}: safe={report['safe']} "
        f"nothing_lost={report['nothing_lost']} window {report['window_s']} s",
        f"  heights {report['heights']} (checked to {report['checked_height']})",
        f"  seconds with a commit {report['seconds_with_commit_fraction']}, longest stall "
        f"{report['longest_stall_s']} s from {report['longest_stall_from_s']} s",
        f"  acknowledged {report['acknowledged']} of {report['submitted']} submitted; "
        f"committed {report['committed']}, dropped {report['dropped']} "
        f"{report['dropped_reasons']}, lost {report['lost']}, refused {report['refused']}",
        f"  finality p50 {report['finality_p50_s']} s, p99 {report['finality_p99_s']} s, "
        f"max {report['finality_max_s']} s; within {report['finality_target_s']} s: "
        f"{report['final_within_target_fraction']}",
    ]
    out += [f"  refused at {r['at_s']} s by {r['node']}: {r['code']} {r['tx'][:16]}"
            for r in report["refused_examples"]]  # fmt: skip
    out += [f"  VIOLATION {v}" for v in report["violations"]]
    out += [f"  CRASH {c['node']} at {c['at']:.1f} s (exit {c['code']})" for c in report["crashes"]]
    for row in report["faults"]:
        out.append(f"  {row['fault']}: commits {row['commits']}, longest stall "
                   f"{row['longest_stall_s']} s, finality p99 {row['finality_p99_s']} s"
                   + "".join(f"; {n}" for n in row["notes"]))  # fmt: skip
    return out
