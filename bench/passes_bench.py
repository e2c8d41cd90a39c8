"""How many times a node decodes each transaction and syncs its WAL, counted, not timed:
four validators as asyncio nodes in this process on 127.0.0.1 (as tests/node runs them),
fed registrations through one node and gossip, until every node has committed them.

It counts, on every node together, the calls to `wire.tx.decode` (admission in the
mempool's threads, building, screening or executing a block), the transaction ids hashed
(`crypto.tagged_hash` with the transaction id's domain: `tx.hash_of`, `SignedTransaction
.hash`, the store's index), the Ed25519 verifies (`crypto.verify`: transactions and votes),
the transactions saved as pending (`Store.save_pending`: what a node acknowledged, in case
it crashes; a peer's relay is not saved since December 2026) and the synced writes of the
store (`Store.save_wal`, the consensus WAL, and `Store.commit_height`, one per height),
then prints them per transaction per node (the synced writes per height per node), and
writes bench/results/passes.json. Counting needs no quiet machine, and the same file runs
against another checkout (PYTHONPATH) to compare before and after.

    python bench/passes_bench.py [--txs 600]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

import benchkit
from gridtokenx.consensus.core import Timeouts
from gridtokenx.ledger import genesis
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.node.runtime import Node
from gridtokenx.p2p.gossip import Gossip, Kind
from gridtokenx.storage import store as store_module
from gridtokenx.storage.store import open_application
from gridtokenx.wire import codec, crypto, tx

RESULTS = Path(__file__).parent / "results" / "passes.json"
CHAIN = "gridtokenx-passes"
GENESIS_TIME = 1_767_225_600
CODES = ("EGAT", "MEA", "PEA", "ERC", "NEPO")
TIMEOUTS = Timeouts(propose_ms=1500, prevote_ms=1000, precommit_ms=1000, increment_ms=500)


def _registrations(count: int) -> list[bytes]:
    sb = Sandbox(chain_id=CHAIN, genesis_time=GENESIS_TIME)
    out = []
    for i in range(count):
        code, zone = (("MEA", "BKK"), ("PEA", "CEN"))[i % 2]  # two senders: 1,000 each
        authority = sb.authority(code)
        who = crypto.PrivateKey.from_dev_label(f"passes/home/{i}")
        body = tx.RegisterParticipant(who.address, zone, tx.ParticipantKind.HOUSEHOLD, f"h{i}")
        out.append(sb.sign(authority, body).encode())
        sb.submit(authority, body)
    return out


class _Counts:
    """Wraps the counted functions for the run, and puts them back."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._saved: list[tuple[Any, str, Any]] = []

    def wrap(
        self, owner: Any, name: str, first: object = None, label: str = "", items: int = -1
    ) -> None:
        """Count calls to `owner.name` (under `label`, or its name); with `first`, only
        those whose first argument is `first` (a hash's domain tag); with `items`, the
        length of that argument rather than the calls (transactions saved per write)."""
        real = getattr(owner, name)
        self._saved.append((owner, name, real))
        label = label or name

        def counted(*args: Any, **kwargs: Any) -> Any:
            if items >= 0:
                self.calls[label] += len(args[items])
            elif first is None or (args and args[0] == first):
                self.calls[label] += 1
            return real(*args, **kwargs)

        setattr(owner, name, counted)

    def restore(self) -> None:
        for owner, name, real in reversed(self._saved):
            setattr(owner, name, real)


class _Clients:
    """Client peers, one dialled to each node, publishing batches in turn (the devnet's
    load generator, `devnet_bench.Generator`)."""

    def __init__(self) -> None:
        self.peers: list[Gossip] = []

    @staticmethod
    async def _ignore(kind: Kind, payload: bytes, peer: bytes) -> bool:
        return True

    async def connect(self, ports: list[int], ids: list[bytes]) -> None:
        for i, (port, node_id) in enumerate(zip(ports, ids, strict=True)):
            client = Gossip(crypto.PrivateKey.from_dev_label(f"passes/client/{i}"), self._ignore)
            await client.dial("127.0.0.1", port, expect=node_id)
            self.peers.append(client)

    async def feed(self, txs: list[bytes], batch: int, every: float) -> None:
        for turn, i in enumerate(range(0, len(txs), batch)):
            self.peers[turn % len(self.peers)].publish(Kind.TX, codec.encode(txs[i : i + batch]))
            await asyncio.sleep(every)

    async def close(self) -> None:
        for client in self.peers:
            await client.close()


def _count_receipts(nodes: list[Node], calls: Counter[str]) -> None:
    """Count, per node, the frames its gossip took and the transaction batches (and the
    transactions in them) handed to the node, by wrapping the instances' own methods."""
    for node in nodes:
        gossip, take = node.gossip, node._receive_txs
        on_frame = gossip._on_frame

        async def frame(connection: Any, data: bytes, real: Any = on_frame) -> None:
            calls["frames_received"] += 1
            await real(connection, data)

        async def receive(
            payload: bytes, peer: bytes, grid: bool = False, real: Any = take
        ) -> bool:
            calls["tx_batches_received"] += 1
            calls["tx_copies_received"] += len(msgspec.msgpack.decode(payload))
            return bool(await real(payload, peer, grid))

        setattr(gossip, "_on_frame", frame)  # noqa: B010 (an instance's bound method)
        setattr(node, "_receive_txs", receive)  # noqa: B010


