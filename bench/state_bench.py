"""State-size sweep: what the state root, a restart and memory cost as the state grows.

Thailand has more than 20 million electricity meters, so the ledger must keep a block's
cost flat in the size of the state. For each size this benchmark builds a RocksDB store
holding that many state records (a realistic mix: each member has a participant record,
an account with balances, a meter, its owner index and one applied reading), then, each
in a fresh process so that memory is the process's own:

- first open: open the store and rebuild whatever is needed until a block can be applied
  (a store written by older code is migrated here);
- restart: the same again, as a node restarting over the store it wrote;
- root per block: 1,000 transfers' writes (2,000 accounts) then the state root (wall
  clock; the process's CPU time, which a busy shared machine inflates less; and the
  thread's own CPU time, which leaves out RocksDB's background flushes and compactions
  of earlier blocks' writes, which the process's time counts when they overlap), and
  then writing the height to the store, the median and the least of several blocks,
  with the load average as they ran;
- RSS after the restart and its peak.

With `--memory-max 2G` the restart and its blocks run in a memory cgroup of that limit
(`memory_cgroup`: the store's pages dropped from the page cache, then read back inside the
cgroup, so the child is charged for every page it finds cached; `max`: the same without a
limit), and the kernel's peak, its anonymous/page-cache split and how often the limit was
hit are reported beside the root's page faults (minor: first touches; major: disk reads).
At 20 million records on the shared 2-core machine (7 blocks, load 8-19, 5 December):
the root's thread CPU 111-123 ms a block under 2 GB against 30.6-35.0 without a limit,
restart 19.7-27.1 s against 6.5-6.6, memory.peak 2,048 against 5,418-5,468 MB (774 MB of
it anonymous either way); 56.5 ms under 3 GB, 38.0 under 4 GB; 85.6 ms under 2 GB with
`--no-mmap-reads`; 80-86 ms under 2 GB (restart 7.8-9.4 s) on the kept store with its
tree family compacted, as the migration now leaves it (ADR 0007, "Since: 20 million
records under a memory limit").
`--settle-blocks N` applies N blocks untimed after the restart, as a node that has run a
while: after 60, the root's page faults fall from about 2,000 to 5 a block, its thread
CPU stays at 29-35 ms.

Each block's transactions commit from their own overlays, as a node's do, so the store's
reader threads read the block's buckets ahead while it executes (`--read-threads 0`: none,
the root reads them itself in one multi-get, as before); the execution and the block's
total (execution and root) are timed too. `--spread market` draws a block as a market day
does (55 % meter readings from all members, 45 % orders from 5,000 active traders) beside
the uniform worst case. Under 2 GB at 20 million records, reading ahead took the root to
32-49 ms of wall clock and 16-20 ms of its thread's CPU, no disk wait in it, from 157-586
and 70-94 (ADR 0007, "Since: the root at 20 million records inside 2 GB").

The simulator's population generator derives two Ed25519 keys per member, far too slow for
millions of members, so the records a registered member has are built here directly with
hash-derived addresses. A size whose memory would pass `--max-rss-gb` (extrapolated from
the previous size's bytes per record) is skipped and says so.

    python bench/state_bench.py [--sizes 1000,100000,1000000,6000000,20000000]
                                [--blocks 5] [--max-rss-gb 8] [--steps]
                                [--keep DIR [--reuse-opened]] [--memory-max 2G|max]
                                [--cache-mb MB] [--no-mmap-reads] [--settle-blocks N]
                                [--read-threads N] [--spread uniform|market]

The root's tree hashes with its compiled loops where they were built (setup.py);
`GRIDTOKENX_TREE_PYTHON=1` in the environment runs its Python reference instead, to pair
the two (the JSON says which ran, and the root after the timed blocks, the same for both).

Prints a table and writes bench/results/state.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
from rocksdict import WriteBatch

import benchkit
import memory_cgroup
from gridtokenx.devnet.homes import devnet_genesis
from gridtokenx.ledger import accounts, genesis, metering, registry
from gridtokenx.ledger.state import Overlay, State
from gridtokenx.storage.store import Store, encode_record
from gridtokenx.wire import tx

RESULTS = Path(__file__).parent / "results" / "state.json"
CHAIN = "gridtokenx-state-bench"
GENESIS_TIME = 1_767_225_600
RECORDS_PER_MEMBER = 5
ZONES = ("BKK", "CEN", "NTH", "NEA", "EST", "WST", "STH")
TRANSFERS_PER_BLOCK = 1_000
PAGE = 50_000  # records per write batch while building


def _address(kind: bytes, index: int) -> bytes:
    return hashlib.blake2b(kind + index.to_bytes(8), digest_size=20).digest()


def member_records(index: int) -> Iterator[tuple[bytes, msgspec.Struct]]:
    """The records one registered member holds (home, solar home, office or factory)."""
    owner, meter = _address(b"owner", index), _address(b"meter", index)
    zone = ZONES[index % len(ZONES)]
    solar = index % 20 < 9
    kind = tx.ParticipantKind.BUSINESS if index % 10 == 9 else tx.ParticipantKind.HOUSEHOLD
    capacity = 3_000 + (index * 7919) % 7_000 if solar else 15_000
    interval = GENESIS_TIME - 900
    register = (index * 104_729) % 50_000_000
    yield (
        registry.participant_key(owner),
        registry.Participant(
            zone, kind, f"{zone.lower()}-member-{index}", "MEA" if zone == "BKK" else "PEA", 0
        ),
    )
    yield accounts.account_key(owner), accounts.Account(index % 5_000, 100_000, index % 97)
    yield (
        registry.meter_key(meter),
        registry.Meter(
            owner,
            zone,
            tx.MeterKind.SOLAR if solar else tx.MeterKind.CONSUMPTION,
            capacity,
            hashlib.sha256(meter).digest(),
            0,
            0,
            interval,
            register,
            register // 3 if solar else 0,
            0,
        ),
    )
    yield registry.owner_meters_key(owner), registry.OwnerMeters((meter,), capacity * solar)
    yield (
        metering.reading_key(meter, interval),
        metering.ReadingRecord(
            owner, zone, interval, 1_200, 800 if solar else 0, 800 if solar else 0, 1
        ),
    )


def _spec() -> genesis.Genesis:
    return devnet_genesis(CHAIN, GENESIS_TIME)


def build(path: Path, members: int) -> None:
    """A store as a node would hold it: the genesis state, then the members' records
    written straight into the state column (as the blocks registering them would have)."""
    spec = _spec()
    store = Store(path)
    try:
        store.save_genesis_state(genesis.build_state(spec), spec.hash())
        cf = store.db.get_column_family_handle("state")
        batch, pending = WriteBatch(raw_mode=True), 0
        for index in range(members):
            for key, record in member_records(index):
                batch.put(key, encode_record(record), cf)
            pending += RECORDS_PER_MEMBER
            if pending >= PAGE:
                store.db.write(batch)
                batch, pending = WriteBatch(raw_mode=True), 0
        store.db.write(batch)
        store.db.flush()
    finally:
        store.close()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _rss_parts_mb() -> dict[str, float]:
    """The RSS split as the kernel counts it: `anon`, the process's own memory, and `file`,
    pages of mapped files it touched (RocksDB reads its table files through memory maps),
    which the kernel reclaims like any page cache."""
    parts = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:")):
                name, kb = line.split()[:2]
                parts[name[3:-1].lower()] = round(int(kb) / 1024, 1)
    return parts


STORE_OPTIONS: dict[str, Any] = {}
"""`Store`'s options for the measured opens (`--cache-mb`, `--no-mmap-reads`)."""


