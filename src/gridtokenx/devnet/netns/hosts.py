"""Hosts as Linux network namespaces: each with its own IPv4 address on a bridge, as if it
were a machine on a switch, so nodes talk over real, non-loopback addresses and the
harness can pull a host's cable or split the switch.

Layout (root only, iproute2 only: `ip netns`, veth pairs and bridges; there is no `netem`
and no packet filter here, so nothing relies on them):

- a bridge `gtb<token>` in the root namespace holds the subnet's first address (the
  harness's own: its load generator and observers reach every host from there);
- host i is the namespace `gtxns-<token>-<i>` with loopback up and `eth0`, one end of a
  veth pair whose other end (`gtv<token>.<i>`) is a port of the bridge;
- `down(host)` sets that bridge port down: the host keeps its address and routes, and
  its packets vanish, as when its cable is pulled;
- `split(groups)` moves each group's ports onto a bridge of its own (a switch per side):
  hosts in different groups no longer reach each other, while the harness still reaches
  all of them (a route per moved host; the root namespace does not forward between
  bridges), so it can watch both sides of a split; `heal` moves them back.

The token is this process's id in hex and a counter, so parallel test workers never
collide, and a crashed run's leftovers (its id no longer alive) are recognised and removed
by `remove_stale`, which `Hosts.create` calls first. The subnet is 10.213.X.0/24 with X
the first not already on an interface of the root namespace, chosen under a file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

PREFIX: Final = "gtxns"
BRIDGE: Final = "gtb"
PORT: Final = "gtv"
FIRST_HOST: Final = 10  # host i gets .(10 + i); .1 is the harness's
MAX_HOSTS: Final = 240
SUBNETS: Final = ipaddress.IPv4Network("10.213.0.0/16")
_LEFTOVER = re.compile(rf"^(?:{PREFIX}-|{BRIDGE}|{PORT})([0-9a-f]+)-")
_counter = itertools.count()


class NetnsError(RuntimeError):
    """An `ip` command failed; the message holds the command and what it said."""


def ip(*args: str, check: bool = True) -> str:
    """Run `ip ARGS`, returning its output; raises NetnsError (with stderr) on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


@functools.cache
def available() -> str | None:
    """None when namespaces can be used here; otherwise why not, for a skip message."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root; run the tests as root)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is missing (apt-get install -y iproute2)"
    probe = f"{PREFIX}-{os.getpid():x}-probe"
    try:
        ip("netns", "add", probe)
        ip("-n", probe, "link", "set", "lo", "up")
    except NetnsError as exc:
        return f"cannot create a network namespace: {exc}"
    finally:
        ip("netns", "del", probe, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def _links() -> list[str]:
    """Names of the root namespace's interfaces (without their `@peer` suffix)."""
    return [line.split(": ")[1].split("@")[0] for line in ip("-o", "link", "show").splitlines()]


