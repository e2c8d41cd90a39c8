"""The wire side of peer exchange: what a node announces about itself, and address lists.

After the handshake each side sends HELLO with the port it listens on, and asks with
PEERS_REQUEST for the addresses its peer knows; the answer, PEERS, is a list of at most
`MAX_ANSWER` addresses. Everything here is pure so that every way a peer can lie is tested
without sockets.

The host a peer claims is not believed: a node records the IP the connection really comes
from, so no peer can point the network at a third party's machine. The one exception is a
peer on loopback, which is on this machine already: it may name another loopback address
(a devnet with nodes on 127.0.0.2, ...). For the same reason a node takes loopback
addresses in an answer only from a peer that is itself on loopback: a remote peer must not
make it dial services on its own machine.
"""

from __future__ import annotations

from typing import Final

import msgspec

from gridtokenx.p2p.peers import Address, is_loopback, problem
from gridtokenx.wire import codec

MAX_ANSWER: Final = 32
MAX_HOST_CHARS: Final = 45  # the longest IPv6 literal


class Hello(msgspec.Struct, array_like=True, frozen=True):
    """ "I accept connections on `port`"; `host` is empty when the node listens on every
    interface and so cannot know which of its addresses the peer sees."""

    host: str
    port: int


_hello: Final = msgspec.msgpack.Decoder(Hello)
_peers: Final = msgspec.msgpack.Decoder(list[Address])


def announcement(listen_host: str, listen_port: int) -> bytes:
    host = "" if listen_host in ("", "0.0.0.0", "::") else listen_host
    return codec.encode(Hello(host, listen_port))


def announced(peer: bytes, remote_host: str, payload: bytes) -> Address:
    """Where `peer` (connected from `remote_host`) can be dialled, from its HELLO; raises
    ValueError for a malformed one."""
    try:
        hello = _hello.decode(payload)
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed HELLO: {exc}") from exc
    if len(hello.host) > MAX_HOST_CHARS:
        raise ValueError("HELLO host is too long")
    trusted = hello.host and is_loopback(remote_host) and is_loopback(hello.host)
    address = Address(peer, hello.host if trusted else remote_host, hello.port)
    reason = problem(address)
    if reason is not None:
        raise ValueError(f"HELLO: {reason}")
    return address


def encode_answer(addresses: list[Address]) -> bytes:
    return codec.encode(addresses[:MAX_ANSWER])


def decode_answer(payload: bytes, remote_host: str) -> list[Address]:
    """The addresses of a PEERS answer from a peer at `remote_host`. Raises ValueError when
    the answer is malformed, too long, or holds an address that is not dialable; loopback
    addresses from a peer that is not on loopback are left out."""
    try:
        addresses = _peers.decode(payload)
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed PEERS: {exc}") from exc
    if len(addresses) > MAX_ANSWER:
        raise ValueError(f"PEERS of {len(addresses)} addresses exceeds {MAX_ANSWER}")
    for address in addresses:
        reason = problem(address)
        if reason is not None:
            raise ValueError(f"PEERS: {reason}")
    local = is_loopback(remote_host)
    return [a for a in addresses if local or not is_loopback(a.host)]
