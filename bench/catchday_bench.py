"""Catching up after an outage of `--outages` seconds (up to a day) on a 1,000 TPS chain
by the state-sync route, while the tip keeps moving at one block a second: outage seconds
per wall second until the node is at the tip.

What is real and what is built (one validator, EGAT, whose precommit certifies each block):

- **The offline node**: a real store holding genesis and one certified block, the outage's
  length before the tip. It comes back with state sync on (`node.state_sync.catch_up`,
  `behind` = `[storage] state_sync_behind`, 3600, or less for outages shorter than that).
- **The day's state, built**: the genesis state plus `--meters` participants with a meter
  each, made by the simulator's population generator and written straight into the store
  (`statesync_bench.put_meters`: the registry's own records, a sample of 200 checked
  against its handlers), shaped as a node that state-synced at height J would hold it
  (`Store.finish_state_sync`, its validator history started there). Block J is made, not
  executed (no transactions, certified by a real precommit); heights 2..J-1 do not exist
  (the serving nodes pruned them, as a state-synced node has). J and its time are chosen
  so that the tip at the start is the outage's length after the offline node's block,
  at one block a second (a day: J about 86,300).
- **The last blocks, real**: on top of it the day mix's setup (`simulator.loadgen.
  rolling_load`: `--participants` traders, their meters, licences and funds, through
  transactions), then `--blocks` blocks of `--tps` of its orders one chain second apart,
  executed by the application and certified. A snapshot is taken `--tail` blocks before the
  tip (the snapshot the node fetches, as `snapshot_interval` would take it).
- **The moving tip**: `--release` more real blocks are built the same way; the two serving
  nodes answer only up to a tip that moves on by one block each wall second from the
  moment the node comes back (they are other machines: what they executed was done at
  build time), and the node hears of each new height as their votes on the next height
  would show it. A run that outlasts the released blocks is reported (`tip_ran_out`).

Every figure comes with the load average and the raw Ed25519 rate of the same run; the
machine is shared. `--repeat` runs each outage again on the same built chain (min and
median in the JSON).

    python bench/catchday_bench.py [--outages 120,600,1800,86400] [--meters 50000]
        [--blocks 40] [--tail 20] [--release 180] [--tps 1000] [--repeat 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).parent))

from benchkit import print_figures, raw_verify_rate, write
from catchup_bench import start_node, stop_all, until_at
from gridtokenx.chain import blocks
from gridtokenx.chain.application import Application
from gridtokenx.consensus.core import Timeouts
from gridtokenx.ledger import genesis, validator_set
from gridtokenx.node.runtime import Node
from gridtokenx.node.state_sync import catch_up
from gridtokenx.simulator import loadgen
from gridtokenx.storage import snapshots, validator_history
from gridtokenx.storage.store import Store, open_application
from gridtokenx.wire import codec, crypto, tx
from statesync_bench import CHAIN, EGAT, SPEC, T0, _certificate, put_meters

RESULTS: Final = Path(__file__).parent / "results" / "catchday.json"
OFFLINE_TIME: Final = T0 + 60  # the offline node's last block
SETUP_HEIGHTS: Final = 20  # heights kept for the setup's blocks below the orders
STATE_SYNC_BEHIND: Final = 3600  # `[storage] state_sync_behind`'s default


def _made_block(height: int, time: int) -> bytes:
    """Block J: no transactions, the genesis set's hash (the set never changes here)."""
    validators = validator_set.for_height(genesis.build_state(SPEC), height)
    header = blocks.Header(CHAIN, height, time, b"\0" * 32, EGAT.address, b"\0" * 32,
                           b"\0" * 32, validator_set.set_hash(validators), b"\0" * 32)  # fmt: skip
    return blocks.Block(header, ()).encode()


def build_state(template: Path, meters: int) -> float:
    """The population's records in a store at `template` (no height yet), once."""
    started = time.perf_counter()
    if not (template / "CURRENT").exists():
        with Store(template) as store:
            put_meters(store, meters)
    return time.perf_counter() - started


