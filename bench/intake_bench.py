"""A validator's main-thread CPU per transaction on its way in: crossing orders pushed
into one real node (its API on 127.0.0.1, its mempool, its RocksDB store) as REST batches
and as peer transaction batches, with no consensus running, so nothing but the intake
shares the loop's thread.

The node runs on its own event loop in a thread (uvloop when installed, as `gridtokenx
node start` runs it), built but not started: no heights, so no commit competes with the
intake for the thread or the GIL, and the mempool's back-pressure is lifted (its backlog
floor set above what is sent) so every order is admitted. The REST path is timed from
the loop thread's CPU clock (`time.thread_time`) around N orders posted as batches of
500 over one kept-alive connection by this thread (uvicorn, FastAPI's request parsing,
`BatchIn`, the route, `Node.admit`, the pending save, the answer); the peer path around N
more handed to `Node._receive_txs` as a peer's batches and admitted by the node's ingest
loop (`recent`, `_inbox`, `Node.admit`, `_pass_on`, the relay; no frames: gossip has no
peers here, and a batch `Gossip.forward` cannot find in the mesh is rebroadcast to none).
Signature verifies run in the mempool's threads and are not in these figures: the raw
Ed25519 rate of the same run stands beside them as the machine's speed.

    python bench/intake_bench.py [--orders 6000] [--rounds 3] [--peer-batch 100] [--profile]

`--profile` runs cProfile on the loop's thread during the measured phases and prints
the hottest functions (their own time, and cumulative) per order.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import http.client
import os
import pstats
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import orjson

import benchkit
from gridtokenx.api import ApiServer, ApiSettings, serve
from gridtokenx.consensus.core import Timeouts
from gridtokenx.devnet.homes import devnet_genesis
from gridtokenx.ledger import genesis
from gridtokenx.node.runtime import Node
from gridtokenx.storage.store import open_application
from gridtokenx.wire import codec, tx
from workload import MarketLoad

RESULTS = Path(__file__).parent / "results" / "intake.json"
CHAIN = "gridtokenx-intake"
API_BATCH = 500
BATCH_PATH = "/api/v1/txs/batch"
PEER = bytes(32)  # the peer the batches come from (no connection: nothing is sent back)
T = TypeVar("T")


class Harness:
    """One node on a loop in a background thread; `call` runs a coroutine there."""

    def __init__(self, folder: Path, participants: int) -> None:
        self.folder = folder
        self.now = int(time.time())
        self.spec = devnet_genesis(CHAIN, self.now - 60)
        self.load = MarketLoad(self.spec, self.now, accounts_per_side=participants // 2)
        self.setup = self.load.setup()
        self.loop = _new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.node: Node | None = None
        self.api: ApiServer | None = None
        self.profile: cProfile.Profile | None = None

    def call(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float = 600) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(make(), self.loop)
        return future.result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.call(self._start)

    async def _start(self) -> None:
        app = open_application(self.spec, self.folder / "node")
        egat = genesis.dev_keys()["EGAT"]
        for height, phase in enumerate(self.setup, start=1):  # committed here
            checked = [c for f in app.mempool.precheck(phase) for c in f.result()]
            refused = [a for a in app.admit(phase, checked) if not a.accepted]
            if refused:
                raise SystemExit(f"setup refused: {refused[0].code} {refused[0].message}")
            app.commit(height, app.build_block(height, self.now, egat.address), ())
            if len(app.mempool):
                raise SystemExit("the setup did not fit in one block per phase")
        app.mempool.min_backlog = 10**9  # no back-pressure: every order is admitted
        app.mempool.max_txs = 10**7
        self.node = Node(egat, app, Timeouts(60_000, 60_000, 60_000), clock=lambda: self.now)
        settings = ApiSettings(rate_per_second=1e9, rate_burst=1e9, max_batch=1_000)
        self.api = await serve(self.node, settings)
        asyncio.get_running_loop().create_task(self.node._ingest_loop())

    def stop(self) -> None:
        async def _stop() -> None:
            if self.api is not None:
                await self.api.stop()
            if self.node is not None:
                self.node.halted = "bench over"
                self.node._inbox_ready.set()
                self.node.app.close()

        try:
            self.call(_stop, 60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)

    # --- measured phases -------------------------------------------------------------------
    def loop_cpu(self) -> float:
        async def read() -> float:
            return time.thread_time()

        return self.call(read)

    def profiling(self, on: bool) -> None:
        async def switch() -> None:
            if on:
                self.profile = self.profile or cProfile.Profile()
                self.profile.enable()
            elif self.profile is not None:
                self.profile.disable()

        self.call(switch)

    def rest(self, orders: list[bytes]) -> float:
        """Loop-thread CPU seconds for `orders` posted in batches of API_BATCH."""
        assert self.api is not None and self.node is not None
        bodies = [orjson.dumps({"txs": [r.hex() for r in orders[i : i + API_BATCH]],
                                "encoding": "hex"})
                  for i in range(0, len(orders), API_BATCH)]  # fmt: skip
        connection = http.client.HTTPConnection("127.0.0.1", self.api.port, timeout=120)
        held = len(self.node.app.mempool)
        try:
            started = self.loop_cpu()
            for body in bodies:
                connection.request("POST", BATCH_PATH, body,
                                   {"Content-Type": "application/json"})  # fmt: skip
                answer = connection.getresponse()
                results = orjson.loads(answer.read())["results"]
                if answer.status != 200 or not all(r["accepted"] for r in results):
                    refused = [r for r in results if not r["accepted"]]
                    raise SystemExit(f"REST: {answer.status}, refused {refused[:1]}")
            used = self.loop_cpu() - started
        finally:
            connection.close()
        if len(self.node.app.mempool) != held + len(orders):
            raise SystemExit("REST: not every order was admitted")
        return used

    def peers(self, orders: list[bytes], batch: int) -> float:
        """Loop-thread CPU seconds for `orders` arriving as a peer's batches of `batch`."""
        node = self.node
        assert node is not None
        payloads = [codec.encode(orders[i : i + batch]) for i in range(0, len(orders), batch)]
        goal = len(node.app.mempool) + len(orders)

        async def arrive() -> None:
            for payload in payloads:
                if not await node._receive_txs(payload, PEER):
                    raise SystemExit("a peer batch was refused")
                await asyncio.sleep(0)
            while len(node.app.mempool) < goal:
                await asyncio.sleep(0.001)

        started = self.loop_cpu()
        self.call(arrive)
        return self.loop_cpu() - started


