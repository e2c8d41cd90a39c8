"""Joining and catching up: how long a new node takes to state-sync a state of `--meters`
meters, and how fast block sync replays blocks of `--tps` transactions, as a multiple of
real time (one block a second).

State sync: the simulator's population generator makes `--meters` participants, each with
a meter, registered through the registry's own handlers (the state a chain with that many
meters holds; signing and executing two million registrations first would measure the
ledger, not sync). The state is stored, certified at height 1 by the devnet validator's
precommit, snapshotted (`storage.snapshots`, timed), and served by two peers over the
encrypted transport on 127.0.0.1; a new node joins with `node.state_sync.join` (connect,
offers, chunks from both peers verified as they arrive, written, the root checked from
its store), then opens its store as `node start` would (timed apart).

Block sync: a real chain of `--blocks` blocks of `--tps` crossing orders each (bench's
`MarketLoad`), built by the application and certified; two nodes serve it and a new node
catches up (`node.block_sync`: several runs in flight from both); the same with one run
in flight from one peer (the way before) for comparison. Each figure with the load
average, as the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import msgspec

sys.path.insert(0, str(Path(__file__).parent))

from benchkit import print_figures, write
from gridtokenx.chain import blocks
from gridtokenx.consensus.core import Timeouts
from gridtokenx.devnet.homes import devnet_genesis
from gridtokenx.ledger import accounts, bucket_tree, chain_info, genesis, registry
from gridtokenx.ledger.context import BlockContext
from gridtokenx.ledger.state import Overlay, State
from gridtokenx.netsim import joining, topology
from gridtokenx.node import state_sync
from gridtokenx.node.block_sync import BlockSync
from gridtokenx.node.runtime import Node
from gridtokenx.p2p.gossip import Gossip, Kind, Outcome
from gridtokenx.simulator.population import KINDS, Member, Population, build_population
from gridtokenx.storage import snapshots
from gridtokenx.storage.store import Store, encode_record, open_application
from gridtokenx.wire import codec, crypto, tx
from gridtokenx.wire.votes import Vote, VoteType, block_id, sign_vote
from workload import MarketLoad

RESULTS = Path(__file__).parent / "results" / "statesync.json"
JOINERS = Path(__file__).parent / "results" / "statesync_joiners.json"
CHAIN = "gridtokenx-statesync-bench"
T0 = 1_767_225_600
EGAT = genesis.dev_keys()["EGAT"]
SPEC = devnet_genesis(CHAIN, T0, ("EGAT",))


def _certificate(height: int, raw: bytes) -> tuple[Vote, ...]:
    vote = Vote(height, 0, VoteType.PRECOMMIT, block_id(raw), EGAT.address)
    return (sign_vote(EGAT, CHAIN, vote),)


def meters_state(meters: int) -> State:
    """The genesis state plus `meters` participants with a meter each, through the
    registry's own handlers (the reference `store_meters` is checked against)."""
    state = genesis.build_state(SPEC)
    view = state.overlay()
    for i, m in enumerate(_population(meters).members):
        _register(view, m)
        if i % 10_000 == 9_999:
            view.commit()
    view.commit()
    return state


def _population(meters: int) -> Population:
    return build_population(meters, "statesync-bench", [z.code for z in SPEC.zones])


_REGISTRAR: Final = {z.code: genesis.dev_keys()[z.distribution_authority].address
                     for z in SPEC.zones}  # fmt: skip
_AUTHORITY: Final = {z.code: z.distribution_authority for z in SPEC.zones}
_CTX: Final = BlockContext(1, T0)


def _register(view: Overlay, m: Member, meter_key: bytes | None = None) -> None:
    """What the two registrations of `m` do, by the registry's handlers."""
    by = _REGISTRAR[m.zone]
    interval = chain_info.params(view).interval_seconds
    registry.register_participant(view, _CTX, by, tx.RegisterParticipant(
        m.key.address, m.zone, KINDS[m.archetype], m.name))  # fmt: skip
    registry.register_meter(view, _CTX, by, tx.RegisterMeter(
        meter_key or m.meter.public_key, m.key.address, m.zone, m.meter_kind,
        m.meter_capacity_w, m.import_register_wh, 0), interval)  # fmt: skip


