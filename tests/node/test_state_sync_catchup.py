"""Catching up and trust, between in-process nodes over the real encrypted transport on
127.0.0.1: a node told to trust a block (`--trust-height/--trust-hash`) joins only from a
chain that passes through it and is refused, with the hashes named, when its peer's chain
does not; a node that restarts far behind a snapshot state-syncs to it (trusting its own
state) and block-syncs the tail, and one that is not far enough behind keeps its store;
a swap of stores cut off by a crash is undone. Every wait is bounded, every node stopped."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from gridtokenx.chain import blocks
from gridtokenx.cli.main import app
from gridtokenx.node import state_sync
from gridtokenx.node.home import Config
from gridtokenx.node.runtime import Node
from gridtokenx.node.service import _far_behind
from gridtokenx.storage import snapshots
from gridtokenx.storage.store import Store, open_application
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.validators import Validator, ValidatorSet
from gridtokenx.wire.votes import Vote
from tests.cli.test_errors import error_lines
from tests.node.test_catching_up import _until
from tests.node.test_state_sync import SPEC, _node, _serving

OLD = 2  # the restarting node's height


def _copy_chain(validator: Node, path: Path, top: int) -> None:
    """A store holding the validator's blocks 1..top, as a node that followed it and
    stopped there would."""
    app = open_application(SPEC, path)
    try:
        for height in range(1, top + 1):
            stored = validator.app.store.block(height)
            assert stored is not None
            certificate = msgspec.msgpack.decode(stored[1], type=tuple[Vote, ...])
            app.commit(height, stored[0], certificate)
    finally:
        app.close()


def _config(**fields: object) -> Config:
    return Config(listen_port=26656, peers=(), **fields)  # type: ignore[arg-type]


def _height(path: Path) -> int:
    with Store(path) as store:
        return store.height()


def test_trusted_blocks_and_catching_up_by_state_sync(tmp_path: Path) -> None:
    async def scenario() -> None:
        validator, taker = _serving(tmp_path)
        caught: Node | None = None
        try:
            port = await validator.gossip.listen()
            await validator.start()
            assert await _until(lambda: len(taker.taken) >= 2, 60), taker.taken
            validator.block_interval = 0.3  # the tip moves slowly from here on
            taker.interval = 0  # and the snapshots stay
            peers = [("127.0.0.1", port, validator.key.address.hex())]
            stored = validator.app.store.block(3)
            assert stored is not None
            trusted = blocks.decode(stored[0]).hash

            # Trusting block 3 (below every snapshot): joined through it.
            key = PrivateKey.from_dev_label("catch-up/trusting")
            trust = state_sync.Trust(3, block_hash=trusted)
            done = await state_sync.join(tmp_path / "trusting", SPEC, key, peers,
                                         timeout_s=20, trust=trust)  # fmt: skip
            assert done is not None and done.height in taker.taken and done.banned == []
            assert _height(tmp_path / "trusting") == done.height

            # Trusting a block the peer's chain does not hold: refused, the peer banned.
            other = bytes(range(32))
            key = PrivateKey.from_dev_label("catch-up/refused")
            with pytest.raises(state_sync.StateSyncFailed) as refused:
                await state_sync.join(tmp_path / "refused", SPEC, key, peers, timeout_s=20,
                                      trust=state_sync.Trust(3, block_hash=other))  # fmt: skip
            message = str(refused.value)
            assert f"trusted block {other.hex()} at height 3" in message, message
            assert trusted.hex() in message, message  # what the peer holds instead
            assert not state_sync.has_chain(tmp_path / "refused")

            # A node that stopped at height OLD restarts: not far enough behind for the
            # snapshots offered, it keeps its store and would replay...
            _copy_chain(validator, tmp_path / "old", OLD)
            key = PrivateKey.from_dev_label("catch-up/restarting")
            far = max(taker.taken) - OLD  # the newest snapshot is this far ahead
            assert await state_sync.catch_up(tmp_path / "old", SPEC, key, peers, far,
                                             timeout_s=20) is None  # fmt: skip
            assert _height(tmp_path / "old") == OLD
            # ...and further behind than the threshold, it takes the newest snapshot.
            done = await state_sync.catch_up(tmp_path / "old", SPEC, key, peers, far - 1,
                                             timeout_s=20)  # fmt: skip
            assert done is not None and done.height == max(taker.taken), (done, taker.taken)
            assert not (tmp_path / "old.replaced").exists()
            assert not (tmp_path / "old.statesync").exists()

            # Then it block-syncs the tail, to the validator's state.
            caught = _node(tmp_path / "old", key)
            assert caught.app.height == done.height
            await caught.gossip.listen()
            await caught.start()
            await caught.gossip.dial("127.0.0.1", port, expect=validator.key.address)
            target = validator.app.height + 3
            assert await _until(lambda: caught.app.height >= target, 30), caught.app.height
            assert caught.app.state.root() == caught.app.state.recompute_root()
            height = caught.app.height
            assert await _until(lambda: validator.app.store.block(height + 1) is not None, 30)
            following = validator.app.store.block(height + 1)
            assert following is not None
            assert blocks.decode(following[0]).header.state_root == caught.app.state.root()

            # Running, a full node whose peer shows a height far beyond its own stops to
            # catch up by state sync (`run_node` then restarts it); a validator never does.
            config = _config(state_sync=True, state_sync_behind=50)
            assert not _far_behind(caught, config, state_sync=False)
            now = asyncio.get_running_loop().time()
            caught.telemetry.seen(validator.key.address, caught.app.height + 60,
                                  caught.app.height, now)  # fmt: skip
            assert _far_behind(caught, config, state_sync=False)
            assert not _far_behind(caught, _config(state_sync_behind=50), state_sync=False)
            assert _far_behind(caught, _config(state_sync_behind=50), state_sync=True)
            assert not _far_behind(caught, _config(state_sync=True, state_sync_behind=0), False)
            validator.telemetry.seen(caught.key.address, validator.app.height + 60,
                                     validator.app.height, now)  # fmt: skip
            assert not _far_behind(validator, config, state_sync=False)
        finally:
            if caught is not None:
                await caught.stop()
            await taker.stop()
            await validator.stop()

    asyncio.run(asyncio.wait_for(scenario(), 180))

    # A restarting node trusts its own state's validators: offers they did not sign fail.
    served = snapshots.Snapshots(tmp_path / "snapshots")
    raw = served.offers()[0]
    key = PrivateKey.from_dev_label("catch-up/judge")
    stranger = PrivateKey.from_dev_label("catch-up/stranger")
    strangers = ValidatorSet((Validator(stranger.address, stranger.public_key, 10),))
    own = open_application(SPEC, tmp_path / "judge").validators(1)
    assert state_sync.Joiner(SPEC, key, trust=state_sync.Trust(1, validators=own)).certified(raw)
    assert (
        state_sync.Joiner(SPEC, key, trust=state_sync.Trust(1, validators=strangers)).certified(raw)
        is None
    )
    height = snapshots.decode_offer(raw).height
    above = state_sync.Trust(height + 1, validators=own)  # a snapshot below the trusted height
    assert state_sync.Joiner(SPEC, key, trust=above).certified(raw) is None


def test_a_swap_of_stores_cut_off_by_a_crash_is_undone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_application(SPEC, data).close()
    (data / "old-marker").write_text("old")
    assert state_sync.recover(data) is None  # nothing to do

    # The crash came after the old store was moved aside, before the new one moved in.
    data.rename(tmp_path / "data.replaced")
    assert state_sync.recover(data) is not None
    assert (data / "old-marker").read_text() == "old"
    assert not (tmp_path / "data.replaced").exists()

    # The crash came after both renames, before the old store was deleted.
    shutil.copytree(data, tmp_path / "data.replaced")
    (data / "old-marker").write_text("new")
    assert state_sync.recover(data) is not None
    assert (data / "old-marker").read_text() == "new"
    assert not (tmp_path / "data.replaced").exists()
    assert _height(data) == 0


def test_trust_options_go_together_and_name_a_block(tmp_path: Path) -> None:
    runner = CliRunner()

    def start(*options: str) -> list[str]:
        result = runner.invoke(app, ["node", "start", "--home", str(tmp_path), *options])
        return error_lines(result, "BAD_INPUT", 2)

    assert "go together" in start("--trust-height", "5")[0]
    assert "go together" in start("--trust-hash", "ab" * 32)[0]
    assert "64 hex digits" in start("--trust-height", "5", "--trust-hash", "xyz")[0]
    assert "64 hex digits" in start("--trust-height", "5", "--trust-hash", "ab" * 31)[0]
    assert "1 or more" in start("--trust-height", "0", "--trust-hash", "ab" * 32)[0]
