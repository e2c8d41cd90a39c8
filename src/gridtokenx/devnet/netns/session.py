"""One run over placed nodes, with the fault harness's load and checker: start the nodes,
wait until they are connected, commit the load's setup, drive the load in the background
while the caller does what it came to do (perturb hosts, watch heights, add a node), then
stop the load, let what was acknowledged commit, stop every node and check their stores.

The load generator and the follower reach each node's API at its own address, so on hosts
every request crosses the bridge from the root namespace. `finish` returns the checker's
verdict: identical certified blocks at every height on every node, state roots replayed
from genesis, and the fate of every acknowledged transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Final

import httpx

from gridtokenx.client import ApiError, AsyncClient
from gridtokenx.client.results import Health
from gridtokenx.devnet.faults import checker
from gridtokenx.devnet.faults.load import Generator, LoadPlan, build, drive
from gridtokenx.devnet.faults.observe import Follower
from gridtokenx.devnet.faults.runner import Log, RunClock, SetupFailed, commit_setup, status_of
from gridtokenx.devnet.faults.scenario import Load
from gridtokenx.devnet.netns.nodes import Nodes
from gridtokenx.ledger import genesis

API_TIMEOUT_S: Final = 2.0
READY_S: Final = 120.0
CONVERGE_S: Final = 60.0


@dataclass
class Session:
    """One run of `nodes` under `load` (see the module docstring); `crashed` names the
    nodes that had exited on their own by the time `finish` stopped the rest."""

    nodes: Nodes
    load: Load
    log: Log = print
    clock: RunClock = field(default_factory=RunClock)
    apis: dict[str, AsyncClient] = field(default_factory=dict)
    plan: LoadPlan | None = None
    generator: Generator | None = None
    follower: Follower | None = None
    load_from: int = 0  # the chain's height when the load started
    crashed: dict[str, str] = field(default_factory=dict)  # node -> the tail of its log
    converged: bool = False  # every node reported the same height, the top, before the stop
    _stop_load: asyncio.Event = field(default_factory=asyncio.Event)
    _stop_follow: asyncio.Event = field(default_factory=asyncio.Event)
    _following: asyncio.Task[None] | None = None
    _driving: asyncio.Task[float] | None = None

    @property
    def spec(self) -> genesis.Genesis:
        return genesis.decode(self.nodes.genesis_bytes)

    async def start(self) -> None:
        """Nodes up and connected, setup committed, load under way (clock zero: its start)."""
        self.plan = build(self.spec, self.load, int(time.time()))
        self.apis = self.nodes.clients(API_TIMEOUT_S)
        self.generator = Generator(dict(self.apis), self.clock)  # joiners get no load
        self.follower = Follower(self.apis, self.clock)
        self._following = asyncio.create_task(self.follower.run(self._stop_follow))
        self.nodes.start()
        await self.ready()
        await commit_setup(self.generator, self.follower, self.plan, self.log)
        self.clock.zero()
        self.load_from = self.follower.top  # heights above it are dated on the new clock
        driving = drive(self.generator, self.plan.stream, self.load, self.load.seconds,
                        stop=self._stop_load)  # fmt: skip
        self._driving = asyncio.create_task(driving)

    async def join(self, name: str) -> None:
        """A full node that joins the running chain on a site of its own: started now,
        followed (its height counts for convergence), checked at the end like the rest."""
        node = self.nodes.add_full_node(name)
        node.start()
        self.apis[name] = AsyncClient(node.api, timeout=API_TIMEOUT_S)
        assert self.follower is not None and self._following is not None
        self._stop_follow.set()  # the follower polls the nodes it had at its start
        await self._following
        self._stop_follow = asyncio.Event()
        self._following = asyncio.create_task(self.follower.run(self._stop_follow))

    async def ready(self) -> None:
        """Every node answers at its address and has every peer it dials or is dialled by
        (`Nodes.links`)."""
        want = {n: self.nodes.links(n) for n in self.nodes.nodes}
        deadline = time.monotonic() + READY_S
        peers: dict[str, int] = {}
        while time.monotonic() < deadline:
            peers = {n: await self.peers(n) for n in want}
            if all(peers[n] >= w for n, w in want.items()):
                self.log(f"ready: peers {peers}")
                return
            await asyncio.sleep(0.5)
        tails = {n: p.log_tail(300) for n, p in self.nodes.nodes.items() if peers.get(n, -1) < 0}
        raise SetupFailed(f"not connected within {READY_S:.0f} s: peers {peers}; logs {tails}")

    async def health(self, name: str) -> Health | None:
        """The node's /health, asked at its own address (None: no answer)."""
        try:
            return await self.apis[name].health()
        except (httpx.HTTPError, ApiError):
            return None

    async def peers(self, name: str) -> int:
        answer = await self.health(name)
        return -1 if answer is None else answer.peers

    async def height(self, name: str) -> int:
        answer = await self.health(name)
        return -1 if answer is None else answer.height

    @property
    def top(self) -> int:
        """The highest height any node reported."""
        assert self.follower is not None
        return self.follower.top

    async def finish(self, settle_s: float = 60.0) -> checker.Verdict:
        """Stop the load, give what was acknowledged `settle_s` to commit and the nodes
        time to reach one height, ask about the rest, stop every node, check the stores."""
        assert self.generator is not None and self.follower is not None
        self._stop_load.set()
        if self._driving is not None:
            await self._driving
        acked = self.generator.acked()
        final = await self.follower.wait_final(list(acked), settle_s)
        names = list(self.apis)
        self.converged = await self.follower.wait_converged(names, CONVERGE_S)
        self.log(f"settled: all final {final}, heights {self.follower.heights} "
                 f"converged {self.converged}")  # fmt: skip
        statuses = {}
        for tx_hash, sent in acked.items():
            if tx_hash not in self.follower.final_at:
                statuses[tx_hash] = await status_of(self.generator.apis[sent.node], tx_hash)
        self.crashed = {n: p.log_tail() for n, p in self.nodes.nodes.items() if not p.running()}
        await self.close()
        stores = {n: p.home / "data" for n, p in self.nodes.nodes.items()}
        return checker.check(self.spec, stores, {h: s.node for h, s in acked.items()}, statuses)

    async def close(self) -> None:
        """Everything stopped: the load, the follower, the clients, every node (SIGTERM,
        then SIGKILL); safe to call twice."""
        self._stop_load.set()
        self._stop_follow.set()
        for task in (self._following, self._driving):
            if task is not None:
                with contextlib.suppress(Exception):
                    await task
        self._following = self._driving = None
        for api in self.apis.values():  # the generator's are among them
            await api.close()
        await asyncio.gather(*(n.stop() for n in self.nodes.nodes.values()))
