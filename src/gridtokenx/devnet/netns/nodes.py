"""Validators and full nodes, each on a site: a host of its own (`hosts.py`), where every
node binds its P2P, API and metrics ports on the host's address and dials its peers at
theirs, or, for comparison in the same run, 127.0.0.1 with a port range per node.

The nodes run as the fault harness runs them (`faults.cluster.NodeProcess`: `node start`
under the clock launcher, stderr to `node.log`), the command prefixed with the host's
`ip netns exec`, and the harness reads them from the root namespace over the network:
their APIs (the load generator, the follower) and their metrics at each node's address.

Two options of `Nodes.create`, as operators deploy (docs/operations.md):
- `sentries`: each validator behind a sentry on a host of its own (`CODE-sentry`, under
  the devnet's sentry key): the validator dials only its sentry, with peer exchange off
  (`homes.behind_sentry`); the sentry dials its validator and the other sentries and keeps
  its validator private and unconditional (`homes.shielding`); full nodes, those made at
  the start and those `add_full_node` adds, dial the sentries, never a validator;
- `ceremony`: the genesis from the ceremony (`Nodes.ceremony`): each authority's key and
  signed document made inside its host's namespace, in its directory `root/hosts/CODE`,
  the genesis built in the root namespace (`root/coordinator`) from the documents alone,
  each validator's home made inside its host by `init --genesis-hash`. The keys of MEA and
  ERC are their dev keys imported there, since the fault harness's load signs its setup
  with them; the others' are new.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from gridtokenx.client import AsyncClient
from gridtokenx.devnet.faults.cluster import API_RATE, NodeProcess
from gridtokenx.devnet.homes import (
    AUTHORITY_ORDER,
    behind_sentry,
    devnet_genesis,
    sentry_key,
    shielding,
)
from gridtokenx.devnet.netns.hosts import Host, Hosts
from gridtokenx.ledger import genesis
from gridtokenx.node.home import PASSPHRASE_ENV, Config, write_config, write_home
from gridtokenx.p2p.connection import PeerSettings
from gridtokenx.wire.crypto import PrivateKey, address_of

P2P_PORT: Final = 26656  # the same ports on every host, as on real machines
API_PORT: Final = 26657
METRICS_PORT: Final = 26660
LOAD_SIGNERS: Final = ("MEA", "ERC")  # the authorities whose dev keys the load signs with


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
    ids: dict[str, str] = field(default_factory=dict)  # node -> peer id (hex)
    dials: dict[str, tuple[str, ...]] = field(default_factory=dict)  # node -> whom it dials
    entry: list[str] = field(default_factory=list)  # whom full nodes dial

    def create(
        self,
        validators: Sequence[str],
        full_nodes: int,
        sentries: bool = False,
        ceremony: bool = False,
    ) -> None:
        """Homes for `validators` (authority codes) and `full_nodes` full nodes; nothing
        starts yet. The validators fully meshed and the full nodes dialling every one, or
        with `sentries` each validator behind a sentry on a host of its own (`CODE-sentry`:
        see the module docstring) and the full nodes dialling the sentries. The genesis is
        the devnet's from the dev keys, or with `ceremony` the ceremony's (`ceremony`)."""
        names = [code.lower() for code in validators]
        for name in names:
            self.sites[name] = self.place(len(self.sites))
        for name in names if sentries else ():
            self.sites[f"{name}-sentry"] = self.place(len(self.sites))
            self.ids[f"{name}-sentry"] = sentry_key(name.upper()).address.hex()
        if ceremony:
            made = self.ceremony(validators)
            self.ids |= {name: key_id for name, (_, key_id) in made.items()}
        else:
            self.genesis_bytes = _genesis(self.chain_id, validators).encode()
            self.ids |= {n: genesis.dev_keys()[n.upper()].address.hex() for n in names}
        for name in names:
            sentry = f"{name}-sentry"
            peers = [sentry] if sentries else [n for n in names if n != name]
            p2p = behind_sentry(self.p2p) if sentries else self.p2p
            config = Config(self.sites[name].listen_port, (), dial_all=sentries, p2p=p2p)
            key = None if ceremony else genesis.dev_keys()[name.upper()]
            home = made[name][0] if ceremony else self.root / name
            self._add(name, key, config, True, peers, home)
        for name in names if sentries else ():
            sentry = f"{name}-sentry"
            others = [f"{n}-sentry" for n in names if n != name]
            p2p = shielding(self.p2p, self.ids[name])
            config = Config(self.sites[sentry].listen_port, (), p2p=p2p)
            key = sentry_key(name.upper())
            self._add(sentry, key, config, False, [name, *others], self.root / sentry)
        self.entry = [f"{n}-sentry" for n in names] if sentries else names
        for k in range(full_nodes):
            self.add_full_node(f"full{k + 1}")

    def add_full_node(self, name: str) -> NodeProcess:
        """One more full node on a site of its own, dialling every validator, or every
        sentry when the validators are behind sentries (a node that joins a running chain
        starts it with `start`)."""
        self.sites[name] = self.place(len(self.sites))
        key = PrivateKey.from_dev_label(f"netns/{name}")
        self.ids[name] = key.address.hex()
        config = Config(self.sites[name].listen_port, (), dial_all=True, p2p=self.p2p)
        return self._add(name, key, config, False, self.entry, self.root / name)

    def ceremony(self, validators: Sequence[str]) -> dict[str, tuple[Path, str]]:
        """The genesis ceremony across the hosts (docs/operations.md): on each authority's
        host, in its directory `root/hosts/CODE` and inside its namespace, its key and its
        signed public document (the authorities without power, power 0, on a host of
        their own); in the root namespace the coordinator (`root/coordinator`) builds the
        genesis from the documents alone; on each validator's host `init --genesis-hash`
        makes the node's home from it. Returns each validator's home and peer id.

        EGAT's, PEA's and NEPO's keys are new (`keys new`); MEA's and ERC's are their dev
        keys, imported inside their hosts (`keys import`), because the fault harness's
        load signs its setup (MEA registers, ERC licenses) with them."""
        coordinator = self.root / "coordinator"
        coordinator.mkdir(parents=True)
        env = {**os.environ, PASSPHRASE_ENV: "netns-ceremony"}
        steps: dict[str, list[list[str]]] = {}
        for code in AUTHORITY_ORDER:
            name = code.lower()
            if name not in self.sites:
                self.sites[name] = self.place(len(self.sites))
            where = self.host_dir(name)
            where.mkdir(parents=True)
            key = str(where / "validator.key")
            if code in LOAD_SIGNERS:
                (where / "seed.hex").write_text(genesis.dev_keys()[code].seed.hex())
                make = ["keys", "import", key, "--from-file", str(where / "seed.hex")]
            else:
                make = ["keys", "new", key]
            power = [] if code in validators else ["--power", "0"]
            export = ["genesis", "authority", "--key", key, "--role", code, "--chain-id",
                      self.chain_id, "--moniker", name, "--out", str(where / "authority.json"),
                      *power]  # fmt: skip
            steps[name] = [make, export]
        _on_hosts({n: self.sites[n].wrapper for n in steps}, steps, env)
        documents = []
        for name in steps:
            (self.host_dir(name) / "seed.hex").unlink(missing_ok=True)
            sent = coordinator / f"{name}.authority.json"  # sent by any channel
            shutil.copyfile(self.host_dir(name) / "authority.json", sent)
            documents += ["--authority", str(sent)]
        zero = [a for c in AUTHORITY_ORDER if c not in validators for a in ("--power", f"{c}=0")]
        built = coordinator / "genesis.json"
        when = str(int(time.time()) - 60)
        _gridtokenx(["genesis", "build", "--chain-id", self.chain_id, "--genesis-time", when,
                     *documents, *zero, "--out", str(built)], env)  # fmt: skip
        digest = _gridtokenx(["genesis", "hash", str(built)], env).strip()
        self.genesis_bytes = built.read_bytes()
        inits: dict[str, list[list[str]]] = {}
        for code in validators:
            name = code.lower()
            where = self.host_dir(name)
            shutil.copyfile(built, where / "genesis.json")  # published with its hash
            inits[name] = [["init", "--home", str(where / "home"), "--genesis",
                            str(where / "genesis.json"), "--key", str(where / "validator.key"),
                            "--genesis-hash", digest, "--insecure-dev-key"]]  # fmt: skip
        _on_hosts({n: self.sites[n].wrapper for n in inits}, inits, env)
        spec = genesis.decode(self.genesis_bytes)
        by_code = {a.code: a for a in spec.authorities}
        return {
            code.lower(): (
                self.host_dir(code.lower()) / "home",
                address_of(bytes.fromhex(by_code[code].public_key)).hex(),
            )
            for code in validators
        }

    def host_dir(self, name: str) -> Path:
        """An authority's directory on its host in the ceremony: its key stays there."""
        return self.root / "hosts" / name

    def _add(
        self,
        name: str,
        key: PrivateKey | None,
        config: Config,
        validator: bool,
        peers: Sequence[str],
        home: Path,
    ) -> NodeProcess:
        """The home, with every address on the node's site, `peers` (node names) to dial
        and the harness's settings (`key` None: a home `init` made, whose key stays)."""
        site = self.sites[name]
        dialled = tuple((self.sites[n].address, self.sites[n].listen_port, self.ids[n])
                        for n in peers)  # fmt: skip
        config = msgspec.structs.replace(
            config, listen_host=site.address, api_host=site.address, api_port=site.api_port,
            metrics_host=site.address, metrics_port=site.metrics_port, block_ms=self.block_ms,
            api_rate_per_second=API_RATE, moniker=name, peers=dialled,
        )  # fmt: skip
        if key is None:
            write_config(home, config)
        else:
            write_home(home, self.genesis_bytes, key, config)
        node = NodeProcess(name, home, validator, site.listen_port, site.api_port,
                           bytes.fromhex(self.ids[name]), host=site.address,
                           wrapper=site.wrapper)  # fmt: skip
        node.set_clock(0)
        self.nodes[name] = node
        self.dials[name] = tuple(peers)
        return node

    def links(self, name: str) -> int:
        """How many peers `name` has once connected: those it dials and those that dial it."""
        return len(set(self.dials[name]) | {n for n, d in self.dials.items() if name in d})

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


def _gridtokenx(argv: Sequence[str], env: Mapping[str, str], wrapper: Sequence[str] = ()) -> str:
    """`gridtokenx ARGV` run on the host of `wrapper` (the root namespace: none); its output."""
    done = subprocess.run([*wrapper, sys.executable, "-m", "gridtokenx", *argv], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"gridtokenx {' '.join(argv[:2])}: {done.stderr or done.stdout}")
    return done.stdout


def _on_hosts(
    wrappers: Mapping[str, Sequence[str]],
    steps: Mapping[str, Sequence[Sequence[str]]],
    env: Mapping[str, str],
) -> None:
    """Each host's `gridtokenx` commands in turn, the hosts side by side."""

    def run(name: str) -> None:
        for argv in steps[name]:
            _gridtokenx(argv, env, wrappers[name])

    with ThreadPoolExecutor(max_workers=len(steps) or 1) as pool:
        for future in [pool.submit(run, name) for name in steps]:
            future.result()


def _genesis(chain_id: str, validators: Sequence[str]) -> genesis.Genesis:
    """The devnet genesis from the dev keys, a minute old (see the module docstring for
    the ceremony that would replace it)."""
    return devnet_genesis(chain_id, int(time.time()) - 60, validators)
