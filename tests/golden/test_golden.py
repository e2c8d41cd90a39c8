"""The same signed transactions give the same bytes: golden vectors recorded on main before
the layout change (tests/golden/generate.py) replayed through today's code.

A refactor that moves or splits modules must leave every outcome, event, block and state
root identical; a protocol change regenerates the vectors deliberately, in its own commit.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gridtokenx.chain import blocks
from gridtokenx.ledger import genesis, transition
from gridtokenx.ledger.context import BlockContext
from gridtokenx.simulator.chain import commit_steps
from gridtokenx.storage.store import open_application
from gridtokenx.wire import codec, errors, tx

HERE = Path(__file__).resolve().parent


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _sessions() -> list[dict[str, Any]]:
    data = gzip.decompress((HERE / "ledger.msgpack.gz").read_bytes())
    sessions: list[dict[str, Any]] = msgspec.msgpack.decode(data)
    return sessions


def _decodes(raw: bytes) -> bool:
    try:
        tx.decode(raw)
    except ValueError:
        return False
    return True


def _replay(session: dict[str, Any]) -> list[str]:
    """Differences between the recorded outcomes and today's, op by op."""
    spec = msgspec.json.decode(session["genesis"], type=genesis.Genesis)
    state = genesis.build_state(spec)
    found = []
    for number, op in enumerate(session["ops"]):
        if op[0] == "tx":
            _, height, time, raw, check, verdict, expected = op
            if not _decodes(raw):
                assert verdict == "rej"
                continue
            ctx = BlockContext(height, time)
            try:
                events = transition.apply(state, tx.decode(raw), ctx, check_signature=check)
                got = ["ok", digest(codec.encode(events))]
            except errors.Rejection as exc:
                got = ["rej", exc.code]
            if got != [verdict, expected]:
                found.append(f"op {number}: recorded {[verdict, expected]}, now {got}")
        else:
            _, height, time, events_digest, root = op
            events = transition.end_block(state, BlockContext(height, time))
            got = [digest(codec.encode(events)), state.root().hex()]
            if got != [events_digest, root]:
                found.append(f"op {number} (end of block {height}): {got} != recorded")
    if state.root().hex() != session["root"]:
        found.append("final state root differs")
    return found


def test_every_recorded_ledger_session_replays_to_the_same_outcomes_events_and_roots() -> None:
    sessions = _sessions()
    assert len(sessions) > 400
    assert sum(len(s["ops"]) for s in sessions) > 10_000
    failures = {i: diff for i, s in enumerate(sessions) if (diff := _replay(s))}
    assert not failures, {i: d[:3] for i, d in list(failures.items())[:5]}


@pytest.fixture(scope="module")
def chain_vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((HERE / "chain.json").read_text())
    return loaded


def test_a_recorded_market_day_builds_byte_identical_blocks_and_state_roots(
    tmp_path: Path, chain_vectors: dict[str, Any]
) -> None:
    spec = msgspec.json.decode(json.dumps(chain_vectors["genesis"]), type=genesis.Genesis)
    proposer = bytes.fromhex(chain_vectors["proposer"])
    steps = [(time, [bytes.fromhex(h) for h in hexes]) for time, hexes in chain_vectors["steps"]]
    app = open_application(spec, tmp_path / "data")
    try:
        heights = iter(chain_vectors["heights"])
        for height, block, receipts in commit_steps(app, steps, proposer):
            expected = next(heights)
            assert height == expected["height"]
            assert len(receipts) == expected["txs"], f"height {height}"
            failed = sum(1 for r in receipts if blocks.failure_of(r.events) is not None)
            assert failed == expected["failed"], f"height {height}"
            assert digest(block) == expected["block"], f"height {height}"
            assert app.state.root().hex() == expected["root"], f"height {height}"
        assert next(heights, None) is None
    finally:
        app.close()
    reopened = open_application(spec, tmp_path / "data")
    try:
        assert reopened.state.root().hex() == chain_vectors["heights"][-1]["root"]
    finally:
        reopened.close()
