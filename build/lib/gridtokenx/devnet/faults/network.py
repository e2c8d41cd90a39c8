"""The links between nodes, under the harness's control, without root: every node-to-node
connection goes through a TCP proxy this process runs.

Each node's configured peers point at proxy ports (one proxy per ordered pair of dialler and
target), and a node dials only its configured peers (the harness sets `target_peers` to 0,
so addresses learnt by peer exchange, which name the real ports, are never dialled). The
proxy relays bytes and nothing else: the transport's handshake still authenticates the two
nodes end to end, and a proxy can only delay, stop or cut what passes. Partitions and slow
links are proxy actions:

- a partition "cut" closes every connection between the groups (an orderly close: each
  node sees its peer hang up) and holds new ones unanswered (the dialler's handshake times
  out, as when packets are dropped) until the heal; "blackhole" stops forwarding on open
  and new connections alike, so senders fill their buffers, and forwards everything again
  at the heal, as TCP would once a dropped route comes back;
- a slow link forwards at most `bytes_per_s` each way, each chunk `delay_ms` late; it reads
  the next chunk only after writing the last, so the sender feels the back-pressure.

`Network` is the seam for other implementations: network namespaces with veth pairs and
`tc netem` (the multi-host issue) would give each node its own address and do the same four
things to real packets, and the scenarios and the checker would not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

HOST: Final = "127.0.0.1"
CHUNK: Final = 16 * 1024
PROBE_S: Final = 0.2  # how often a target that is down is tried
HELLO: Final = 68  # the transport's first message: magic, ephemeral and node keys
BUFFER: Final = 16 * 1024
"""Each buffer a proxy adds (socket buffers both ways, its reader, its writer) is this small,
so a proxied link holds about as much in flight as a direct one: a node blocked on a peer
that does not read is blocked as soon as it would be without the proxy."""
Mode = Literal["cut", "blackhole"]


@dataclass(frozen=True)
class Link:
    """`dialler` reaches `target`, which listens at `port` on 127.0.0.1."""

    dialler: str
    target: str
    port: int


class Network(Protocol):
    events: Counter[str]  # how links ended ("b down when a dialled", ...), for the report

    async def start(self, links: Sequence[Link]) -> dict[tuple[str, str], tuple[str, int]]:
        """Open the links; returns where each dialler must dial each target."""
        ...

    def down(self, node: str) -> None:
        """The harness stopped `node`: dialling it is refused until it listens again."""
        ...

    def partition(self, fault: int, groups: Sequence[Sequence[str]], mode: Mode) -> None: ...

    def heal(self, fault: int) -> None: ...

    def shape(self, fault: int, nodes: Sequence[str], bytes_per_s: int, delay_ms: int) -> None: ...

    def unshape(self, fault: int) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class _Rules:
    """The active faults, by id: what a link consults for every chunk it forwards."""

    cuts: dict[int, tuple[frozenset[frozenset[str]], Mode]] = field(default_factory=dict)
    shapes: dict[int, tuple[frozenset[str], int, int]] = field(default_factory=dict)

    def blocked(self, a: str, b: str) -> Mode | None:
        pair = frozenset((a, b))
        modes = {mode for pairs, mode in self.cuts.values() if pair in pairs}
        return "cut" if "cut" in modes else "blackhole" if modes else None

    def shaping(self, a: str, b: str) -> tuple[int, int]:
        """(bytes per second, 0 for no cap; added delay in ms) of the a-b link: the
        tightest cap and the largest delay of the faults on either end."""
        on = [(bps, ms) for nodes, bps, ms in self.shapes.values() if a in nodes or b in nodes]
        caps = [bps for bps, _ in on if bps > 0]
        delays = [ms for _, ms in on]
        return (min(caps) if caps else 0, max(delays, default=0))


def blocked_pairs(groups: Sequence[Sequence[str]], nodes: Sequence[str]) -> set[frozenset[str]]:
    """Pairs of nodes in different groups; nodes in no group form one more group."""
    listed = [set(g) for g in groups]
    rest = set(nodes) - set().union(*listed)
    sides = [g for g in [*listed, rest] if g]
    return {frozenset((a, b)) for i, s in enumerate(sides) for t in sides[i + 1 :]
            for a in s for b in t}  # fmt: skip


class _Listener:
    """One link's port. A placeholder socket keeps the port reserved for the whole run, and a
    listening socket on the same port (both SO_REUSEPORT) exists only while the target is up:
    while it is down, dialling the link is refused, as dialling the node itself would be."""

    def __init__(self, link: Link, accept: Callable[..., Awaitable[None]]) -> None:
        self.link, self._accept = link, accept
        self.placeholder = _socket(reuse_port=True)
        self.placeholder.bind((HOST, 0))
        self.port = int(self.placeholder.getsockname()[1])
        self.server: asyncio.Server | None = None

    async def open(self) -> None:
        if self.server is None:
            sock = _socket(reuse_port=True)
            sock.bind((HOST, self.port))
            sock.listen(64)
            handler = functools.partial(self._accept, self.link)
            self.server = await asyncio.start_server(handler, sock=sock, limit=BUFFER)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


class ProxyNetwork:
    """Every link through an asyncio TCP proxy on 127.0.0.1 (see the module docstring)."""

    def __init__(self) -> None:
        self.rules = _Rules()
        self.events: Counter[str] = Counter()  # how relays ended, for the report
        self.nodes: set[str] = set()
        self._listeners: dict[str, list[_Listener]] = {}  # target -> its links' listeners
        self._ports: dict[str, int] = {}  # node -> its real listen port
        self._probes: dict[str, asyncio.Task[None]] = {}  # targets down, awaited back up
        self._conns: dict[frozenset[str], set[_Relay]] = {}
        self._changed = asyncio.Event()  # set (and replaced) whenever the rules change

    async def start(self, links: Sequence[Link]) -> dict[tuple[str, str], tuple[str, int]]:
        """Every link's port, refusing until its target listens (a probe opens it)."""
        routes = {}
        for link in links:
            self.nodes |= {link.dialler, link.target}
            self._ports[link.target] = link.port
            listener = _Listener(link, self._accept)
            self._listeners.setdefault(link.target, []).append(listener)
            routes[(link.dialler, link.target)] = (HOST, listener.port)
        for target in self._listeners:
            self.down(target)
        return routes

    def down(self, node: str) -> None:
        """`node` stopped listening (the harness stops it, or a dial found it gone): refuse
        its links until a probe finds it listening again."""
        for listener in self._listeners.get(node, []):
            listener.close()
        if node in self._listeners and node not in self._probes:
            self._probes[node] = asyncio.create_task(self._probe(node))

    async def wait_open(self, timeout: float) -> bool:
        """Whether every target was found listening within `timeout` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._probes and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        return not self._probes

    async def _probe(self, node: str) -> None:
        try:
            while not await _listens(self._ports[node]):  # ends when the node is back
                await asyncio.sleep(PROBE_S)
            for listener in self._listeners[node]:
                await listener.open()
        finally:
            self._probes.pop(node, None)

    def partition(self, fault: int, groups: Sequence[Sequence[str]], mode: Mode) -> None:
        pairs = frozenset(blocked_pairs(groups, sorted(self.nodes)))
        self.rules.cuts[fault] = (pairs, mode)
        if mode == "cut":
            for pair in pairs:
                for relay in list(self._conns.get(pair, ())):
                    relay.close(reset=False)
        self._notify()

    def heal(self, fault: int) -> None:
        self.rules.cuts.pop(fault, None)
        self._notify()

    def shape(self, fault: int, nodes: Sequence[str], bytes_per_s: int, delay_ms: int) -> None:
        self.rules.shapes[fault] = (frozenset(nodes), bytes_per_s, delay_ms)
        self._notify()

    def unshape(self, fault: int) -> None:
        self.rules.shapes.pop(fault, None)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def stop(self) -> None:
        for probe in list(self._probes.values()):
            probe.cancel()
        for listeners in self._listeners.values():
            for listener in listeners:
                listener.close()
                listener.placeholder.close()
        for relays in self._conns.values():
            for relay in list(relays):
                relay.close()
        self._listeners.clear()

    async def _accept(
        self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        pair = frozenset((link.dialler, link.target))
        relay = _Relay(self, link, reader, writer)
        self._conns.setdefault(pair, set()).add(relay)
        try:
            await relay.run()
        finally:
            self._conns[pair].discard(relay)
            relay.close()

    async def wait_changed(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)


class _Relay:
    """One proxied connection: the dialler's side, and the target's once it is open."""

    def __init__(
        self, net: ProxyNetwork, link: Link, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:  # fmt: skip
        self.net, self.link = net, link
        self.writers = [writer]
        self.reader = reader
        self.closed = False

    def close(self, reset: bool = True) -> None:
        """Close both sides; with `reset` (a target that is down, a side that was reset)
        the peers see a connection reset, as a refused or reset connection would give them
        on a real network, rather than an orderly end."""
        if self.closed:
            return
        self.closed = True
        for writer in self.writers:
            if reset:
                _abort(writer)
            else:
                writer.close()

    async def run(self) -> None:
        """Hold the connection while a cut separates the pair (keeping what the dialler
        sent, as TCP would keep retransmitting it), then open the target side, pass on
        what was held, and pump both ways until either side ends or a cut closes it."""
        a, b = self.link.dialler, self.link.target
        held = bytearray()
        while not self.closed and self.net.rules.blocked(a, b) == "cut":  # ends at the heal
            if not await self._hold(held):
                self.close(reset=False)  # the dialler gave up
                return
        if self.closed:
            return
        upstream = _socket()
        try:
            await asyncio.get_running_loop().sock_connect(upstream, (HOST, self.link.port))
            up_reader, up_writer = await asyncio.open_connection(sock=upstream, limit=BUFFER)
        except OSError:
            upstream.close()
            self.net.events[f"{b} found down when {a} dialled"] += 1
            self.net.down(b)  # refuse the next dials, as the node's own port would
            self.close()  # this one was accepted already: the dialler sees a reset
            return
        self.writers.append(up_writer)
        for writer in self.writers:
            writer.transport.set_write_buffer_limits(high=BUFFER)
        if held:
            up_writer.write(bytes(held))
        await asyncio.gather(
            self._pump(self.reader, up_writer), self._pump(up_reader, self.writers[0]),
            return_exceptions=True,
        )  # fmt: skip

    async def _hold(self, held: bytearray) -> bool:
        """Keep what the dialler sends until the rules change (or a second passes);
        False when it hung up."""
        read = asyncio.ensure_future(self.reader.read(CHUNK))
        changed = asyncio.ensure_future(self.net.wait_changed(1.0))
        done, _ = await asyncio.wait({read, changed}, return_when=asyncio.FIRST_COMPLETED)
        changed.cancel()
        if read not in done:
            read.cancel()
            return True
        try:
            chunk = read.result()
        except (ConnectionError, OSError):
            return False
        held += chunk
        return bool(chunk) and len(held) <= CHUNK

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        a, b = self.link.dialler, self.link.target
        reset = True
        try:
            while not self.closed:
                while (mode := self.net.rules.blocked(a, b)) == "blackhole":
                    await self.net.wait_changed(1.0)  # forward nothing until the heal
                if mode == "cut":
                    break
                bps, delay_ms = self.net.rules.shaping(a, b)
                chunk = await reader.read(max(1024, bps // 20) if bps else CHUNK)
                if not chunk:
                    reset = False  # an orderly end: pass it on as one
                    self.net.events[f"{a}-{b} closed by one side"] += 1
                    break
                if bps or delay_ms:
                    await asyncio.sleep(delay_ms / 1000 + (len(chunk) / bps if bps else 0))
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            self.net.events[f"{a}-{b} {type(exc).__name__}"] += 1
        finally:
            self.close(reset)


def _socket(reuse_port: bool = False) -> socket.socket:
    """A TCP socket with small buffers (set before listening or connecting, so the window
    it advertises is small from the start; accepted sockets inherit them)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setblocking(False)
    return sock


async def _listens(port: int) -> bool:
    """Whether a node listens at `port`: connect, take its half of the handshake's first
    message (so closing sends an orderly FIN, not a reset), hang up. The node sees a peer
    that left during the handshake, which it shrugs off."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 1.0)
    except (OSError, TimeoutError):
        return False
    with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
        await asyncio.wait_for(reader.read(HELLO), 1.0)
    writer.close()
    return True


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), not an orderly FIN."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