def _store_flags() -> list[str]:
    """`STORE_OPTIONS` as the child's command line repeats them."""
    flags = []
    if "cache_mb" in STORE_OPTIONS:
        flags += ["--cache-mb", str(STORE_OPTIONS["cache_mb"])]
    if STORE_OPTIONS.get("mmap_reads") is False:
        flags.append("--no-mmap-reads")
    if "read_threads" in STORE_OPTIONS:
        flags += ["--read-threads", str(STORE_OPTIONS["read_threads"])]
    if STORE_OPTIONS.get("read_ahead"):
        flags += ["--read-ahead", "always"]
    return flags


def _open(path: Path) -> tuple[Store, State, float]:
    """Open the store and make its state ready to apply a block: its root known."""
    started = time.perf_counter()
    store = Store(path, **STORE_OPTIONS)
    # a node's way: records and tree on demand where the code has it, else all loaded
    state = getattr(store, "open_state", store.load_state)()
    state.root()
    return store, state, time.perf_counter() - started


def first_open(path: Path) -> dict[str, object]:
    store, _, seconds = _open(path)
    store.close()
    return {"first_open_s": round(seconds, 2)}


SPREADS = ("uniform", "market")
"""Who a block's transactions touch (`--spread`). uniform: 1,000 transfers between
members drawn evenly from all of them (2,000 accounts, the worst case for the reads: no
two blocks share an account). market: as a market day's blocks, `READING_SHARE` of them
meter readings from members drawn evenly from all (most meters only report; a reading
rewrites its meter, adds a reading record and, from a solar meter, mints to its owner's
account), the rest orders from `ACTIVE_TRADERS` active traders (each rewrites its
account, escrow, and adds an order record, here a record of a reading's size under a
new key). New records land in random buckets like any key, so a market block still reads
about 1,800 cold buckets; what it does not read cold is the traders' accounts."""
READING_SHARE = 0.55
"""Readings among a block's transactions: the simulator's market day has about 29,000
readings and 21,000 orders of its 52,600 transactions (docs/simulator.md)."""
ACTIVE_TRADERS = 5_000
"""Members who trade: a few thousand, beside millions of meters that only report."""


