"""A devnet validator's commit of its own blocks, replayed in process, part by part.

`devnet_bench.py --keep DIR` leaves the validators' homes. This replays one home's blocks
through a fresh `Application` (a temporary store from the home's genesis) as a validator
does: each block checked (`check_block`, its signatures counted as verified), then
committed with its certificate counted as checked. It times each part of the commit on
the committing thread (`time.thread_time`): execution (`blocks._execute`), `State.root`,
`Store.commit_height`, `State.take_changes`, `State.take_tree_writes`, `Mempool.update`,
and the collections that fall inside it (`gc.callbacks`), and prints them per order over
the order heights (blocks of market orders only, the setup left out), beside the same
heights' `execute_cpu_s` from the home's `node.log`: the same blocks over the same state,
in the devnet and in this process (docs/adr/0007, "The commit in the devnet and in
process"). `--ahead K` admits the next K blocks' transactions to the mempool before each
commit, a backlog as a validator under load holds one. The garbage collector is set as
`gridtokenx node start` sets it (`node.collector`).

    python bench/replay_bench.py DIR/egat [--ahead 3] [--output bench/results/replay.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gridtokenx.chain import blocks, mempool
from gridtokenx.chain.application import CERTIFIED, Application
from gridtokenx.ledger import state
from gridtokenx.node import collector
from gridtokenx.node.home import load_genesis
from gridtokenx.storage import store
from gridtokenx.wire import tx

RESULTS = Path(__file__).parent / "results" / "replay.json"
PARTS: tuple[tuple[object, str, str], ...] = (
    (blocks, "_execute", "execute"),
    (state.State, "root", "root"),
    (store.Store, "commit_height", "commit_height"),
    (state.State, "take_changes", "take_changes"),
    (state.State, "take_tree_writes", "take_tree_writes"),
    (mempool.Mempool, "update", "mempool_update"),
)
"""What is timed inside `Application.commit`: (where, attribute, label)."""
COMMITTED = re.compile(r"committed height=(\d+) .*?execute_cpu_s=([\d.]+)")


class _Clock:
    """CPU seconds by part while `on` (one commit at a time, on this thread)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.on = False
        self._gc_started = 0.0

    def timed(self, function: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return function(*args, **kwargs)
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(label, time.thread_time() - started)

        return timed

    def add(self, label: str, seconds: float) -> None:
        self.seconds[label] = self.seconds.get(label, 0.0) + seconds

    def collection(self, phase: str, info: dict[str, int]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._gc_started = time.thread_time()
        else:
            self.add("gc", time.thread_time() - self._gc_started)


@contextmanager
def _timing(clock: _Clock) -> Iterator[None]:
    """The parts wrapped for the replay, and put back after it."""
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in PARTS]
    for owner, name, label in PARTS:
        setattr(owner, name, clock.timed(getattr(owner, name), label))
    gc.callbacks.append(clock.collection)
    try:
        yield
    finally:
        gc.callbacks.remove(clock.collection)
        for owner, name, original in originals:
            setattr(owner, name, original)


def devnet_cpu(home: Path) -> dict[int, float]:
    """Each height's `execute_cpu_s` from the home's `node.log` (empty without one)."""
    log = home / "node.log"
    if not log.exists():
        return {}
    return {int(m[1]): float(m[2]) for m in COMMITTED.finditer(log.read_text())}


def _admit(app: Application[store.Store], raws: list[bytes]) -> None:
    checked = [c for future in app.mempool.precheck(raws) for c in future.result()]
    app.admit(raws, checked)


def replay(home: Path, ahead: int = 0) -> dict[str, Any]:
    """The home's blocks through a fresh application: CPU per order of the commit and its
    parts over the order heights, and the devnet's own figure for those heights."""
    spec = load_genesis(home / "genesis.json")
    with store.Store(home / "data") as source:
        raws = [stored[0] for h in range(1, source.height() + 1)
                if (stored := source.block(h)) is not None]  # fmt: skip
    clock, total, orders, heights = _Clock(), 0.0, 0, []
    collector.tune()
    with tempfile.TemporaryDirectory() as folder, _timing(clock):
        app = store.open_application(spec, Path(folder) / "replay")
        try:
            admitted = 0  # blocks whose transactions went to the mempool ahead
            for height, raw in enumerate(raws, 1):
                while admitted < min(len(raws), height + ahead) and ahead:
                    if txs := list(blocks.decode(raws[admitted]).txs):
                        _admit(app, txs)
                    admitted += 1
                block = blocks.decode(raw)
                if not app.check_block(height, raw, verified=set(app.tx_ids(block))):
                    raise SystemExit(f"block {height} of {home} does not check here")
                market = bool(block.txs) and all(
                    type(tx.decode(raw_tx).tx.body) is tx.PlaceOrder for raw_tx in block.txs
                )
                clock.on, started = market, time.thread_time()
                app.commit(height, raw, (), CERTIFIED)
                clock.on = False
                if market:
                    total += time.thread_time() - started
                    orders += len(block.txs)
                    heights.append(height)
        finally:
            app.close()
    per = 1e6 / max(orders, 1)
    parts = {label: round(clock.seconds.get(label, 0.0) * per, 1) for *_, label in PARTS}
    devnet = devnet_cpu(home)
    figures: dict[str, Any] = {
        "home": str(home),
        "heights": len(raws),
        "order_heights": len(heights),
        "orders": orders,
        "ahead_blocks": ahead,
        "commit_cpu_us_per_order": round(total * per, 1),
        "parts_us_per_order": parts | {"gc": round(clock.seconds.get("gc", 0.0) * per, 1)},
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if devnet and all(h in devnet for h in heights):
        figures["devnet_commit_cpu_us_per_order"] = round(sum(devnet[h] for h in heights) * per, 1)
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path, help="a validator's home kept by devnet_bench")
    parser.add_argument("--ahead", type=int, default=0, help="blocks admitted ahead")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = replay(args.home, args.ahead)
    for name, value in result.items():
        print(f"  {name:34} {value}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
