"""Validators and full nodes, each on a site: a host of its own (`hosts.py`), where every
node binds its P2P, API and metrics ports on the host's address and dials its peers at
theirs, or, for comparison in the same run, 127.0.0.1 with a port range per node.

The nodes run as the fault harness runs them (`faults.cluster.NodeProcess`: `node start`
under the clock launcher, stderr to `node.log`), the command prefixed with the host's
`ip netns exec`, and the harness reads them from the root namespace over the network:
their APIs (the load generator, the follower) and their metrics at each node's address.

Where later work slots in:
- validators behind sentries: `Nodes.create` would place, per validator, sentries on
  hosts of their own (peers: their validator and the other validators' sentries), give
  the validator only its sentries as peers, and full nodes the sentries, not the
  validators (`add_full_node`);
- the genesis ceremony: `_genesis` builds the devnet genesis from the dev keys; run
  instead, inside each validator's host, `gridtokenx keys new` and the ceremony's export,
  build the genesis from the collected public keys in the root namespace, and check its
  hash inside each host before `node start`.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from gridtokenx.client import AsyncClient
from gridtokenx.devnet.faults.cluster import API_RATE, NodeProcess
from gridtokenx.devnet.homes import devnet_genesis
from gridtokenx.devnet.netns.hosts import Host, Hosts
from gridtokenx.ledger import genesis
from gridtokenx.node.home import Config, write_home
from gridtokenx.p2p.connection import PeerSettings
from gridtokenx.wire.crypto import PrivateKey

P2P_PORT: Final = 26656  # the same ports on every host, as on real machines
API_PORT: Final = 26657
METRICS_PORT: Final = 26660


@dataclass(frozen=True)
class Site:
    """Where a node runs: the address it binds and announces, its ports, and the prefix
    that runs a command there."""

    address: str
    listen_port: int
    api_port: int
    metrics_port: int
    wrapper: tuple[str, ...] = ()

    @property
    def metrics(self) -> str:
        return f"http://{self.address}:{self.metrics_port}/metrics"


def on_host(host: Host) -> Site:
    return Site(host.address, P2P_PORT, API_PORT, METRICS_PORT, tuple(host.command(())))


def on_hosts(hosts: Hosts) -> Callable[[int], Site]:
    """Node i on host i, adding hosts as nodes join."""

    def site(i: int) -> Site:
        while len(hosts.hosts) <= i:
            hosts.add()
        return on_host(hosts.hosts[i])

    return site


def on_loopback(base_port: int) -> Callable[[int], Site]:
    """Node i on 127.0.0.1 at base + i (P2P), + 200 + i (API) and + 100 + i (metrics),
    as `devnet.homes` lays out a local devnet."""
    return lambda i: Site("127.0.0.1", base_port + i, base_port + 200 + i, base_port + 100 + i)


@dataclass
class Nodes:
    """The nodes of one chain, each at the site `place(i)` gives the i-th."""

    root: Path
    place: Callable[[int], Site]
    block_ms: int = 1000
    p2p: PeerSettings = field(default_factory=PeerSettings)
    chain_id: str = "gridtokenx-netns"
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    sites: dict[str, Site] = field(default_factory=dict)
    genesis_bytes: bytes = b""

    def create(self, validators: Sequence[str], full_nodes: int) -> None:
        """Homes for `validators` (authority codes), fully meshed, and `full_nodes` full
        nodes that dial every validator; nothing starts yet."""
        spec = _genesis(self.chain_id, validators)
        self.genesis_bytes = spec.encode()
        keys = genesis.dev_keys()
        for code in validators:
            self.sites[code.lower()] = self.place(len(self.sites))
        for code in validators:
            name = code.lower()
            peers = self._peers([n for n in self.sites if n != name])
            self._add(name, keys[code], Config(self.sites[name].listen_port, peers), True)
        for k in range(full_nodes):
            self.add_full_node(f"full{k + 1}")

    def add_full_node(self, name: str) -> NodeProcess:
        """One more full node on a site of its own, dialling every validator (a node that
        joins a running chain starts it with `start`)."""
        self.sites[name] = self.place(len(self.sites))
        validators = [n for n, p in self.nodes.items() if p.validator]
        config = Config(self.sites[name].listen_port, self._peers(validators), dial_all=True)
        return self._add(name, PrivateKey.from_dev_label(f"netns/{name}"), config, False)

    def _peers(self, names: Sequence[str]) -> tuple[tuple[str, int, str], ...]:
        keys = genesis.dev_keys()
        ids = {n: p.node_id.hex() for n, p in self.nodes.items()}
        ids |= {code.lower(): key.address.hex() for code, key in keys.items()}
        return tuple((self.sites[n].address, self.sites[n].listen_port, ids[n]) for n in names)

    def _add(self, name: str, key: PrivateKey, config: Config, validator: bool) -> NodeProcess:
        """The home, with every address on the node's site and the harness's settings."""
        site = self.sites[name]
        config = msgspec.structs.replace(
            config, listen_host=site.address, api_host=site.address, api_port=site.api_port,
            metrics_host=site.address, metrics_port=site.metrics_port, block_ms=self.block_ms,
            api_rate_per_second=API_RATE, moniker=name, p2p=self.p2p,
        )  # fmt: skip
        home = write_home(self.root / name, self.genesis_bytes, key, config)
        node = NodeProcess(name, home, validator, site.listen_port, site.api_port, key.address,
                           host=site.address, wrapper=site.wrapper)  # fmt: skip
        node.set_clock(0)
        self.nodes[name] = node
        return node

    @property
    def validators(self) -> list[str]:
        return [n for n, p in self.nodes.items() if p.validator]

    def start(self, names: Sequence[str] | None = None) -> None:
        for name in self.nodes if names is None else names:
            self.nodes[name].start()

    def clients(self, timeout: float) -> dict[str, AsyncClient]:
        return {n: AsyncClient(p.api, timeout=timeout) for n, p in self.nodes.items()}

    def metric(self, name: str, family: str, **labels: str) -> float:
        """One sample of the node's Prometheus metrics, read at its own address (0 when
        the family has no such sample yet: a counter nothing has counted)."""
        with urllib.request.urlopen(self.sites[name].metrics, timeout=10) as answer:
            text = answer.read().decode()
        for metrics in text_string_to_metric_families(text):
            for sample in metrics.samples:
                wanted = sample.name in (family, f"{family}_total")
                if wanted and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0


def _genesis(chain_id: str, validators: Sequence[str]) -> genesis.Genesis:
    """The devnet genesis from the dev keys, a minute old (see the module docstring for
    the ceremony that would replace it)."""
    return devnet_genesis(chain_id, int(time.time()) - 60, validators)
