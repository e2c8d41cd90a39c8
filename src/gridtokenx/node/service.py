"""Running a node from its home: `node start`, until a signal or its stop event.

The node's own loop dials its configured peers, keeps the peer target met, prunes, and
rewrites the home's `status.json`. Dials run as tasks of their own (one per peer at a time),
so a peer that accepts and then stalls or hangs up mid-handshake costs its dial and
nothing else: the loop never waits for a peer. Services that sit above the node (the REST
and WebSocket API) are handed in by the caller as start functions, so the node package
never imports the layers built on it.

A node never runs half-alive: when one of its supervised tasks fails for good
(`node.supervisor`), `run_node` shuts it down and raises `NodeFailed`, which the command
line reports in one line with exit status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import logging
import math
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from gridtokenx.chain.blocks import MAX_CLOCK_DRIFT
from gridtokenx.chain.mempool import Mempool
from gridtokenx.consensus.core import Timeouts
from gridtokenx.ledger.genesis import Genesis
from gridtokenx.node.home import Config, HomeError, chain_clock, load_home, setting_name
from gridtokenx.node.logs import Digest
from gridtokenx.node.runtime import Node
from gridtokenx.node.state_sync import (
    Joined,
    Snapshotter,
    StateSyncFailed,
    Trust,
    catch_up,
    has_chain,
    join,
    recover,
)
from gridtokenx.p2p.gossip import Gossip
from gridtokenx.p2p.peers import AddressBook
from gridtokenx.storage.snapshots import Snapshots
from gridtokenx.storage.store import open_application
from gridtokenx.wire.crypto import PrivateKey

_log = logging.getLogger(__name__)
DIAL_BACKOFF_MAX_S = 5.0
CATCH_UP_RETRY_S = 600.0
"""A running node far behind restarts to catch up by state sync at most this often (a peer
showing a height it does not have, or a snapshot not yet far enough ahead, would
otherwise restart it again and again)."""


class NodeFailed(RuntimeError):
    """The node stopped because a task it cannot do without failed for good."""


class Service(Protocol):
    """Something started beside the node (the API server) and stopped before it."""

    async def stop(self) -> None: ...


StartService = Callable[[Node, Config], Awaitable[Service | None]]
"""Starts a service for a running node from the home's config (None: the config turns it
off). A failure (a port in use: `PortInUse`) stops the node with the reason, cleanly."""


class PortInUse(OSError):
    """A port the home's config names is taken: the node does not start, and what it had
    opened (its store, the ports bound before) is closed again. `strerror` says which
    port and which setting moves it."""

    def __init__(self, what: str, setting: str, host: str, port: int) -> None:
        super().__init__(
            errno.EADDRINUSE,
            f"the {what} port {host}:{port} is in use by another program (another node?); "
            f"stop it or change {setting_name(setting)}",
        )


@contextlib.contextmanager
def binding(
    what: str, setting: str, host: str, port: int, host_setting: str = ""
) -> Iterator[None]:
    """Binding `what` to `port` (the config field `setting`; its host `host_setting`):
    "address in use" becomes a `PortInUse`; a host this machine does not have, or a port
    it may not bind, is the config's fault (`HomeError`)."""
    try:
        yield
    except PortInUse:
        raise
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(what, setting, host, port) from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
            fix = host_setting if exc.errno == errno.EADDRNOTAVAIL and host_setting else setting
            raise HomeError(
                f"the {what} address {host}:{port} cannot be bound "
                f"({os.strerror(exc.errno)}); change {setting_name(fix)}"
            ) from None
        raise


def _write_status(home: Path, node: Node, genesis_hash: str = "") -> None:
    node.metrics.round.set(node.core.state.round)
    node.metrics.peers.set(len(node.gossip.peers))
    node.metrics.mempool.set(len(node.app.mempool))
    status = {
        "height": node.app.height,
        "pruned_below": node.app.store.pruned_below(),
        "state_root": node.app.state.root().hex(),
        "round": node.core.state.round,
        "step": node.core.state.step.name.lower(),  # with the round: where a stall sits
        "peers": len(node.gossip.peers),
        "mesh": node.gossip.mesh_sizes(),  # peers per gossip topic's mesh
        "catching_up": node.catching_up,  # as GET /api/v1/status, for a node without an API
        "halted": node.halted,
        "failed": node.failed,  # why the node stopped itself (run_node then exits)
        "pid": os.getpid(),
        "chain_id": node.app.chain_id,
        "genesis_hash": genesis_hash,  # what the operators compared (`genesis hash`)
    }
    tmp = home / "status.json.tmp"
    tmp.write_text(json.dumps(status))
    tmp.replace(home / "status.json")


