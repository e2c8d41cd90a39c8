"""Secondary indexes the API needs and consensus does not, kept apart from the store the
way CometBFT keeps its indexers apart from its block store.

The certificate index lists certificate ids by holder, by first owner and by status
(`certificate_ids` in the store reads it, newest first). It is derived from the
certificate records each height writes, recognised by their type (and a deleted one by the
certificates context's `holds_certificate`), never by the state's key layout; the store
applies it in the same batch as the height's state, from the record each write replaces,
so it never disagrees with the state. Its keys live in the store's `index` column family:
a two-byte tag, the address for the by-holder listings, the status, the 8-byte id."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

import msgspec

from gridtokenx.ledger import certificates
from gridtokenx.ledger.certificates import Certificate

Stored = Callable[[bytes], msgspec.Struct | None]
"""The record the store holds at a state key before the batch lands (None: none)."""

_TAGS: Final = {"owner": b"co", "issued": b"ci", "all": b"cs"}


def certificate_index_prefix(by: str, status: str, who: bytes = b"") -> bytes:
    """Where the ids of one listing start: `by` "owner" (the holder; a retired certificate
    stays with the owner that retired it), "issued" (the meter owner it was issued to) or
    "all"; `status` "a" (active) or "r" (retired). Each key ends in the 8-byte id."""
    return _TAGS[by] + (b"" if by == "all" else who) + status.encode()


def entries(cert: Certificate) -> set[bytes]:
    """The index keys of one certificate: one per listing it appears in."""
    status, id_ = ("r" if cert.retired else "a"), cert.id.to_bytes(8)
    return {
        certificate_index_prefix("owner", status, cert.owner) + id_,
        certificate_index_prefix("issued", status, cert.issued_to) + id_,
        certificate_index_prefix("all", status) + id_,
    }


def _changed(
    changes: Mapping[bytes, msgspec.Struct | None],
) -> Iterator[tuple[bytes, Certificate | None]]:
    """The certificates among one height's writes, by type, and deleted certificates."""
    for key, record in changes.items():
        if isinstance(record, Certificate):
            yield key, record
        elif record is None and certificates.holds_certificate(key):
            yield key, None


def update(
    batch: Any, family: Any, changes: Mapping[bytes, msgspec.Struct | None], stored: Stored
) -> None:
    """Move each changed certificate's entries from the record the store holds now (before
    this height) to the new one, in `batch`: one read per certificate written."""
    for key, record in _changed(changes):
        old = stored(key)
        before = entries(old) if isinstance(old, Certificate) else set()
        after = set() if record is None else entries(record)
        for gone in sorted(before - after):
            batch.delete(gone, family)
        for new in sorted(after - before):
            batch.put(new, b"", family)


def rebuild(batch: Any, family: Any, records: Iterable[tuple[bytes, msgspec.Struct]]) -> int:
    """Drop every entry and add one set per certificate among `records` (the whole state);
    returns the number of certificates."""
    for tag in _TAGS.values():
        batch.delete_range(tag, tag[:1] + bytes([tag[1] + 1]), family)
    found = 0
    for _, record in records:
        if isinstance(record, Certificate):
            for key in sorted(entries(record)):
                batch.put(key, b"", family)
            found += 1
    return found


def scan_start(prefix: bytes, before: int | None) -> bytes:
    """Where a backwards read of one listing starts: below `before`, or at its top."""
    return prefix + (before.to_bytes(8) if before is not None else b"\xff" * 8)


def certificate_ids(
    keys: Iterable[bytes], prefix: bytes, before: int | None, limit: int
) -> list[int]:
    """Up to `limit` ids from a listing's keys read backwards from `scan_start`, below
    `before` if given."""
    ids = []
    for key in keys:
        found = int.from_bytes(key[len(prefix) :])
        if before is not None and found >= before:
            continue
        ids.append(found)
        if len(ids) == limit:
            break
    return ids