def _transfer(view: Overlay, index: int, delta: int, step: int, minted: int = 0) -> None:
    key = accounts.account_key(_address(b"owner", index))
    account = view.get(key, accounts.Account)
    assert account is not None
    view.put(key, accounts.Account(account.grid_wh + minted, account.thb_satang + delta,
                                   account.nonce + step))  # fmt: skip


def _reading(view: Overlay, index: int, number: int) -> None:
    """A member's meter reports the interval after its last (a solar meter mints)."""
    key = registry.meter_key(_address(b"meter", index))
    meter = view.get(key, registry.Meter)
    assert meter is not None
    start = meter.last_interval + 900 * (1 + number)
    registers = meter.import_register_wh + 400
    view.put(key, msgspec.structs.replace(meter, last_interval=start, import_register_wh=registers))
    view.put(
        metering.reading_key(_address(b"meter", index), start),
        metering.ReadingRecord(meter.owner, meter.zone, start, 400, 0, 0, number),
    )
    if meter.kind is tx.MeterKind.SOLAR:
        _transfer(view, index, 0, 0, minted=400)


def _block(state: State, members: int, number: int, spread: str = "uniform") -> None:
    """The state writes of a block of 1,000 transactions (`SPREADS`), each committed from
    its own overlay as a block's transactions are, so that the state sees the block's
    keys as it executes (and its tree's source can read their buckets ahead)."""
    readings = int(TRANSFERS_PER_BLOCK * READING_SHARE) if spread == "market" else 0
    active = min(ACTIVE_TRADERS, members)
    senders = [(number * 1_000_003 + i * 7_919) % members for i in range(TRANSFERS_PER_BLOCK)]
    # As `chain.blocks` does before executing a block: each transaction's first record
    # read ahead (its sender's account; a reading's meter, as this bench's meters have no
    # account of their own), so the reads that miss memory wait for the disk side by side.
    state.warm_records([
        registry.meter_key(_address(b"meter", sender)) if i < readings
        else accounts.account_key(_address(b"owner", sender % active if readings else sender))
        for i, sender in enumerate(senders)
    ])  # fmt: skip
    for i in range(TRANSFERS_PER_BLOCK):
        view = state.overlay()
        sender = senders[i]
        if i < readings:
            _reading(view, sender, number)
        elif spread == "market":
            trader = sender % active
            _transfer(view, trader, -10, 1)
            order = (number * TRANSFERS_PER_BLOCK + i).to_bytes(8)
            view.put(metering.reading_key(_address(b"order", trader), int.from_bytes(order)),
                     metering.ReadingRecord(b"", "BKK", 0, 0, 0, 0, number))  # fmt: skip
        else:
            _transfer(view, sender, -10, 1)
            _transfer(view, (sender * 31 + 17) % members, 10, 0)
        view.commit()


