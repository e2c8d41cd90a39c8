"""The network simulator at 500 nodes: every node gets every block and grid update, and
every mesh stays within its degree bounds; with faults; next to flooding; replayable."""

from __future__ import annotations

import math
import random
from functools import cache

import pytest

from gridtokenx.netsim import engine, topology, traffic
from gridtokenx.netsim.topology import Role
from gridtokenx.p2p.mesh import Params, Topic

SHORT = dict(warmup_s=3.0, duration_s=4.0, drain_s=3.0)


@cache
def sizes() -> traffic.Sizes:
    return traffic.sizes(1_000, 1.0, 2.0, 5)


@cache
def report(nodes: int, router: str = "mesh", faults: float = 0.0) -> engine.Report:
    scenario = engine.Scenario(
        layout=topology.Layout(nodes=nodes), router=router, non_reading=faults, churn=faults,
        **SHORT,  # type: ignore[arg-type]
    )  # fmt: skip
    return engine.run(scenario, sizes())


def test_500_nodes_every_node_gets_every_block_and_grid_update_in_bounds() -> None:
    r = report(500)
    for topic in ("blocks", "grid", "transactions"):
        assert r.messages[topic] > 0
        assert r.missed[topic] == 0, topic
        assert all(math.isfinite(t) for t in r.reach_s[topic]), topic
    assert r.messages["blocks"] == 4  # one a second over the 4 s measured
    assert len(r.delivery_s["blocks"]) == r.messages["blocks"] * 500  # the proposer at 0 s
    assert max(r.reach_s["grid"]) < 1.0
    assert max(r.reach_s["blocks"]) < 1.5
    assert r.heartbeats_checked > 500 * 3 * 4  # every node, every topic, every second
    assert r.degree_violations == 0
    params = Params()
    for topic, sizes_seen in r.degrees.items():
        assert not any(sizes_seen[params.degree(Topic[topic.upper()]).d_hi + 1 :]), topic
    assert max(r.connections["validator"]) <= 50
    assert max(r.connections["sentry"]) <= 200


def test_500_nodes_with_non_reading_and_churning_peers_still_reach_everyone() -> None:
    r = report(500, faults=0.01)
    assert r.missed["blocks"] == 0
    assert r.missed["grid"] == 0
    assert r.degree_violations == 0
    calm = report(500)
    # nodes that were down or never read are not counted, so fewer deliveries
    assert len(r.delivery_s["blocks"]) < len(calm.delivery_s["blocks"])


def test_mesh_sends_fewer_duplicates_and_bytes_than_flooding() -> None:
    mesh, flood = report(200), report(200, "flood")
    assert mesh.duplicates["blocks"] < flood.duplicates["blocks"] / 2
    # Compact blocks (35 KB) leave a 20 Mbit/s upload in 14 ms, so few IDONTWANTs overtake a
    # copy: a blocks mesh of 6 rather than 8 keeps them within the target of 3 (2.5 here,
    # 3.2 with 8; docs/netsim.md).
    assert mesh.duplicates["blocks"] <= 3.0
    mean = sum(mesh.bytes_per_s["full"]["sent"]) / len(mesh.bytes_per_s["full"]["sent"])
    flood_mean = sum(flood.bytes_per_s["full"]["sent"]) / len(flood.bytes_per_s["full"]["sent"])
    assert mean < flood_mean


def test_a_run_is_replayed_exactly_by_its_seed() -> None:
    def run(seed: int) -> tuple[object, ...]:
        scenario = engine.Scenario(layout=topology.Layout(nodes=120), seed=seed, warmup_s=2.0,
                                   duration_s=2.0, drain_s=1.0)  # fmt: skip
        r = engine.run(scenario, sizes())
        return r.events, r.reach_s["blocks"], r.duplicates

    assert run(3) == run(3)
    assert run(3) != run(4)


@pytest.mark.parametrize("router", ["mesh", "flood"])
def test_events_in_slots_run_in_the_order_of_one_heap(
    router: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run() -> engine.Report:
        scenario = engine.Scenario(layout=topology.Layout(nodes=150), router=router,
                                   warmup_s=2.0, duration_s=2.0, drain_s=1.0,
                                   non_reading=0.02, churn=0.02)  # fmt: skip
        return engine.run(scenario, sizes())

    slotted = run()
    monkeypatch.setattr(engine, "_PER_SLOT", 1e-9)  # every event in slot 0: one heap
    assert run() == slotted


def test_message_sizes_come_from_the_real_encodings() -> None:
    s = sizes()
    assert s.block_txs == 1_000
    assert 130_000 < s.whole_commit < 170_000  # about 145 bytes a transaction
    assert 32_000 < s.commit < 40_000  # compact: 34 bytes an id (bench/compact_bench.py)
    assert s.proposal < s.commit  # the commit adds the certificate
    assert 100 < s.vote < 200
    assert 200 < s.grid < 1_000
    assert s.tx_batch_txs == 500
    assert len(traffic.market_day_txs(37)) == 37


def test_the_layout_keeps_validators_behind_sentries_and_within_caps() -> None:
    layout = topology.Layout(nodes=2_000)
    net = topology.build(layout, random.Random(1))
    degree = [0] * layout.nodes
    for a, b in net.links:
        degree[a] += 1
        degree[b] += 1
        if Role.VALIDATOR in (net.roles[a], net.roles[b]):
            assert Role.FULL not in (net.roles[a], net.roles[b])  # validators see sentries only
    assert all(d == 20 for d, r in zip(degree, net.roles, strict=True) if r is Role.VALIDATOR)
    assert all(d <= 200 for d, r in zip(degree, net.roles, strict=True) if r is Role.SENTRY)
    assert min(degree) >= 1
    assert net.upload[0] == 100e6 / 8 and net.upload[-1] == 20e6 / 8


def test_a_bad_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match="mesh or flood"):
        engine.Scenario(router="epidemic")
    with pytest.raises(ValueError, match="full nodes"):
        topology.Layout(nodes=25)
