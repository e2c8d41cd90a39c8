"""Nodes on separate hosts (docs/netns.md): every node in a network namespace of its own,
with its own address on a bridge, reached from the root namespace over that bridge.

One network of four validators and twelve full nodes carries every check in turn (each
phase leaves it whole again, and the checker at the end reads every store, so sharing it
weakens nothing): every node at its own address; a peer that never reads and a flood of
500 connections at one validator; a validator's cable pulled, then the validators split
2/2, then healed; a full node that joins late. Timing bounds here are liveness bounds,
generous on a loaded machine; the figures are bench/netns_bench.py's.

Skipped with the reason where namespaces cannot be made (not root, no `ip`)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridtokenx.cli.keys import key_header
from gridtokenx.devnet.faults.checker import Verdict
from gridtokenx.devnet.faults.scenario import Load
from gridtokenx.devnet.homes import DEVNET_VALIDATORS
from gridtokenx.devnet.netns import hosts as netns
from gridtokenx.devnet.netns.hosts import Hosts
from gridtokenx.devnet.netns.nodes import P2P_PORT, Nodes, on_hosts
from gridtokenx.devnet.netns.session import Session
from gridtokenx.p2p.connection import PeerSettings
from gridtokenx.p2p.peers import AddressBook
from gridtokenx.wire import crypto
from tests.conftest import host_network
from tests.devnet.state_sync_join import INTERVAL, join_by_state_sync
from tests.p2p.rogues import NeverReading, flood
from tests.test_bench import _load

UNAVAILABLE = netns.available()
pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no network namespaces: {UNAVAILABLE}"),
]
FULL_NODES = 12
# Shorter peer deadlines than production's, so a peer that never reads is dropped within
# seconds, yet long enough that a node starved of CPU on a loaded machine is not dropped.
QUICK = PeerSettings(ping_interval_s=2, pong_timeout_s=8, write_timeout_s=8, handshake_timeout_s=3)
TIMEOUTS = ("pong_timeout", "read_timeout", "write_timeout")
SERVER = "import socket,sys\ns=socket.create_server((sys.argv[1], 5555))\nwhile 1: s.accept()"


def _reaches(wrapper: Sequence[str], address: str, port: int = 5555) -> bool:
    """Whether a TCP connection from the host of `wrapper` (its `ip netns exec` prefix;
    empty: the root namespace) is accepted."""
    code = f"import socket;socket.create_connection(('{address}',{port}),timeout=2)"
    done = subprocess.run([*wrapper, sys.executable, "-c", code], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    with host_network(changes_it=True), Hosts() as made:
        yield made
    assert netns.leftovers(made.token) == [], "the root namespace keeps some of the run"


def test_hosts_are_cut_split_healed_and_removed(hosts: Hosts) -> None:
    """A TCP server on host 1: host 0 and the root namespace reach it over the bridge; a
    split puts hosts 0 and 1 on different switches (the root namespace still reaches
    both); a pulled cable cuts host 1 off from everyone; each is undone. A crashed run's
    namespace and bridge (its process gone) are removed by the next run."""
    a, b, c = hosts.create(3).hosts
    on_a, on_c, root = a.command(()), c.command(()), ()
    assert len({a.address, b.address, c.address, hosts.gateway}) == 4
    assert not ipaddress.ip_address(a.address).is_loopback
    server = subprocess.Popen(b.command([sys.executable, "-c", SERVER, b.address]))
    try:
        assert _wait_reach(on_a, b.address) and _reaches(root, b.address)
        hosts.split([[a], [b]])
        assert not _reaches(on_a, b.address) and _reaches(root, b.address)
        assert not _reaches(on_c, b.address)  # c stayed on the first switch, b did not
        hosts.heal()  # c's failed address resolution during the split may take a moment
        assert _wait_reach(on_a, b.address) and _wait_reach(on_c, b.address)
        hosts.down(b)
        assert not _reaches(on_a, b.address) and not _reaches(root, b.address)
        hosts.up(b)
        assert _wait_reach(on_a, b.address)
    finally:
        server.kill()
        server.wait()
    dead = _dead_pid()
    stale = (f"{netns.PREFIX}-{dead:x}-0-0", f"{netns.BRIDGE}{dead:x}-0-0")
    netns.ip("netns", "add", stale[0])
    netns.ip("link", "add", stale[1], "type", "bridge")
    assert set(stale) <= set(netns.remove_stale())
    assert netns.leftovers(f"{dead:x}-0") == []


def _wait_reach(wrapper: Sequence[str], address: str) -> bool:
    """`_reaches`, tried for up to 10 s (a server starting, a neighbour being resolved)."""
    for _ in range(5):  # bounded
        if _reaches(wrapper, address):
            return True
        time.sleep(0.2)
    return False


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    assert not os.path.exists(f"/proc/{child.pid}")
    return child.pid


def test_sixteen_nodes_on_sixteen_hosts(tmp_path: Path, hosts: Hosts) -> None:
    """Four validators and twelve full nodes, each on a host of its own, under a load of
    transfers sent to every node's API at its address; then the phases below, and at the
    end the checker: the same certified block at every height on every node (no two at
    one height, even across the split), each node's state root the replay's from genesis,
    every acknowledged transaction committed; all seventeen reported the same height
    before they were stopped (a block may still land on some while they stop)."""
    hosts.create(0)
    nodes = Nodes(tmp_path, on_hosts(hosts), p2p=QUICK)
    nodes.create(DEVNET_VALIDATORS, FULL_NODES)
    session = Session(nodes, Load("transfers", rate=8, seconds=900, participants=30))
    verdict = asyncio.run(_phases(session, hosts))
    assert not session.crashed, session.crashed
    explain = f"violations {verdict.violations[:5]}, lost {list(verdict.lost.items())[:5]}"
    assert verdict.safe and not verdict.lost, explain
    assert len(verdict.heights) == len(DEVNET_VALIDATORS) + FULL_NODES + 1
    assert session.converged, "the nodes never all reported the same height"
    heads = set(verdict.heights.values())  # one more block may land while the nodes stop
    assert max(heads) == verdict.checked_height and max(heads) - min(heads) <= 1, heads
    assert len(verdict.committed) > 100 and verdict.committed_txs >= len(verdict.committed)


async def _phases(session: Session, hosts: Hosts) -> Verdict:
    try:
        await session.start()
        await _every_node_at_its_own_address(session)
        await _never_reading_peer_and_flood(session, hosts.gateway)
        await _cable_pulled_then_split_then_healed(session, hosts)
        await _late_full_node_catches_up(session)
        return await session.finish()
    finally:
        await session.close()


async def _watch(session: Session, seconds: float) -> tuple[int, float]:
    """Heights the chain (the highest any node reports) gained in `seconds`, and the
    longest wait between two of them, sampled every 0.2 s."""
    start = changed = time.monotonic()
    first = last = session.top
    longest = 0.0
    while (now := time.monotonic()) - start < seconds:
        if session.top > last:
            longest, changed, last = max(longest, now - changed), now, session.top
        await asyncio.sleep(0.2)
    return last - first, max(longest, time.monotonic() - changed)


async def _until(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # bounded
        if await check():
            return True
        await asyncio.sleep(0.3)
    return await check()


async def _every_node_at_its_own_address(session: Session) -> None:
    """Sixteen distinct non-loopback addresses; each node's API and metrics answer at its
    own, its P2P port listens there and not on the host's loopback; the chain commits,
    and every node serves the same block (hash and state root) at a height all have."""
    nodes = session.nodes
    addresses = {site.address for site in nodes.sites.values()}
    assert len(addresses) == len(nodes.nodes)
    assert not any(ipaddress.ip_address(a).is_loopback for a in addresses)
    for name in nodes.sites:  # a loaded machine may miss a 2 s deadline now and then

        async def answers(name: str = name) -> bool:
            health = await session.health(name)
            return health is not None and health["chain_id"] == nodes.chain_id

        assert await _until(answers, 20), f"{name}'s API does not answer at its address"
        assert nodes.metric(name, "gridtokenx_height") >= 1, name
    egat = nodes.sites["egat"]
    assert _reaches(egat.wrapper, egat.address, P2P_PORT)
    assert not _reaches(egat.wrapper, "127.0.0.1", P2P_PORT)
    start = session.top
    assert await _until(_above(session, start + 3), 30), "no commits"
    height = min([await session.height(n) for n in nodes.nodes])
    views = [await _block(session, n, height) for n in nodes.nodes]
    seen = {(v["hash"], v["header"]["state_root"]) for v in views}
    assert len(seen) == 1, f"height {height}: {seen}"


async def _block(session: Session, name: str, height: int) -> dict[str, Any]:
    """The block at `height` as the node serves it, asked up to five times."""
    for _ in range(4):  # bounded; the fifth try raises
        with contextlib.suppress(httpx.HTTPError):
            block: dict[str, Any] = await session.apis[name].block(height)
            return block
        await asyncio.sleep(1)
    block = await session.apis[name].block(height)
    return block


def _above(session: Session, height: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return session.top >= height

    return check


def _timeouts(nodes: Nodes, name: str) -> float:
    family = "gridtokenx_p2p_disconnects"
    return sum(nodes.metric(name, family, reason=r) for r in TIMEOUTS)


def _held(wrapper: Sequence[str], port: int, remote: str) -> int:
    """TCP connections the node at `port` on the host of `wrapper` has accepted from
    `remote`: those its kernel counts as established (a flooder whose final ACK was dropped
    on a full accept queue believes itself connected, but the host holds nothing for it)
    less those still waiting in the listener's accept queue, which the node has not taken
    yet (a node starved of CPU on a loaded machine lags behind; when it takes them it
    refuses them past its cap)."""

    def ss(*args: str) -> list[list[str]]:
        done = subprocess.run([*wrapper, "ss", "-Htn", *args, f"( sport = :{port} )"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        return [line.split() for line in done.stdout.splitlines() if line.strip()]

    established = sum(1 for f in ss("state", "established") if f[-1].startswith(f"{remote}:"))
    queued = sum(int(f[1]) for f in ss("-l"))  # a listener's Recv-Q: its accept queue
    return max(0, established - queued)


async def _never_reading_peer_and_flood(session: Session, gateway: str) -> None:
    """At EGAT (a validator: nothing shields it until sentries do): a peer that completes
    the handshake and never reads, and 500 connections at once from the harness's
    address. The chain keeps committing at no less than half its rate just before, with
    no wait over 5 s; EGAT refuses the flood past its per-IP cap, closes every one of the
    connections (those it let into a handshake at the handshake deadline), so its host
    holds no more from the flooder than the cap, and drops the peer at its deadline; its
    metrics say so."""
    nodes, target = session.nodes, "egat"
    site = nodes.sites[target]
    refused_before = nodes.metric(target, "gridtokenx_p2p_refused", reason="per_ip")
    timeouts_before = _timeouts(nodes, target)
    normal, _ = await _watch(session, 8)
    rogue = await NeverReading.connect(site.listen_port, host=site.address)
    try:
        flooding = asyncio.create_task(flood(site.address, site.listen_port, 500, hold_s=20))
        attacked, gap = await _watch(session, 15)
        held = _held(site.wrapper, site.listen_port, gateway)
        flooded = await flooding

        async def dropped() -> bool:
            return not rogue.connected()

        assert await _until(dropped, 30), "the never-reading peer is still connected"
    finally:
        rogue.close()
    refused = nodes.metric(target, "gridtokenx_p2p_refused", reason="per_ip") - refused_before
    print(f"flood: {flooded}; refused per IP {refused:.0f}, held {held}; blocks {normal} "
          f"in 8 s before, {attacked} in 15 s under attack (longest wait {gap:.1f} s)")  # fmt: skip
    assert flooded.opened + flooded.failed == 500 and refused >= 250, (refused, flooded)
    assert held <= QUICK.max_per_ip, f"EGAT's host holds {held} connections from the flooder"
    assert _timeouts(nodes, target) > timeouts_before
    assert attacked >= max(3, normal // 2) and gap < 5, (attacked, gap, normal)


async def _cable_pulled_then_split_then_healed(session: Session, hosts: Hosts) -> None:
    """EGAT's cable is pulled for 10 s: MEA, PEA and ERC (23,000 of 33,000) go on. Then
    EGAT and MEA with half the full nodes on one switch, PEA and ERC with the other half
    on another: neither side has two thirds, so no height is added for 10 s. After the
    heal, commits resume within 30 s (the time it took is printed)."""
    nodes = session.nodes
    by_address = {h.address: h for h in hosts.hosts}
    host = {name: by_address[site.address] for name, site in nodes.sites.items()}
    hosts.down(host["egat"])
    try:
        without_egat, _ = await _watch(session, 10)
    finally:
        hosts.up(host["egat"])
    assert without_egat >= 3, without_egat

    async def egat_caught_up() -> bool:
        return await session.height("egat") >= session.top - 1

    assert await _until(egat_caught_up, 60), "EGAT did not catch up after its cable"
    full = [n for n, p in nodes.nodes.items() if not p.validator]
    half = len(full) // 2
    sides = [["egat", "mea", *full[:half]], ["pea", "erc", *full[half:]]]
    hosts.split([[host[n] for n in side] for side in sides])
    try:
        await asyncio.sleep(3)  # a height decided just before the split may still land
        frozen = session.top
        during, _ = await _watch(session, 10)
    finally:
        hosts.heal()
        healed = time.monotonic()
    assert during == 0, f"{during} heights committed while the validators were split 2/2"
    resumed = await _until(_above(session, frozen + 1), 30)
    print(f"split: frozen at {frozen}; commits resumed {time.monotonic() - healed:.1f} s "
          "after the heal")  # fmt: skip
    assert resumed, "no commit within 30 s of the heal"


async def _late_full_node_catches_up(session: Session) -> None:
    """A full node on a new host, started now, reaches the chain's height."""
    await session.join("late")
    target = session.top

    async def caught_up() -> bool:
        return await session.height("late") >= target

    assert await _until(caught_up, 90), session.nodes.nodes["late"].log_tail()


