"""The state root recomputed from the formulas in docs/protocol.md §8 by a separate, naive
implementation: hashlib only, every bucket and node of the complete tree computed (no
empty-subtree shortcut, no incremental update), so a slip in the optimised tree or in the
documented formulas shows up as a different root."""

from __future__ import annotations

import hashlib
import random

import msgspec

from gridtokenx.ledger import genesis
from gridtokenx.ledger.state import State
from gridtokenx.wire import codec


def tagged(tag: bytes, *parts: bytes) -> bytes:
    return hashlib.sha256(tag + b"\x00" + b"".join(parts)).digest()


def formula_root(values: dict[bytes, bytes]) -> bytes:
    """§8: depth = least d >= 1 with count <= 16 * 16**d; bucket = top 4d bits of the
    key's index hash; bucket hash over its leaves in key order; 16-ary nodes; the root
    commits to the depth and the top node."""
    depth = 1
    while len(values) > 16 * 16**depth:
        depth += 1
    buckets: list[dict[bytes, bytes]] = [{} for _ in range(16**depth)]
    for key, value in values.items():
        position = int.from_bytes(tagged(b"GridTokenX/state-bucket-index", key)[:4], "big")
        leaf = tagged(b"GridTokenX/state-leaf", len(key).to_bytes(4, "big"), key, value)
        buckets[position >> (32 - 4 * depth)][key] = leaf
    level = [tagged(b"GridTokenX/state-bucket", *(b[k] for k in sorted(b))) for b in buckets]
    for _ in range(depth):
        level = [
            tagged(b"GridTokenX/state-node", *level[16 * p : 16 * p + 16])
            for p in range(len(level) // 16)
        ]
    assert len(level) == 1
    return tagged(b"GridTokenX/state-root", bytes([depth]), level[0])


class Rec(msgspec.Struct, frozen=True, array_like=True):
    value: int


def test_the_devnet_genesis_root_follows_the_documented_formulas() -> None:
    spec = genesis.devnet("gridtokenx-devnet", 1_767_225_600, genesis.dev_keys())
    state = genesis.build_state(spec)
    values = {key: codec.encode(record) for key, record in state.items()}
    assert state.root() == formula_root(values)


def test_states_of_every_depth_up_to_three_follow_the_formulas() -> None:
    rnd = random.Random(16)
    for count in (0, 1, 256, 257, 4_096, 4_097):
        state = State()
        view = state.overlay()
        for _ in range(count):
            view.put(rnd.randbytes(rnd.randint(1, 40)), Rec(rnd.randint(0, 2**40)))
        view.commit()
        values = {key: codec.encode(record) for key, record in state.items()}
        assert state.root() == formula_root(values), count