def build(work: Path, template: Path, outage: int, blocks_n: int, tail: int, release: int,
          tps: int, participants: int) -> dict[str, Any]:  # fmt: skip
    """The offline node at work/offline, the chain (state made at J, then real blocks) at
    work/chain with every block up to the last released one, and a snapshot `tail`
    blocks below the tip in work/snapshots; what was built."""
    started = time.perf_counter()
    app = open_application(SPEC, work / "offline")
    try:
        raw = app.build_block(1, OFFLINE_TIME, EGAT.address)
        app.commit(1, raw, _certificate(1, raw))
    finally:
        app.close()
    jump_time = OFFLINE_TIME + outage - blocks_n  # the orders' first second follows it
    jump = 1 + outage - blocks_n - SETUP_HEIGHTS
    if jump < 3:
        raise SystemExit(f"an outage of {outage} s holds no {blocks_n} blocks and a setup")
    shutil.copytree(template, work / "chain")
    raw = _made_block(jump, jump_time)
    with Store(work / "chain") as store:
        genesis_root = store.genesis_root()
        assert genesis_root is not None
        store.finish_state_sync(jump, raw, codec.encode(_certificate(jump, raw)),
                                genesis_root, SPEC.hash())  # fmt: skip
        store.rebuild_tree()
        validator_history.start(store, jump, raw, ())
        records = store.tree_meta()
    assert records is not None
    load = loadgen.rolling_load(SPEC, genesis.dev_keys(), jump_time, (blocks_n + release) * tps,
                                float(tps), participants, key_prefix="catchday")  # fmt: skip
    served = snapshots.Snapshots(work / "snapshots")
    app = open_application(SPEC, work / "chain")
    released = []
    try:
        for phase in load.setup:  # in slices: the mempool holds a sender 1,000 nonces ahead
            for first in range(0, len(phase), 500):
                for raw in phase[first : first + 500]:
                    app.submit(raw)
                _commit_ready(app, jump_time)
        setup_top = app.height
        for second in range(blocks_n + release):
            for raw in load.orders[second * tps : (second + 1) * tps]:
                app.submit(raw)
            _commit_ready(app, jump_time + 1 + second)
            if second == blocks_n - 1 - tail:
                assert served.take(app.store) == app.height
            if second == blocks_n - 1:
                top, top_time = app.height, app.last_time
            if second >= blocks_n:
                released.append(app.height)  # the tip after each wall second
        assert served.complete(app.store), "the snapshot was not offered"
    finally:
        app.close()
    baseline = raw_verify_rate(tx.decode(r) for r in load.orders[:2000])
    return {"outage_s": top_time - OFFLINE_TIME, "offline_height": 1, "made_height": jump,
            "setup_heights": setup_top - jump, "top": top, "released": released,
            "snapshot_height": served.heights()[-1], "records": records[1],
            "build_s": round(time.perf_counter() - started, 1),
            "build_ed25519_verify_per_s": round(baseline)}  # fmt: skip


def _commit_ready(app: Application[Store], when: int) -> None:
    while app.mempool.has_ready(app.nonce_of):
        height = app.height + 1
        raw = app.build_block(height, when, EGAT.address)
        app.commit(height, raw, _certificate(height, raw))


class _Released:
    """A serving node's application that shows its blocks only up to the moving tip."""

    def __init__(self, app: Application[Store]) -> None:
        self._app = app
        self.tip = app.height  # all of them until told otherwise

    @property
    def height(self) -> int:
        return min(self.tip, self._app.height)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


