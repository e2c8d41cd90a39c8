"""Prometheus metrics of a node: height, round, peers, mempool, block time, commit latency.

Each node gets its own registry (so tests can run several nodes in one process) and serves
it on 127.0.0.1 when its config names a metrics port.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server


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

    def serve(self, port: int) -> None:
        """Expose /metrics on 127.0.0.1 only."""
        start_http_server(port, addr="127.0.0.1", registry=self.registry)
