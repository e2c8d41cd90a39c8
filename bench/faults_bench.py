"""Liveness under two peer faults, on a devnet of validator processes on 127.0.0.1.

Four validators (EGAT, MEA, PEA, ERC; EGAT holds 10,000 of 33,000 power, so the other
three keep a quorum without it) run as `gridtokenx node start` processes. A load client
(devnet_bench's generator, a peer of MEA, PEA and ERC) offers `--tx-rate` market orders
per second throughout, so blocks carry transactions and peers have something to queue.
This script reads each validator's committed height from its Prometheus endpoint every
0.1 s (served from its own thread, so a busy or blocked event loop does not delay the
reading) and runs three phases one after the other:

1. normal: nothing is wrong, for `--normal-s` seconds;
2. rogue: a peer that completes the handshake and then never reads again (reading paused,
   a 4 KiB receive buffer) is connected to every validator for `--rogue-s` seconds; when a
   validator drops it, it connects again at once with a new key, as an attacker would;
3. normal again, for `--normal-s` seconds;
4. paused: EGAT is stopped with SIGSTOP for `--pause-s` seconds (its kernel still accepts
   data until its receive buffers fill, then its peers' sends to it block), then
   continued with SIGCONT and given `--recover-s` seconds to catch up.

For each phase it prints the chain's blocks per second (the highest height any running
validator reached), the longest stall (the longest wait between two commits), the orders
committed per second and the load averages of the machine, and writes
bench/results/faults.json.

    python bench/faults_bench.py [--tx-rate 150] [--block-ms 100] [--pause-s 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import benchkit
from devnet_bench import Generator
from gridtokenx.devnet.homes import devnet_genesis, init_devnet
from gridtokenx.devnet.processes import free_base_port
from gridtokenx.ledger import genesis
from gridtokenx.node import keystore
from gridtokenx.node.home import Config, read_config
from gridtokenx.wire import tx
from workload import MarketLoad

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/
from tests.p2p.rogues import NeverReading  # the same rogue the tests use

RESULTS = Path(__file__).parent / "results" / "faults.json"
CHAIN = "gridtokenx-bench-faults"
POLL_S = 0.1
BATCH_EVERY_S = 0.05
_HEIGHT = re.compile(rb"^gridtokenx_height (\S+)$", re.MULTILINE)


def _height(metrics_port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=0.5) as r:
            found = _HEIGHT.search(r.read())
    except OSError:
        return None
    return int(float(found.group(1))) if found else None


class Recorder:
    """The highest height each validator reported, sampled every POLL_S seconds."""

    def __init__(self, metrics_ports: list[int]) -> None:
        self.ports = metrics_ports
        self.samples: list[tuple[float, list[int | None]]] = []

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            heights = await asyncio.gather(*(asyncio.to_thread(_height, p) for p in self.ports))
            self.samples.append((time.monotonic(), list(heights)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)

    def phase(self, start: float, end: float, among: list[int]) -> dict[str, object]:
        """Blocks/s and the longest stall of the chain (the highest height any validator in
        `among` reported) between two instants."""
        points = []
        for at, heights in self.samples:
            if start <= at <= end:
                known = [h for i, h in enumerate(heights) if i in among and h is not None]
                if known:
                    points.append((at, max(known)))
        if len(points) < 2:
            return {"blocks_per_s": None, "longest_stall_s": None}
        stall, last_change, last_height = 0.0, points[0][0], points[0][1]
        for at, height in points[1:]:
            if height > last_height:
                stall = max(stall, at - last_change)
                last_change, last_height = at, height
        stall = max(stall, points[-1][0] - last_change)
        span = points[-1][0] - points[0][0]
        return {
            "blocks": points[-1][1] - points[0][1],
            "seconds": round(span, 1),
            "blocks_per_s": round((points[-1][1] - points[0][1]) / span, 2),
            "longest_stall_s": round(stall, 2),
        }


async def rogue(port: int, stop: asyncio.Event, counts: dict[int, int]) -> None:
    """Keep one never-reading connection open at `port` until `stop`, reconnecting with a
    new key whenever the validator drops it."""
    held: NeverReading | None = None
    while not stop.is_set():
        if held is None or not held.connected():
            if held is not None:
                held.close()
                held = None
            with contextlib.suppress(OSError, ConnectionError, TimeoutError, EOFError):
                held = await NeverReading.connect(port)
                counts[port] = counts.get(port, 0) + 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    if held is not None:
        held.close()


async def offer(gen: Generator, orders: list[bytes], rate: int, stop: asyncio.Event) -> None:
    """Offer `rate` orders per second, round-robin over the generator's validators."""
    per_batch = max(1, round(rate * BATCH_EVERY_S))
    started = time.monotonic()
    for turn, i in enumerate(range(0, len(orders), per_batch)):
        if stop.is_set():
            return
        if (delay := started + turn * BATCH_EVERY_S - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        await gen.send(orders[i : i + per_batch], turn)


async def _prepare(phases: list[list[bytes]], homes: list[Path]) -> Generator:
    """The load client, connected to every validator but EGAT, with the market set up.
    Everything is signed before it connects: signing blocks this loop, and a peer that
    answers no ping for long enough is rightly dropped."""
    gen = Generator()
    ids = [keystore.load_key(h / "node_key.json", "", allow_insecure=True).address for h in homes]
    await gen.connect([read_config(h).listen_port for h in homes[1:]], ids[1:])
    for number, phase in enumerate(phases):
        for turn, i in enumerate(range(0, len(phase), 500)):
            await gen.send(phase[i : i + 500], turn)
        if not await gen.wait_final([tx.hash_of(r) for r in phase], 120):
            raise RuntimeError(f"setup phase {number + 1} did not commit in 120 s")
    return gen


def _committed(gen: Generator, start: float, end: float) -> float:
    """Orders per second that became final (a COMMIT reached the generator) in a window,
    on time.monotonic (the generator stamps perf_counter: the two differ by a constant)."""
    shift = time.perf_counter() - time.monotonic()
    count = sum(1 for at in gen.final_at.values() if start + shift <= at <= end + shift)
    return round(count / max(1e-9, end - start), 1)


def _start(home: Path) -> subprocess.Popen[bytes]:
    with open(home / "node.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gridtokenx", "node", "start", "--home", str(home)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class _Phases:
    """Runs the phases one after the other and keeps each one's figures."""

    def __init__(self, recorder: Recorder, gen: Generator) -> None:
        self.recorder, self.gen = recorder, gen
        self.figures: dict[str, object] = {}

    async def measure(self, name: str, seconds: float, among: list[int], **extra: object) -> None:
        start = time.monotonic()
        await asyncio.sleep(seconds)
        end = time.monotonic()
        self.figures[name] = {
            **self.recorder.phase(start, end, among),
            "orders_per_s": _committed(self.gen, start, end),
            **extra,
            "load": _load(),
        }

    async def rogues(self, args: argparse.Namespace, configs: list[Config]) -> None:
        stop = asyncio.Event()
        counts: dict[int, int] = {}
        tasks = [asyncio.create_task(rogue(c.listen_port, stop, counts)) for c in configs]
        try:
            await self.measure("rogue_at_every_validator", args.rogue_s, [0, 1, 2, 3])
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        self.figures["rogue_connections"] = sum(counts.values())

    async def pause(self, args: argparse.Namespace, egat: subprocess.Popen[bytes]) -> None:
        egat.send_signal(signal.SIGSTOP)
        try:
            await self.measure("egat_paused", args.pause_s, [1, 2, 3])
        finally:
            egat.send_signal(signal.SIGCONT)
        await asyncio.sleep(args.recover_s)
        last = self.recorder.samples[-1][1]
        known = [h for h in last if h is not None]
        behind = None if last[0] is None or not known else max(known) - last[0]
        self.figures["egat_behind_after_recovery"] = behind


async def _ready(recorder: Recorder) -> None:
    deadline = time.monotonic() + 60
    while not all(h is not None and h >= 5 for h in (recorder.samples or [(0, [None])])[-1][1]):
        if time.monotonic() > deadline:
            raise RuntimeError("the devnet did not reach height 5 in 60 s")
        await asyncio.sleep(0.2)


async def _phases(
    args: argparse.Namespace, procs: list[subprocess.Popen[bytes]], homes: list[Path]
) -> dict[str, object]:
    """normal, rogue, normal again, paused: each perturbation next to a normal phase (the
    market's work per block grows as the day's orders pile up, so phases far apart differ
    for that reason alone)."""
    configs = [read_config(h) for h in homes]
    recorder = Recorder([c.metrics_port for c in configs])
    done = asyncio.Event()
    polling = asyncio.create_task(recorder.run(done))
    gen: Generator | None = None
    offering: asyncio.Task[None] | None = None
    try:
        await _ready(recorder)
        genesis_time = genesis.decode((homes[0] / "genesis.json").read_bytes()).genesis_time
        load = MarketLoad(devnet_genesis(CHAIN, genesis_time), int(time.time()), 300)
        seconds = 2 * args.normal_s + args.rogue_s + args.pause_s + args.recover_s + 30
        made = time.monotonic()
        setup = load.setup()
        orders = list(load.orders(int(args.tx_rate * seconds)))
        signed_in = round(time.monotonic() - made, 1)
        gen = await _prepare(setup, homes)
        offering = asyncio.create_task(offer(gen, orders, args.tx_rate, done))
        phases = _Phases(recorder, gen)
        phases.figures["orders_signed_in_s"] = signed_in
        await phases.measure("normal", args.normal_s, [0, 1, 2, 3])
        await phases.rogues(args, configs)
        await phases.measure("normal_again", args.normal_s, [0, 1, 2, 3])
        await phases.pause(args, procs[0])
    finally:
        done.set()
        await polling
        if offering is not None:
            await offering
        if gen is not None:
            await gen.close()
    phases.figures["validators_alive_at_end"] = [p.poll() is None for p in procs]
    return phases.figures


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tx-rate", type=int, default=150, help="orders offered per second")
    parser.add_argument("--block-ms", type=int, default=100)
    parser.add_argument("--propose-ms", type=int, default=1000)
    parser.add_argument("--normal-s", type=float, default=30)
    parser.add_argument("--pause-s", type=float, default=100)
    parser.add_argument("--recover-s", type=float, default=15)
    parser.add_argument("--rogue-s", type=float, default=40)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep", type=Path, help="keep the validators' homes here")
    parser.add_argument("--label", default="", help="recorded with the figures (old, new...)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        folder = args.keep or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="gridtokenx-faults-bench-"))
        )
        homes = init_devnet(
            folder,
            CHAIN,
            int(time.time()) - 60,
            free_base_port(4),
            block_ms=args.block_ms,
            propose_ms=args.propose_ms,
        )
        load_before = _load()
        procs = [_start(h) for h in homes]
        try:
            figures = asyncio.run(_phases(args, procs, homes))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGCONT)
                    p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        exits = [p.returncode for p in procs]
    result: dict[str, object] = {
        "benchmark": "faults",
        "label": args.label,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "validators": 4,
        "tx_rate": args.tx_rate,
        "block_ms": args.block_ms,
        "propose_ms": args.propose_ms,
        "pause_s": args.pause_s,
        "load_before": load_before,
        **figures,
        "exit_codes_on_sigterm": exits,
    }
    benchkit.print_figures(result)
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main()
