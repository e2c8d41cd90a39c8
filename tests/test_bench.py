"""The benchmark is code too: it must run, apply every transaction, and agree with itself."""

from __future__ import annotations

import asyncio
import http.server
import importlib.util
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

from gridtokenx.node import logs
from gridtokenx.wire import tx
from gridtokenx.wire.crypto import PrivateKey

BENCH = Path(__file__).parent.parent / "bench"


def _load(name: str = "ledger_bench") -> ModuleType:
    """Load a benchmark script as `python bench/NAME.py` would, with bench/ importable."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_intake_bench_admits_every_order_and_writes_json(tmp_path: Path) -> None:
    """One real node, its REST route and its peer path: the bench stops with an error
    unless every order is admitted, and reports the loop's CPU per order on both paths.
    It sets the collector as a node does (`node.collector.tune`); this process's is put
    back after."""
    import gc

    thresholds = gc.get_threshold()
    out = tmp_path / "intake.json"
    try:
        result = _load("intake_bench").main(
            ["--orders", "300", "--rounds", "1", "--participants", "40", "--output", str(out)]
        )
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert json.loads(out.read_text()) == result
    assert result["orders_per_round_per_path"] == 300
    assert result["rest_loop_us_per_order"][0] > 0  # type: ignore[index]
    assert result["peer_loop_us_per_order"][0] > 0  # type: ignore[index]
    assert result["ed25519_verifies_per_s"] > 0  # type: ignore[operator]


def test_verify_threads_bench_checks_every_order_in_each_mode(tmp_path: Path) -> None:
    """On the loop and in one or two pool threads, every signature is checked (the bench
    raises otherwise) and each mode reports its process CPU per verify."""
    out = tmp_path / "verify_threads.json"
    result = _load("verify_threads_bench").main(
        ["--verifies", "600", "--rounds", "1", "--work", "10", "--output", str(out)]
    )
    assert json.loads(out.read_text()) == result
    for mode in ("loop", "1 thread", "2 threads"):
        low, median = result[f"{mode}: cpu_us_per_verify (min, median)"]  # type: ignore[misc]
        assert 0 < low <= median


def test_ledger_bench_runs_small_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "ledger.json"
    result = _load().main(
        ["--participants", "5", "--intervals", "3", "--transfers", "7", "--output", str(out)]
    )
    written = json.loads(out.read_text())
    assert written == result
    assert written["transactions"] == 3 * (5 + 7)
    assert written["raw_ed25519_verify_per_s"] > 0
    assert written["apply_with_signature_per_s"] > 0
    assert len(bytes.fromhex(written["state_root"])) == 32
    assert written["capped_reading_certificates"] == 1_000  # the cap, not the 1,003 owed


def test_market_bench_runs_small_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "market.json"
    result = _load("market_bench").main(["--depth", "40", "--orders", "20", "--output", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["incoming_orders"] == 20
    assert result["p50_us"] > 0 and result["orders_per_s_with_signature"] > 0


def test_transport_bench_runs_small_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "transport.json"
    result = _load("transport_bench").main(["--frames", "200", "--output", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["encrypted_frames_per_s"] > 0 and result["plain_tcp_frames_per_s"] > 0


def test_chain_bench_commits_what_it_offers(tmp_path: Path) -> None:
    out = tmp_path / "chain.json"
    result = _load("chain_bench").main(["--rate", "40", "--seconds", "1", "--output", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["committed"] == result["submitted"] == 40
    assert result["finality_p50_ms"] is not None


@pytest.mark.parametrize(
    ("workload", "submit"), [("crossing", "gossip"), ("day", "gossip"), ("crossing", "api")]
)
def test_devnet_bench_runs_four_processes_small(tmp_path: Path, workload: str, submit: str) -> None:
    """Four validator processes, a small market (crossing orders, or the market-day
    simulator's agents) and a few orders, by gossip or through the validators' REST batch
    route: everything offered is committed, and the stopped validators hold identical
    blocks. With the crossing orders, EGAT's status reports go in as well and are timed
    at every validator."""
    out = tmp_path / "devnet.json"
    grid = ["--grid-every", "1"] if workload == "crossing" else []
    result = _load("devnet_bench").main(
        ["--rate", "40", "--seconds", "1", "--accounts", "6", "--block-ms", "200",
         "--workload", workload, "--submit", submit, "--output", str(out), *grid]
    )  # fmt: skip
    assert json.loads(out.read_text()) == result
    assert result["submitted_via"] == submit
    assert result["submitted"] == result["committed"] == 40
    assert result["all_committed"] is True and result["workload"] == workload
    assert result["heights_checked_identical"] >= 3  # type: ignore[operator]
    assert result["finality_p50_ms"] > 0  # type: ignore[operator]
    assert result["txs_per_block_max"] >= result["txs_per_block_mean"] > 0  # type: ignore[operator]
    steps = result["height_steps"]  # the trading heights' committed lines, read back
    assert isinstance(steps, dict) and steps["execute_cpu_ms_median"] >= 0
    assert steps["execute_ms_p90"] >= steps["execute_ms_median"] > 0
    assert len(result["validator_loop_idle"]) == 4  # type: ignore[arg-type]
    loop, cpu = (
        result["validator_loop_cpu_us_per_committed_tx"],
        result["validator_cpu_us_per_committed_tx"],
    )
    assert 0 < loop <= cpu + 1  # type: ignore[operator]
    assert result["hog"] is None
    if grid:  # one report, committed and timed from its height's line in all four logs
        assert result["grid_updates"] == result["grid_timed_at_every_validator"] == 1
        first, p50 = result["grid_first_validator_p50_ms"], result["grid_all_validators_p50_ms"]
        assert 0 < first <= p50 == result["grid_all_validators_max_ms"]  # type: ignore[operator]
    else:
        assert "grid_updates" not in result


def test_devnet_bench_counts_the_heights_a_validator_executed_unscreened(
    tmp_path: Path,
) -> None:
    """`screened` false on a `committed` line, as the node's log writes it (a block
    executed without this node's screen), is counted per validator, over the trading
    heights only."""
    formatter = logs.PlainFormatter()
    homes = [tmp_path / "a", tmp_path / "b"]
    shown = ({5: None, 6: False, 9: False}, {5: None, 6: None})
    for home, heights in zip(homes, shown, strict=True):
        home.mkdir()
        lines = []
        for height, screened in heights.items():
            extra = {"height": height} if screened is None else {"height": height,
                                                                 "screened": screened}  # fmt: skip
            record = logging.LogRecord("gridtokenx.node.telemetry", logging.INFO, "", 0,
                                       "committed", None, None)  # fmt: skip
            record.__dict__.update(extra)
            lines.append(formatter.format(record) + "\n")
        (home / "node.log").write_text("".join(lines))
    assert _load("devnet_bench").unscreened_commits(homes, {5, 6}) == [[2, 1], [2, 0]]


def test_replay_bench_replays_a_kept_devnet_home_beside_its_own_figures(tmp_path: Path) -> None:
    """The blocks a devnet's validator committed, committed again in this process: the
    same order heights, each part of the commit timed, and the devnet's own figure for
    those heights read from the home's log."""
    homes = tmp_path / "homes"
    _load("devnet_bench").main(
        ["--rate", "40", "--seconds", "1", "--accounts", "6", "--block-ms", "200",
         "--submit", "api", "--keep", str(homes), "--output", str(tmp_path / "devnet.json")]
    )  # fmt: skip
    out = tmp_path / "replay.json"
    bench = _load("replay_bench")
    result = bench.main([str(homes / "egat"), "--ahead", "2", "--output", str(out)])
    assert json.loads(out.read_text()) == result
    assert 0 < result["orders"] <= 40 and result["order_heights"] >= 1
    parts = result["parts_us_per_order"]
    timed = sum(v for k, v in parts.items() if k != "gc")
    assert parts["execute"] > 0 and 0 < timed <= result["commit_cpu_us_per_order"] + 0.5
    assert result["devnet_commit_cpu_us_per_order"] >= 0
    # Every committed line read: a height committed while catching up is logged at DEBUG
    # only (`Telemetry.committed`), so a loaded validator's log may hold fewer than the store.
    logged = (homes / "egat" / "node.log").read_text().count("committed height=")
    assert len(bench.devnet_cpu(homes / "egat")) == logged >= 1


def test_devnet_bench_hog_spins_on_core_0_and_is_killed_after() -> None:
    """`--hog`: a process pinned to core 0 that takes CPU while the run lasts and is gone
    after it, even when the run fails."""
    bench = _load("devnet_bench")
    with pytest.raises(RuntimeError, match="run failed"), bench.cpu_hog() as hog:
        pid = hog["pid"]
        assert hog["pinned_to"] == [0] and os.sched_getaffinity(pid) == {0}
        time.sleep(0.3)
        raise RuntimeError("run failed")
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped
    assert hog["cores_used"] > 0  # type: ignore[operator]


def test_devnet_bench_grid_every_is_whole_seconds_apart_at_least() -> None:
    """A status report's measurement time is in whole seconds and must grow: faster than
    one a second is refused with the reason, as is what is not a number."""
    bench = _load("devnet_bench")
    assert bench._grid_every("2.5") == 2.5
    for bad in ("0.5", "x", "nan"):
        with pytest.raises(Exception, match="grid-every"):
            bench._grid_every(bad)


@pytest.mark.process
def test_height_bench_prices_an_empty_height_on_four_processes(tmp_path: Path) -> None:
    """Four idle validators commit empty heights: the bench counts them and the CPU each
    validator spent per height, beside the machine's figures."""
    out = tmp_path / "height.json"
    result = _load("height_bench").main(
        ["--block-ms", "100", "--seconds", "2", "--output", str(out)]
    )  # fmt: skip
    assert json.loads(out.read_text()) == result
    assert all(n > 0 for n in result["heights"])  # type: ignore[attr-defined]
    assert result["validator_cpu_ms_per_height_mean"] > 0  # type: ignore[operator]
    assert result["raw_ed25519_verify_per_s"] > 0  # type: ignore[operator]


def test_devnet_sweep_reads_its_rates_and_prints_a_line_per_rate() -> None:
    """`--sweep`: positive whole rates only, and one line per rate with the min / median of
    repeated runs where there were repeats."""
    bench = _load("devnet_bench")
    assert bench._rates("1000,1500") == [1000, 1500]
    for bad in ("1000,x", "0,1000"):
        with pytest.raises(Exception, match="rates"):
            bench._rates(bad)
    once = {key: 7 for _, key in bench.SWEEP_COLUMNS}
    repeated = {f"{key}_{side}": n for _, key in bench.SWEEP_COLUMNS
                for side, n in (("min", 1), ("median", 2))}  # fmt: skip
    header, first, second = bench._sweep_table([once, repeated]).splitlines()
    assert header.split()[:4] == ["offered", "committed/s", "of", "peak"]
    assert first.split() == ["7"] * len(bench.SWEEP_COLUMNS)
    assert second.split()[:3] == ["1", "/", "2"]


def test_devnet_sweep_tells_each_rates_share_of_the_highest_committed_rate() -> None:
    """`of_peak`: each rate's committed throughput (the median of its repeats) over the
    highest of the sweep's, so twice the saturation rate reads against saturation."""
    bench = _load("devnet_bench")
    results = [
        {
            "offered_tx_per_s": 5000,
            "committed_tx_per_s_min": 3900,
            "committed_tx_per_s_median": 4000,
        },
        {
            "offered_tx_per_s": 8000,
            "committed_tx_per_s_min": 3000,
            "committed_tx_per_s_median": 3700,
        },
        {"offered_tx_per_s": 3000, "committed_tx_per_s": 2980.0},
    ]
    assert [r["of_peak"] for r in bench.of_peak(results)] == [1.0, 0.925, 0.745]
    assert bench.of_peak([{"committed_tx_per_s": 0}])[0]["of_peak"] is None


def test_sentries_bench_runs_both_layouts_small(tmp_path: Path) -> None:
    """Four validators meshed, then each behind a sentry with the load offered to the
    sentries: everything offered commits in both, and every node holds the same blocks."""
    out = tmp_path / "sentries.json"
    result = _load("sentries_bench").main(
        ["--rate", "20", "--seconds", "1", "--repeat", "1", "--accounts", "6",
         "--block-ms", "200", "--output", str(out)]
    )  # fmt: skip
    written = json.loads(out.read_text())
    assert {name: written[name] for name in result} == result
    for layout in ("direct", "sentries"):
        assert result[layout]["all_committed"] is True  # type: ignore[index]
        (run,) = written["every_run"][layout]
        assert run["submitted"] == run["committed"] == 20
        assert run["heights_checked_identical"] >= 3 and run["finality_p50_ms"] > 0


def test_grid_bench_times_an_update_reaching_all_four_nodes(tmp_path: Path) -> None:
    """Four validator processes: every EGAT status update reaches every node's store."""
    out = tmp_path / "grid.json"
    result = _load("grid_bench").main(["--updates", "3", "--output", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["updates"] == 3 and result["validators"] == 4
    first, slowest = result["first_node_p50_ms"], result["all_nodes_max_ms"]
    assert 0 < first <= slowest  # type: ignore[operator]


def test_api_models_bench_runs_small_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "api_models.json"
    result = _load("api_models_bench").main(["--repeats", "2", "--output", str(out)])
    assert json.loads(out.read_text()) == result
    assert set(result["pages"]) == {"trades", "orders", "blocks"}
    assert all(page["with_model_ms"] > 0 for page in result["pages"].values())


def test_surveillance_bench_measures_recall_and_honest_flags(tmp_path: Path) -> None:
    out = tmp_path / "surveillance.json"
    result = _load("surveillance_bench").main(
        ["--seeds", "1", "--participants", "60", "--intervals", "8", "--repeats", "1",
         "--output", str(out)]
    )  # fmt: skip
    assert json.loads(out.read_text())["instances"] == result["instances"]
    assert result["recall_percent"]["wash_ring"] == 100.0  # type: ignore[index]
    assert result["recall_percent"]["spoofer"] == 100.0  # type: ignore[index]
    assert result["honest_participants_flagged_percent"]["honest_day"]["any"] == 0.0  # type: ignore[index]
    assert result["cost_ms_per_block_median"]["all (tape and detectors)"] > 0  # type: ignore[index]
    per_tx = result["cost_us_per_transaction_median"]
    assert per_tx["all (tape and detectors)"] > per_tx["tape (all less the detectors)"] > 0  # type: ignore[index]
    assert result["transactions"] > result["blocks"] > 0  # type: ignore[operator]
    assert len(result["alerts_digest"]) == 16  # type: ignore[arg-type]


def test_auction_bench_runs_small_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "auction.json"
    result = _load("auction_bench").main(
        ["--sizes", "70", "700", "--repeats", "1", "--output", str(out)]
    )
    assert json.loads(out.read_text()) == result
    assert result["raw_ed25519_verify_per_s"] > 0
    for size in ("steps_70", "steps_700"):
        figures = result[size]
        assert figures["welfare_satang"] > 0 and figures["check_ms_min"] > 0
        assert figures["renewable_steps"] > 0  # the two-commodity clearing is measured


def test_network_bench_runs_small_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "network.json"
    small = ["--nodes", "120", "--seconds", "2", "--warmup", "2", "--drain", "1"]
    result = _load("network_bench").main([*small, "--output", str(out)])
    written = json.loads(out.read_text())
    assert written == result
    mesh, flood = written["runs"]["mesh/seed1"], written["runs"]["flood/seed1"]
    assert set(mesh) == {"calm", "faults", "targets_met"}
    assert mesh["calm"]["messages"]["blocks"] == 2
    assert mesh["calm"]["missed_deliveries"]["blocks"] == 0
    assert mesh["calm"]["block_reach_s"]["p99"] < 1.5
    assert (
        mesh["calm"]["duplicates_per_message"]["blocks"]
        < (flood["calm"]["duplicates_per_message"]["blocks"])
    )
    assert mesh["targets_met"]["validator_connections"] is True
    assert "block_reach_s" in mesh["faults"]["p99_cost_of_faults"]
    # the faulty case alone, as a separate process beside the calm one on a loaded machine
    alone = _load("network_bench").main(
        [*small, "--routers", "mesh", "--cases", "faults", "--output", str(out)]
    )
    assert set(alone["runs"]["mesh/seed1"]) == {"faults", "targets_met"}
    assert alone["runs"]["mesh/seed1"]["faults"]["missed_deliveries"]["blocks"] == 0


def test_passes_bench_counts_one_decode_per_transaction_and_a_wal_sync_per_vote_step(
    tmp_path: Path,
) -> None:
    """Counted, not timed: each node decodes a transaction once (admission; the screen
    and the execution reuse it), hashes its id about once (as it arrives; 0.2 are the
    bench's own: 1.2 in all, 2.2 while a proposal's ids were hashed again by every node
    that checked it and the proposer's screen hashed what its mempool held by id, 8.8
    while admission and the relay hashed it again), and syncs its WAL only before it sends
    what it signed (a proposal with its prevote, a precommit: at most about two per
    height)."""
    out = tmp_path / "passes.json"
    result = _load("passes_bench").main(["--txs", "40", "--output", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["all_committed_everywhere"] is True
    assert result["decodes_per_tx_per_node"] == 1.0
    assert result["tx_id_hashes_per_tx_per_node"] <= 1.6  # 2.2 with a block's ids hashed
    assert isinstance(syncs := result["wal_syncs_per_height_per_node"], float)
    assert 1.0 <= syncs <= 3.5  # rounds add to it; main synced 4 or more per height


def test_passes_bench_in_batches_every_node_gets_each_transaction_once(tmp_path: Path) -> None:
    """Batches from client peers, one at each node in turn, as the devnet's generator sends
    them: each node receives each transaction once in a peer's batch (a batch admitted whole
    goes on as it came, and a copy of it is dropped by its id before it reaches the node;
    before, such a batch went nowhere, 0.2 here, and the rest came by fetching for a
    proposal), and decodes it about once. A proposal that outruns a batch's admission
    decodes what it holds of it again, a batch of 10 at a node at a time: 1.2 and 1.4 a
    transaction were seen (a CI run, and one of 14 runs here, 6 December 2026), so the
    bound is 1.5; decoding each copy a node is sent, or each transaction again for the
    proposal, would give 2 or more."""
    out = tmp_path / "passes.json"
    result = _load("passes_bench").main(
        ["--txs", "40", "--batch", "10", "--every", "0.05", "--output", str(out)]
    )
    assert result["all_committed_everywhere"] is True
    assert result["tx_copies_received_per_tx_per_node"] == 1.0
    assert isinstance(decodes := result["decodes_per_tx_per_node"], float)
    assert decodes <= 1.5


@pytest.mark.process
def test_statesync_bench_runs_small(tmp_path: Path) -> None:
    """A few hundred meters joined by state sync and a short chain block-synced both ways:
    the bench runs, and its figures are there and sane."""
    out = tmp_path / "statesync.json"
    result = _load("statesync_bench").main(
        ["--meters", "300", "--blocks", "2", "--tps", "40", "--output", str(out)]
    )
    assert json.loads(out.read_text()) == result
    (join,) = result["state_sync"]
    assert join["records"] > 300 * 4 and join["chunks"] >= 1 and join["join_s"] > 0
    (sync,) = result["block_sync"]
    assert sync["blocks"] >= 2 and sync["fast_x_real_time"] > 0


@pytest.mark.process
def test_catchup_bench_finishes_with_a_tail_of_one_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tiny chain whose snapshot is one block below the tip: after the state sync the
    node lacks that one block. The bench told it its peers showed the tip's height, the
    height the node then decides, so it asked for nothing and waited 3 hours; a peer that
    committed the tip votes on the next height, which is what the bench now says."""
    bench = _load("catchup_bench")
    monkeypatch.setattr(bench, "STALL_S", 20.0)  # a stop fails the test, not hangs it
    out = tmp_path / "catchup.json"
    result = bench.main(["--blocks", "3", "--tail", "1", "--tps", "40", "--participants", "40",
                         "--work", str(tmp_path / "work"), "--output", str(out)])  # fmt: skip
    assert json.loads(out.read_text()) == result
    assert result["top"] - result["snapshot_height"] == 1
    assert result["replay_s"] > 0 and result["state_sync_route_s"] > 0


@pytest.mark.process
def test_catchday_bench_catches_up_a_day_while_the_tip_moves(tmp_path: Path) -> None:
    """A short outage and a day, on a small built state and a few real blocks: the node
    state-syncs to the snapshot near the tip (at height ~86,400 for the day), replays
    the tail, and reaches a tip that moved on while it did, before the blocks ran out."""
    out = tmp_path / "catchday.json"
    args = ["--outages", "120,86400", "--meters", "300", "--blocks", "6", "--tail", "3",
            "--release", "60", "--tps", "30", "--participants", "40", "--repeat", "1"]  # fmt: skip
    result = _load("catchday_bench").main([*args, "--output", str(out)])
    assert json.loads(out.read_text()) == result
    short, day = result["outages"]
    assert short["outage_s"] == 120 and day["outage_s"] == 86_400
    assert day["snapshot_height"] > 86_000 and day["records"] > 300 * 5
    for outage in (short, day):
        (run,) = outage["runs"]
        assert run["snapshot_height"] == outage["snapshot_height"]
        assert run["tail_blocks"] >= 3 and not run["tip_ran_out"]
        assert run["tip_moved_blocks"] >= 0 and run["wall_s"] > run["state_sync_s"] > 0
        assert run["x_real_time"] == pytest.approx(outage["outage_s"] / run["wall_s"], rel=0.01)
    assert day["runs"][0]["state_sync_behind"] == 3600  # the default threshold


@pytest.mark.process
def test_compact_bench_counts_bytes_per_height_on_a_live_network(tmp_path: Path) -> None:
    """Six nodes in the test's process; the frames are counted by kind per height."""
    out = tmp_path / "compact.json"
    result = _load("compact_bench").main(
        ["--orders", "300", "--accounts", "10", "--output", str(out)]
    )
    assert json.loads(out.read_text())["live"] == result["live"]
    sizes, live = result["sizes"], result["live"]
    assert isinstance(sizes, dict) and isinstance(live, dict)
    assert sizes["proposal_compact_bytes"] * 3 < sizes["proposal_whole_bytes"]
    assert live["same_state_everywhere"] is True and live["heights"] >= 1
    assert live["commit_bytes_per_height"] > 0 and live["proposal_bytes_per_height"] > 0


def test_hotpath_bench_profiles_a_validator_on_the_day_mix(tmp_path: Path) -> None:
    out = tmp_path / "hotpath.json"
    result = _load("hotpath_bench").main(
        ["--orders", "120", "--block", "50", "--participants", "30", "--output", str(out)]
    )
    written = json.loads(out.read_text())
    assert written == result
    assert written["orders_committed"] == 120 and written["heights"] >= 3
    assert written["validator_cpu_us_per_order"] > 0
    stages = written["stages_cumulative_us_per_order"]
    assert stages["commit (all of it)"] >= stages["execution: transition.apply"] > 0
    assert stages["state root: State.root"] > 0
    assert set(written["groups_us_per_order"]) >= {"python", "rocksdb", "msgpack", "sha256"}
    assert len(written["hottest"]) == 30


def test_hotpath_bench_at_a_fixed_clock_repeats_its_roots(tmp_path: Path) -> None:
    """With `--clock` the load is the same whenever it runs: two runs commit the same
    states, on crossing orders and on the day mix, and the plain run skips the profile."""
    bench = _load("hotpath_bench")
    for workload in ("crossing", "day"):
        shape = ["--orders", "100", "--block", "50", "--participants", "20"]
        args = [*shape, "--workload", workload, "--clock", "1796439600", "--no-profile"]
        first = bench.main([*args, "--output", str(tmp_path / f"{workload}-1.json")])
        second = bench.main([*args, "--output", str(tmp_path / f"{workload}-2.json")])
        assert first["workload"] == workload and first["orders_committed"] == 100
        assert len(first["state_roots"]) == first["heights"] >= 2
        assert first["state_roots"] == second["state_roots"]
        assert first["ed25519_verifies_per_s"] > 0 and "hottest" not in first
    # Surveillance following the validator's commits reads, never writes, the state.
    args = [*shape, "--workload", "crossing", "--clock", "1796439600", "--no-profile"]
    followed = bench.main([*args, "--surveillance", "--output", str(tmp_path / "s.json")])
    crossing = json.loads((tmp_path / "crossing-1.json").read_text())
    assert followed["surveillance"] is True and crossing["surveillance"] is False
    assert followed["state_roots"] == crossing["state_roots"]
    assert "follower_us_per_order_runs" not in followed


def test_hotpath_bench_times_fresh_followers_over_the_same_commits(tmp_path: Path) -> None:
    """`--follower-repeats` hands the measured heights to fresh followers: each one's CPU
    per order, and the alerts they raised (none at one clock: nothing settles)."""
    bench = _load("hotpath_bench")
    args = ["--orders", "100", "--block", "50", "--participants", "20", "--workload",
            "crossing", "--clock", "1796439600", "--no-profile", "--surveillance"]  # fmt: skip
    result = bench.main([*args, "--follower-repeats", "3", "--follower-profile",
                         "--output", str(tmp_path / "f.json")])  # fmt: skip
    runs = result["follower_us_per_order_runs"]
    assert isinstance(runs, list) and len(runs) == 3 and min(runs) > 0
    assert result["follower_us_per_order_min"] == min(runs)
    assert result["follower_alerts"] == 0
    assert any("tape.py" in row["function"] for row in result["follower_profile"])  # type: ignore[attr-defined]
    with pytest.raises(SystemExit):
        bench.main([*args[:-1], "--follower-repeats", "3"])  # needs --surveillance


def test_memory_limit_sizes_parse() -> None:
    parse = _load("memory_cgroup").parse_size
    assert parse("2G") == 2 * 2**30
    assert parse("1536m") == 1536 * 2**20
    assert parse("4096") == 4096
    assert parse("max") is None  # a cgroup without a limit, measured the same way
    for bad in ("lots", "0", "-1G", ""):
        with pytest.raises(ValueError, match="memory limit"):
            parse(bad)


def test_state_bench_runs_in_a_memory_cgroup(tmp_path: Path) -> None:
    """The restart child runs inside a limited cgroup that is gone afterwards, and the
    kernel's own figures come back with the benchmark's."""
    result = _load("state_bench").main(
        ["--sizes", "1000", "--blocks", "2", "--memory-max", "1G",
         "--output", str(tmp_path / "state.json")]
    )  # fmt: skip
    (row,) = result["sizes"]
    if "memory_cgroup_skipped" in row:
        pytest.skip(row["memory_cgroup_skipped"])
    assert row["memory_limit_mb"] == 1024 and row["oom_kills"] == 0
    assert row["cgroup_version"] in (1, 2)
    # the child itself was charged: its interpreter and the store's pages it read
    assert row["cgroup_anon_mb"] > 5 and row["cgroup_file_mb_after_warmup"] > 0
    assert 0 < row["memory_peak_mb"] <= 1024
    assert not Path(row["cgroup_path"]).exists()


def test_benchkit_quantiles_are_nearest_rank_and_one_run_is_its_own_summary() -> None:
    benchkit = _load("benchkit")
    # Of 20 latencies the 99th percentile is the slowest; of 200 the 198th (99 % at or below).
    twenty = [i / 1000 for i in range(1, 21)]
    assert benchkit.quantile_ms(twenty, 0.99) == 20.0
    assert benchkit.quantile([float(i) for i in range(1, 201)], 0.99) == 198.0
    assert benchkit.quantile_ms([], 0.99) is None
    assert benchkit.quantile([], 0.5) != benchkit.quantile([], 0.5)  # NaN
    one = {"committed_tx_per_s": 990.0}
    assert benchkit.summarize([one]) == one
    two = benchkit.summarize([one, {"committed_tx_per_s": 1000.0}])
    assert two["committed_tx_per_s_min"] == 990.0 and two["repeats"] == 2


def test_an_interrupted_benchmark_says_so_and_exits_130(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Ctrl-C (or a `kill`) mid-run stops the bench's processes and ends it with status
    130 and a line on stderr, not status 0 and silence."""
    import signal

    benchkit = _load("benchkit")
    stopped: list[str] = []
    before = signal.getsignal(signal.SIGTERM)

    def interrupted(argv: list[str]) -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` would
            time.sleep(5)  # not reached: SIGTERM raises KeyboardInterrupt here
        finally:
            stopped.append("its processes")

    with pytest.raises(SystemExit) as ended:
        benchkit.run_main(interrupted, [])
    assert ended.value.code == 130 and stopped == ["its processes"]
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back

    def measured(argv: list[str]) -> None:
        stopped.append(" ".join(argv))

    benchkit.run_main(measured, ["--rate", "1"])  # a run that ends normally: no exit
    assert stopped[-1] == "--rate 1"


def test_devnet_sweep_goes_round_the_rates_once_per_repeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeats go round the rates (R1, R2, R1, R2), so each rate's runs share the same
    minutes; every rate gets one line with its share of the highest."""
    bench = _load("devnet_bench")
    seen: list[int] = []

    def once(args: object) -> dict[str, object]:
        rate = args.rate  # type: ignore[attr-defined]
        seen.append(rate)
        return {"offered_tx_per_s": rate, "committed_tx_per_s": {5000: 4000, 8000: 3600}[rate],
                "validator_cpu_cores_while_trading": [0.5] * 4, "validator_loop_idle": [0.2] * 4,
                "validator_loop_waited_for_core": [0.3] * 4}  # fmt: skip

    monkeypatch.setattr(bench, "_once", once)
    out = tmp_path / "sweep.json"
    result = bench.main(["--sweep", "5000,8000", "--repeats", "2", "--output", str(out)])
    assert seen == [5000, 8000, 5000, 8000]
    lines = result["results"]
    assert [(r["offered_tx_per_s_median"], r["of_peak"]) for r in lines] == [
        (5000, 1.0),
        (8000, 0.9),
    ]  # type: ignore[index, union-attr]
    assert json.loads(out.read_text())["rates"] == [5000, 8000]


def test_devnet_sweep_with_orders_offers_each_rate_the_same_orders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--orders N`: each rate runs for N / rate seconds, so every run ends on a state of
    the same size; without it, for --seconds; zero or fewer orders are refused."""
    bench = _load("devnet_bench")
    ran: list[tuple[int, float]] = []

    def run(rate: int, seconds: float, *args: object) -> dict[str, object]:
        ran.append((rate, seconds))
        return {"offered_tx_per_s": rate, "committed_tx_per_s": 3000.0,
                "validator_cpu_cores_while_trading": [0.5] * 4, "validator_loop_idle": [0.2] * 4,
                "validator_loop_waited_for_core": [0.3] * 4}  # fmt: skip

    monkeypatch.setattr(bench, "run", run)
    monkeypatch.setattr(bench, "the_machine", dict)
    out = str(tmp_path / "sweep.json")
    bench.main(["--sweep", "5000,8000", "--orders", "160000", "--output", out])
    bench.main(["--rate", "4000", "--seconds", "3", "--output", out])
    assert ran == [(5000, 32.0), (8000, 20.0), (4000, 3.0)]
    with pytest.raises(SystemExit):
        bench.main(["--orders", "0", "--output", out])


def test_devnet_bench_tells_what_became_of_orders_not_final() -> None:
    """The orders not final at a run's end: counted, their senders' lowest nonces, how
    many the client still held to send again, and each validator's answer for them
    (pending, dropped with its reason, or unknown), asked of its API."""
    bench = _load("devnet_bench")
    key = PrivateKey.from_dev_label("bench-test/not-final")
    raws = [tx.make(key, "c", n, tx.Transfer(tx.Asset.THB, key.address, 1)).encode()
            for n in (7, 8, 9)]  # fmt: skip
    evicted, pending = (tx.hash_of(raw).hex() for raw in raws[:2])
    answers = {evicted: (200, {"hash": evicted, "status": "dropped", "reason": "EVICTED"}),
               pending: (200, {"hash": pending, "status": "pending"})}  # fmt: skip

    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = answers.get(self.path.rsplit("/", 1)[1], (404, {"error": "x"}))
            self.send_response(code)
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        gen = bench.Generator([server.server_address[1]])
        gen.again.append((0.0, raws[2]))  # refused to the end: the client still holds it
        found = asyncio.run(bench.what_became_of(raws, [server.server_address[1]], gen))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert found["count"] == 3 and found["still_to_send_again"] == 1
    assert found["senders_lowest_nonce"] == {key.address.hex()[:12]: 7}
    assert found["status_at_validators"] == [{"dropped:EVICTED": 1, "pending": 1, "unknown": 1}]
    # A validator that no longer answers (its port closed) is said so, not raised.
    gone = asyncio.run(bench.what_became_of(raws[:1], [server.server_address[1]], gen))
    assert gone["status_at_validators"] == [{"unanswered": 1}]