def _records(m: Member, owner: bytes, meter_key: bytes,
             interval: int) -> list[tuple[bytes, msgspec.Struct]]:  # fmt: skip
    """The five records `_register` writes for a member, made directly: the registry's
    checks cost more than the records, and every one of them passes on a fresh
    population (distinct keys, known zones). `store_meters` checks a sample against
    `_register`."""
    meter = crypto.address_of(meter_key)
    capacity = m.meter_capacity_w
    kind = m.meter_kind
    return [
        (registry.participant_key(owner), registry.Participant(
            m.zone, KINDS[m.archetype], m.name, _AUTHORITY[m.zone], T0)),
        (accounts.account_key(owner), accounts.Account(0, 0, 0)),
        (registry.meter_key(meter), registry.Meter(
            owner=owner, zone=m.zone, kind=kind, rated_capacity_w=capacity,
            public_key=meter_key, registered_at=T0, first_interval=T0 - T0 % interval,
            last_interval=-1, import_register_wh=m.import_register_wh,
            export_register_wh=0, baseline_export_wh=0)),
        (registry.owner_meters_key(owner), registry.OwnerMeters(
            (meter,), capacity if kind.produces else 0)),
        (accounts.account_key(meter), accounts.Account(0, 0, 0)),
    ]  # fmt: skip


def _public_keys(seeds: list[bytes]) -> list[bytes]:
    return [crypto.PrivateKey(seed).public_key for seed in seeds]


def store_meters(meters: int, path: Path, workers: int = 2) -> tuple[bytes, int]:
    """A store at height 1 holding the genesis state plus `meters` members, written
    straight into the store in batches (no transactions, no state in memory): the
    population's keys derived in `workers` processes, each member's records made
    directly and checked, for a sample, against the registry's handlers; the tree then
    rebuilt from the stored records (`Store.rebuild_tree`, as after a state sync).
    Returns the state root and the record count."""
    with Store(path) as store:
        put_meters(store, meters, workers)
        raw = _block(1, b"\0" * 32, b"\0" * 32)
        store.commit_height(1, raw, codec.encode(_certificate(1, raw)), [], {})
        store.rebuild_tree()
        meta = store.tree_meta()
        assert meta is not None
        return bucket_tree.root_hash(meta[0], meta[2]), meta[1]


