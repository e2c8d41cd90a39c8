"""Prometheus metrics of a node, named like CometBFT's under `gridtokenx_`: consensus
(height, rounds and their duration, timeouts, block interval, size and transactions,
signatures present and missed per validator, the validator set), the mempool, the peer
layer (peers by direction, bytes per lane, drops, disconnects and refusals by reason),
block sync, supervised tasks and the API's request latency. docs/observability.md lists
every series.

Each node gets its own registry (so tests can run several nodes in one process) and serves
it on metrics_host (loopback by default) when its config names a metrics port. What the
node's loop changes as it goes (a commit, a round change) is set there; what the peer
layer and the mempool count (they know nothing of Prometheus) is read when the registry is
scraped, from the scraping thread, through snapshots (`list(...)`) that never see a dict
change size under them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gridtokenx.node import collector

if TYPE_CHECKING:
    from gridtokenx.chain.mempool import Mempool
    from gridtokenx.node.supervisor import Supervisor
    from gridtokenx.p2p.gossip import Gossip

SECONDS: Final = (0.1, 0.25, 0.5, 1, 1.5, 2, 5, 10, 30)
API_SECONDS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
VALIDATOR: Final = ("validator", "moniker")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("gridtokenx_height", "last committed height", registry=r)
        self.round = Gauge("gridtokenx_round", "consensus round at the current height", registry=r)
        self.peers = Gauge("gridtokenx_peers", "connected peers", registry=r)
        self.mempool = Gauge("gridtokenx_mempool_txs", "transactions waiting", registry=r)
        self.block_time = Histogram(
            "gridtokenx_block_interval_seconds", "time between commits", buckets=SECONDS,
            registry=r,
        )  # fmt: skip
        self.commit_txs = Gauge(
            "gridtokenx_block_txs", "transactions in the last block", registry=r
        )
        self.block_size = Gauge(
            "gridtokenx_block_size_bytes", "encoded size of the last block", registry=r
        )
        self.txs = Counter("gridtokenx_txs", "transactions committed", registry=r)
        self.round_duration = Histogram(
            "gridtokenx_round_duration_seconds",
            "time from entering a round to leaving it (commit or round change)",
            buckets=(*SECONDS, 60),
            registry=r,
        )
        self.round_changes = Counter(
            "gridtokenx_round_changes", "rounds abandoned for a later one", registry=r
        )
        self.timeouts = Counter(
            "gridtokenx_consensus_timeouts",
            "consensus timeouts that moved this node on, by step",
            ["step"],
            registry=r,
        )
        self.present = Counter(
            "gridtokenx_validator_signatures_present",
            "committed heights whose precommit by the validator reached this node in time",
            VALIDATOR,
            registry=r,
        )
        self.missed = Counter(
            "gridtokenx_validator_signatures_missed",
            "committed heights the validator had power for but whose precommit never came",
            VALIDATOR,
            registry=r,
        )
        self.missing = Gauge(
            "gridtokenx_missing_validators",
            "validators whose precommit for the last finished height never came",
            registry=r,
        )
        self.validator_power = Gauge(
            "gridtokenx_validator_power", "voting power of each validator", VALIDATOR, registry=r
        )
        self.validators = Gauge("gridtokenx_validators", "validators in the set", registry=r)
        self.validators_power = Gauge(
            "gridtokenx_validators_power", "total voting power of the set", registry=r
        )
        self.evidence = Counter(
            "gridtokenx_evidence", "double signing seen (two votes for one round)", registry=r
        )
        self.sync_target = Gauge(
            "gridtokenx_sync_target_height", "highest height a peer's message showed", registry=r
        )
        self.catching_up = Gauge(
            "gridtokenx_sync_catching_up", "1 while two or more heights behind what peers show",
            registry=r,
        )  # fmt: skip
        self.synced = Counter(
            "gridtokenx_sync_blocks", "blocks committed from a peer's certificate", registry=r
        )
        self.api_latency = Histogram(
            "gridtokenx_api_request_duration_seconds",
            "API requests by method, route template and status",
            ["method", "route", "status"],
            buckets=API_SECONDS,
            registry=r,
        )
        collector.watch()
        r.register(_GarbageCollector())

    def watch(self, gossip: Gossip, supervisor: Supervisor, mempool: Mempool | None = None) -> None:
        """Export the peer layer's, the supervisor's and the mempool's counts, read at
        each scrape."""
        self.registry.register(_PeerCollector(gossip, supervisor, mempool))
        self.peers.set_function(lambda: len(gossip.peers))
        if mempool is not None:
            held = mempool
            self.mempool.set_function(lambda: len(held))

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose /metrics on `host` (loopback unless the operator chose otherwise)."""
        start_http_server(port, addr=host, registry=self.registry)


