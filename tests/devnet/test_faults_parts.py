"""The fault harness's parts on their own: scenarios as data, the soak's schedule, the
proxies' partitions and slow links (in-process, on 127.0.0.1), and the skewed clock."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from gridtokenx.devnet.faults.launch import SkewedClock
from gridtokenx.devnet.faults.network import Link, ProxyNetwork, blocked_pairs
from gridtokenx.devnet.faults.report import gaps, percentile, timeline
from gridtokenx.devnet.faults.scenario import (
    Fault,
    Scenario,
    ScenarioError,
    faulty_validators,
    parse,
    soak_schedule,
)

TOML = b"""
name = "example"
full_nodes = 1
[load]
kind = "transfers"
rate = 10
seconds = 20
[[faults]]
kind = "kill"
at = 5
duration = 4
nodes = ["pea"]
[[faults]]
kind = "partition"
at = 12
groups = [["egat"], ["full1"]]
"""


def test_a_scenario_loads_from_toml_and_json_alike() -> None:
    scenario = parse(TOML)
    assert scenario.node_names() == ["egat", "mea", "pea", "erc", "full1"]
    assert scenario.faults[0] == Fault("kill", 5, 4, nodes=("pea",))
    assert scenario.faults[1].groups == (("egat",), ("full1",))
    assert scenario.seconds == 20  # the load outlasts both faults
    assert parse(msgspec.json.encode(scenario), ".json") == scenario


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b'name = "x"\n[[faults]]\nkind = "kill"\nat = 1\nnodes = ["nepo"]', "unknown nodes"),
        (b'name = "x"\n[[faults]]\nkind = "slow"\nat = 1\nnodes = ["mea"]', "bytes_per_s"),
        (b'name = "x"\n[[faults]]\nkind = "partition"\nat = 1', "needs groups"),
        (b'name = "x"\n[[faults]]\nkind = "melt"\nat = 1', "Invalid enum value"),
        (b'name = "x"\nspeed = 3', "unknown field"),
        (b'name = "x"\nvalidators = 9', "1 to 5 validators"),
    ],
)
def test_a_bad_scenario_is_refused_with_its_problem(text: bytes, problem: str) -> None:
    with pytest.raises(ScenarioError, match=problem):
        parse(text)


def test_the_soak_schedule_never_has_two_validators_faulty_at_once() -> None:
    validators = ["egat", "mea", "pea", "erc"]
    for seed in range(20):
        faults = soak_schedule(seed, 1800, validators, ["full1"])
        assert 30 <= len(faults) <= 60
        assert {f.kind for f in faults} == {
            "kill", "restart", "pause", "partition", "slow", "rogue", "clock",
        }  # fmt: skip
        for a, b in itertools.pairwise(faults):
            assert a.end < b.at and 30 <= b.at - a.at <= 60
        for t in range(0, 1800, 2):
            assert len(faulty_validators(faults, validators, t)) <= 1


def test_partition_pairs_put_unlisted_nodes_in_a_group_of_their_own() -> None:
    pairs = blocked_pairs([["a"]], ["a", "b", "c"])
    assert pairs == {frozenset("ab"), frozenset("ac")}
    assert blocked_pairs([["a"], ["b"]], ["a", "b", "c"]) == {
        frozenset("ab"), frozenset("ac"), frozenset("bc"),
    }  # fmt: skip


def test_report_gaps_timeline_and_percentiles() -> None:
    assert gaps([1.0, 2.5], 0.0, 4.0) == [(0.0, 1.0), (1.0, 1.5), (2.5, 1.5)]
    assert timeline([0.1, 0.2, 2.9], 3) == [2, 0, 1]
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0 and percentile([], 0.99) is None
    assert percentile([float(i) for i in range(1, 101)], 0.99) == 99.0


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _roundtrip(port: int, payload: bytes, timeout: float) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        return await asyncio.wait_for(reader.readexactly(len(payload)), timeout)
    finally:
        writer.close()


def test_proxies_cut_hold_heal_and_slow_a_link() -> None:
    async def scenario() -> None:
        target = await asyncio.start_server(_echo, "127.0.0.1", 0)
        net = ProxyNetwork()
        port = target.sockets[0].getsockname()[1]
        routes = await net.start([Link("a", "b", port), Link("c", "b", port)])
        (_, ab), (_, cb) = routes[("a", "b")], routes[("c", "b")]
        try:
            assert await net.wait_open(10)  # the links open once the target listens
            assert await _roundtrip(ab, b"hello", 5) == b"hello"
            reader, writer = await asyncio.open_connection("127.0.0.1", ab)
            net.partition(1, [["a"]], "cut")
            assert await asyncio.wait_for(reader.read(), 5) == b""  # the open link is closed
            writer.close()
            assert await _roundtrip(cb, b"other side", 5) == b"other side"  # c-b is not cut
            held = asyncio.ensure_future(_roundtrip(ab, b"held", 10))
            await asyncio.sleep(0.5)
            assert not held.done()  # a new a-b connection is held, its bytes kept
            net.heal(1)
            assert await held == b"held"
            net.shape(2, ["b"], 20_000, 0)
            started = time.monotonic()
            assert await _roundtrip(ab, b"x" * 20_000, 10) == b"x" * 20_000
            assert time.monotonic() - started >= 0.8  # 20 kB at 20 kB/s (each way at once)
            net.unshape(2)
        finally:
            await net.stop()
            target.close()

    asyncio.run(scenario())


def test_a_blackhole_forwards_nothing_until_the_heal() -> None:
    async def scenario() -> None:
        target = await asyncio.start_server(_echo, "127.0.0.1", 0)
        net = ProxyNetwork()
        routes = await net.start([Link("a", "b", target.sockets[0].getsockname()[1])])
        try:
            assert await net.wait_open(10)
            reader, writer = await asyncio.open_connection(*routes[("a", "b")])
            net.partition(1, [["a"]], "blackhole")
            writer.write(b"ping")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.readexactly(4), 0.5)
            net.heal(1)
            assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
            writer.close()
        finally:
            await net.stop()
            target.close()

    asyncio.run(scenario())


def test_the_skewed_clock_follows_its_file(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    clock = SkewedClock(path, real=lambda: 1000.0)
    assert clock.time() == 1000.0  # no file: no offset
    path.write_text("-2500")
    clock.refresh()
    assert clock.time() == 997.5 and clock.time_ns() == 997_500_000_000
    path.write_text("garbage")
    clock.refresh()
    assert clock.time() == 997.5  # an unreadable file keeps the last offset


@pytest.mark.process
def test_a_launched_process_sees_the_offset_in_time_time(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    path.write_text("3600000")
    code = (
        "import sys, time; from pathlib import Path; "
        "from gridtokenx.devnet.faults.launch import SkewedClock, install; "
        "install(SkewedClock(Path(sys.argv[1]))); print(time.time())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=60, check=True)  # fmt: skip
    assert abs(float(out.stdout) - (time.time() + 3600)) < 30


def test_faults_are_described_for_people() -> None:
    fault = Fault("rogue", 3, 2, nodes=("mea",), connections=2, requests_per_s=50)
    assert fault.label() == "rogue mea x2 asking 50/s at 3s for 2s"
    assert Scenario("s", faults=(fault,)).seconds == 20.0


def test_a_link_to_a_target_that_is_down_refuses_until_it_listens() -> None:
    """As dialling a stopped node's own port would: refused, not accepted and reset."""

    async def scenario() -> None:
        target = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = target.sockets[0].getsockname()[1]
        net = ProxyNetwork()
        routes = await net.start([Link("a", "b", port)])
        try:
            assert await net.wait_open(10)
            net.down("b")
            target.close()
            await target.wait_closed()
            with pytest.raises(ConnectionRefusedError):
                await _roundtrip(routes[("a", "b")][1], b"x", 5)
            target = await asyncio.start_server(_echo, "127.0.0.1", port)
            assert await net.wait_open(10)
            assert await _roundtrip(routes[("a", "b")][1], b"back", 5) == b"back"
        finally:
            await net.stop()
            target.close()

    asyncio.run(scenario())
