"""The wire side of peer exchange: what a node announces about itself, and address lists.

After the handshake each side sends HELLO with the host and port it accepts connections
on (its `external_host` when the operator set one: the address a NAT or a wildcard bind
hides), and asks with PEERS_REQUEST for the addresses its peer knows; the answer, PEERS, is
a list of at most `MAX_ANSWER` addresses. Everything here is pure so that every way a peer
can lie is tested without sockets.

The host a peer claims is not believed outright, so that no peer can point the network at
a third party's machine (an amplifier: one lie, many nodes dialling the victim):

- The announced port at the IP the connection really comes from (`Announcement.seen`) is
  recorded at once: that host is the peer's, whatever it says.
- A claimed host that differs from it (`Announcement.claimed`) is only a candidate. The
  node verifies it by dialling it once and checking, in the handshake, that the node key
  there is the peer's (`gossip` does this with a throwaway key of its own, at most
  `gossip.MAX_PROBES` at a time, once per connection). Only then does the address enter
  the book, replace the seen one, and go into PEERS answers; a host that answers with
  another key, or not at all, is never dialled again nor passed on. So a lie costs the
  liar a handshake per probe it causes, and the victim at most one connection per
  connection the liar completed: no amplification.
- A peer not on loopback may not claim a loopback host (nor is one taken from its PEERS
  answers): a remote peer must not make a node dial services on its own machine.

Addresses of peers listed in `PeerSettings.private_peer_ids` (a validator behind its
sentries) are never put in an answer nor kept in the book, and a node with `pex` off
announces nothing, asks nothing and answers every request with an empty list (`gossip`).
"""

from __future__ import annotations

import ipaddress
from typing import Final, NamedTuple

import msgspec

from gridtokenx.p2p.peers import Address, is_loopback, problem
from gridtokenx.wire import codec

MAX_ANSWER: Final = 32
MAX_HOST_CHARS: Final = 45  # the longest IPv6 literal


class Hello(msgspec.Struct, array_like=True, frozen=True):
    """ "I accept connections on `host`:`port`"; `host` is empty when the node listens on
    every interface with no external host set, and so cannot know which of its addresses
    the peer sees."""

    host: str
    port: int


class Announcement(NamedTuple):
    """What a HELLO tells: `seen`, the announced port at the connection's source IP (taken
    at once), and `claimed`, another host the peer names, to be verified before use."""

    seen: Address
    claimed: Address | None


_hello: Final = msgspec.msgpack.Decoder(Hello)
_peers: Final = msgspec.msgpack.Decoder(list[Address])


def announcement(host: str, listen_port: int) -> bytes:
    """HELLO for a node reachable at `host` (its external host, else the one it binds)."""
    wildcard = host in ("", "0.0.0.0", "::")
    return codec.encode(Hello("" if wildcard else host, listen_port))


def announced(peer: bytes, remote_host: str, payload: bytes) -> Announcement:
    """Where `peer` (connected from `remote_host`) may be dialled, from its HELLO; raises
    ValueError for a malformed one. A claimed host is returned for verification only when
    it is a well-formed IP that differs from `remote_host` (and is not loopback unless the
    peer is)."""
    try:
        hello = _hello.decode(payload)
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed HELLO: {exc}") from exc
    if len(hello.host) > MAX_HOST_CHARS:
        raise ValueError("HELLO host is too long")
    seen = Address(peer, remote_host, hello.port)
    reason = problem(seen)
    if reason is not None:
        raise ValueError(f"HELLO: {reason}")
    if not hello.host:
        return Announcement(seen, None)
    claimed = Address(peer, hello.host, hello.port)
    reason = problem(claimed)
    if reason is not None:
        raise ValueError(f"HELLO: {reason}")
    if _same_host(hello.host, remote_host) or (
        is_loopback(hello.host) and not is_loopback(remote_host)
    ):
        return Announcement(seen, None)
    return Announcement(seen, claimed)


def _same_host(a: str, b: str) -> bool:
    """Two IP literals for one address (`::ffff:192.0.2.1` is `192.0.2.1`)."""
    return _canonical(a) == _canonical(b)


def _canonical(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


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