async def run_node(
    home: Path,
    *,
    max_seconds: float | None = None,
    passphrase: str | None = None,
    stop: asyncio.Event | None = None,
    on_node: Callable[[Node], None] | None = None,
    services: Sequence[StartService] = (),
    state_sync: bool = False,
    trust: Trust | None = None,
) -> None:
    """Run the node of `home` until SIGINT/SIGTERM (or `max_seconds`, for tests).

    The key is decrypted with `passphrase`, else with GRIDTOKENX_PASSPHRASE; a wrong one,
    like any other unusable file in the home, raises `HomeError` before anything is opened
    or bound. A store that does not open raises `storage.store.StoreUnavailable`, a port in
    use `PortInUse`; whatever had been opened is closed first. A node embedded in another
    program (the demo's observer) passes its own `stop` event instead of taking the
    signals, and `on_node` to attach commit listeners before the node starts. `services`
    start once the node runs (the API: see `api.server.start_api`) and stop before it.
    `state_sync` (or the config's `state_sync`): a node with an empty store joins from a
    peer's snapshot (`node.state_sync`) before it starts, trusting the block `trust`
    names when given (`--trust-height/--trust-hash`) rather than walking the validator
    set from genesis; a node with a chain that is `state_sync_behind` heights behind a
    snapshot offered catches up by state sync too (`state_sync.catch_up`). A running node
    that is no validator and finds itself that far behind its peers stops and starts again
    the same way (at most once per CATCH_UP_RETRY_S), its services with it.
    """
    config, spec, key = load_home(home, passphrase)
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
    # The start checks already: a far-behind running node restarts no sooner than this.
    retry_at = loop.time() + CATCH_UP_RETRY_S
    while True:
        if (recovered := recover(home / "data")) is not None:
            _log.warning(recovered)
        if (config.state_sync or state_sync) and not await _state_sync(
            home, config, spec, key, stop, trust
        ):
            return  # asked to stop while joining
        restart = await _serve(home, config, spec, key, stop, on_node, services, max_seconds,
                               state_sync, retry_at)  # fmt: skip
        if not restart:
            return
        retry_at, trust = loop.time() + CATCH_UP_RETRY_S, None  # a trusted block: joining only
        _log.info("far behind its peers: restarting to catch up by state sync")


async def _serve(home: Path, config: Config, spec: Genesis, key: PrivateKey,
                 stop: asyncio.Event, on_node: Callable[[Node], None] | None,
                 services: Sequence[StartService], max_seconds: float | None,
                 state_sync: bool, retry_at: float) -> bool:  # fmt: skip
    """Open, start and run the node until `stop` (or `max_seconds`); True when it stopped
    to catch up by state sync (`_far_behind`), not asked to."""
    genesis_hash = spec.hash().hex()  # logged once the node runs (`_log_started`)
    loop = asyncio.get_running_loop()
    node = _open_node(home, config, spec, key)
    if on_node is not None:
        on_node(node)
    node.snapshots = Snapshots(home / "snapshots", config.snapshot_keep)
    snapshotter = Snapshotter(node.snapshots, node.app.store, config.snapshot_interval,
                              lambda: node.catching_up)  # fmt: skip
    node.add_commit_listener(snapshotter.on_commit)
    node.supervisor.on_failure.append(lambda reason: stop.set())
    node.reserved_peers.update(bytes.fromhex(peer) for _, _, peer in config.peers)
    try:
        await _bind(node, config)
    except BaseException:
        await node.stop()  # never half-started: the store closed, the P2P port free again
        raise
    await node.start()
    started: list[Service] = []
    dialer = _Dialer(node)
    reports = PeerReports()
    began = loop.time()
    up = False  # started and said so: only then is its stop worth a line
    restart = False
    try:
        for start in services:
            if (service := await start(node, config)) is not None:
                started.append(service)
        _log_started(node, config, genesis_hash)
        up = True
        while not stop.is_set():
            _housekeeping(home, node, config, key.address, dialer, genesis_hash)
            reports.update(node.gossip, loop.time(), node.app.mempool)
            if max_seconds is not None and loop.time() - began > max_seconds:
                break
            if loop.time() >= retry_at and _far_behind(node, config, state_sync):
                restart = True
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        await dialer.stop()
        for service in reversed(started):
            await service.stop()
        _write_status(home, node, genesis_hash)
        height = node.app.height
        await snapshotter.stop()
        await node.stop()
        if up:
            reason = "to catch up by state sync" if restart else "asked to stop"
            _log.info("node stopped", extra={"height": height,
                      "reason": node.failed or node.halted or reason})  # fmt: skip
    if node.failed is not None:
        raise NodeFailed(node.failed)
    return restart


