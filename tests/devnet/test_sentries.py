"""Four validators each behind a sentry, on 127.0.0.1 in one process (`run_node` from the
homes `init_devnet(..., sentries=True)` writes): consensus crosses the sentries, and no node
ever learns a validator's address, while a full node that knows one sentry finds the
others through peer exchange."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gridtokenx.devnet.homes import init_devnet, init_full_node, read_key_id, sentry_homes
from gridtokenx.devnet.processes import free_base_port
from gridtokenx.node.home import read_config
from gridtokenx.node.runtime import Node
from gridtokenx.node.service import run_node
from gridtokenx.p2p.peers import AddressBook

CHAIN = "gridtokenx-sentry-test"
HEIGHT = 6


def test_the_devnet_sentry_layout(tmp_path: Path) -> None:
    homes = init_devnet(tmp_path, CHAIN, int(time.time()), 30_000, sentries=True)
    sentries = sentry_homes(homes)
    sentry_ids = {read_key_id(s) for s in sentries}
    for i, (home, sentry) in enumerate(zip(homes, sentries, strict=True)):
        validator, guard = read_config(home), read_config(sentry)
        assert {peer for _, _, peer in validator.peers} == sentry_ids  # sentries only
        assert (validator.dial_all, validator.p2p.pex) == (True, False)
        assert guard.listen_port == 30_004 + i
        assert guard.p2p.pex and guard.peers[0] == ("127.0.0.1", 30_000 + i, read_key_id(home))
        assert (
            guard.p2p.private_peer_ids == guard.p2p.unconditional_peer_ids == (read_key_id(home),)
        )
        assert {peer for _, _, peer in guard.peers[1:]} == sentry_ids - {read_key_id(sentry)}


def test_validators_behind_sentries_commit_and_their_addresses_are_never_gossiped(
    tmp_path: Path,
) -> None:
    base = free_base_port(9)
    homes = init_devnet(tmp_path, CHAIN, int(time.time()), base, sentries=True)
    sentries = sentry_homes(homes)
    full = init_full_node(tmp_path / "full", sentries[:1], base + 8)  # knows one sentry
    everyone = [*homes, *sentries, full]
    validator_ids = {bytes.fromhex(read_key_id(h)) for h in homes}
    sentry_ids = {bytes.fromhex(read_key_id(s)) for s in sentries}
    nodes: dict[Path, Node] = {}

    def learnt(home: Path) -> set[bytes]:
        book = nodes[home].gossip.book
        return set() if book is None else {address.peer for address in book}

    async def scenario() -> None:
        stop = asyncio.Event()
        runs = [
            asyncio.create_task(
                run_node(h, stop=stop, on_node=lambda node, h=h: nodes.__setitem__(h, node))
            )
            for h in everyone
        ]
        try:
            for _ in range(900):  # bounded: 90 s
                if (
                    len(nodes) == len(everyone)
                    and all(nodes[h].app.height >= HEIGHT for h in homes)
                    and sentry_ids <= learnt(full) | set(nodes[full].gossip.peers)
                ):
                    break
                if any(r.done() for r in runs):
                    break
                await asyncio.sleep(0.1)
            heights = {h.name: nodes[h].app.height for h in homes if h in nodes}
            assert min(heights.values(), default=0) >= HEIGHT, heights
            for h in homes:  # a validator talks to sentries only
                assert set(nodes[h].gossip.peers) <= sentry_ids
            assert sentry_ids <= learnt(full) | set(nodes[full].gossip.peers)
            assert nodes[full].app.height >= HEIGHT - 1  # it follows through the sentries
            for h in everyone:
                assert not learnt(h) & validator_ids, h.name
        finally:
            stop.set()
            await asyncio.gather(*runs)

    asyncio.run(asyncio.wait_for(scenario(), 150))
    for h in everyone:  # and nothing of them was written to any peers.json
        if (h / "peers.json").exists():
            assert not {a.peer for a in AddressBook(h / "peers.json")} & validator_ids, h.name
    assert sentry_ids <= {a.peer for a in AddressBook(full / "peers.json")}
