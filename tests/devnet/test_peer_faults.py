"""Peer faults against validator processes on 127.0.0.1: a peer in the config that hangs up
mid-handshake does not kill the validator dialling it; with one validator paused (SIGSTOP)
the other three keep committing, and so does a devnet with a never-reading peer at every
validator. Heights are read from each validator's metrics endpoint, which its own thread
serves, so a stalled event loop cannot hide behind a stale status file. Waits are
generous and bounded; the figures worth reporting come from bench/faults_bench.py."""

from __future__ import annotations

import asyncio
import hashlib
import re
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

import msgspec
import pytest

from gridtokenx.devnet.homes import devnet_genesis, init_devnet
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.node import keystore
from gridtokenx.node.home import Config, read_config, write_config
from gridtokenx.p2p.gossip import Gossip, Kind
from gridtokenx.wire import codec, tx
from gridtokenx.wire.crypto import PrivateKey
from tests.conftest import free_base_port
from tests.devnet.test_devnet_processes import _start, _stop, _wait
from tests.p2p.rogues import HangUpServer, NeverReading, sent

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]
_HEIGHT = re.compile(rb"^gridtokenx_height (\S+)$", re.MULTILINE)
QUICK = {"ping_interval_s": 1, "pong_timeout_s": 2, "write_timeout_s": 2, "handshake_timeout_s": 2}


def _height(config: Config) -> int | None:
    url = f"http://127.0.0.1:{config.metrics_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            found = _HEIGHT.search(answer.read())
    except OSError:
        return None
    return int(float(found.group(1))) if found else None


def _rewrite(home: Path, p2p: dict[str, float] | None = None, **changes: object) -> Config:
    """Change a home's config; `p2p` are peer settings (main, which has none, runs the
    test with its own behaviour)."""
    if p2p is not None and "p2p" in Config.__struct_fields__:
        from gridtokenx.p2p.connection import PeerSettings

        changes["p2p"] = PeerSettings(**p2p)  # type: ignore[arg-type]
    config = msgspec.structs.replace(read_config(home), **changes)
    write_config(home, config)
    return config