def _far_behind(node: Node, config: Config, state_sync: bool) -> bool:
    """A node that is no validator, with state sync on, whose peers show a height more
    than `state_sync_behind` beyond its own: replaying would take longer than a snapshot
    (docs/consensus.md, "Catching up"). A validator never stops itself for this."""
    if not (config.state_sync or state_sync) or not config.state_sync_behind:
        return False
    if node.core.validators.get(node.key.address) is not None:
        return False
    return node.peer_height - node.app.height > config.state_sync_behind


async def _state_sync(
    home: Path,
    config: Config,
    spec: Genesis,
    key: PrivateKey,
    stop: asyncio.Event,
    trust: Trust | None = None,
) -> bool:
    """Join from a snapshot of the configured peers (none offered: from genesis), or, with
    a chain, catch up by one when far behind (`state_sync.catch_up`); False when asked to
    stop meanwhile. A failed fetch raises `StateSyncFailed` (a node with a chain logs it
    and replays from its own height: its store is untouched)."""
    peers, data = list(config.peers), home / "data"
    if has_chain(data):
        if trust is not None:
            _log.warning("the store holds a chain: --trust-height/--trust-hash are ignored")
        if not config.state_sync_behind:
            return True
        try:
            return await _until_stopped(catch_up(data, spec, key, peers,
                                                 config.state_sync_behind, config.p2p),
                                        stop, catching_up=True)  # fmt: skip
        except StateSyncFailed as exc:
            _log.error("catching up by state sync failed; replaying blocks instead: %s", exc)
            return True
    return await _until_stopped(join(data, spec, key, peers, config.p2p, trust=trust), stop)


async def _until_stopped(work_done: Coroutine[Any, Any, Joined | None], stop: asyncio.Event,
                         catching_up: bool = False) -> bool:  # fmt: skip
    """Run a state sync until done (True) or until `stop` is set (False)."""
    work = asyncio.ensure_future(work_done)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
    if work.cancelled():
        return False
    if work.result() is None and not catching_up:
        _log.warning("state sync: no peer offered a certified snapshot; syncing from genesis")
    return True


def _log_started(node: Node, config: Config, genesis_hash: str) -> None:
    """One line with what an operator checks first: which chain (and the genesis hash the
    operators compared), which node, in which role, where it listens, from which height.
    Nothing is logged before it, so a node that fails to start prints only its error."""
    power = node.core.validators.power(node.key.address)
    _log.info("node started", extra={
        "chain_id": node.app.chain_id, "genesis_hash": genesis_hash,
        "node_id": node.key.address.hex(),
        "moniker": config.moniker, "role": "validator" if power else "full_node",
        "power": power, "p2p": _address(config.listen_host, config.listen_port),
        "external": config.external_host or "-",
        "api": _address(config.api_host, config.api_port),
        "metrics": _address(config.metrics_host, config.metrics_port),
        "height": node.app.height, "peers_configured": len(config.peers),
        **({"genesis_in_s": round(wait)} if (wait := node.genesis_in()) > 0 else {})})  # fmt: skip