def put_meters(store: Store, meters: int, workers: int = 2) -> None:
    """Into a new store: the genesis state and the records of `meters` members (see
    `store_meters`), no tree and no height."""
    population = _population(meters).members
    state = genesis.build_state(SPEC)
    interval = chain_info.params(state).interval_seconds
    sample = set(range(0, meters, max(1, meters // 200)))
    seeds = [s for m in population for s in (m.key.seed, m.meter.seed)]
    store.save_genesis_state(state, SPEC.hash())
    with ProcessPoolExecutor(workers) as pool:
        step = 20_000
        keys = iter(pool.map(_public_keys, [seeds[i : i + step]
                                            for i in range(0, len(seeds), step)]))  # fmt: skip
        derived: list[bytes] = []
        batch: list[tuple[bytes, bytes]] = []
        for i, m in enumerate(population):
            if not derived:
                derived = list(reversed(next(keys)))
            owner_key, meter_key = derived.pop(), derived.pop()
            records = _records(m, crypto.address_of(owner_key), meter_key, interval)
            if i in sample:
                view = genesis.build_state(SPEC).overlay()
                _register(view, m, meter_key)
                for key, record in records:
                    assert view.get(key, type(record)) == record, (i, key)
            batch += [(key, encode_record(record)) for key, record in records]
            if len(batch) >= 100_000:
                store.put_state_records(batch)
                batch = []
        store.put_state_records(batch)


def _block(height: int, prev_hash: bytes, root: bytes) -> bytes:
    header = blocks.Header(CHAIN, height, T0 + height, prev_hash, EGAT.address, b"\0" * 32,
                           root, b"\0" * 32, b"\0" * 32)  # fmt: skip
    return blocks.Block(header, ()).encode()


def _certify_next(root: bytes, path: Path) -> None:
    """Height 2, whose header carries the root of the state after height 1 (pipelined
    heights): what a snapshot at height 1 waits for before it is offered."""
    with Store(path) as store:
        stored = store.block(1)
        assert stored is not None
        raw = _block(2, blocks.decode(stored[0]).hash, root)
        store.commit_height(2, raw, codec.encode(_certificate(2, raw)), [], {})


async def _serve(served: snapshots.Snapshots, label: str) -> tuple[Gossip, int]:
    gossip: Gossip

    async def on(kind: Kind, payload: bytes, peer: bytes) -> Outcome:
        return state_sync.answer(served, gossip, kind, payload, peer)

    gossip = Gossip(crypto.PrivateKey.from_dev_label(f"statesync-bench/{label}"), on)
    return gossip, await gossip.listen()


def _serve_forever(directory: Path, pipe: Connection) -> None:
    """Two serving peers in a process of their own (peers are other machines: the join's
    time and CPU seconds are then the joiner's alone); sends their addresses, and stops
    when the pipe says so."""

    async def run() -> None:
        served = snapshots.Snapshots(directory)
        servers = [await _serve(served, f"server-{i}") for i in range(2)]
        pipe.send([("127.0.0.1", port, g.key.address.hex()) for g, port in servers])
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        for gossip, _ in servers:
            await gossip.close()
        pipe.send(time.process_time())  # what serving the join cost both peers

    asyncio.run(run())


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (the joiner's checkers)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _join(snapshot_dir: Path, target: Path) -> tuple[state_sync.Joined, float, float]:
    """Join from two peers serving `snapshot_dir`; returns what was done, the joiner's CPU
    seconds (every thread of its process, RocksDB's flushes and compactions too, and its
    chunk-checking processes) and the serving process's (both peers, from its start)."""
    here, there = multiprocessing.get_context("spawn").Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve_forever, args=(snapshot_dir, there), daemon=True
    )
    server.start()
    try:
        peers = here.recv()
        key = crypto.PrivateKey.from_dev_label("statesync-bench/joiner")
        cpu = time.process_time() + _children_cpu()
        joined = asyncio.run(state_sync.join(target, SPEC, key, peers, timeout_s=60))
        cpu = time.process_time() + _children_cpu() - cpu  # its checking processes too
        assert joined is not None
    finally:
        here.send("stop")
        serving = here.recv() if here.poll(30) else float("nan")
        server.join(30)
        if server.is_alive():
            server.kill()
    return joined, cpu, serving


def served_state(meters: int, work: Path) -> dict[str, Any]:
    """A store of `meters` meters at height 2 and its snapshot at height 1 in `work`
    (`served`, `snapshots`), built unless `work` holds them already (`--state`: a build
    of a million meters takes minutes; before/after comparisons reuse one)."""
    done = work / "served.json"
    if done.exists():
        built: dict[str, Any] = json.loads(done.read_text())
        if built["meters"] == meters:
            return built
        raise SystemExit(f"{work} holds {built['meters']} meters, not {meters}")
    started = time.perf_counter()
    root, records = store_meters(meters, work / "served")
    built_s = time.perf_counter() - started
    served = snapshots.Snapshots(work / "snapshots")
    started = time.perf_counter()
    with Store(work / "served") as store:
        assert served.take(store) == 1
    snapshot_s = time.perf_counter() - started
    _certify_next(root, work / "served")
    with Store(work / "served") as store:
        assert served.complete(store) == [1]
    offer = snapshots.decode_offer(served.offers()[0])
    size = sum((work / "snapshots" / f"{1:012d}" / f"chunk-{i}").stat().st_size
               for i in range(len(offer.ranges)))  # fmt: skip
    built = {"meters": meters, "records": records, "root": root.hex(),
             "build_state_s": round(built_s, 1), "snapshot_s": round(snapshot_s, 2),
             "chunks": len(offer.ranges), "snapshot_mb": round(size / 2**20, 1)}  # fmt: skip
    done.write_text(json.dumps(built))
    return built


def state_sync_run(meters: int, work: Path, check_root: bool = False,
                   state: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """One join of a state of `meters` meters (built in `work`, or reused from `state`)."""
    source = work if state is None else state
    built = served_state(meters, source)
    root = bytes.fromhex(built["root"])
    if check_root:  # the whole state through the handlers: the same root
        assert meters_state(meters).root() == root
    load = os.getloadavg()[0]
    joined, cpu, serving = _join(source / "snapshots", work / "joined")
    started = time.perf_counter()
    app = open_application(SPEC, work / "joined")
    try:
        assert app.height == 1 and app.state.root() == root
    finally:
        app.close()
    opened = time.perf_counter() - started
    shutil.rmtree(work / "joined", ignore_errors=True)
    return {**{k: v for k, v in built.items() if k != "root"},
            "join_s": round(joined.seconds, 2), "join_cpu_s": round(cpu, 2),
            "serving_cpu_s": round(serving, 2),
            "open_after_join_s": round(opened, 2),
            "join_and_open_s": round(joined.seconds + opened, 2),
            "load_average_1m_before": round(load, 2),
            "load_average_1m": round(os.getloadavg()[0], 2)}  # fmt: skip


# --- block sync ----------------------------------------------------------------------------
def build_chain(path: Path, count: int, tps: int) -> int:
    """A chain of setup blocks then `count` blocks of `tps` orders, one second apart."""
    load = MarketLoad(SPEC, T0 + 1, accounts_per_side=max(50, tps // 4))
    app = open_application(SPEC, path)
    try:
        batches = [*load.setup(), *(list(load.orders(tps)) for _ in range(count))]
        for batch in batches:
            for raw in batch:
                app.submit(raw)
            while app.mempool.has_ready(app.nonce_of):
                height = app.height + 1
                raw = app.build_block(height, T0 + height, EGAT.address)
                app.commit(height, raw, _certificate(height, raw))
        return app.height
    finally:
        app.close()


def _node(path: Path, key: crypto.PrivateKey) -> Node:
    return Node(key, open_application(SPEC, path), Timeouts(60_000, 60_000, 60_000))


async def _catch_up(chain: Path, work: Path, top: int, runs: int, sources: int) -> float:
    """Seconds a new node takes to reach `top` from `sources` serving nodes."""
    servers = []
    for i in range(sources):
        copy = work / f"server-{i}"
        shutil.copytree(chain, copy)
        servers.append(_node(copy, crypto.PrivateKey.from_dev_label(f"bench/sync-server-{i}")))
    joiner = _node(work / "joiner", crypto.PrivateKey.from_dev_label("bench/sync-joiner"))
    joiner.block_sync = BlockSync(runs=runs)
    try:
        ports = [await s.gossip.listen() for s in servers]
        await joiner.start()
        for server, port in zip(servers, ports, strict=True):
            await joiner.gossip.dial("127.0.0.1", port, expect=server.key.address)
        started = time.perf_counter()
        for server in servers:  # what a proposal of theirs would show
            joiner._catch_up(top, server.key.address)
        deadline = started + 3600
        while joiner.app.height < top and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        assert joiner.app.height == top, joiner.app.height
        return time.perf_counter() - started
    finally:
        await joiner.stop()
        for server in servers:
            await server.stop()
        for i in range(sources):
            shutil.rmtree(work / f"server-{i}", ignore_errors=True)
        shutil.rmtree(work / "joiner", ignore_errors=True)


def block_sync_run(chain: Path, top: int, tps: int, work: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"blocks": top, "tps": tps}
    for name, runs, sources in (("fast", 8, 2), ("one_run_one_peer", 1, 1)):
        seconds = asyncio.run(_catch_up(chain, work, top, runs, sources))
        result[f"{name}_s"] = round(seconds, 2)
        result[f"{name}_x_real_time"] = round(top / seconds, 1)  # a block is a second
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    return result


# --- many joiners at once, in the network simulator -----------------------------------------
def join_costs(meters: int, work: Path, repeat: int = 3) -> dict[str, Any]:
    """A real snapshot of `meters` meters: its chunks' sizes as sent, and what a joiner
    spends on them here, one process: the check a worker process does
    (`snapshots.verify_encoded`), the loop's write of each checked chunk (its decode and
    `Restore.add`) and the end (`Restore.finish`), each in wall seconds (this machine's
    share of a core, at its load) and CPU seconds (a node on cores of its own, the
    store's background threads included); the least of `repeat` runs of each."""
    root, _ = store_meters(meters, work / "served")
    served = snapshots.Snapshots(work / "snapshots")
    with Store(work / "served") as store:
        assert served.take(store) == 1
    _certify_next(root, work / "served")
    with Store(work / "served") as store:
        assert served.complete(store) == [1]
    offer = snapshots.decode_offer(served.offers()[0])
    raws = [r for r in (served.chunk(1, i) for i in range(len(offer.ranges))) if r is not None]
    spent: dict[str, list[float]] = {}

    def timed(name: str, started: tuple[float, float]) -> None:
        spent.setdefault(f"{name}_s", []).append(time.perf_counter() - started[0])
        spent.setdefault(f"{name}_cpu_s", []).append(time.process_time() - started[1])

    for i in range(repeat):
        started = (time.perf_counter(), time.process_time())
        verified = [snapshots.verify_encoded(raw, offer) for raw in raws]
        timed("verify", started)
        with Store(work / f"restored-{i}", bulk=True) as store:
            restore = snapshots.Restore(store, offer)
            started = (time.perf_counter(), time.process_time())
            for raw, checked in zip(raws, verified, strict=True):
                chunk = snapshots.decode_chunk(raw)
                restore.add(dataclasses.replace(checked, records=chunk.records))
            timed("write", started)
            started = (time.perf_counter(), time.process_time())
            restore.finish(b"", SPEC.hash())
            timed("finish", started)
        shutil.rmtree(work / f"restored-{i}", ignore_errors=True)
    return {"sample_meters": meters, "chunk_sizes": [len(r) for r in raws],
            "bytes": sum(len(r) for r in raws), "repeat": repeat,
            **{name: round(max(min(values), 0.001), 3) for name, values in spent.items()},
            **{f"{name}_median": round(statistics.median(values), 3)
               for name, values in spent.items()},
            "load_average_1m": round(os.getloadavg()[0], 2)}  # fmt: skip


JOINER_CPU: Final = {  # which measured seconds a joiner's work costs in the simulation
    "cpu": "the measured CPU seconds (the store's threads included): a node on cores of its "
    "own, waiting for nothing else; its disk waits left out",
    "wall": "the measured wall seconds: this machine's share of a core at its load",
    "none": "nothing: what the network alone allows",
}


def joiners_run(joiners: int, meters: int, sample: int, nodes: int, work: Path,
                checkers: int = 1) -> dict[str, Any]:  # fmt: skip
    """`joiners` new nodes state-syncing a snapshot of `meters` meters at once over a
    `nodes`-node network (`netsim.joining`), with chunk sizes from a real snapshot of
    `sample` meters repeated to `meters`, and the checking, writing and finishing costs
    measured on it (each joiner checking in `checkers` processes beside its loop); with
    random configured peers and with the sentries as the only bootstrap peers, the
    joiners' work costed as `JOINER_CPU` says, under the per-peer progress timeout and
    (CPU seconds) the per-request one it replaced."""
    costs = join_costs(sample, work)
    scale = max(1, round(meters / sample))
    sizes = tuple(costs["chunk_sizes"]) * scale

    def per_byte(name: str) -> float:
        return float(costs[name]) / float(costs["bytes"])

    costs_of = {  # seconds a byte: checking, writing, finishing
        "cpu": (per_byte("verify_cpu_s"), per_byte("write_cpu_s"), per_byte("finish_cpu_s")),
        "wall": (per_byte("verify_s"), per_byte("write_s"), per_byte("finish_s")),
        "none": (0.0, 0.0, 0.0),
    }
    layout = topology.Layout(nodes=nodes)
    runs = []
    for bootstrap in ("random", "sentries"):
        for rule, cpu in (("progress", "cpu"), ("progress", "wall"), ("request", "cpu"),
                          ("progress", "none")):  # fmt: skip
            started = time.perf_counter()
            report = joining.JoinSimulation(joining.JoinScenario(
                sizes, layout, joiners, bootstrap=bootstrap, timeout_rule=rule,
                in_flight=state_sync.IN_FLIGHT, timeout_s=state_sync.CHUNK_TIMEOUT_S,
                strikes=state_sync.STRIKES, checkers=checkers,
                verify_s_per_byte=costs_of[cpu][0], write_s_per_byte=costs_of[cpu][1],
                finish_s_per_byte=costs_of[cpu][2])).run()  # fmt: skip
            times = report.join_s
            runs.append({
                "bootstrap": bootstrap, "timeout_rule": rule, "joiner_cpu": cpu,
                "joined": len(times), "failed": report.failed,
                "join_s_p50": round(times[len(times) // 2], 1) if times else None,
                "join_s_max": round(times[-1], 1) if times else None,
                "timeouts": report.timeouts, "late_chunks": report.late_chunks,
                "dropped_peers": report.dropped_peers,
                "wasted_mb": round(report.wasted_bytes / 1e6, 1),
                "servers": report.servers,
                "busiest_server_joiners": report.busiest_server_joiners,
                "wall_s": round(time.perf_counter() - started, 1)})  # fmt: skip
    mb = costs["bytes"] / 2**20
    return {"joiners": joiners, "meters": meters, "nodes": nodes, "checkers": checkers,
            "chunks": len(sizes), "snapshot_mb": round(sum(sizes) / 2**20, 1),
            "sample": {k: v for k, v in costs.items() if k != "chunk_sizes"},
            "joiner_cpu": JOINER_CPU,
            **{f"{step}_mb_per_s{suffix}": round(mb / costs[f"{step}{key}"], 1)
               for step in ("verify", "write", "finish")
               for suffix, key in (("", "_s"), ("_cpu", "_cpu_s"))},
            "runs": runs}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=1_000_000)
    parser.add_argument("--blocks", type=int, default=60, help="of --tps transactions each")
    parser.add_argument("--tps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--check-root",
        action="store_true",
        help="also build the state through the handlers and compare roots",
    )
    parser.add_argument("--no-block-sync", action="store_true")
    parser.add_argument(
        "--joiners",
        type=int,
        default=0,
        help="simulate this many nodes state-syncing --meters at once instead",
    )
    parser.add_argument(
        "--sample-meters",
        type=int,
        default=20_000,
        help="with --joiners: the real snapshot the chunk sizes come from",
    )
    parser.add_argument("--nodes", type=int, default=10_000, help="with --joiners")
    parser.add_argument("--checkers", type=int, default=1,
                        help="with --joiners: processes a joiner checks chunks in, beside "
                        "its loop (1: a 2-core node)")  # fmt: skip
    parser.add_argument(
        "--state",
        type=Path,
        help="build the served state and its snapshot here once, and reuse them",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    if args.joiners:
        with tempfile.TemporaryDirectory(prefix="statesync-bench-") as tmp:
            simulated = joiners_run(args.joiners, args.meters, args.sample_meters, args.nodes,
                                    Path(tmp), args.checkers)  # fmt: skip
        simulated["load_average_1m_at_start"] = round(load_before[0], 2)
        simulated["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
        print_figures(simulated)
        write(simulated, args.output if args.output != RESULTS else JOINERS)
        return simulated
    with tempfile.TemporaryDirectory(prefix="statesync-bench-") as tmp:
        work = Path(tmp)
        joins = []
        for i in range(args.repeat):
            run_dir = work / f"join-{i}"
            joins.append(state_sync_run(args.meters, run_dir, args.check_root, args.state))
            shutil.rmtree(run_dir, ignore_errors=True)
        started = time.perf_counter()
        syncs: list[dict[str, Any]] = []
        if not args.no_block_sync:
            top = build_chain(work / "chain", args.blocks, args.tps)
            syncs = [block_sync_run(work / "chain", top, args.tps, work)
                     for _ in range(args.repeat)]  # fmt: skip
        chain_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "meters": args.meters, "repeat": args.repeat, "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(load_before[0], 2),
        "state_sync": joins,
        "join_and_open_s_best": min(j["join_and_open_s"] for j in joins),
        "join_s_min": min(j["join_s"] for j in joins),
        "join_s_median": statistics.median(j["join_s"] for j in joins),
        "join_cpu_s_min": min(j["join_cpu_s"] for j in joins),
        "chain_build_s": round(chain_s, 1),
        "block_sync": syncs,
        "block_sync_x_real_time_best": max((s["fast_x_real_time"] for s in syncs), default=None),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }  # fmt: skip
    print_figures(result)
    write(result, args.output)
    return result


if __name__ == "__main__":
    main()
