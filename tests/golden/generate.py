"""Write the golden vectors that pin the ledger's and the chain's bytes across refactors.

Run from the repository root (`.venv/bin/python -m tests.golden.generate`) only when a
change is meant to alter the protocol's bytes; a layout change must leave `test_golden.py`
passing against the vectors as they are. Two sets:

- `ledger.msgpack.gz`: every ledger session that the scenario tests of the ledger, market,
  grid, certificates and governance open (a genesis, then the transactions they apply and
  the blocks they end, accepted or refused), each with its outcome: the events' hash or
  the rejection code, and the state root after each block. Sessions whose state a test
  also changed by hand (so that replaying the log alone could not reproduce it) are left
  out; the generator replays every session it keeps and checks it reproduces.
- `chain.json`: a simulated market day (grid reports, a fee vote, certificates) built into
  blocks by the application over RocksDB, with the hash and state root of every block.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec

HERE = Path(__file__).resolve().parent
LEDGER_TESTS = [
    "ledger/test_tokens.py",
    "ledger/test_registry.py",
    "ledger/test_metering.py",
    "ledger/market/test_market.py",
    "ledger/market/test_market_crosszone.py",
    "ledger/market/test_market_repricing.py",
    "ledger/grid/test_grid.py",
    "ledger/test_governance.py",
    "ledger/grid/test_governance_grid.py",
    "ledger/test_certificates.py",
    "ledger/test_validator_changes.py",
    "simulator/test_simulator.py",
]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


class Recorder:
    """Patches genesis.build_state, transition.apply and transition.end_block to log per state."""

    def __init__(self) -> None:
        self.sessions: dict[int, dict[str, Any]] = {}
        self.keep: list[Any] = []  # states stay alive so their ids are never reused

    def install(self) -> None:
        from gridtokenx.ledger import genesis, transition
        from gridtokenx.wire import codec, errors

        build_state, apply, end_block = genesis.build_state, transition.apply, transition.end_block
        sessions, keep = self.sessions, self.keep

        def recording_build_state(spec: Any) -> Any:
            state = build_state(spec)
            keep.append(state)
            sessions[id(state)] = {"genesis": spec.encode(), "ops": [], "state": state}
            return state

        def recording_apply(state: Any, stx: Any, ctx: Any, *, check_signature: bool = True):
            session = sessions.get(id(state))
            try:
                events = apply(state, stx, ctx, check_signature=check_signature)
            except errors.Rejection as exc:
                if session is not None:
                    session["ops"].append(
                        ["tx", ctx.height, ctx.time, stx.encode(), check_signature, "rej", exc.code]
                    )
                raise
            if session is not None:
                session["ops"].append(
                    ["tx", ctx.height, ctx.time, stx.encode(), check_signature, "ok",
                     digest(codec.encode(events))]
                )  # fmt: skip
            return events

        def recording_end_block(state: Any, ctx: Any) -> Any:
            events = end_block(state, ctx)
            session = sessions.get(id(state))
            if session is not None:
                session["ops"].append(
                    ["end", ctx.height, ctx.time, digest(codec.encode(events)), state.root().hex()]
                )
            return events

        genesis.build_state = recording_build_state
        transition.apply = recording_apply
        transition.end_block = recording_end_block


def decodes(raw: bytes) -> bool:
    from gridtokenx.wire import tx

    try:
        tx.decode(raw)
    except ValueError:
        return False
    return True


def replay(session: dict[str, Any]) -> bool:
    """Does the log alone reproduce the session's outcomes and final root?"""
    from gridtokenx.ledger import genesis, transition
    from gridtokenx.ledger.context import BlockContext
    from gridtokenx.wire import codec, errors, tx

    spec = msgspec.json.decode(session["genesis"], type=genesis.Genesis)
    state = genesis.build_state(spec)
    for op in session["ops"]:
        if op[0] == "tx":
            _, height, time, raw, check, verdict, expected = op
            if not decodes(raw):
                if verdict == "ok":
                    return False
                continue  # a refusal of bytes no node could receive changes nothing
            try:
                events = transition.apply(
                    state, tx.decode(raw), BlockContext(height, time), check_signature=check
                )
                got = ["ok", digest(codec.encode(events))]
            except errors.Rejection as exc:
                got = ["rej", exc.code]
            if got != [verdict, expected]:
                return False
        else:
            _, height, time, events_digest, root = op
            events = transition.end_block(state, BlockContext(height, time))
            if [digest(codec.encode(events)), state.root().hex()] != [events_digest, root]:
                return False
    return state.root().hex() == session["root"]