class _GarbageCollector(Collector):
    """The process's cyclic garbage collector (`node.collector`), by generation (0 young,
    1 older, 2 full): read at each scrape from what CPython and `collector.watch` count."""

    def collect(self) -> Iterable[Metric]:
        stats = gc.get_stats()
        families = (
            ("gc_collections", "collections run", [s["collections"] for s in stats]),
            (
                "gc_collected_objects",
                "objects the collections found in unreachable reference cycles and freed",
                [s["collected"] for s in stats],
            ),
            ("gc_cpu_seconds", "CPU seconds the collections took", collector.seconds()),
        )
        for name, text, values in families:
            family = CounterMetricFamily(f"gridtokenx_{name}", text, labels=["generation"])
            for generation, value in enumerate(values):
                family.add_metric([str(generation)], value)
            yield family


def _labelled(name: str, text: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(f"gridtokenx_{name}", text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


class _PeerCollector(Collector):
    def __init__(self, gossip: Gossip, supervisor: Supervisor, mempool: Mempool | None) -> None:
        self.gossip = gossip
        self.supervisor = supervisor
        self.mempool = mempool

    def collect(self) -> Iterable[Metric]:
        g = self.gossip
        depth = GaugeMetricFamily(
            "gridtokenx_p2p_send_queue_bytes",
            "bytes waiting in the peers' send queues",
            labels=["lane"],
        )
        frames = GaugeMetricFamily(
            "gridtokenx_p2p_send_queue_frames",
            "frames waiting in the peers' send queues",
            labels=["lane"],
        )
        for lane, (count, size) in g.queued().items():
            depth.add_metric([lane.name.lower()], size)
            frames.add_metric([lane.name.lower()], count)
        yield depth
        yield frames
        mesh = GaugeMetricFamily(
            "gridtokenx_p2p_mesh_peers", "peers in each gossip topic's mesh", labels=["topic"]
        )
        for topic, size in g.mesh_sizes().items():
            mesh.add_metric([topic], size)
        yield mesh
        counters = (
            ("p2p_send_dropped", "frames dropped from a full send queue", "lane", g.stats.dropped),
            (
                "p2p_send_unwanted",
                "queued messages skipped: the peer said IDONTWANT",
                "lane",
                g.stats.unwanted,
            ),
            ("p2p_disconnects", "connections ended, by reason", "reason", g.stats.disconnects),
            ("p2p_refused", "connections refused, by reason", "reason", g.gate.refused),
            ("p2p_address_probes", "claimed addresses dialled to verify", "result", g.probes),
            ("task_restarts", "supervised tasks restarted", "task", self.supervisor.restarted),
            ("p2p_sent_bytes", "frame bytes written to peers, by lane", "lane", g.stats.sent),
            (
                "p2p_received_bytes",
                "frame bytes read from peers, by lane",
                "lane",
                g.stats.received,
            ),
        )
        for name, text, label, values in counters:
            family = CounterMetricFamily(f"gridtokenx_{name}", text, labels=[label])
            for key, value in sorted(values.items()):
                family.add_metric([key], value)
            yield family
        throttled = CounterMetricFamily(
            "gridtokenx_p2p_throttled", "inbound frames dropped over a peer's rate budget"
        )
        throttled.add_metric([], g.throttled.total())
        yield throttled
        yield self._dropped()
        yield from self._peers_and_mempool()

    def _dropped(self) -> Metric:
        stats = self.gossip.stats
        family = CounterMetricFamily(
            "gridtokenx_p2p_messages_dropped",
            "frames dropped, by lane and reason (send_queue_full: outbound; rate_limited and "
            "malformed: inbound)",
            labels=["lane", "reason"],
        )
        for lane, count in sorted(dict(stats.dropped).items()):
            family.add_metric([lane, "send_queue_full"], count)
        for (lane, reason), count in sorted(dict(stats.discarded).items()):
            family.add_metric([lane, reason], count)
        return family

    def _peers_and_mempool(self) -> Iterable[Metric]:
        peers = list(self.gossip.peers.values())
        by_direction = GaugeMetricFamily(
            "gridtokenx_peers_connected", "connected peers by direction", labels=["direction"]
        )
        outbound = sum(1 for p in peers if p.outbound)
        by_direction.add_metric(["inbound"], len(peers) - outbound)
        by_direction.add_metric(["outbound"], outbound)
        yield by_direction
        if self.mempool is not None:
            yield GaugeMetricFamily(
                "gridtokenx_mempool_bytes", "bytes of the transactions waiting",
                value=self.mempool.size_bytes,
            )  # fmt: skip
            yield _labelled("mempool_refused", "transactions refused at admission, by the "
                            "ledger's code", "code", dict(self.mempool.refused))  # fmt: skip
            yield _labelled("mempool_dropped", "waiting transactions dropped, by reason",
                            "reason", dict(self.mempool.dropped))  # fmt: skip
