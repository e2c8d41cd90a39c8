"""Types of the compiled twin of `bucket_tree`'s loops (`_tree_hashing.pyx`)."""

from collections.abc import Callable, Iterable

def start(index: bytes, leaf: bytes, bucket: bytes, node: bytes) -> None: ...
def key_positions(keys: Iterable[bytes]) -> list[int]: ...
def leaf_hashes(pairs: Iterable[tuple[bytes, bytes]]) -> list[bytes]: ...
def set_many(
    keys: list[bytes],
    values: list[bytes | None],
    positions: list[int],
    shift: int,
    buckets: dict[int, dict[bytes, bytes]],
    fetch: Callable[[int], dict[bytes, bytes] | None],
    old: dict[bytes, tuple[int, bytes | None]] | None,
    dirty: set[int],
) -> int: ...
def hash_buckets(
    buckets: dict[int, dict[bytes, bytes]], dirty: Iterable[int], keep_empty: bool, empty: bytes
) -> dict[int, bytes]: ...
def hash_level(data: bytearray, changed: dict[int, bytes]) -> dict[int, bytes]: ...
def hash_dict_level(
    kids: dict[int, bytearray],
    changed: dict[int, bytes],
    fetch: Callable[[int], object],
    empty_blob: bytes,
    empty_above: bytes,
    keep_empty: bool,
) -> dict[int, bytes]: ...
def decode_buckets(
    buckets: dict[int, dict[bytes, bytes]],
    indexes: list[int],
    blobs: list[bytes | None],
    fallback: Callable[[bytes], list[tuple[bytes, bytes]]],
) -> None: ...
def encode_bucket(leaves: dict[bytes, bytes]) -> bytes: ...
def encode_buckets(
    buckets: dict[int, dict[bytes, bytes]],
    indexes: Iterable[int],
    fetch: Callable[[int], dict[bytes, bytes] | None],
) -> dict[int, bytes | None]: ...