def _persist(store: Store, height: int, state: State) -> None:
    """Write the height as a node does: records, and the tree where the code keeps it."""
    extra: dict[str, Any] = {}
    if hasattr(state, "take_tree_writes"):
        extra["tree"] = state.take_tree_writes()
    store.commit_height(height, b"bench", b"", [], state.take_changes(), **extra)


def _trial_cycle(state: State, members: int, number: int, spread: str) -> float:
    """What a validator does with a block: execute it on trial to its root, keep the trial
    and roll back (check_block), then replay the kept trial (commit)."""
    started = time.perf_counter()
    state.begin()
    _block(state, members, number, spread)
    root = state.root()
    trial = state.trial()
    state.rollback()
    state.begin()
    state.replay(trial)
    if state.root() != root:
        raise SystemExit("the replayed trial reached another root")
    state.release()
    return time.perf_counter() - started


# What `--steps` times inside a root: (step, where, method); a method of the tree or the
# store, or a function of `ledger.state`. "decode" is the prefetch less its read.
ROOT_STEPS = (
    ("positions", "state", "key_positions"),
    ("read", "store", "tree_bucket_many"),
    ("prefetch", "tree", "prefetch"),
    ("set_many", "tree", "set_many"),
    ("bucket_hash", "tree", "_hash_buckets"),
    ("node_hash", "tree", "_hash_levels"),
)


def _time_steps(store: Store, state: State) -> dict[str, float]:
    """Wrap each of `ROOT_STEPS` with a thread-CPU timer (a few µs a block); the returned
    dictionary sums each step's seconds until cleared. The tree's own methods, so this is
    instrumentation for the breakdown, not part of the root's figures above it."""
    from gridtokenx.ledger import state as state_module

    spent: dict[str, float] = {}
    owners = {"state": state_module, "store": store, "tree": state.tree}

    def wrap(owner: object, name: str, step: str) -> None:
        inner = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[step] = spent.get(step, 0.0) + time.thread_time() - started

        setattr(owner, name, timed)

    for step, where, name in ROOT_STEPS:
        wrap(owners[where], name, step)
    return spent


