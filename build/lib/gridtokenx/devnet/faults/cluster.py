"""The devnet a scenario runs on: validator and full-node homes whose links go through the
harness's network, their processes, and the perturbations applied to them.

Every node runs as `gridtokenx node start` runs it, under the clock launcher (`launch.py`,
which also logs a crash's traceback), its stderr appended to `node.log` in its home. The
harness, not the node, decides when a node is killed, paused or restarted; a node that
exits on its own is a crash, noted with the tail of its log and restarted a moment later,
as an operator's supervisor would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

from gridtokenx.devnet.faults.network import Link, Network
from gridtokenx.devnet.faults.rogue import Rogue
from gridtokenx.devnet.faults.scenario import Fault, Scenario
from gridtokenx.devnet.homes import devnet_validators, init_devnet, init_full_node
from gridtokenx.node import keystore
from gridtokenx.node.home import read_config, without_overrides, write_config
from gridtokenx.wire.crypto import PrivateKey

API_RATE: Final = 100_000.0  # the harness's own polling must never be rate limited
STOP_GRACE_S: Final = 15.0
RESTART_CRASHED_AFTER_S: Final = 2.0


@dataclass
class NodeProcess:
    """One node's process, started under the clock launcher."""

    name: str
    home: Path
    validator: bool
    listen_port: int
    api_port: int
    node_id: bytes
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False
    expected_down: bool = False  # killed or stopped by the harness
    host: str = "127.0.0.1"  # where its API listens (its own address on a network host)
    wrapper: tuple[str, ...] = ()  # how a command runs on its host (`ip netns exec NAME`)

    @property
    def clock_file(self) -> Path:
        return self.home / "clock_offset_ms"

    @property
    def api(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    def start(self) -> None:
        env = dict(without_overrides(os.environ), PYTHONUNBUFFERED="1")  # the home decides
        command = [*self.wrapper, sys.executable, "-m", "gridtokenx.devnet.faults.launch",
                   str(self.clock_file), str(self.home)]  # fmt: skip
        with open(self.home / "node.log", "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL, env=env
            )
        self.paused = self.expected_down = False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    async def kill(self) -> None:
        self.expected_down = True
        self.signal(signal.SIGKILL)
        await self.wait(10)

    async def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGCONT (a paused node cannot handle SIGTERM), SIGTERM, then SIGKILL after
        `grace` seconds."""
        self.expected_down = True
        if self.paused:
            self.resume()
        self.signal(signal.SIGTERM)
        if not await self.wait(grace):
            self.signal(signal.SIGKILL)
            await self.wait(10)

    async def wait(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.running() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return not self.running()

    def set_clock(self, offset_ms: int) -> None:
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(str(offset_ms))
        tmp.replace(self.clock_file)

    def log_tail(self, chars: int = 2_000) -> str:
        path = self.home / "node.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@dataclass
class Crash:
    node: str
    at: float
    code: int | None
    log_tail: str


@dataclass
class Cluster:
    """The scenario's nodes and network; `clock` gives the harness's time for notes."""

    scenario: Scenario
    root: Path
    network: Network
    clock: Callable[[], float]
    chain_id: str = "gridtokenx-faults"
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    rogues: dict[int, list[Rogue]] = field(default_factory=dict)
    crashes: list[Crash] = field(default_factory=list)
    genesis_time: int = 0
    _restarts: list[asyncio.TimerHandle] = field(default_factory=list)

    async def create(self, base_port: int) -> None:
        """Write the homes (validators first, then full nodes), start the network and
        point every node's peers at it."""
        s = self.scenario
        self.genesis_time = int(time.time()) - 60
        codes = devnet_validators(s.validators)
        homes = init_devnet(self.root, self.chain_id, self.genesis_time, base_port,
                            block_ms=s.block_ms, validators=codes,
                            api_rate_per_second=API_RATE)  # fmt: skip
        for k in range(s.full_nodes):
            i = len(codes) + k
            key = PrivateKey.from_dev_label(f"faults/full/{k + 1}")
            home = self.root / f"full{k + 1}"
            api_port = base_port + 200 + i
            homes.append(init_full_node(home, homes[: len(codes)], base_port + i, key, api_port))
        for name, home in zip(s.node_names(), homes, strict=True):
            config = read_config(home)
            key = keystore.load_key(home / "node_key.json", "", allow_insecure=True)
            validator = name in s.validator_names()
            ports = (config.listen_port, config.api_port)
            self.nodes[name] = NodeProcess(name, home, validator, *ports, key.address)
        routes = await self.network.start(self._links(homes))
        for name, home in zip(s.node_names(), homes, strict=True):
            self._route(home, name, routes)

    def _links(self, homes: list[Path]) -> list[Link]:
        by_port = {n.listen_port: n.name for n in self.nodes.values()}
        return [
            Link(name, by_port[port], port)
            for name, home in zip(self.scenario.node_names(), homes, strict=True)
            for _, port, _ in read_config(home).peers
        ]

    def _route(self, home: Path, name: str, routes: dict[tuple[str, str], tuple[str, int]]) -> None:
        """Peers through the network's routes; no dialling of learnt addresses (they name
        the real ports, around the network); the harness's API rate."""
        config = read_config(home)
        by_port = {n.listen_port: n.name for n in self.nodes.values()}
        peers = tuple((*routes[(name, by_port[port])], peer) for _, port, peer in config.peers)
        config = msgspec.structs.replace(
            config, peers=peers, target_peers=0, api_rate_per_second=API_RATE
        )
        write_config(home, config)
        self.nodes[name].set_clock(0)

    def start_all(self) -> None:
        for node in self.nodes.values():
            node.start()

    async def stop_all(self) -> None:
        """Rogues away, every node stopped cleanly (concurrently), the network closed."""
        for handle in self._restarts:
            handle.cancel()
        for fault_id in list(self.rogues):
            await self._unrogue(fault_id)
        await asyncio.gather(*(n.stop() for n in self.nodes.values()))
        await self.network.stop()

    def kill_remaining(self) -> None:
        """Last resort (an interrupted run): SIGKILL whatever still runs, synchronously."""
        for node in self.nodes.values():
            if node.running():
                assert node.proc is not None
                node.proc.send_signal(signal.SIGCONT)
                node.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.proc.wait(10)

    def watch(self) -> None:
        """Note nodes that exited without being told to (a crash), to restart them."""
        for node in self.nodes.values():
            if node.proc is not None and not node.expected_down and node.proc.poll() is not None:
                self.crashes.append(Crash(node.name, self.clock(), node.proc.returncode,
                                          node.log_tail()))  # fmt: skip
                node.expected_down = True
                self.network.down(node.name)
                loop = asyncio.get_running_loop()
                self._restarts.append(loop.call_later(RESTART_CRASHED_AFTER_S, node.start))

    async def supervise(self, stop: asyncio.Event) -> None:
        """`watch` twice a second until `stop` is set."""
        while not stop.is_set():
            self.watch()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    # --- perturbations ---------------------------------------------------------------------
    async def begin(self, fault_id: int, fault: Fault) -> list[str]:
        """Apply a fault; returns notes on what did not go as declared."""
        nodes = [self.nodes[n] for n in fault.nodes]
        for n in nodes if fault.kind in ("kill", "restart") else ():
            self.network.down(n.name)  # its links refuse, as its own port will
        if fault.kind == "kill":
            await asyncio.gather(*(n.kill() for n in nodes))
        elif fault.kind == "restart":
            await asyncio.gather(*(n.stop() for n in nodes))
        elif fault.kind == "pause":
            for n in nodes:
                n.pause()
        elif fault.kind == "partition":
            self.network.partition(fault_id, fault.groups, fault.mode)
        elif fault.kind == "slow":
            self.network.shape(fault_id, fault.nodes, fault.bytes_per_s, fault.delay_ms)
        elif fault.kind == "rogue":
            return await self._rogue(fault_id, fault)
        elif fault.kind == "clock":
            for n in nodes:
                n.set_clock(fault.offset_ms)
        return []

    async def end(self, fault_id: int, fault: Fault) -> None:
        nodes = [self.nodes[n] for n in fault.nodes]
        if fault.kind in ("kill", "restart"):
            for n in nodes:
                if not n.running():
                    n.start()
        elif fault.kind == "pause":
            for n in nodes:
                n.resume()
        elif fault.kind == "partition":
            self.network.heal(fault_id)
        elif fault.kind == "slow":
            self.network.unshape(fault_id)
        elif fault.kind == "rogue":
            await self._unrogue(fault_id)
        elif fault.kind == "clock":
            for n in nodes:
                n.set_clock(0)

    async def _rogue(self, fault_id: int, fault: Fault) -> list[str]:
        """Connect the fault's rogues; returns notes on those that could not connect (a
        node that is down meets no rogue)."""
        notes: list[str] = []
        rogues = self.rogues.setdefault(fault_id, [])
        for node in (self.nodes[n] for n in fault.nodes):
            for c in range(fault.connections):
                label = f"{fault_id}/{node.name}/{c}"
                rogue = Rogue(node.listen_port, node.node_id, label, fault.requests_per_s)
                rogues.append(rogue)
                try:
                    await rogue.connect()
                except (OSError, ConnectionError, TimeoutError, EOFError) as exc:
                    notes.append(f"rogue at {node.name} did not connect: {exc!r}")
        return notes

    async def _unrogue(self, fault_id: int) -> None:
        for rogue in self.rogues.pop(fault_id, []):
            await rogue.close()
