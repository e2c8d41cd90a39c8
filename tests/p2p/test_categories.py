"""Peer categories on 127.0.0.1 (and other loopback addresses): caps by direction, peers
exempt from them, private peers that are never passed on, a node with peer exchange off,
and a claimed external host believed only once a probe finds the peer's key there. Every
node and connection is closed when its test ends; every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from prometheus_client import generate_latest

from gridtokenx.node.home import Config, ConfigError, read_config
from gridtokenx.node.metrics import Metrics
from gridtokenx.node.supervisor import Supervisor
from gridtokenx.p2p import discovery, transport
from gridtokenx.p2p.connection import PeerSettings
from gridtokenx.p2p.gossip import MAX_PROBES, Gossip, Kind
from gridtokenx.p2p.peers import Address, AddressBook
from gridtokenx.wire.crypto import PrivateKey
from tests.p2p.test_gossip import _eventually, run
from tests.p2p.test_peers import _frame, _send

KEYS = [PrivateKey.from_dev_label(f"test/categories/{i}") for i in range(6)]
IDS = [key.address for key in KEYS]


async def _ignore(kind: Kind, payload: bytes, peer: bytes) -> bool:
    return True


def _node(i: int, book: AddressBook | None = None, **settings: object) -> Gossip:
    return Gossip(KEYS[i], _ignore, address_book=book, settings=PeerSettings(**settings))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def _closing(*nodes: Gossip) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for node in nodes:
            await node.close()


def far(i: int) -> Address:  # TEST-NET-1: never dialled here
    return Address(bytes([i]) * 20, "192.0.2.1", 26_000 + i)


# --- settings ------------------------------------------------------------------------------
def test_peer_ids_are_checked_naming_the_field_and_old_config_files_read(tmp_path: Path) -> None:
    for field in ("private_peer_ids", "unconditional_peer_ids"):
        for bad in ("zz" * 20, "ab" * 19, "ab" * 21, " " + "ab" * 20):
            with pytest.raises(ValueError, match=rf"p2p\.{field}: .* is not a peer id"):
                PeerSettings(**{field: (bad,)})  # type: ignore[arg-type]
    good = PeerSettings(private_peer_ids=(IDS[1].hex().upper(),))
    assert good.private == {IDS[1]} and good.unconditional == frozenset()
    # A config.json from before these fields: only max_peers among the caps.
    old = msgspec.to_builtins(Config(26_656, ()))
    for new in ("max_inbound", "max_outbound", "pex", "private_peer_ids",
                "unconditional_peer_ids"):  # fmt: skip
        del old["p2p"][new]
    old["p2p"]["max_peers"] = 20
    (tmp_path / "config.json").write_text(json.dumps(old))
    p2p = read_config(tmp_path).p2p
    assert (p2p.max_peers, p2p.max_inbound, p2p.max_outbound, p2p.pex) == (20, 40, 10, True)
    old["p2p"]["unconditional_peer_ids"] = ["not-hex"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match=r"p2p\.unconditional_peer_ids .* is not a peer id"):
        read_config(tmp_path)


# --- caps by direction ---------------------------------------------------------------------
def test_inbound_beyond_max_inbound_is_refused_and_unconditional_peers_are_exempt() -> None:
    async def scenario() -> None:
        a = _node(0, max_inbound=2, unconditional_peer_ids=(IDS[4].hex(),))
        others = [_node(i) for i in range(1, 6)]
        async with _closing(a, *others):
            port = await a.listen()
            for other in others[:3]:
                await other.dial("127.0.0.1", port, expect=IDS[0])
            await _eventually(lambda: a.gate.refused["max_inbound"] == 1)
            assert set(a.peers) == {IDS[1], IDS[2]}
            await others[3].dial("127.0.0.1", port, expect=IDS[0])  # unconditional
            await _eventually(lambda: IDS[4] in a.peers)
            assert a.by_direction() == (3, 0) and a.by_direction(capped=True) == (2, 0)
            a.reserved = lambda peer: peer == IDS[5]  # what the node reserves: a validator
            await others[4].dial("127.0.0.1", port, expect=IDS[0])
            await _eventually(lambda: IDS[5] in a.peers)
            await others[2].dial("127.0.0.1", port, expect=IDS[0])  # still no room for it
            await _eventually(lambda: a.gate.refused["max_inbound"] == 2)
            assert len(a.peers) == 4
            metrics = Metrics()
            metrics.watch(a, Supervisor())
            exposed = generate_latest(metrics.registry).decode()
            assert 'gridtokenx_p2p_refused_total{reason="max_inbound"} 2.0' in exposed

    run(scenario)


def test_learnt_addresses_are_dialled_up_to_max_outbound_and_max_peers() -> None:
    async def scenario() -> None:
        book = AddressBook(seed=1)
        a = _node(0, book, max_outbound=2, max_peers=3)
        others = [_node(i) for i in range(1, 5)]
        async with _closing(a, *others):
            ports = [await o.listen() for o in others]
            for i, port in enumerate(ports[:3]):
                book.add(Address(IDS[i + 1], "127.0.0.1", port))
            assert await a.maintain(target_peers=8) == 2  # max_outbound
            await _eventually(lambda: a.by_direction() == (0, 2))
            assert await a.maintain(target_peers=8) == 0
            await others[3].dial("127.0.0.1", await a.listen(), expect=IDS[0])
            await _eventually(lambda: a.by_direction() == (1, 2))
            a.settings = PeerSettings(max_outbound=5, max_peers=3)
            assert await a.maintain(target_peers=8) == 0  # max_peers: 3 in all
            a.settings = PeerSettings(max_outbound=5, max_peers=4)
            assert await a.maintain(target_peers=8) == 1

    run(scenario)


# --- private peers and pex -----------------------------------------------------------------
def test_a_private_peer_is_never_answered_nor_kept() -> None:
    async def scenario() -> None:
        book = AddressBook(seed=1)
        book.add(far(1))
        book.add(far(2))  # in a book from before the setting
        a = _node(0, book, private_peer_ids=(far(2).peer.hex(), IDS[2].hex()))
        raw: list[transport.Connection] = []
        async with _closing(a):
            port = await a.listen()
            raw.append(await transport.connect("127.0.0.1", port, KEYS[3]))
            assert (await _frame(raw[0]))[0] is Kind.HELLO
            assert await _frame(raw[0]) == (Kind.PEERS_REQUEST, b"")
            await _send(raw[0], Kind.PEERS_REQUEST, b"")
            kind, answer = await _frame(raw[0])
            assert (kind, discovery.decode_answer(answer, "127.0.0.1")) == (Kind.PEERS, [far(1)])
            private_again = Address(far(2).peer, "192.0.2.2", 9)
            await _send(raw[0], Kind.PEERS, discovery.encode_answer([private_again, far(3)]))
            await _eventually(lambda: far(3).peer in book)
            assert book.get(far(2).peer) == far(2)  # not replaced, nor re-learnt elsewhere
            raw.append(await transport.connect("127.0.0.1", port, KEYS[2]))  # private, greets
            await _send(raw[1], Kind.HELLO, discovery.announcement("127.0.0.1", 7))
            await _eventually(lambda: IDS[2] in a.peers)
            await asyncio.sleep(0.2)
            assert IDS[2] not in book
            for connection in raw:
                await connection.close()

    run(scenario)


def test_a_node_with_pex_off_announces_nothing_asks_nothing_and_answers_empty() -> None:
    async def scenario() -> None:
        book, other_book = AddressBook(seed=1), AddressBook(seed=2)
        book.add(far(1))
        a = _node(0, book, pex=False)
        b = _node(1, other_book)
        async with _closing(a, b):
            port = await a.listen()
            raw = await transport.connect("127.0.0.1", port, KEYS[3])
            await _send(raw, Kind.PEERS_REQUEST, b"")
            # One lane, in order: had it greeted or asked, those frames would come first.
            assert await _frame(raw) == (Kind.PEERS, discovery.encode_answer([]))
            await _send(raw, Kind.HELLO, discovery.announcement("127.0.0.1", 7))
            await _send(raw, Kind.PEERS, discovery.encode_answer([far(2)]))
            assert await a.maintain(target_peers=8) == 0  # dials only what it is told to
            await a.dial("127.0.0.1", await b.listen(), expect=IDS[1])
            await _eventually(lambda: IDS[0] in b.peers)
            await asyncio.sleep(0.2)
            assert {x.peer for x in book} == {far(1).peer, IDS[1]}  # what it dialled, only
            assert IDS[0] not in other_book  # b never learnt where a listens
            assert a.scores[IDS[3]] == b.scores[IDS[0]] == 10  # nothing was malformed
            await raw.close()

    run(scenario)


# --- the external host ---------------------------------------------------------------------
def test_a_claimed_host_is_believed_only_once_a_probe_finds_the_peer_there() -> None:
    async def scenario() -> None:
        book = AddressBook(seed=1)
        x = _node(0, book)
        y, z = _node(1, AddressBook(seed=2)), _node(2)  # a book: y takes part in pex
        async with _closing(x, y, z):
            port = await x.listen("127.0.0.1")
            y_port = await y.listen("127.0.0.2", external_host="127.0.0.2")
            z_port = await z.listen("127.0.0.3")
            await y.dial("127.0.0.1", port, expect=IDS[0])  # from 127.0.0.1
            await _eventually(lambda: book.get(IDS[1]) == Address(IDS[1], "127.0.0.2", y_port))
            assert x.probes == {"verified": 1}
            # A liar names the host of another node: the probe finds another key there.
            liar = await transport.connect("127.0.0.1", port, KEYS[3])
            await _send(liar, Kind.HELLO, discovery.announcement("127.0.0.3", z_port))
            await _eventually(lambda: x.probes["failed"] == 1)
            assert book.get(IDS[3]) == Address(IDS[3], "127.0.0.1", z_port)  # where it was seen
            await _send(liar, Kind.PEERS_REQUEST, b"")
            for _ in range(3):  # HELLO, PEERS_REQUEST, then the answer
                kind, answer = await _frame(liar)
            hosts = {a.host for a in discovery.decode_answer(answer, "127.0.0.1")}
            assert kind is Kind.PEERS and "127.0.0.3" not in hosts and "127.0.0.2" in hosts
            await liar.close()
            # Y again, on a new connection: the proven address stays, with no new probe.
            y.peers[IDS[0]].close("test")
            await _eventually(lambda: IDS[1] not in x.peers)
            await y.dial("127.0.0.1", port, expect=IDS[0])
            await _eventually(lambda: IDS[1] in x.peers)
            await asyncio.sleep(0.2)
            assert book.get(IDS[1]) == Address(IDS[1], "127.0.0.2", y_port)
            assert x.probes == {"verified": 1, "failed": 1}

    run(scenario)


def test_probes_are_bounded() -> None:
    async def scenario() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # never answers the handshake

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        x = _node(0, AddressBook(seed=1))
        try:
            for i in range(MAX_PROBES + 2):
                x._probe(Address(bytes([i + 1]) * 20, "127.0.0.1", port))
            x._probe(Address(bytes([1]) * 20, "127.0.0.1", port))  # being probed already
            assert x.probes == {"skipped": 2}
            await asyncio.sleep(0.1)
            assert len(x._probing) == MAX_PROBES
        finally:
            await x.close()
            server.close()
            await server.wait_closed()

    run(scenario)


def test_an_external_host_name_is_announced_as_its_address() -> None:
    async def scenario() -> None:
        a = _node(0, AddressBook(seed=1))
        async with _closing(a):
            port = await a.listen("127.0.0.1", external_host="localhost")
            raw = await transport.connect("127.0.0.1", port, KEYS[1])
            kind, hello = await _frame(raw)
            assert kind is Kind.HELLO
            assert hello in {discovery.announcement(ip, port) for ip in ("127.0.0.1", "::1")}
            await raw.close()

    run(scenario)