def test_validators_behind_sentries_from_the_ceremony(tmp_path: Path, hosts: Hosts) -> None:
    """Four validators, each behind a sentry on a host of its own, and two full nodes
    dialling the sentries: ten hosts (and NEPO's, for its key), the genesis from the
    ceremony. No key file reaches the coordinator; each validator's key stays in its
    host's directory. Under a small load the chain commits, a peer that never reads at
    EGAT's sentry neither stops it nor stays connected, no node's address book holds a
    validator, and the checker finds the same blocks and roots everywhere, nothing lost."""
    hosts.create(0)
    nodes = Nodes(tmp_path, on_hosts(hosts), p2p=QUICK)
    nodes.create(DEVNET_VALIDATORS, 2, sentries=True, ceremony=True)
    validators = [code.lower() for code in DEVNET_VALIDATORS]
    headers = {p: key_header(p) or {} for p in tmp_path.rglob("*") if p.is_file()}
    keys_at = {p: str(h["address"]) for p, h in headers.items() if {"ciphertext", "seed"} & set(h)}
    assert not [p for p in keys_at if (tmp_path / "coordinator") in p.parents], keys_at
    for name in validators:
        address = crypto.address_to_text(bytes.fromhex(nodes.ids[name]))
        held = [p for p, a in keys_at.items() if a == address]
        assert held and all(nodes.host_dir(name) in p.parents for p in held), (name, held)
        built = (tmp_path / "coordinator" / "genesis.json").read_bytes()
        assert (nodes.nodes[name].home / "genesis.json").read_bytes() == built
        assert nodes.dials[name] == (f"{name}-sentry",)
    full = [n for n in nodes.nodes if n.startswith("full")]
    assert all(set(nodes.dials[n]) == {f"{v}-sentry" for v in validators} for n in full)
    session = Session(nodes, Load("transfers", rate=5, seconds=900, participants=20))
    verdict = asyncio.run(_behind_sentries(session))
    assert not session.crashed, session.crashed
    hidden = {nodes.ids[name] for name in validators}
    for name, node in nodes.nodes.items():  # nothing of the validators in any peers.json
        if (node.home / "peers.json").exists():
            assert not {a.peer for a in AddressBook(node.home / "peers.json")} & hidden, name
    explain = f"violations {verdict.violations[:5]}, lost {list(verdict.lost.items())[:5]}"
    assert verdict.safe and not verdict.lost, explain
    assert len(verdict.heights) == 2 * len(validators) + 2
    assert session.converged, "the nodes never all reported the same height"
    assert len(verdict.committed) > 10 and verdict.committed_txs > 0


