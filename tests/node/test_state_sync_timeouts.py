"""A peer is late when it has sent nothing for CHUNK_TIMEOUT_S while asked, not when one
request has waited that long: a peer answers its requests in order, so behind a busy upload
the last of several requests in flight waits for the others. A slow but steady peer keeps
its requests (the rule per request struck it three times and the join failed); a silent one
loses them to the others. Two serving peers over the real transport on 127.0.0.1, with the
timeout shortened; every wait is bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from gridtokenx.devnet.homes import devnet_genesis
from gridtokenx.ledger import genesis
from gridtokenx.node import state_sync
from gridtokenx.p2p.gossip import Gossip, Kind, Outcome
from gridtokenx.storage import snapshots
from gridtokenx.storage.store import Store, open_application
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.votes import Vote, VoteType, block_id, sign_vote

STEP_S = 0.4  # the slow peer sends one chunk this often
TIMEOUT_S = 0.9  # shorter than the wait of a third request in flight (1.2 s)
CHAIN = "gridtokenx-state-sync-timeouts"
T0 = 1_767_225_600
EGAT = genesis.dev_keys()["EGAT"]
SPEC = devnet_genesis(CHAIN, T0, ("EGAT",))


def _certified_chain(path: Path, heights: int) -> None:
    """`heights` blocks, each certified by the one validator's precommit."""
    app = open_application(SPEC, path)
    try:
        for height in range(app.height + 1, app.height + heights + 1):
            raw = app.build_block(height, T0 + height, EGAT.address)
            vote = Vote(height, 0, VoteType.PRECOMMIT, block_id(raw), EGAT.address)
            app.commit(height, raw, (sign_vote(EGAT, CHAIN, vote),))
    finally:
        app.close()


class _Peer:
    """Offers the snapshots; answers chunk requests one per STEP_S in order, or never."""

    def __init__(self, served: snapshots.Snapshots, label: str, silent: bool) -> None:
        self.served, self.silent = served, silent
        self.gossip = Gossip(PrivateKey.from_dev_label(label), self._on)
        self.asked: list[int] = []
        self._free = 0.0

    async def _on(self, kind: Kind, payload: bytes, peer: bytes) -> Outcome:
        if kind is Kind.SNAPSHOTS_REQUEST:
            return state_sync.answer(self.served, self.gossip, kind, payload, peer)
        if kind is Kind.CHUNK_REQUEST:
            request = msgspec.msgpack.decode(payload, type=snapshots.ChunkRequest)
            self.asked.append(request.index)
            if not self.silent:
                loop = asyncio.get_running_loop()
                self._free = max(loop.time(), self._free) + STEP_S
                chunk = self.served.chunk(request.height, request.index)
                assert chunk is not None
                loop.call_at(self._free, self.gossip.send_to, peer, Kind.CHUNK, chunk)
        return Outcome.IGNORE


def test_a_slow_steady_peer_keeps_its_requests_and_a_silent_one_loses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_sync, "CHUNK_TIMEOUT_S", TIMEOUT_S)
    spec = SPEC
    _certified_chain(tmp_path / "data", 3)
    served = snapshots.Snapshots(tmp_path / "snapshots", chunk_bytes=512)
    with Store(tmp_path / "data") as db:
        height = served.take(db)
    _certified_chain(tmp_path / "data", 1)
    with Store(tmp_path / "data") as db:
        served.complete(db)
    chunks = len(snapshots.decode_offer(served.offers()[0]).ranges)
    assert chunks >= 6, chunks

    async def scenario() -> tuple[state_sync.Joined | None, _Peer, _Peer]:
        slow = _Peer(served, "timeouts/slow", silent=False)
        silent = _Peer(served, "timeouts/silent", silent=True)
        try:
            ports = [await slow.gossip.listen(), await silent.gossip.listen()]
            peers = [("127.0.0.1", port, p.gossip.key.address.hex())
                     for port, p in zip(ports, (slow, silent), strict=True)]  # fmt: skip
            key = PrivateKey.from_dev_label("timeouts/joiner")
            joined = await state_sync.join(tmp_path / "new", spec, key, peers, timeout_s=20)
            return joined, slow, silent
        finally:
            await slow.gossip.close()
            await silent.gossip.close()

    joined, slow, silent = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert joined is not None and joined.height == height and joined.chunks == chunks
    # The silent peer's requests went to the slow one, which was never given up on: it
    # was asked for every chunk, each once.
    assert silent.asked and set(silent.asked) < set(range(chunks))
    assert sorted(slow.asked) == list(range(chunks)), slow.asked