def _address(host: str, port: int) -> str:
    """host:port ([host]:port for IPv6), or "off" for port 0 (the API and metrics)."""
    if not port:
        return "off"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class PeerReports:
    """The peer layer's refusals and drops, and the mempool's (transactions refused at
    admission and dropped while waiting, by the ledger's code), logged as digests
    (`node.logs.Digest`): one line per reason every `every_s` seconds at most, however
    many there were. Before, a node never said why a transaction it was given went
    nowhere; an operator had to ask for each hash."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.refused = Digest(_log, "peers refused", ("reason",), logging.INFO, every_s)
        self.dropped = Digest(_log, "frames dropped", ("lane", "reason"), logging.WARNING,
                              every_s)  # fmt: skip
        self.txs_refused = Digest(_log, "transactions refused", ("code",), logging.INFO, every_s)
        self.txs_dropped = Digest(_log, "transactions dropped", ("reason",), logging.INFO,
                                  every_s)  # fmt: skip

    def update(self, gossip: Gossip, now: float, mempool: Mempool | None = None) -> int:
        """Log what grew since the last lines; returns how many lines were written."""
        stats = gossip.stats
        dropped: dict[tuple[str, ...], int] = {
            (lane, "send_queue_full"): n for lane, n in list(stats.dropped.items())
        }
        dropped.update(list(stats.discarded.items()))
        refused: dict[tuple[str, ...], int] = {
            (reason,): n for reason, n in list(gossip.gate.refused.items())
        }
        lines = self.refused.update(refused, now) + self.dropped.update(dropped, now)
        if mempool is not None:
            lines += self.txs_refused.update({(c,): n for c, n in mempool.refused.items()}, now)
            lines += self.txs_dropped.update({(r,): n for r, n in mempool.dropped.items()}, now)
        return lines


async def _bind(node: Node, config: Config) -> None:
    """The P2P and metrics ports; a port in use is `PortInUse`."""
    with binding("P2P", "listen_port", config.listen_host, config.listen_port, "listen_host"):
        await node.gossip.listen(config.listen_host, config.listen_port, config.external_host)
    if config.metrics_port:
        with binding("metrics", "metrics_port", config.metrics_host, config.metrics_port,
                     "metrics_host"):  # fmt: skip
            node.metrics.serve(config.metrics_port, config.metrics_host)


def _open_node(home: Path, config: Config, spec: Genesis, key: PrivateKey) -> Node:
    # A proposer with nothing to include waits up to block_ms: the others wait for that too.
    timeouts = Timeouts(config.propose_ms + config.block_ms, config.prevote_ms, config.precommit_ms)
    app = open_application(spec, home / "data", config.storage_cache_mb, config.storage_mmap_reads,
                           config.storage_read_threads)  # fmt: skip
    try:
        return Node(
            key,
            app,
            timeouts,
            block_interval=config.block_ms / 1000,
            address_book=AddressBook(home / "peers.json"),
            min_block_gap=config.min_block_ms / 1000,
            build_budget=config.build_budget_ms / 1000,
            clock=chain_clock(spec.genesis_time, config.clock_origin, config.clock_speed),
            # An accelerated clock moves `speed` chain seconds per wall second: allow the
            # same wall-clock disagreement between validators as at speed 1.
            clock_drift=math.ceil(MAX_CLOCK_DRIFT * max(1.0, config.clock_speed)),
            peer_settings=config.p2p,
        )
    except BaseException:
        app.close()  # a node that did not start never leaves its store open
        raise


class _Dialer:
    """Dials as background tasks, one per peer at a time: a dial that hangs or fails
    (refused, reset, closed mid-handshake, late) is logged at debug level, and the next
    attempt at that peer waits 0.5 s, then twice as long after each failure, up to
    DIAL_BACKOFF_MAX_S (a configured peer is never given up)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._tasks: dict[bytes | str, asyncio.Task[None]] = {}
        self._failures: dict[bytes | str, tuple[int, float]] = {}  # name -> (count, retry at)

    def start(
        self, name: bytes | str, work: Callable[[], Coroutine[object, object, object]]
    ) -> None:
        now = asyncio.get_running_loop().time()
        if name in self._tasks or now < self._failures.get(name, (0, 0.0))[1]:
            return
        task = asyncio.create_task(self._run(name, work))
        self._tasks[name] = task
        task.add_done_callback(lambda _: self._tasks.pop(name, None))

    async def _run(
        self, name: bytes | str, work: Callable[[], Coroutine[object, object, object]]
    ) -> None:
        label = name.hex() if isinstance(name, bytes) else name
        try:
            await work()
            self._failures.pop(name, None)
            return
        except OSError as exc:  # HandshakeError, TimeoutError and resets are OSErrors
            _log.debug("dialling %s failed: %s", label, exc)
        except Exception as exc:
            _log.error("dialling %s failed with %s: %s", label, type(exc).__name__, exc)
        count = self._failures.get(name, (0, 0.0))[0] + 1
        delay = min(DIAL_BACKOFF_MAX_S, 0.5 * 2 ** (count - 1))
        self._failures[name] = (count, asyncio.get_running_loop().time() + delay)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _housekeeping(
    home: Path, node: Node, config: Config, address: bytes, dialer: _Dialer, genesis_hash: str
) -> None:
    """One pass of the node's loop: dial configured peers, the persistent ones (validators
    split the dialling: the smaller address dials), meet the peer target from the address
    book (with peer exchange on), prune, write status.json. Dials only start here; nothing
    in this pass waits for a peer."""
    for host, port, peer in config.peers:
        peer_id = bytes.fromhex(peer)
        if peer_id not in node.gossip.peers and (config.dial_all or address < peer_id):
            dialer.start(peer_id, functools.partial(node.gossip.dial, host, port, peer_id))
    if config.p2p.pex and len(node.gossip.peers) < config.target_peers:
        dialer.start("maintain", functools.partial(node.gossip.maintain, config.target_peers))
    if config.keep_blocks:
        node.app.store.prune(config.keep_blocks)
    _write_status(home, node, genesis_hash)
