"""A simulated day committed block by block through the application, as a proposer would.

The day (`day_in_blocks`) records what it sent in each block, in the order a sandbox
applied it, where a participant's first transactions may follow its registration in the
same block. A proposer includes only what passes the cheap checks against the state before
the block (`chain.blocks.Screen`: a registered sender, its next nonce), so such a
transaction waits for the next block, as it waits in a node's mempool: what the screen
skips is carried into the next block, and blocks at the last time follow until nothing
is left that can pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gridtokenx.chain import blocks
from gridtokenx.chain.application import Application
from gridtokenx.ledger import validator_set
from gridtokenx.wire import tx


def commit_steps(
    app: Application[Any], steps: list[tuple[int, list[bytes]]], proposer: bytes
) -> Iterator[tuple[int, bytes, list[blocks.Receipt]]]:
    """Build and commit one block per step (and more at the end while carried transactions
    still pass); yields (height, block bytes, receipts) after each commit."""
    carried: list[bytes] = []
    height = app.height
    queue = list(steps)
    last_time = steps[-1][0] if steps else app.last_time
    while queue or carried:
        flush = not queue
        time, raws = queue.pop(0) if queue else (last_time, [])
        height += 1
        skipped: list[tuple[bytes, str]] = []
        validators = validator_set.set_hash(app.validators(height))
        built, _ = blocks.propose(
            app.state, app.chain_id, height, time, app.last_hash, proposer, validators,
            carried + raws, skipped=skipped,
        )  # fmt: skip
        left = {tx_hash for tx_hash, _ in skipped}
        if flush and not built.txs:
            return  # what is left can never pass
        carried = [raw for raw in carried + raws if tx.hash_of(raw) in left]
        block = built.encode()
        yield height, block, app.commit(height, block, ())