def record_ledger() -> list[dict[str, Any]]:
    import pytest

    recorder = Recorder()
    recorder.install()
    tests = [str(HERE.parent / name) for name in LEDGER_TESTS]
    code = pytest.main(["-q", "-p", "no:xdist", "-p", "no:cacheprovider", *tests])
    if code != 0:
        raise SystemExit(f"the recorded tests failed ({code})")
    kept = []
    for session in list(recorder.sessions.values()):
        if not session["ops"]:
            continue
        session["root"] = session.pop("state").root().hex()
        if replay(session):
            kept.append(session)
    return kept


def record_chain(keep_steps: bool = False) -> dict[str, Any]:
    """A simulated day, built block by block by the application over RocksDB.
    `keep_steps`: the day's transactions as chain.json recorded them (only the blocks and
    roots are recorded again, when the chain's format changed and its inputs did not)."""
    import datetime

    import msgspec

    from gridtokenx.chain import blocks
    from gridtokenx.ledger import genesis
    from gridtokenx.simulator import DayConfig, day_in_blocks
    from gridtokenx.simulator.chain import commit_steps
    from gridtokenx.storage.store import open_application

    if keep_steps:
        recorded = json.loads((HERE / "chain.json").read_text())
        spec = msgspec.json.decode(json.dumps(recorded["genesis"]), type=genesis.Genesis)
        steps = [(t, [bytes.fromhex(h) for h in hexes]) for t, hexes in recorded["steps"]]
    else:
        config = DayConfig(
            seed=7, participants=40, date=datetime.date(2026, 4, 22), start_minute=11 * 60,
            intervals=8,
        )  # fmt: skip
        day = day_in_blocks(config)
        spec, steps = day.genesis, day.blocks
    proposer = genesis.dev_keys()["EGAT"].address
    heights = []
    with tempfile.TemporaryDirectory() as tmp:
        app = open_application(spec, Path(tmp) / "data")
        try:
            for height, block, receipts in commit_steps(app, steps, proposer):
                failed = sum(1 for r in receipts if blocks.failure_of(r.events) is not None)
                heights.append(
                    {"height": height, "txs": len(receipts), "failed": failed,
                     "block": digest(block), "root": app.state.root().hex()}
                )  # fmt: skip
        finally:
            app.close()
    txs = [[time, [raw.hex() for raw in raws]] for time, raws in steps]
    return {
        "genesis": json.loads(spec.encode()),
        "proposer": proposer.hex(),
        "steps": txs,
        "heights": heights,
    }


def main() -> None:
    sys.path.insert(0, str(HERE.parents[1]))
    chain = record_chain(keep_steps="--chain-only" in sys.argv)
    (HERE / "chain.json").write_text(json.dumps(chain, indent=1) + "\n")
    if "--chain-only" in sys.argv:  # the chain's format changed, the day and ledger did not
        print(f"{len(chain['heights'])} blocks")
        return
    sessions = record_ledger()
    data = msgspec.msgpack.encode(sessions)
    (HERE / "ledger.msgpack.gz").write_bytes(gzip.compress(data, 9, mtime=0))
    ops = sum(len(s["ops"]) for s in sessions)
    print(f"{len(sessions)} ledger sessions, {ops} operations; {len(chain['heights'])} blocks")


if __name__ == "__main__":
    main()
