"""A network of `Node`s in one process on 127.0.0.1, wired the way a devnet with extra full
nodes is: the shape the mesh test and the mesh benchmark share.

Validators dial each other; each full node dials every validator (as `init --peer` sets
up) and the next `neighbours` full nodes around a ring, so with enough full nodes a
validator has more peers than a gossip mesh holds, and the full nodes reach each other
without a validator in between.
"""

from __future__ import annotations

from gridtokenx.node.runtime import Node


async def wire(validators: list[Node], full_nodes: list[Node], neighbours: int = 3) -> None:
    """Listen on every node and make the connections; returns once every dial was
    answered (the peers' side may still be adopting them)."""
    nodes = validators + full_nodes
    ports = {n.key.address: await n.gossip.listen() for n in nodes}

    async def dial(a: Node, b: Node) -> None:
        await a.gossip.dial("127.0.0.1", ports[b.key.address], expect=b.key.address)

    for i, v in enumerate(validators):
        for w in validators[i + 1 :]:
            await dial(v, w)
    count = len(full_nodes)
    for i, f in enumerate(full_nodes):
        for v in validators:
            await dial(f, v)
        for step in range(1, min(neighbours, count - 1) + 1):
            await dial(f, full_nodes[(i + step) % count])


def ring_peers(validators: int, full_nodes: int, neighbours: int = 3) -> tuple[int, int]:
    """Peers (validator, full node) each ends up with under `wire`."""
    ring = min(neighbours, full_nodes - 1)
    return validators - 1 + full_nodes, validators + 2 * ring
