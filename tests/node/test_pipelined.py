"""Pipelined heights on real nodes (one process, 127.0.0.1): a node whose own state root
after a height differs from the root the next certified block carries halts before it
signs anything at a later height, while the other validators go on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from gridtokenx.ledger import accounts
from gridtokenx.wire.votes import Vote
from tests.node.test_node import _network, _registrations


def test_a_node_whose_root_diverged_refuses_the_next_block_and_halts_before_signing_past_it(
    tmp_path: Path,
) -> None:
    """All five validators run. PEA (8,000 of 39,000: the other four still make a quorum)
    gets a record no other
    node has, right after it committed height H. The proposal of H + 1 carries the honest
    root after H, so PEA prevotes nil; once H + 1 is decided, PEA's commit finds the
    certified root is not its own and the node halts: it never commits H + 1, never moves
    to H + 2, never signs there. The others commit on."""

    async def scenario() -> None:
        nodes = await _network(tmp_path, codes=("EGAT", "MEA", "PEA", "ERC", "NEPO"))
        egat, mea, pea, erc, nepo = nodes
        others = (egat, mea, erc, nepo)
        try:
            for node in nodes:
                await node.start()
            for raw in _registrations(8):
                await mea.submit(raw)
            for _ in range(3000):  # bounded: 30 s
                # Before PEA judged the next height's proposal: once it has voted for it,
                # its vote stands (a block found valid stays valid for its height).
                unsigned = not any(v.height > pea.app.height for v in pea.core.state.signed)
                if pea.app.height >= 2 and not pea.core.decided and unsigned:
                    break
                await asyncio.sleep(0.01)
            at = pea.app.height
            assert at >= 2
            diverge = pea.app.state.overlay()  # between two loop steps: no height half done
            diverge.put(accounts.account_key(b"\x07" * 20), accounts.Account(0, 0, 0))
            diverge.commit()
            for _ in range(600):  # bounded: 30 s
                if min(n.app.height for n in others) >= at + 3 and pea.halted:
                    break
                await asyncio.sleep(0.05)
            assert pea.halted is not None and "disagrees" in pea.halted, (
                [n.app.height for n in nodes],
                pea.core.height,
                at,
                pea.failed,
            )
            assert pea.app.height == at  # H + 1 never committed here
            assert pea.core.height == at + 1  # and no later height begun
            assert all(v.height <= at + 1 for v in pea.core.state.signed)
            assert min(n.app.height for n in others) >= at + 3
            assert all(n.halted is None for n in others)
            certified = egat.app.store.block(at + 1)
            assert certified is not None
            signers = {
                v.validator for v in msgspec.msgpack.decode(certified[1], type=tuple[Vote, ...])
            }
            assert pea.key.address not in signers  # it did not precommit the honest block
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 90))