def restart(
    path: Path, members: int, blocks: int, steps: bool = False, settle: int = 0,
    spread: str = "uniform",
) -> dict[str, object]:  # fmt: skip
    """Open the store again, then `settle` blocks untimed (a node that has run a while:
    the table-file pages its reads touched are mapped by then), then `blocks` timed:
    each block's execution (its record reads and writes, the tree's read-ahead of their
    buckets beside it), then its root, then its height written."""
    warmed: dict[str, Any] = {}
    if os.environ.get(memory_cgroup.ENVIRONMENT):  # the store's pages, charged to this cgroup
        warmed["page_cache_warmup_s"] = round(memory_cgroup.warm_cache(path), 1)
        warmed |= {f"{k}_after_warmup": v for k, v in memory_cgroup.own_stat().items()}
    store, state, seconds = _open(path)
    rss, parts = _rss_mb(), _rss_parts_mb()
    anon_max = parts.get("anon", 0.0)
    roots, persists, cpu, own = [], [], [], []
    executions, blocks_wall, blocks_cpu = [], [], []  # the block's total: execution and root
    minor, major = [], []  # page faults in the root's thread: first touches, disk reads
    settled = time.perf_counter()
    for number in range(settle):  # block numbers apart from the timed ones' and trials'
        _block(state, members, 2 * blocks + number, spread)
        state.root()
        _persist(store, store.height() + 1, state)
    warmed |= {"settle_blocks": settle, "settle_s": round(time.perf_counter() - settled, 1)}
    spent = _time_steps(store, state) if steps else None
    by_step: dict[str, list[float]] = {}
    try:
        for number in range(blocks):
            if spent is not None:
                spent.clear()
            executed, executed_cpu = time.perf_counter(), time.process_time()
            _block(state, members, number, spread)
            started, cpu_started = time.perf_counter(), time.process_time()
            executions.append(started - executed)
            faults = resource.getrusage(resource.RUSAGE_THREAD)
            thread_started = time.thread_time()
            state.root()
            hashed = time.perf_counter()
            cpu.append(time.process_time() - cpu_started)
            blocks_wall.append(hashed - executed)
            blocks_cpu.append(time.process_time() - executed_cpu)
            own.append(time.thread_time() - thread_started)
            faulted = resource.getrusage(resource.RUSAGE_THREAD)
            minor.append(faulted.ru_minflt - faults.ru_minflt)
            major.append(faulted.ru_majflt - faults.ru_majflt)
            if spent is not None:
                spent["decode"] = spent.get("prefetch", 0.0) - spent.get("read", 0.0)
                spent["total"] = own[-1]
                for step, seconds_spent in spent.items():
                    by_step.setdefault(step, []).append(seconds_spent)
            height = store.height() + 1
            _persist(store, height, state)
            roots.append(hashed - started)
            persists.append(time.perf_counter() - hashed)
            anon_max = max(anon_max, _rss_parts_mb().get("anon", 0.0))
        cycles = [_trial_cycle(state, members, blocks + n, spread) for n in range(blocks)]
        _persist(store, store.height() + 1, state)
        records = len(state)
        last_root = state.root().hex()  # the same whichever loops hashed it
        parts_end = _rss_parts_mb()
        in_cgroup = memory_cgroup.own_stat()
    finally:
        store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    roots.sort()
    persists.sort()
    cpu.sort()
    own.sort()
    return (
        {
            "restart_s": round(seconds, 2),
            "records": records,
            "root_after_blocks": last_root,
            "load_average_at_blocks": os.getloadavg(),
            "root_per_block_ms": round(roots[len(roots) // 2] * 1000, 1),
            "root_per_block_min_ms": round(roots[0] * 1000, 1),
            "root_per_block_max_ms": round(roots[-1] * 1000, 1),
            "root_per_block_cpu_ms": round(cpu[len(cpu) // 2] * 1000, 1),
            "root_per_block_cpu_min_ms": round(cpu[0] * 1000, 1),
            "root_per_block_thread_cpu_ms": round(own[len(own) // 2] * 1000, 1),
            "root_per_block_thread_cpu_min_ms": round(own[0] * 1000, 1),
            "root_minor_faults_per_block": sorted(minor)[len(minor) // 2],
            "root_major_faults_per_block": sorted(major)[len(major) // 2],
            "persist_per_block_ms": round(persists[len(persists) // 2] * 1000, 1),
            "spread": spread,
            "execution_per_block_ms": _median_ms(executions),
            "block_per_block_ms": _median_ms(blocks_wall),
            "block_per_block_min_ms": round(min(blocks_wall) * 1000, 1),
            "block_per_block_cpu_ms": _median_ms(blocks_cpu),
            "trial_cycle_per_block_ms": round(sorted(cycles)[len(cycles) // 2] * 1000, 1),
            "root_steps_thread_cpu_ms": {
                step: round(sorted(found)[len(found) // 2] * 1000, 2)
                for step, found in by_step.items()
            },
            "rss_after_restart_mb": rss,
            "rss_anon_after_restart_mb": parts.get("anon"),
            "rss_anon_at_end_mb": parts_end.get("anon"),
            "rss_anon_max_mb": max(anon_max, parts_end.get("anon", 0.0)),
            "rss_file_at_end_mb": parts_end.get("file"),
            "peak_rss_mb": round(peak, 1),
            "bytes_per_record": round(rss * 2**20 / max(records, 1)),
        }
        | in_cgroup
        | warmed
    )


def _median_ms(seconds: list[float]) -> float:
    return round(sorted(seconds)[len(seconds) // 2] * 1000, 1)


def _child(*args: str, cgroup: memory_cgroup.MemoryCgroup | None = None) -> dict[str, Any]:
    """Run one step in a fresh interpreter, so its RSS and timings are its own; with
    `cgroup`, inside it, and the kernel's figures for it added (a child the kernel killed
    at the limit is reported, not raised)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, __file__, *_store_flags(), "--child", *args]
    if cgroup is None:
        done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    else:
        done = cgroup.run(command, env)
        kernel = cgroup.figures()
        if done.returncode != 0:
            return kernel | {"failed": f"exit {done.returncode}", "stderr": done.stderr[-2000:]}
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures if cgroup is None else figures | kernel


def sweep(
    sizes: list[int],
    blocks: int,
    max_rss_gb: float,
    keep: Path | None,
    rows: list[dict[str, Any]],
    save: Callable[[], None],
    reuse_opened: bool = False,
    steps: bool = False,
    memory_max: str | None = None,
    settle: int = 0,
    spread: str = "uniform",
) -> None:
    """Each size in turn, appended to `rows`, the results saved after each (a 20-million
    run takes long on a busy machine: what is done stays written). With `keep`, the
    built store and the store after its first open (its tree built: minutes at 20
    million records) are kept; `reuse_opened` starts from the latter, no first open.
    With `memory_max` ("2G", or "max": no limit, measured the same way), the restart and
    its blocks run in a memory cgroup of that limit, the store's pages dropped from the
    page cache first so that the child is charged for every page it reads. `settle`:
    blocks applied untimed after the restart, before the timed ones."""
    per_record, last_rss, last_records = 0.0, 0.0, 0
    for size in sizes:
        members = max(size // RECORDS_PER_MEMBER, 1)
        expected = last_rss * 2**20 + per_record * (size - last_records)
        if per_record and expected > max_rss_gb * 2**30:
            estimate = round(expected / 2**30, 1)
            rows.append({"records_target": size, "skipped": f"~{estimate} GB RSS expected"})
            print(f"{size:>11,} records: skipped, ~{estimate} GB RSS expected", flush=True)
            continue
        row: dict[str, Any] = {"records_target": size, "load_average": os.getloadavg()}
        with tempfile.TemporaryDirectory(prefix="gridtokenx-state-") as tmp:
            source = keep / f"state-{size}" if keep else None
            opened = keep / f"state-{size}-opened" if keep else None
            path = Path(tmp) / "store"
            started = time.perf_counter()
            if reuse_opened and opened is not None and opened.exists():
                shutil.copytree(opened, path)
                row["build_s"] = round(time.perf_counter() - started, 1)
                row["first_open_s"] = None  # the kept store has its tree already
            else:
                if source is not None and source.exists():
                    shutil.copytree(source, path)
                else:
                    _child("build", str(path), str(members))
                    if source is not None:
                        shutil.copytree(path, source)
                row["build_s"] = round(time.perf_counter() - started, 1)
                row |= _child("first-open", str(path), str(members))
                if opened is not None and not opened.exists():
                    shutil.copytree(path, opened)
            restart_args = (
                "restart", str(path), str(members), str(blocks), str(int(steps)), str(settle),
                spread,
            )  # fmt: skip
            if memory_max is None:
                row |= _child(*restart_args)
            else:
                row |= _limited(path, memory_max, restart_args)
        if "failed" in row:
            print(f"{size:>11,} records: the restart failed under the limit: {row}", flush=True)
            rows.append(row)
            save()
            continue
        rss, records = float(row["rss_after_restart_mb"]), int(row["records"])
        # the slope between sizes: the interpreter's own baseline does not scale
        per_record = (rss - last_rss) * 2**20 / max(records - last_records, 1)
        last_rss, last_records = rss, records
        print(
            f"{size:>11,} records: root/block {row['root_per_block_ms']} ms (min "
            f"{row['root_per_block_min_ms']}; CPU {row['root_per_block_cpu_ms']}, min "
            f"{row['root_per_block_cpu_min_ms']}; thread CPU "
            f"{row['root_per_block_thread_cpu_ms']}, min "
            f"{row['root_per_block_thread_cpu_min_ms']}; page faults in it "
            f"{row['root_minor_faults_per_block']} minor, {row['root_major_faults_per_block']} "
            f"major; after {row['settle_blocks']} untimed blocks; load "
            f"{row['load_average_at_blocks'][0]:.1f}), first open "
            f"{row['first_open_s']} s, restart {row['restart_s']} s, RSS "
            f"{row['rss_after_restart_mb']} MB (peak {row['peak_rss_mb']} MB; anonymous at "
            f"most {row['rss_anon_max_mb']} MB seen; at the end {row['rss_anon_at_end_mb']} "
            f"MB anonymous, {row['rss_file_at_end_mb']} MB of mapped files)",
            flush=True,
        )
        print(
            f"{'':>11}  block ({row['spread']} spread): execution "
            f"{row['execution_per_block_ms']} ms, execution and root "
            f"{row['block_per_block_ms']} ms (min {row['block_per_block_min_ms']}; process "
            f"CPU {row['block_per_block_cpu_ms']})",
            flush=True,
        )
        if "memory_peak_mb" in row:
            print(
                f"{'':>11}  cgroup v{row['cgroup_version']}, limit "
                f"{row['memory_limit_mb'] or 'none'} MB: peak {row['memory_peak_mb']} MB, "
                f"at the end {row['cgroup_current_mb']} MB ({row['cgroup_anon_mb']} anonymous, "
                f"{row['cgroup_file_mb']} page cache of which {row['cgroup_file_mapped_mb']} "
                f"mapped); at the limit {row['memory_limit_hits']} times, OOM kills "
                f"{row['oom_kills']}",
                flush=True,
            )
        if row["root_steps_thread_cpu_ms"]:
            listed = ", ".join(f"{k} {v}" for k, v in row["root_steps_thread_cpu_ms"].items())
            print(f"{'':>11}  root's steps, thread CPU ms (median): {listed}", flush=True)
        rows.append(row)
        save()


def _limited(path: Path, memory_max: str, args: tuple[str, ...]) -> dict[str, Any]:
    """The restart child in a memory cgroup of `memory_max` (see `sweep`); when no cgroup
    can be made here, the reason, and the child run without one."""
    memory_cgroup.drop_cache(path)
    cgroup = memory_cgroup.MemoryCgroup.create(
        f"gridtokenx-state-bench-{os.getpid()}", memory_cgroup.parse_size(memory_max)
    )
    if isinstance(cgroup, str):
        print(f"no memory cgroup, measured without a limit: {cgroup}", flush=True)
        return _child(*args) | {"memory_cgroup_skipped": cgroup}
    try:
        return _child(*args, cgroup=cgroup)
    finally:
        cgroup.remove()


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000,6000000,20000000")
    parser.add_argument("--blocks", type=int, default=5, help="blocks timed per size")
    parser.add_argument("--max-rss-gb", type=float, default=8.0)
    parser.add_argument("--keep", type=Path, help="keep built stores here to reuse them")
    parser.add_argument(
        "--steps", action="store_true",
        help="also time the root's steps (reads, decoding, hashing) by wrapping them",
    )  # fmt: skip
    parser.add_argument(
        "--reuse-opened", action="store_true",
        help="with --keep: start from the kept opened store (tree built), no first open",
    )  # fmt: skip
    parser.add_argument(
        "--memory-max", metavar="SIZE",
        help="run the restart and its blocks in a memory cgroup of this limit (2G; max: "
        "none), the store's pages dropped from the page cache first; reports the peak",
    )  # fmt: skip
    parser.add_argument(
        "--settle-blocks", type=int, default=0, metavar="N",
        help="apply N blocks untimed after the restart first: a node that has run a while",
    )  # fmt: skip
    parser.add_argument(
        "--cache-mb", type=int, help="the store's block cache (default: a node's default)"
    )
    parser.add_argument(
        "--no-mmap-reads", action="store_true",
        help="table files read with pread, not memory maps ([storage] mmap_reads = false)",
    )  # fmt: skip
    parser.add_argument(
        "--read-threads", type=int, metavar="N",
        help="the store's reader threads for the tree (default: a node's; 0: none, one "
        "multi-get at the root and no read-ahead while the block executes)",
    )  # fmt: skip
    parser.add_argument(
        "--read-ahead", choices=("auto", "always"), default="auto",
        help="auto (a node's way: while the roots' bucket reads go to the disk, "
        "Store.reading_ahead) or always",
    )  # fmt: skip
    parser.add_argument(
        "--spread", choices=SPREADS, default="uniform",
        help="who a block touches: uniform (2,000 accounts drawn from all members, the "
        "worst case) or market (readings from all meters, orders from a few thousand "
        "active traders)",
    )  # fmt: skip
    parser.add_argument("--label", default="", help="what code this run measures")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    hashing = benchkit.tree_hashing()  # children inherit the environment that chose it
    if args.cache_mb is not None:
        STORE_OPTIONS["cache_mb"] = args.cache_mb
    if args.no_mmap_reads:
        STORE_OPTIONS["mmap_reads"] = False
    if args.read_threads is not None:
        STORE_OPTIONS["read_threads"] = args.read_threads
    if args.read_ahead == "always":
        STORE_OPTIONS["read_ahead"] = True
    if args.child:
        step, path, members, *rest = args.child
        if step == "build":
            build(Path(path), int(members))
            figures: dict[str, object] = {}
        elif step == "first-open":
            figures = first_open(Path(path))
        else:
            figures = restart(
                Path(path), int(members), int(rest[0]), rest[1] == "1", int(rest[2]), rest[3]
            )
        print(json.dumps(figures))
        return figures
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.memory_max is not None:
        try:
            memory_cgroup.parse_size(args.memory_max)
        except ValueError as error:
            parser.error(str(error))
    rows: list[dict[str, Any]] = []
    result: dict[str, object] = {
        "benchmark": "state",
        "label": args.label,
        "tree_hashing": hashing,
        "python": platform.python_version(),
        "transfers_per_block": TRANSFERS_PER_BLOCK,
        "memory_max": args.memory_max,
        "spread": args.spread,
        "store_options": dict(STORE_OPTIONS),
        "load_average_at_start": os.getloadavg(),
        "sizes": rows,
    }

    def save() -> None:
        benchkit.write({**result, "load_average_at_end": os.getloadavg()}, args.output)

    sweep(
        sizes, args.blocks, args.max_rss_gb, args.keep, rows, save, args.reuse_opened,
        args.steps, args.memory_max, args.settle_blocks, args.spread,
    )  # fmt: skip
    save()
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