def test_a_peer_that_hangs_up_mid_handshake_does_not_kill_the_validator(tmp_path: Path) -> None:
    """EGAT validates alone; its config lists a peer that accepts and closes half-way
    through the handshake. It used to exit at its first dial (IncompleteReadError escaped
    run_node); now it keeps dialling that peer, with a backoff, and keeps committing."""
    (home,) = init_devnet(
        tmp_path, "gridtokenx-hangup-test", int(time.time()), free_base_port(1),
        block_ms=100, validators=("EGAT",),
    )  # fmt: skip
    with HangUpServer() as hang_up:
        config = _rewrite(home, peers=(("127.0.0.1", hang_up.port, "ff" * 20),), api_port=0)
        procs = {home: _start(home)}
        try:
            assert _wait(lambda: (_height(config) or 0) >= 5, 60), home.joinpath("node.log")
            assert _wait(lambda: hang_up.accepted >= 3, 30)  # dialled again and again
            reached = _height(config) or 0
            assert _wait(lambda: (_height(config) or 0) >= reached + 10, 30)
            assert procs[home].poll() is None
            procs[home].send_signal(signal.SIGTERM)
            assert procs[home].wait(20) == 0
        finally:
            _stop(procs)
    log = (home / "node.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-2000:]


class _Load:
    """Registrations signed by MEA, offered at `rate` per second to MEA, PEA and ERC by a
    client peer on its own loop in a thread, so blocks carry transactions and validators
    have something to queue for a peer that does not read."""

    def __init__(self, homes: list[Path], chain: str, genesis_time: int, rate: int) -> None:
        sb = Sandbox(spec=devnet_genesis(chain, genesis_time))
        mea = sb.authority("MEA")
        first = sb.next_nonce(mea)
        self.raws = [
            tx.make(mea, chain, first + i, self._body(i)).encode() for i in range(rate * 100)
        ]
        self.rate = rate
        self.targets = [
            (read_config(h).listen_port,
             keystore.load_key(h / "node_key.json", "", allow_insecure=True).address)
            for h in homes[1:]
        ]  # fmt: skip
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._offer()), daemon=True)

    @staticmethod
    def _body(i: int) -> tx.Body:
        who = hashlib.sha256(b"peer-faults/%d" % i).digest()[:20]
        return tx.RegisterParticipant(who, "BKK", tx.ParticipantKind.HOUSEHOLD, f"h{i}")

    async def _offer(self) -> None:
        async def ignore(kind: Kind, payload: bytes, peer: bytes) -> bool:
            return True

        client = Gossip(PrivateKey.from_dev_label("peer-faults/load"), ignore)
        try:
            for port, peer in self.targets:
                await client.dial("127.0.0.1", port, expect=peer)
            per_batch = max(1, self.rate // 20)
            for i in range(0, len(self.raws), per_batch):
                if self.stop.is_set():
                    break
                await sent(client.publish(Kind.TX, codec.encode(self.raws[i : i + per_batch])))
                await asyncio.sleep(0.05)
        finally:
            await client.close()


class _Rogues:
    """A never-reading peer at every validator, on a loop in a thread, reconnecting with a
    new key whenever a validator drops it (as an attacker would)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        held: dict[int, NeverReading] = {}
        try:
            while not self.stop.is_set():
                for port in self.ports:
                    rogue = held.get(port)
                    if rogue is None or not rogue.connected():
                        if rogue is not None:
                            rogue.close()
                        try:
                            held[port] = await NeverReading.connect(port)
                            self.connections += 1
                        except OSError:
                            held.pop(port, None)
                await asyncio.sleep(0.3)
        finally:
            for rogue in held.values():
                rogue.close()


def _chain_height(configs: list[Config]) -> int:
    return max((h for h in (_height(c) for c in configs) if h is not None), default=0)


def _watch(configs: list[Config], seconds: float) -> tuple[int, float]:
    """Blocks the chain (the highest height among `configs`) committed in `seconds`, and
    the longest wait between two of them, sampled every 0.2 s."""
    start = time.monotonic()
    first = last = _chain_height(configs)
    changed, longest = start, 0.0
    while (now := time.monotonic()) - start < seconds:
        height = _chain_height(configs)
        if height > last:
            longest, changed, last = max(longest, now - changed), now, height
        time.sleep(0.2)
    return last - first, max(longest, time.monotonic() - changed)


def test_a_paused_validator_and_never_reading_peers_do_not_stop_the_chain(
    tmp_path: Path,
) -> None:
    """Four validators under a load of registrations. EGAT (10,000 of 33,000) is paused
    with SIGSTOP for 20 s: the three others keep committing, slowed only by the rounds
    EGAT should have proposed (their proposals time out after 0.4 s), and EGAT catches up
    once continued. Then a peer that never reads joins every validator for 30 s: the rate
    stays within reach of normal, with no long wait. Before the peer layer, a validator's
    sends to a peer that stopped reading waited on its socket, and so did its consensus:
    on main this phase waited 15 s for one block, once the rogues' socket buffers filled."""
    genesis_time = int(time.time())
    homes = init_devnet(
        tmp_path, "gridtokenx-peer-faults", genesis_time, free_base_port(),
        block_ms=100, propose_ms=300,
    )  # fmt: skip
    configs = [_rewrite(h, p2p=QUICK, api_port=0) for h in homes]
    load = _Load(homes, "gridtokenx-peer-faults", genesis_time, rate=200)
    procs = {h: _start(h) for h in homes}
    rogues = _Rogues([c.listen_port for c in configs])
    try:
        assert _wait(lambda: all((_height(c) or 0) >= 5 for c in configs), 60)
        load.thread.start()
        time.sleep(3)
        normal, normal_gap = _watch(configs, 10)
        assert normal >= 20, (normal, normal_gap)

        procs[homes[0]].send_signal(signal.SIGSTOP)
        paused, paused_gap = _watch(configs[1:], 20)
        procs[homes[0]].send_signal(signal.SIGCONT)
        assert paused >= 20 and paused_gap < 8, (paused, paused_gap, normal)
        assert _wait(lambda: (_height(configs[0]) or 0) >= _chain_height(configs) - 2, 30)

        rogues.thread.start()
        attacked, attacked_gap = _watch(configs, 30)
        print(f"blocks: {normal} in 10 s; {paused} in 20 s paused (longest wait "
              f"{paused_gap:.1f} s); {attacked} in 30 s with rogues (longest wait "
              f"{attacked_gap:.1f} s)")  # fmt: skip
        assert rogues.connections >= len(configs)
        assert attacked >= 1.5 * normal and attacked_gap < 5, (attacked, attacked_gap, normal)
        assert all(p.poll() is None for p in procs.values())
    finally:
        load.stop.set()
        rogues.stop.set()
        for thread in (load.thread, rogues.thread):
            if thread.is_alive():
                thread.join(10)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
        _stop(procs)
    assert [p.returncode for p in procs.values()] == [0, 0, 0, 0]