async def _behind_sentries(session: Session) -> Verdict:
    try:
        await session.start()
        assert await _until(_above(session, session.top + 3), 60), "no commits"
        site = session.nodes.sites["egat-sentry"]
        rogue = await NeverReading.connect(site.listen_port, host=site.address)
        try:
            gained, gap = await _watch(session, 12)

            async def dropped() -> bool:
                return not rogue.connected()

            assert await _until(dropped, 30), "the never-reading peer is still connected"
        finally:
            rogue.close()
        print(f"sentries: {gained} blocks in 12 s with a never-reading peer at EGAT's sentry "
              f"(longest wait {gap:.1f} s)")  # fmt: skip
        assert gained >= 3 and gap < 8, (gained, gap)
        return await session.finish()
    finally:
        await session.close()


def test_a_node_on_a_new_host_joins_by_state_sync(tmp_path: Path, hosts: Hosts) -> None:
    """Two validators on hosts of their own snapshot every INTERVAL heights; a full node on
    a third host joins from a snapshot it fetches across the bridge, and follows the chain
    to the validators' block and state root (`state_sync_join`)."""
    hosts.create(0)
    nodes = Nodes(tmp_path, on_hosts(hosts), p2p=QUICK)
    started, head = asyncio.run(join_by_state_sync(nodes))
    assert len({site.address for site in nodes.sites.values()}) == 3
    assert started >= INTERVAL and head > started


def test_netns_bench_runs_both_placements_small(tmp_path: Path) -> None:
    """The bench is code too: one validator and one full node, on hosts and on loopback,
    a few seconds of load each; everything acknowledged commits and the stores agree."""
    out = tmp_path / "netns.json"
    with host_network(changes_it=True):
        result = _load("netns_bench").main(
            ["--repeat", "1", "--seconds", "3", "--rate", "10", "--validators", "1",
             "--full-nodes", "1", "--output", str(out)]
        )  # fmt: skip
    assert json.loads(out.read_text()) == result
    for mode in ("loopback", "netns"):
        (run,) = result["runs"][mode]
        assert run["committed"] == run["acknowledged"] == 30, (mode, run)
        assert run["identical_stores"] and run["blocks_per_s"] > 0, (mode, run)
        assert run["finality_p50_s"] is not None, (mode, run)
