"""The checker, run at the end on the stores of stopped nodes: what a fault may never break.

Safety, from the stores alone (every finding is a violation, and any violation fails the
run whatever the load did):

- every node holds the same block at every height it has, and each node's commit
  certificate for it is valid (`consensus.core.check_commit`: precommits for this block
  from the validator set of that height, more than 2/3 of the power): no two certified
  blocks at one height;
- the blocks chain (height, chain id, previous hash), and replaying them from genesis
  through the ledger (`chain.blocks.commit`, every signature checked) reaches each header's
  state root, and, at each node's head, that node's stored state root; supply, balances,
  escrow, readings and certificates recomputed by the replay pass every ledger invariant
  (`ledger.invariants.check_all`);
- a transaction is in one block at most, and every node's transaction index puts it at the
  same height and index as the blocks do.

Accounting, per acknowledged transaction: committed (in the blocks), dropped (its
acknowledging node said so, with the reason, before it was stopped), or lost (anything
else: still pending, unknown to the node that acknowledged it, or that node unreachable).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from gridtokenx.chain import blocks
from gridtokenx.consensus.core import check_commit
from gridtokenx.ledger import genesis, invariants, validator_set
from gridtokenx.ledger.state import State
from gridtokenx.storage.store import Store
from gridtokenx.wire import crypto, tx
from gridtokenx.wire.votes import Vote

ZERO_HASH = b"\x00" * 32


@dataclass
class Verdict:
    heights: dict[str, int]
    checked_height: int = 0  # replayed from genesis up to here
    state_root: str = ""  # the replay's at checked_height
    violations: list[str] = field(default_factory=list)
    committed: dict[str, tuple[int, int]] = field(default_factory=dict)  # acked hash -> (h, i)
    dropped: dict[str, str] = field(default_factory=dict)  # acked hash -> reason
    lost: dict[str, str] = field(default_factory=dict)  # acked hash -> what its node said
    committed_txs: int = 0  # every transaction in the checked blocks

    @property
    def safe(self) -> bool:
        return not self.violations

    @property
    def ok(self) -> bool:
        return self.safe and not self.lost


@contextlib.contextmanager
def _opened(paths: Mapping[str, Path]) -> Iterator[dict[str, Store]]:
    stores: dict[str, Store] = {}
    try:
        for name, path in paths.items():
            stores[name] = Store(path)
        yield stores
    finally:
        for store in stores.values():
            store.close()


def check(
    spec: genesis.Genesis,
    stores: Mapping[str, Path],
    acked: Mapping[str, str],
    statuses: Mapping[str, str],
) -> Verdict:
    """Check the stores (node name -> data folder) of stopped nodes of the chain of `spec`.
    `acked` maps each acknowledged transaction (hash hex) to the node that acknowledged
    it; `statuses` what that node last said of the ones it had not shown committed:
    "pending", "committed", "dropped:REASON", "unknown", "unreachable"."""
    with _opened(stores) as opened:
        verdict = Verdict({name: s.height() for name, s in opened.items()})
        locations = _replay(spec, opened, verdict)
        verdict.committed_txs = len(locations)
        _check_index(opened, verdict, locations, acked)
    for tx_hash in acked:
        where = locations.get(bytes.fromhex(tx_hash))
        said = statuses.get(tx_hash, "unasked")
        if where is not None:
            verdict.committed[tx_hash] = where
        elif said.startswith("dropped:"):
            verdict.dropped[tx_hash] = said.removeprefix("dropped:")
        else:
            if said == "committed":
                verdict.violations.append(f"{acked[tx_hash]} said {tx_hash} is committed, "
                                          "but no stored block holds it")  # fmt: skip
            verdict.lost[tx_hash] = said
    return verdict


def _replay(
    spec: genesis.Genesis, stores: dict[str, Store], verdict: Verdict
) -> dict[bytes, tuple[int, int]]:
    """Replay every height some node holds, checking blocks, certificates and roots as it
    goes; stops at the first height whose block cannot be trusted. Returns where each
    transaction of the checked blocks is."""
    state = genesis.build_state(spec)
    state.take_changes()
    locations: dict[bytes, tuple[int, int]] = {}
    _check_heads(stores, verdict, state, 0)
    prev_hash = ZERO_HASH
    for h in range(1, max(verdict.heights.values(), default=0) + 1):
        block = _agreed_block(stores, verdict, state, spec.chain_id, h)
        if block is None:
            return locations
        header = block.header
        if (header.height, header.chain_id, header.prev_hash) != (h, spec.chain_id, prev_hash):
            verdict.violations.append(f"height {h}: the header does not follow height {h - 1}")
            return locations
        try:
            blocks.commit(state, block)
        except RuntimeError as exc:  # the replay reaches another state root
            verdict.violations.append(f"height {h}: replay from genesis: {exc}")
            return locations
        state.take_changes()  # nothing persists them: keep the replay's memory flat
        for index, raw in enumerate(block.txs):
            tx_hash = tx.hash_of(raw)
            if tx_hash in locations:
                verdict.violations.append(f"{tx_hash.hex()} is committed at {locations[tx_hash]} "
                                          f"and again at {(h, index)}")  # fmt: skip
            locations.setdefault(tx_hash, (h, index))
        prev_hash = block.hash
        verdict.checked_height = h
        _check_heads(stores, verdict, state, h)
    verdict.state_root = state.root().hex()
    return locations


def _agreed_block(
    stores: dict[str, Store], verdict: Verdict, state: State, chain_id: str, h: int
) -> blocks.Block | None:
    """The one block every node holding height `h` holds, each with a valid certificate
    from the validator set of `h`; None (with the violation noted) otherwise."""
    holders = {n: s.block(h) for n, s in stores.items() if verdict.heights[n] >= h}
    if missing := sorted(n for n, stored in holders.items() if stored is None):
        verdict.violations.append(f"height {h}: {missing} lack the block below their head")
        return None
    by_hash: dict[bytes, list[str]] = {}
    for name, stored in holders.items():
        assert stored is not None
        by_hash.setdefault(blocks.decode(stored[0]).hash, []).append(name)
    if len(by_hash) > 1:
        split = {k.hex()[:16]: v for k, v in by_hash.items()}
        verdict.violations.append(f"height {h}: different blocks on different nodes: {split}")
        return None
    validators = validator_set.for_height(state, h)
    body = b""
    for name, stored in holders.items():
        assert stored is not None
        body, certificate = stored
        votes = msgspec.msgpack.decode(certificate, type=tuple[Vote, ...])
        if not check_commit(chain_id, validators, h, body, votes, crypto.verify):
            verdict.violations.append(f"height {h}: {name}'s commit certificate does not "
                                      "certify its block")  # fmt: skip
    return blocks.decode(body)


def _check_heads(stores: dict[str, Store], verdict: Verdict, state: State, h: int) -> None:
    """At the head of each node at height `h`: its stored state is the replay's, and the
    replayed state passes every ledger invariant."""
    at_head = [n for n, height in verdict.heights.items() if height == h]
    if not at_head:
        return
    root = state.root()
    for name in at_head:
        stored = stores[name].load_state().root()
        if stored != root:
            mine, replayed = stored.hex()[:16], root.hex()[:16]
            verdict.violations.append(
                f"{name} at height {h}: stored state root {mine} is not the replay's {replayed}"
            )
    try:
        invariants.check_all(state)
    except AssertionError as exc:
        verdict.violations.append(f"height {h}: ledger invariant broken: {exc}")


def _check_index(
    stores: dict[str, Store],
    verdict: Verdict,
    locations: dict[bytes, tuple[int, int]],
    acked: Mapping[str, str],
) -> None:
    """Every node's transaction index agrees with the blocks on every acknowledged
    transaction: at the blocks' height and index on a node that has that height, and
    nowhere when no checked block holds it."""
    for tx_hex in acked:
        tx_hash = bytes.fromhex(tx_hex)
        where = locations.get(tx_hash)
        for name, store in stores.items():
            indexed = store.tx_location(tx_hash)
            expected = where if where is not None and verdict.heights[name] >= where[0] else None
            if where is None and indexed is not None and indexed[0] > verdict.checked_height:
                continue  # above the heights the replay could check
            if indexed != expected:
                verdict.violations.append(f"{name} indexes {tx_hex[:16]} at {indexed}, the "
                                          f"blocks say {expected}")  # fmt: skip
