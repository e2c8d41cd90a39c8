"""What every benchmark here shares: the Ed25519 baseline measured in the same run, and
writing the result as JSON next to a printed table."""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import nacl.signing

from gridtokenx.devnet.faults.report import percentile
from gridtokenx.devnet.processes import terminate_as_interrupt
from gridtokenx.ledger import bucket_tree
from gridtokenx.wire import crypto, tx

TREE_PYTHON = "GRIDTOKENX_TREE_PYTHON"
"""Set (to anything) in a benchmark's environment: the state root's tree hashes in Python
(the reference) even where its compiled loops were built, to pair the two in one sitting."""


def tree_hashing() -> str:
    """Which of the tree's loops this process runs ("compiled" or "python"), after
    `TREE_PYTHON`; benchmarks record it beside their figures."""
    if os.environ.get(TREE_PYTHON):
        bucket_tree.use_compiled(False)
    return "compiled" if bucket_tree.compiled_in_use() else "python"


def raw_verify_rate(txs: Iterable[tx.SignedTransaction]) -> float:
    """Ed25519 verifications per second through PyNaCl alone, over the same signed bytes:
    the baseline that makes a figure mean something on a noisy shared machine."""
    items = [(nacl.signing.VerifyKey(s.tx.sender), s.tx.signing_bytes(), s.signature) for s in txs]
    started = time.perf_counter()
    for vk, message, signature in items:
        vk.verify(message, signature)
    return len(items) / (time.perf_counter() - started)


def node_verify_rate(txs: Iterable[tx.SignedTransaction]) -> float:
    """Verifications per second through the node's own verifier (`crypto.verify`, ADR
    0008) over the same signed bytes: what a validator pays per transaction, read beside
    `raw_verify_rate`, the machine's baseline since the first benchmarks."""
    items = [(s.tx.sender, s.tx.signing_bytes(), s.signature) for s in txs]
    started = time.perf_counter()
    if not all(crypto.verify(key, message, signature) for key, message, signature in items):
        raise ValueError("a sample transaction does not verify")
    return len(items) / (time.perf_counter() - started)


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest rank (of 20 values the 99th percentile is the slowest), as every bench here
    reports its p99; NaN when there are no values."""
    value = percentile(values, q)
    return math.nan if value is None else value


def quantile_ms(seconds: Sequence[float], q: float) -> float | None:
    """A latency quantile (`quantile`) in milliseconds, None when nothing was timed."""
    return round(quantile(seconds, q) * 1000, 1) if seconds else None


def print_figures(result: dict[str, object]) -> None:
    width = max(len(name) for name in result)
    for name, value in result.items():
        print(f"  {name:<{width}}  {value}")


def write(result: dict[str, object], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {output}")


def summarize(runs: list[dict[str, object]]) -> dict[str, object]:
    """Repeats of one benchmark as one result: every numeric figure as its minimum and
    median over the runs (`name_min`, `name_median`; a busy neighbour only ever slows a
    run, so the minimum is the least disturbed and the median the typical), the other
    figures from the last run, and every run's figures under `runs`. One run is its own
    result: a minimum and a median of one figure would only repeat it."""
    if not runs:
        raise ValueError("no runs to summarize")
    if len(runs) == 1:
        return runs[0]
    out: dict[str, object] = {}
    for name, value in runs[-1].items():
        values = [r.get(name) for r in runs]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) == len(runs) and len(runs) > 1:
            out[f"{name}_min"] = min(numbers)
            out[f"{name}_median"] = statistics.median(numbers)
        else:
            out[name] = value
    out["repeats"] = len(runs)
    out["runs"] = runs
    return out


INTERRUPTED = 130
"""A shell's exit status for a run ended by Ctrl-C (128 + SIGINT)."""


def run_main(main: Callable[[list[str]], object], argv: list[str]) -> None:
    """A benchmark that starts processes, as a script: a `kill` stops them as Ctrl-C does
    (rather than orphaning them), and either says so and exits INTERRUPTED. Ending with
    status 0 and no figures, as these benchmarks did, read as a run that measured
    nothing wrong."""
    try:
        with terminate_as_interrupt():
            main(argv)
    except KeyboardInterrupt:
        print("interrupted: its processes were stopped and no figures were written",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(INTERRUPTED) from None
