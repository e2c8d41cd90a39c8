"""The address book: where peers can be dialled, which failed lately, and who is banned.

Gossip fills it from two sources of different worth. An address seen first-hand (a peer
announced its listen port on a live connection, or we dialled it ourselves) is *verified*
and replaces what the book had for that peer. An address heard from another peer's answer
is only a rumour: it may add a peer the book does not know, but never overwrites a known
address, and never pushes a healthy entry out of a full book, so a lying peer cannot make
a node forget the addresses that work.

The book is bounded (`cap` entries, `BAN_CAP` bans), its randomness comes from one seeded
generator (tests replay it exactly) and it takes the time as an argument, never from a
clock of its own. A failed dial backs the address off exponentially, so a dead address is
tried less and less often, and forgotten after `FORGET_AFTER` failures in a row. The file
is JSON, rewritten atomically, so a node that restarts keeps its view of the network.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

PEER_ID_BYTES: Final = 20
CAP: Final = 1_000
BAN_CAP: Final = 1_024
BACKOFF_BASE_S: Final = 1.0
BACKOFF_MAX_S: Final = 120.0
FORGET_AFTER: Final = 10
FILE_VERSION: Final = 1


class AddressBookError(ValueError):
    """The address book file cannot be used; the message names the file and the reason."""


class Address(msgspec.Struct, array_like=True, frozen=True):
    """A dialable node: its peer id (the address of its node key), an IP literal and a port.
    Hosts are IP literals only, so the book never makes a node resolve a name it was told."""

    peer: bytes
    host: str
    port: int


def problem(address: Address) -> str | None:
    """Why `address` is not dialable, or None when it is."""
    if len(address.peer) != PEER_ID_BYTES:
        return f"a peer id is {PEER_ID_BYTES} bytes, not {len(address.peer)}"
    if not 0 < address.port < 65_536:
        return f"port {address.port} is out of range"
    try:
        ipaddress.ip_address(address.host)
    except ValueError:
        return f"host {address.host[:64]!r} is not an IP address"
    return None


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _Entry:
    address: Address
    verified: bool
    failures: int = 0
    next_try: float = 0.0


class _StoredAddress(msgspec.Struct, frozen=True):
    peer: str
    host: str
    port: int
    verified: bool
    failures: int


class _File(msgspec.Struct, frozen=True):
    version: int
    addresses: list[_StoredAddress]
    banned: list[str]


class AddressBook:
    def __init__(self, path: Path | None = None, *, cap: int = CAP, seed: int | None = None):
        if cap < 1:
            raise ValueError(f"an address book holds at least one address, not {cap}")
        self.path = path
        self.cap = cap
        self._rng = random.Random(seed)
        self._entries: dict[bytes, _Entry] = {}
        self._banned: dict[bytes, None] = {}  # insertion ordered: the oldest ban goes first
        self.dirty = False
        if path is not None and path.exists():
            self._load(path)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, peer: object) -> bool:
        return peer in self._entries

    def __iter__(self) -> Iterator[Address]:
        return iter([entry.address for entry in self._entries.values()])

    def get(self, peer: bytes) -> Address | None:
        entry = self._entries.get(peer)
        return entry.address if entry is not None else None

    def failures(self, peer: bytes) -> int:
        entry = self._entries.get(peer)
        return entry.failures if entry is not None else 0

    # --- changes ---------------------------------------------------------------------------
    def add(self, address: Address, *, verified: bool = False) -> bool:
        """Remember `address`; False when it was not taken (banned, known already and only
        heard, or the book is full of healthy entries). An invalid address raises ValueError."""
        reason = problem(address)
        if reason is not None:
            raise ValueError(reason)
        if address.peer in self._banned:
            return False
        known = self._entries.get(address.peer)
        if known is not None:
            if not verified or (known.verified and known.address == address):
                return False
            self._entries[address.peer] = _Entry(address, verified=True)
            self.dirty = True
            return True
        if len(self._entries) >= self.cap and not self._evict(for_verified=verified):
            return False
        self._entries[address.peer] = _Entry(address, verified)
        self.dirty = True
        return True

    def _evict(self, for_verified: bool) -> bool:
        """Make room: the entry that failed most goes (a random one among equals); a rumour
        may only push out an entry that has failed."""
        worst = max(entry.failures for entry in self._entries.values())
        if worst == 0 and not for_verified:
            return False
        candidates = sorted(p for p, e in self._entries.items() if e.failures == worst)
        del self._entries[self._rng.choice(candidates)]
        return True

    def remove(self, peer: bytes) -> bool:
        removed = self._entries.pop(peer, None) is not None
        self.dirty |= removed
        return removed

    def ban(self, peer: bytes) -> None:
        """Forget the peer's address and refuse it from now on (also across restarts)."""
        self._entries.pop(peer, None)
        self._banned.pop(peer, None)
        self._banned[peer] = None
        while len(self._banned) > BAN_CAP:
            del self._banned[next(iter(self._banned))]
        self.dirty = True

    def is_banned(self, peer: bytes) -> bool:
        return peer in self._banned

    def failed(self, peer: bytes, now: float) -> None:
        """A dial failed: wait BACKOFF_BASE_S * 2^(failures-1) (capped) before the next."""
        entry = self._entries.get(peer)
        if entry is None:
            return
        entry.failures += 1
        self.dirty = True
        if entry.failures >= FORGET_AFTER:
            del self._entries[peer]
            return
        entry.next_try = now + min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (entry.failures - 1))

    def succeeded(self, peer: bytes) -> None:
        entry = self._entries.get(peer)
        if entry is not None and (entry.failures or entry.next_try or not entry.verified):
            entry.failures, entry.next_try, entry.verified = 0, 0.0, True
            self.dirty = True

    # --- choices ---------------------------------------------------------------------------
    def sample(self, n: int, exclude: Collection[bytes] = ()) -> list[Address]:
        """Up to `n` random addresses for a peer that asked, healthy ones only."""
        pool = [e.address for p, e in self._entries.items() if p not in exclude and not e.failures]
        return self._rng.sample(pool, min(n, len(pool)))

    def due(self, now: float, exclude: Collection[bytes] = ()) -> list[Address]:
        """Addresses whose backoff has passed, the most reliable first (ties by peer id)."""
        ready = [
            (e.failures, p, e.address)
            for p, e in self._entries.items()
            if p not in exclude and e.next_try <= now
        ]
        return [address for _, _, address in sorted(ready)]

    # --- the file --------------------------------------------------------------------------
    def save(self) -> None:
        """Write the book atomically (a crash leaves the old file or the new, never half)."""
        if self.path is None:
            return
        stored = _File(
            FILE_VERSION,
            [
                _StoredAddress(p.hex(), e.address.host, e.address.port, e.verified, e.failures)
                for p, e in sorted(self._entries.items())
            ],
            [peer.hex() for peer in self._banned],
        )
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(json.dumps(msgspec.to_builtins(stored), indent=1).encode())
        os.replace(tmp, self.path)
        self.dirty = False

    def _load(self, path: Path) -> None:
        try:
            stored = msgspec.json.decode(path.read_bytes(), type=_File)
            if stored.version != FILE_VERSION:
                raise ValueError(f"version {stored.version}, expected {FILE_VERSION}")
            banned = [bytes.fromhex(peer) for peer in stored.banned]
            entries = []
            for s in stored.addresses:
                address = Address(bytes.fromhex(s.peer), s.host, s.port)
                reason = problem(address)
                if reason is not None or s.failures < 0:
                    raise ValueError(reason or f"negative failures for {s.peer}")
                entries.append(_Entry(address, s.verified, s.failures))
        except (msgspec.DecodeError, ValueError, OSError) as exc:
            raise AddressBookError(f"address book {path}: {exc}") from exc
        for peer in banned[-BAN_CAP:]:
            self._banned[peer] = None
        for entry in entries[: self.cap]:
            if entry.address.peer not in self._banned:
                self._entries[entry.address.peer] = entry