async def run(work: Path, built: dict[str, Any]) -> dict[str, Any]:
    """One catch-up of the offline node (a copy) from two serving nodes while the tip
    moves on a block a wall second."""
    servers, apps = [], []
    for i in range(2):
        shutil.copytree(work / "chain", work / f"server-{i}")
        shutil.copytree(work / "snapshots", work / f"snapshots-{i}")
        key = crypto.PrivateKey.from_dev_label(f"bench/catchday-server-{i}")
        released = _Released(open_application(SPEC, work / f"server-{i}"))
        # Made with all its blocks (its consensus decides the height after the last), so
        # the certified blocks the node announces as it replays are behind it, as they
        # would be for a peer at the tip: it does not execute them again.
        server = Node(key, released, Timeouts(*[60_000] * 3))  # type: ignore[arg-type]
        released.tip = built["top"]
        server.snapshots = snapshots.Snapshots(work / f"snapshots-{i}")
        servers.append(server)
        apps.append(released)
    shutil.copytree(work / "offline", work / "node")
    key = crypto.PrivateKey.from_dev_label("bench/catchday-node")
    node: Node | None = None
    load_start = os.getloadavg()[0]
    try:
        ports = [await s.gossip.listen() for s in servers]
        peers = [("127.0.0.1", p, s.key.address.hex()) for s, p in zip(servers, ports, strict=True)]
        behind = min(STATE_SYNC_BEHIND, built["snapshot_height"] - built["offline_height"] - 1)
        started = time.perf_counter()
        tips: list[int] = [built["top"], *built["released"]]

        def tip() -> int:
            """The tip now: one more released block each wall second since the start."""
            return tips[min(int(time.perf_counter() - started), len(tips) - 1)]

        async def move() -> None:
            while True:
                for released in apps:
                    released.tip = tip()
                if node is not None:
                    for server in servers:  # their votes on the next height show it
                        node._catch_up(tip() + 1, server.key.address)
                await asyncio.sleep(0.1)

        mover = asyncio.create_task(move())
        try:
            done = await catch_up(work / "node", SPEC, key, peers, behind, timeout_s=120)
            assert done is not None, "the node did not state-sync"
            synced_s = time.perf_counter() - started
            node = await start_node(work / "node", key, servers, ports)
            while node.app.height < tip():
                await until_at(node, tip())
            wall_s = time.perf_counter() - started
        finally:
            mover.cancel()
        at, ran_out = node.app.height, wall_s >= len(tips) - 1
        return {"wall_s": round(wall_s, 2), "state_sync_s": round(synced_s, 2),
                "snapshot_height": done.height, "tail_blocks": at - done.height,
                "tip_moved_blocks": at - built["top"], "tip_ran_out": ran_out,
                # with the tip stopped, the node reached a tip that a live chain had left
                "x_real_time": None if ran_out else round(built["outage_s"] / wall_s, 1),
                "replayed_blocks_per_s": round((at - done.height) / (wall_s - synced_s), 2),
                "state_sync_behind": behind, "load_average_1m_start": round(load_start, 2),
                "load_average_1m_end": round(os.getloadavg()[0], 2)}  # fmt: skip
    finally:
        await stop_all(node, servers, work)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", default="120,600,1800,86400", help="seconds, commas")
    parser.add_argument("--meters", type=int, default=50_000, help="the built state's")
    parser.add_argument("--blocks", type=int, default=40, help="real blocks up to the tip")
    parser.add_argument("--tail", type=int, default=20, help="of them after the snapshot")
    parser.add_argument("--release", type=int, default=180, help="blocks the tip moves on")
    parser.add_argument("--tps", type=int, default=1000)
    parser.add_argument("--participants", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--work", type=Path, help="build here, or reuse what is there")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"cpus": os.cpu_count(), "meters": args.meters, "tps": args.tps,
                              "load_average_1m_at_start": round(os.getloadavg()[0], 2)}  # fmt: skip
    outages = []
    with tempfile.TemporaryDirectory(prefix="catchday-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result["state_build_s"] = round(build_state(work / "state", args.meters), 1)
        for outage in (int(o) for o in args.outages.split(",")):
            here = work / f"outage-{outage}"
            if (here / "built.json").exists():
                built = json.loads((here / "built.json").read_text())
            else:
                shutil.rmtree(here, ignore_errors=True)
                here.mkdir()
                built = build(here, work / "state", outage, args.blocks, args.tail,
                              args.release, args.tps, args.participants)  # fmt: skip
                (here / "built.json").write_text(json.dumps(built))
            runs = []
            for _ in range(args.repeat):
                verify = raw_verify_rate(_sample(here))
                runs.append(asyncio.run(run(here, built)) | {"ed25519_verify_per_s": round(verify)})
            walls = [r["wall_s"] for r in runs]
            xs = [r["x_real_time"] for r in runs if r["x_real_time"] is not None]
            outages.append({**{k: v for k, v in built.items() if k != "released"},
                            "wall_s_min": min(walls), "wall_s_median": statistics.median(walls),
                            "caught_up": f"{len(xs)} of {len(runs)}",
                            "x_real_time_best": max(xs, default=None),
                            "x_real_time_median": statistics.median(xs) if xs else None,
                            "runs": runs})  # fmt: skip
    result["outages"] = outages
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    for o in outages:
        print(f"  outage {o['outage_s']:>6} s: wall {o['wall_s_min']}-{o['wall_s_median']} s "
              f"(min-median), at the tip in {o['caught_up']} runs, "
              f"{o['x_real_time_best']}x real time at best, "
              f"{o['x_real_time_median']}x median")  # fmt: skip
    print_figures({k: v for k, v in result.items() if k != "outages"})
    write(result, args.output)
    return result


def _sample(here: Path) -> list[tx.SignedTransaction]:
    """Signed transactions of the chain's last block: the Ed25519 baseline's bytes."""
    with Store(here / "chain") as store:
        stored = store.block(store.height())
    assert stored is not None
    return [tx.decode(r) for r in blocks.decode(stored[0]).txs]


if __name__ == "__main__":
    main()
