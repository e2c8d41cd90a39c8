"""Prometheus metrics of a node: height, round, peers, mempool, block time, commit latency,
and the health of its peer layer (send queues, drops, disconnects and refusals by reason,
task restarts).

Each node gets its own registry (so tests can run several nodes in one process) and serves
it on 127.0.0.1 when its config names a metrics port. The peer layer's counters live in
`p2p` (which knows nothing of Prometheus) and are read when the registry is scraped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gridtokenx.node.supervisor import Supervisor
    from gridtokenx.p2p.gossip import Gossip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("gridtokenx_height", "last committed height", registry=r)
        self.round = Gauge("gridtokenx_round", "consensus round at the current height", registry=r)
        self.peers = Gauge("gridtokenx_peers", "connected peers", registry=r)
        self.mempool = Gauge("gridtokenx_mempool_txs", "transactions waiting", registry=r)
        self.block_time = Histogram(
            "gridtokenx_block_interval_seconds",
            "time between commits",
            buckets=(0.1, 0.25, 0.5, 1, 1.5, 2, 5, 10, 30),
            registry=r,
        )
        self.commit_txs = Gauge(
            "gridtokenx_block_txs", "transactions in the last block", registry=r
        )

    def watch(self, gossip: Gossip, supervisor: Supervisor) -> None:
        """Export the peer layer's and the supervisor's counters, read at each scrape."""
        self.registry.register(_PeerCollector(gossip, supervisor))

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose /metrics on `host` (loopback unless the operator chose otherwise)."""
        start_http_server(port, addr=host, registry=self.registry)


class _PeerCollector(Collector):
    def __init__(self, gossip: Gossip, supervisor: Supervisor) -> None:
        self.gossip = gossip
        self.supervisor = supervisor

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
        counters = (
            ("p2p_send_dropped", "frames dropped from a full send queue", "lane", g.stats.dropped),
            ("p2p_disconnects", "connections ended, by reason", "reason", g.stats.disconnects),
            ("p2p_refused", "connections refused, by reason", "reason", g.gate.refused),
            ("p2p_address_probes", "claimed addresses dialled to verify", "result", g.probes),
            ("task_restarts", "supervised tasks restarted", "task", self.supervisor.restarted),
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