def _tune_collector() -> None:
    """The cyclic collector as `gridtokenx node start` sets it (`node.collector`), so the
    figures are what a node's process pays; CPython's defaults on a checkout without it."""
    try:
        from gridtokenx.node import collector
    except ImportError:
        return
    collector.tune()


class _Collections:
    """CPU seconds the cyclic collector took on the node's thread (`gc.callbacks`): part
    of the figures above, reported beside them because it depends on the whole process's
    objects and on when a collection falls, not on the intake's own code alone."""

    def __init__(self, thread: threading.Thread) -> None:
        self.seconds = 0.0
        self._ident = thread.ident
        self._started = 0.0
        gc.callbacks.append(self._on_collect)

    def _on_collect(self, phase: str, info: dict[str, int]) -> None:
        if threading.get_ident() != self._ident:
            return
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.seconds += time.thread_time() - self._started

    def close(self) -> None:
        gc.callbacks.remove(self._on_collect)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _hottest(profile: cProfile.Profile, per: float, top: int) -> list[dict[str, object]]:
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    rows = sorted(((own, calls, cum, where) for where, (_, calls, own, cum, _) in stats.items()),
                  reverse=True)  # fmt: skip
    return [
        {
            "function": f"{Path(file).name}:{line}({name})",
            "own_us": round(own * per, 2),
            "cumulative_us": round(cum * per, 2),
            "calls": round(calls / (1e6 / per), 2),
        }
        for own, calls, cum, (file, line, name) in rows[:top]
    ]


def run(
    orders: int, rounds: int, participants: int, peer_batch: int, profiled: bool
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="intake-") as folder:
        harness = Harness(Path(folder), participants)
        stream = list(harness.load.orders(2 * orders * rounds + API_BATCH))
        harness.start()
        _tune_collector()
        collections = _Collections(harness.thread)
        rest_us: list[float] = []
        peer_us: list[float] = []
        rest_gc_us: list[float] = []
        peer_gc_us: list[float] = []
        try:
            harness.rest(stream[:API_BATCH])  # warm-up, not measured: the first request's
            stream = stream[API_BATCH:]  # imports and caches
            if profiled:
                harness.profiling(True)
            for r in range(rounds):
                part = stream[2 * r * orders : 2 * (r + 1) * orders]
                gc_before = collections.seconds
                rest_us.append(harness.rest(part[:orders]) * 1e6 / orders)
                gc_between = collections.seconds
                peer_us.append(harness.peers(part[orders:], peer_batch) * 1e6 / orders)
                rest_gc_us.append((gc_between - gc_before) * 1e6 / orders)
                peer_gc_us.append((collections.seconds - gc_between) * 1e6 / orders)
            if profiled:
                harness.profiling(False)
        finally:
            collections.close()
            harness.stop()
        sample = [tx.decode(raw) for raw in stream[:1_000]]
        verify_rate = benchkit.raw_verify_rate(sample)
    figures: dict[str, Any] = {
        "orders_per_round_per_path": orders,
        "rounds": rounds,
        "peer_batch": peer_batch,
        "rest_loop_us_per_order": [round(v, 2) for v in rest_us],
        "peer_loop_us_per_order": [round(v, 2) for v in peer_us],
        "rest_min_median": [round(min(rest_us), 2), round(statistics.median(rest_us), 2)],
        "peer_min_median": [round(min(peer_us), 2), round(statistics.median(peer_us), 2)],
        "rest_collector_us_per_order": [round(v, 2) for v in rest_gc_us],
        "peer_collector_us_per_order": [round(v, 2) for v in peer_gc_us],
        "ed25519_verifies_per_s": round(verify_rate),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "profiled": profiled,
    }
    if profiled and harness.profile is not None:
        figures["hottest_per_order"] = _hottest(harness.profile, 1e6 / (2 * orders * rounds), 40)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        harness.profile.dump_stats(RESULTS.with_suffix(".prof"))
    return figures


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=6_000, help="per path per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--participants", type=int, default=600)
    parser.add_argument("--peer-batch", type=int, default=100)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(args.orders, args.rounds, args.participants, args.peer_batch, args.profile)
    if args.profile:
        for row in result["hottest_per_order"]:
            print(f"{row['own_us']:8.2f} {row['cumulative_us']:8.2f} {row['calls']:6.2f}"
                  f"  {row['function']}")  # fmt: skip
    benchkit.print_figures({k: v for k, v in result.items() if k != "hottest_per_order"})
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main()
