"""Peer discovery: the address book (cap, bans, backoff, its file), what a peer may claim
about itself and others, and nodes on 127.0.0.1 that find each other through a peer they
share. Every node and connection is closed when its test ends; every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from gridtokenx.p2p import discovery, transport
from gridtokenx.p2p.gossip import PENALTY, START_SCORE, Gossip, Kind, _decoder, _Envelope
from gridtokenx.p2p.peers import BACKOFF_MAX_S, FORGET_AFTER, Address, AddressBook, AddressBookError
from gridtokenx.wire import codec
from gridtokenx.wire.crypto import PrivateKey
from tests.p2p.test_gossip import _eventually, run

KEYS = [PrivateKey.from_dev_label(f"test/peers/{i}") for i in range(4)]


def peer(i: int) -> bytes:
    return bytes([i]) * 20


def at(i: int, host: str = "192.0.2.1") -> Address:  # TEST-NET-1: never dialled here
    return Address(peer(i), host, 26_000 + i)


# --- the address book ----------------------------------------------------------------------
def test_add_get_remove_and_an_invalid_address_changes_nothing() -> None:
    book = AddressBook(seed=1)
    assert book.add(at(1)) and book.get(peer(1)) == at(1) and peer(1) in book
    for bad, reason in (
        (Address(b"short", "192.0.2.1", 1), "20 bytes"),
        (Address(peer(2), "192.0.2.1", 0), "port"),
        (Address(peer(2), "192.0.2.1", 65_536), "port"),
        (Address(peer(2), "node.example", 1), "not an IP address"),
    ):
        with pytest.raises(ValueError, match=reason):
            book.add(bad)
    assert list(book) == [at(1)]
    assert book.remove(peer(1)) and not book.remove(peer(1)) and len(book) == 0


def test_a_rumour_adds_a_new_peer_but_never_overwrites_a_known_address() -> None:
    book = AddressBook(seed=1)
    book.add(at(1), verified=True)
    moved = Address(peer(1), "198.51.100.7", 1)
    assert not book.add(moved)  # heard from another peer
    assert book.get(peer(1)) == at(1)
    assert book.add(moved, verified=True)  # the peer itself says so
    assert book.get(peer(1)) == moved


def test_the_cap_holds_and_rumours_push_out_only_failing_entries() -> None:
    book = AddressBook(cap=3, seed=7)
    for i in range(3):
        assert book.add(at(i))
    assert not book.add(at(9))  # full of healthy entries: a rumour is refused
    book.failed(peer(1), now=0.0)
    assert book.add(at(9))  # the failing entry made room
    assert sorted(a.peer for a in book) == [peer(0), peer(2), peer(9)]
    assert book.add(at(8), verified=True)  # a verified address always gets in
    assert len(book) == 3 and peer(8) in book


def test_eviction_is_deterministic_given_the_seed() -> None:
    def evicted(seed: int) -> list[bytes]:
        book = AddressBook(cap=5, seed=seed)
        for i in range(5):
            book.add(at(i))
        book.add(at(9), verified=True)
        return sorted(a.peer for a in book)

    assert evicted(3) == evicted(3)
    assert len(evicted(3)) == 5


def test_a_banned_peer_is_forgotten_and_refused() -> None:
    book = AddressBook(seed=1)
    book.add(at(1), verified=True)
    book.ban(peer(1))
    assert book.is_banned(peer(1)) and peer(1) not in book
    assert not book.add(at(1), verified=True)
    assert book.due(now=0.0) == []


def test_a_failed_address_backs_off_exponentially_and_is_forgotten_at_last() -> None:
    book = AddressBook(seed=1)
    book.add(at(1))
    book.add(at(2))
    assert book.due(now=100.0) == [at(1), at(2)]
    book.failed(peer(1), now=100.0)
    assert book.due(now=100.5) == [at(2)]  # backing off for 1 s
    assert book.due(now=101.0) == [at(2), at(1)]  # due again, the reliable one first
    book.failed(peer(1), now=101.0)
    assert book.due(now=102.9) == [at(2)]  # then 2 s
    assert book.due(now=103.0) == [at(2), at(1)]
    book.succeeded(peer(1))
    assert book.failures(peer(1)) == 0 and book.due(now=103.0) == [at(1), at(2)]
    for n in range(1, FORGET_AFTER):
        book.failed(peer(2), now=0.0)
        assert book.failures(peer(2)) == n
    assert 2 ** (FORGET_AFTER - 2) > BACKOFF_MAX_S  # so the cap is what holds here
    assert book.due(now=BACKOFF_MAX_S - 1) == [at(1)]  # never more than the cap away
    assert book.due(now=BACKOFF_MAX_S) == [at(1), at(2)]
    book.failed(peer(2), now=0.0)
    assert peer(2) not in book


def test_sample_is_bounded_excludes_the_asker_and_failing_entries_and_replays() -> None:
    def book_of(seed: int) -> AddressBook:
        book = AddressBook(seed=seed)
        for i in range(10):
            book.add(at(i))
        book.failed(peer(3), now=0.0)
        return book

    picks = book_of(5).sample(4, exclude={peer(0)})
    assert len(picks) == 4 and at(0) not in picks and at(3) not in picks
    assert book_of(5).sample(4, exclude={peer(0)}) == picks
    assert len(book_of(5).sample(50)) == 9


def test_the_book_survives_a_restart_through_its_file(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    book = AddressBook(path, seed=1)
    book.add(at(1), verified=True)
    book.add(at(2))
    book.failed(peer(2), now=0.0)
    book.ban(peer(5))
    book.save()
    assert not book.dirty and not (tmp_path / "peers.json.tmp").exists()
    assert json.loads(path.read_text())["version"] == 1
    again = AddressBook(path, seed=1)
    assert list(again) == [at(1), at(2)]
    assert again.failures(peer(2)) == 1 and again.is_banned(peer(5))
    assert not again.add(at(1))  # still verified: a rumour does not replace it
    assert again.due(now=0.0) == [at(1), at(2)]  # backoff timers restart with the process


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"version": 2, "addresses": [], "banned": []}',
        '{"version": 1, "addresses": [{"peer": "zz", "host": "192.0.2.1", "port": 1,'
        ' "verified": true, "failures": 0}], "banned": []}',
        '{"version": 1, "addresses": [{"peer": "' + "01" * 20 + '", "host": "192.0.2.1",'
        ' "port": 0, "verified": true, "failures": 0}], "banned": []}',
    ],
)
def test_a_corrupt_book_file_is_a_clear_error_and_is_left_alone(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "peers.json"
    path.write_text(content)
    with pytest.raises(AddressBookError, match=r"peers\.json"):
        AddressBook(path)
    assert path.read_text() == content


# --- what peers may claim ------------------------------------------------------------------
def test_a_peer_is_dialled_where_its_packets_come_from_and_a_claim_is_only_a_candidate() -> None:
    def hello(host: str, port: int = 7) -> bytes:
        return codec.encode(discovery.Hello(host, port))

    def heard(remote: str, claim: str) -> tuple[str, str | None]:
        seen, claimed = discovery.announced(who, remote, hello(claim))
        assert seen == Address(who, remote, 7)  # always the connection's source, at once
        return seen.host, None if claimed is None else claimed.host

    who = peer(1)
    assert heard("203.0.113.5", "198.51.100.9") == ("203.0.113.5", "198.51.100.9")  # probe it
    assert heard("203.0.113.5", "203.0.113.5") == ("203.0.113.5", None)  # nothing to verify
    assert heard("::ffff:203.0.113.5", "203.0.113.5") == ("::ffff:203.0.113.5", None)
    assert heard("203.0.113.5", "127.0.0.1") == ("203.0.113.5", None)  # never our loopback
    assert heard("127.0.0.1", "127.0.0.2") == ("127.0.0.1", "127.0.0.2")  # probed like any
    assert heard("127.0.0.1", "198.51.100.9") == ("127.0.0.1", "198.51.100.9")
    assert heard("127.0.0.1", "") == ("127.0.0.1", None)
    assert discovery.announcement("0.0.0.0", 9) == hello("", 9)
    assert discovery.announcement("::", 9) == hello("", 9)
    for bad in (b"\xc1", hello("127.0.0.1", 0), hello("1" * 46), hello("node.example"),
                codec.encode([1, 2, 3])):  # fmt: skip
        with pytest.raises(ValueError):
            discovery.announced(who, "127.0.0.1", bad)


def test_an_answer_is_capped_checked_whole_and_keeps_loopback_for_loopback_peers() -> None:
    remote, local = at(1), at(2, host="127.0.0.1")
    answer = discovery.encode_answer([remote, local])
    assert discovery.decode_answer(answer, "127.0.0.1") == [remote, local]
    assert discovery.decode_answer(answer, "203.0.113.5") == [remote]
    too_many = codec.encode([at(i) for i in range(discovery.MAX_ANSWER + 1)])
    one_bad = codec.encode([remote, Address(b"x", "192.0.2.1", 1)])
    for bad in (too_many, one_bad, b"\xc1", codec.encode({"a": 1})):
        with pytest.raises(ValueError):
            discovery.decode_answer(bad, "127.0.0.1")
    assert len(discovery.decode_answer(discovery.encode_answer([at(1)] * 40), "::1")) == 32


# --- nodes on 127.0.0.1 --------------------------------------------------------------------
async def _ignore(kind: Kind, payload: bytes, peer: bytes) -> bool:
    return True


def _node(i: int, book: AddressBook, clock: Callable[[], float] | None = None) -> Gossip:
    if clock is None:
        return Gossip(KEYS[i], _ignore, address_book=book)
    return Gossip(KEYS[i], _ignore, address_book=book, clock=clock)


def test_a_node_that_knows_one_peer_finds_the_peers_that_peer_knows(tmp_path: Path) -> None:
    async def scenario() -> None:
        books = [AddressBook(tmp_path / f"{n}.json", seed=n) for n in range(3)]
        a, b, c = (_node(n, books[n]) for n in range(3))
        try:
            port_a, port_b, _ = [await n.listen() for n in (a, b, c)]
            await b.dial("127.0.0.1", port_a, expect=KEYS[0].address)  # B knows A
            books[2].add(Address(KEYS[1].address, "127.0.0.1", port_b))  # C knows only B
            await _eventually(lambda: KEYS[1].address in books[0])  # A learnt B from HELLO
            for _ in range(100):  # bounded: C's housekeeping loop
                await c.maintain(target_peers=3)
                if KEYS[0].address in c.peers:
                    break
                await asyncio.sleep(0.05)
            assert set(c.peers) == {KEYS[0].address, KEYS[1].address}
            assert books[2].get(KEYS[0].address) == Address(KEYS[0].address, "127.0.0.1", port_a)
            await _eventually(lambda: KEYS[2].address in books[0])  # and A learnt C
            assert await c.maintain(target_peers=2) == 0  # enough peers: nothing to do
        finally:
            for n in (a, b, c):
                await n.close()
        saved = AddressBook(tmp_path / "2.json")
        assert {x.peer for x in saved} == {KEYS[0].address, KEYS[1].address}

    run(scenario)


async def _frame(connection: transport.Connection) -> tuple[Kind, bytes]:
    """The next frame but the mesh's control frames (a subscription and grafts come
    first on every connection)."""
    for _ in range(16):  # bounded: a handful of control frames at most
        envelope = _decoder.decode(await asyncio.wait_for(connection.receive(), 5))
        if envelope.kind != Kind.MESH:
            return Kind(envelope.kind), envelope.payload
    raise AssertionError("only control frames")


async def _send(connection: transport.Connection, kind: Kind, payload: bytes) -> None:
    await connection.send(codec.encode(_Envelope(kind, payload)))
    await connection.flush()


def test_a_node_greets_answers_and_penalises_a_malformed_answer(tmp_path: Path) -> None:
    async def scenario() -> None:
        book = AddressBook(seed=1)
        book.add(at(1))
        node = _node(0, book)
        raw: transport.Connection | None = None
        try:
            port = await node.listen()
            raw = await transport.connect("127.0.0.1", port, KEYS[3])
            assert await _frame(raw) == (Kind.HELLO, discovery.announcement("127.0.0.1", port))
            assert await _frame(raw) == (Kind.PEERS_REQUEST, b"")
            await _send(raw, Kind.PEERS_REQUEST, b"")
            kind, answer = await _frame(raw)
            assert kind is Kind.PEERS
            assert discovery.decode_answer(answer, "127.0.0.1") == [at(1)]
            too_many = codec.encode([at(i) for i in range(40)])
            await _send(raw, Kind.PEERS, too_many)
            await _eventually(lambda: node.scores[KEYS[3].address] == START_SCORE - PENALTY)
            assert len(book) == 1  # nothing of the bad answer was taken
            await _send(raw, Kind.PEERS, discovery.encode_answer([at(2)]))  # answers our ask
            await _eventually(lambda: peer(2) in book)
            await _send(raw, Kind.PEERS, discovery.encode_answer([at(3)]))  # nobody asked
            await _send(raw, Kind.PEERS_REQUEST, b"x")  # a request carries nothing: strike two
            await _eventually(lambda: KEYS[3].address not in node.peers)
            assert peer(3) not in book and book.is_banned(KEYS[3].address)
        finally:
            if raw is not None:
                await raw.close()
            await node.close()

    run(scenario)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_maintain_backs_off_from_a_dead_address_and_skips_banned_and_self() -> None:
    async def scenario() -> None:
        now = [1_000.0]
        book = AddressBook(seed=1)
        dead = Address(KEYS[1].address, "127.0.0.1", _closed_port())
        book.add(dead)
        node = _node(0, book, clock=lambda: now[0])
        try:
            book.add(Address(KEYS[0].address, "127.0.0.1", _closed_port()))  # our own
            assert await node.maintain(target_peers=1) == 1  # the dead one, never ourselves
            assert book.failures(dead.peer) == 1
            assert await node.maintain(target_peers=1) == 0  # backing off: no tight loop
            now[0] += 1.0
            assert await node.maintain(target_peers=1) == 1
            assert book.failures(dead.peer) == 2
            book.ban(dead.peer)
            now[0] += 1_000.0
            assert await node.maintain(target_peers=1) == 0
        finally:
            await node.close()

    run(scenario)