def _kill_inside(namespace: str) -> None:
    """SIGKILL what still runs in one of this harness's namespaces (by process id): only
    the harness starts processes there, and a namespace cannot go while they hold it."""
    for pid in ip("netns", "pids", namespace, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def remove_stale() -> list[str]:
    """Remove the namespaces, bridges and ports of runs whose process is gone (a crash, a
    SIGKILLed test worker); returns what was removed."""
    removed = []
    for name in [*_namespaces(), *_links()]:
        found = _LEFTOVER.match(name)
        if found is None or _alive(int(found.group(1), 16)):
            continue
        if name.startswith(PREFIX):
            _kill_inside(name)
            ip("netns", "del", name, check=False)
        else:
            ip("link", "del", name, check=False)
        removed.append(name)
    return removed


def leftovers(token: str) -> list[str]:
    """What the root namespace still holds of the run with `token` (empty after `close`)."""
    mine = (f"{PREFIX}-{token}-", f"{BRIDGE}{token}-", f"{PORT}{token}.")
    return [n for n in [*_namespaces(), *_links()] if n.startswith(mine)]


@contextlib.contextmanager
def file_lock(path: Path, shared: bool = False) -> Iterator[None]:
    """An flock on `path` between processes (parallel test workers), exclusive unless
    `shared`; the file is created if missing and never removed."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _subnet_lock() -> contextlib.AbstractContextManager[None]:
    """Held while a run picks its subnet and puts it on its bridge."""
    return file_lock(Path(tempfile.gettempdir()) / f"{PREFIX}.lock")


def _free_subnet() -> ipaddress.IPv4Network:
    used = set()
    for line in ip("-o", "-4", "addr", "show").splitlines():
        address = ipaddress.IPv4Interface(line.split()[3])
        if address.ip in SUBNETS:
            used.add(address.network.supernet(new_prefix=24))
    subnets = list(SUBNETS.subnets(new_prefix=24))
    start = os.getpid() % len(subnets)
    for net in subnets[start:] + subnets[:start]:
        if net not in used:
            return net
    raise NetnsError(f"every /24 of {SUBNETS} is in use")


@dataclass(frozen=True)
class Host:
    """One machine: its namespace, its address, and its port on the bridge."""

    index: int
    namespace: str
    address: str
    port: str  # the bridge-side end of its veth pair, in the root namespace

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run on this host (`ip netns exec` passes the environment through)."""
        return ["ip", "netns", "exec", self.namespace, *argv]


@dataclass
class Hosts:
    """Hosts on one bridge; a context manager that removes all of it, whatever happens."""

    token: str = field(default_factory=lambda: f"{os.getpid():x}-{next(_counter) % 10}")
    hosts: list[Host] = field(default_factory=list)
    subnet: ipaddress.IPv4Network | None = None
    _bridges: list[str] = field(default_factory=list)
    _moved: list[Host] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"{BRIDGE}{self.token}-0"

    @property
    def gateway(self) -> str:
        """The harness's address on the bridge (where its clients come from)."""
        assert self.subnet is not None, "create() first"
        return str(self.subnet.network_address + 1)

    def create(self, count: int) -> Hosts:
        """The bridge and `count` hosts on it (more can be added later, see `add`)."""
        remove_stale()
        with _subnet_lock():
            self.subnet = _free_subnet()
            self._bridge(self.bridge)
            ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        for _ in range(count):
            self.add()
        return self

    def _bridge(self, name: str) -> None:
        """A bridge; every one after the first takes the first's MAC address, so the
        harness's address resolves to the same MAC on every switch and a host moved by a
        split or its heal never holds a stale neighbour entry for it."""
        ip("link", "add", name, "type", "bridge", "forward_delay", "0")
        if self._bridges:
            mac = ip("-br", "link", "show", self._bridges[0]).split()[2]
            ip("link", "set", name, "address", mac)
        self._bridges.append(name)
        ip("link", "set", name, "up")

    def add(self) -> Host:
        """One more host on the bridge (a machine that joins late)."""
        assert self.subnet is not None, "create() first"
        index = len(self.hosts)
        if index >= MAX_HOSTS:
            raise NetnsError(f"at most {MAX_HOSTS} hosts on one subnet")
        address = str(self.subnet.network_address + FIRST_HOST + index)
        host = Host(index, f"{PREFIX}-{self.token}-{index}", address, f"{PORT}{self.token}.{index}")
        self.hosts.append(host)
        inside = f"{PORT}{self.token}p{index}"[-15:]
        ip("netns", "add", host.namespace)
        ip("link", "add", host.port, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", host.namespace)
        ns = ("-n", host.namespace)
        ip(*ns, "link", "set", inside, "name", "eth0")
        ip(*ns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip(*ns, "link", "set", "eth0", "up")
        ip(*ns, "link", "set", "lo", "up")
        ip("link", "set", host.port, "master", self.bridge, "up")
        return host

    def down(self, host: Host) -> None:
        """Pull the host's cable: its bridge port goes down, its packets are lost."""
        ip("link", "set", host.port, "down")

    def up(self, host: Host) -> None:
        ip("link", "set", host.port, "up")

    def split(self, groups: Sequence[Sequence[Host]]) -> None:
        """Each group on a switch of its own; hosts in no group stay on the first bridge.
        The harness keeps a route to every moved host, so it still reaches both sides."""
        self.heal()
        for number, group in enumerate(groups, start=1):
            bridge = f"{BRIDGE}{self.token}-{number}"
            if bridge not in self._bridges:
                self._bridge(bridge)
            for host in group:
                ip("link", "set", host.port, "master", bridge)
                ip("route", "replace", f"{host.address}/32", "dev", bridge, "src", self.gateway)
                self._moved.append(host)

    def heal(self) -> None:
        """Every host back on the first bridge."""
        for host in self._moved:
            ip("route", "del", f"{host.address}/32", check=False)
            ip("link", "set", host.port, "master", self.bridge)
        self._moved.clear()

    def close(self) -> None:
        """Remove the hosts (killing what still runs in them) and the bridges."""
        for host in self.hosts:
            _kill_inside(host.namespace)
            ip("link", "del", host.port, check=False)
            ip("netns", "del", host.namespace, check=False)
        for bridge in self._bridges:
            ip("link", "del", bridge, check=False)
        self._moved.clear()

    def __enter__(self) -> Hosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