async def _run(
    folder: Path, count: int, batch: int | None = None, every: float = 0.02
) -> dict[str, object]:
    keys = genesis.dev_keys()
    spec = genesis.devnet(CHAIN, GENESIS_TIME, keys)
    nodes = [
        Node(keys[c], open_application(spec, folder / c), TIMEOUTS,
             clock=lambda: GENESIS_TIME + 10, min_block_gap=0.2)
        for c in CODES
    ]  # fmt: skip
    txs = _registrations(count)
    counts = _Counts()
    clients = _Clients()
    if batch is not None:
        _count_receipts(nodes, counts.calls)
    try:
        ports = [await n.gossip.listen() for n in nodes]
        for i, node in enumerate(nodes):
            for j in range(i + 1, len(nodes)):
                await node.gossip.dial("127.0.0.1", ports[j], expect=keys[CODES[j]].address)
        for _ in range(200):  # bounded: the full mesh within 10 s
            if all(len(n.gossip.peers) == len(nodes) - 1 for n in nodes):
                break
            await asyncio.sleep(0.05)
        counts.wrap(tx, "decode")
        counts.wrap(crypto, "tagged_hash", tx.TX_HASH_DOMAIN)  # transaction ids
        counts.wrap(crypto, "verify")
        counts.wrap(crypto, "tagged_hash", b"GridTokenX/gossip", "message_id")
        counts.wrap(store_module.Store, "save_wal")
        counts.wrap(store_module.Store, "commit_height")
        counts.wrap(store_module.Store, "save_pending", label="pending_saved", items=1)
        for node in nodes:
            await node.start()
        if batch is None:
            await nodes[1].admit(txs, client=True)
        else:
            await clients.connect(ports, [keys[c].address for c in CODES])
            sent = [n.gossip.stats.sent.total() for n in nodes]
            got = [n.gossip.stats.received.total() for n in nodes]
            await clients.feed(txs, batch, every)
        hashes = [tx.hash_of(raw) for raw in txs]
        for _ in range(1200):  # bounded: 2 minutes
            if all(n.app.receipt(h) is not None for n in nodes for h in hashes[-1:]):
                break
            await asyncio.sleep(0.1)
        done = all(n.app.receipt(h) is not None for n in nodes for h in hashes)
        heights = sum(n.app.height for n in nodes)
        if batch is not None:
            sent = [n.gossip.stats.sent.total() - s for n, s in zip(nodes, sent, strict=True)]
            got = [n.gossip.stats.received.total() - g for n, g in zip(nodes, got, strict=True)]
    finally:
        counts.restore()
        await clients.close()
        for node in nodes:
            await node.stop()
    calls = counts.calls
    per_node = count * len(nodes)
    arrival: dict[str, object] = {}
    if batch is not None:
        arrival = {
            "batch": batch,
            "frames_received_per_tx_per_node": round(calls["frames_received"] / per_node, 2),
            "bytes_received_per_tx_per_node": round(sum(got) / per_node),
            "bytes_sent_per_tx_per_node": round(sum(sent) / per_node),
            "tx_batches_received_per_tx_per_node": round(
                calls["tx_batches_received"] / per_node, 3
            ),
            "tx_copies_received_per_tx_per_node": round(calls["tx_copies_received"] / per_node, 2),
            "message_ids_hashed_per_tx_per_node": round(calls["message_id"] / per_node, 3),
        }
    return {
        "transactions": count,
        "all_committed_everywhere": done,
        "heights_per_node": round(heights / len(nodes), 1),
        "decodes_per_tx_per_node": round(calls["decode"] / per_node, 2),
        "tx_id_hashes_per_tx_per_node": round(calls["tagged_hash"] / per_node, 2),
        "signature_verifies_per_tx_per_node": round(calls["verify"] / per_node, 2),
        "pending_saves_per_tx_per_node": round(calls["pending_saved"] / per_node, 2),
        "wal_syncs_per_height_per_node": round(calls["save_wal"] / heights, 2),
        "synced_writes_per_height_per_node": round(
            (calls["save_wal"] + calls["commit_height"]) / heights, 2
        ),
        **arrival,
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=600)
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="send in batches of this many from client peers, in turn",
    )
    parser.add_argument("--every", type=float, default=0.02, help="seconds between batches")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gridtokenx-passes-") as folder:
        figures = asyncio.run(_run(Path(folder), args.txs, args.batch, args.every))
    result: dict[str, object] = {
        "benchmark": "passes",
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "validators": len(CODES),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        **figures,
    }
    benchkit.print_figures(result)
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
