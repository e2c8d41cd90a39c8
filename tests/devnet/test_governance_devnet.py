"""A governance vote adds a validator to a running devnet of processes, and it signs.

EGAT, MEA, PEA and ERC run as `gridtokenx node start` validator processes; NEPO runs as a
fifth process with NEPO's own key, which has voting power 0 in the devnet genesis, so it
starts as a follower. Through the API (the SDK) EGAT proposes NEPO as a validator, the
authorities vote, and the proposal executes by itself at the end of its timelock. The node
process then switches from follower to signer at runtime (consensus reads the set per
height), and the test proves from the chain that NEPO's signature is what keeps it going:

    genesis powers (genesis.py): EGAT 10,000, MEA 8,000, PEA 8,000, ERC 7,000 (33,000);
    NEPO joins with 6,000: total 39,000, and a commit needs more than 2/3 of it, i.e.
    3 * signed > 2 * 39,000, signed > 26,000.
    With EGAT stopped, MEA + PEA + ERC hold 23,000: no quorum on their own (before the
    vote they had one: 23,000 of 33,000 > 22,000). With NEPO, 29,000 > 26,000: the chain
    commits, and every certificate after the stop must carry NEPO's precommit.
    Then NEPO is stopped too, and the three alone commit nothing.

Every wait is bounded and generous (two cores shared by several test workers); every
process is stopped in `finally`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from typer.testing import CliRunner

from gridtokenx.cli.main import app
from gridtokenx.client import ApiError, Client
from gridtokenx.devnet.homes import init_devnet, init_full_node
from gridtokenx.ledger import genesis
from gridtokenx.node import keystore
from gridtokenx.node.home import load_genesis, load_home, read_config, voting_power
from gridtokenx.storage.store import Store
from gridtokenx.wire import crypto, tx
from gridtokenx.wire.votes import Vote
from tests.conftest import free_base_port
from tests.devnet.test_devnet_processes import _height, _report, _start, _stop, _wait

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]
KEYS = genesis.dev_keys()
POWER = {"EGAT": 10_000, "MEA": 8_000, "PEA": 8_000, "ERC": 7_000, "NEPO": 6_000}
NEPO_POWER = 6_000
WAIT = 180.0  # seconds: bounded, and generous for five processes on two busy cores


def _text(code: str) -> str:
    return crypto.address_to_text(KEYS[code].address)


def _ready(api: Client) -> bool:
    try:
        return int(api.health()["height"]) >= 2
    except (ApiError, httpx.HTTPError):
        return False


def _signers(api: Client, height: int) -> set[str]:
    return set(api.block(height)["signers"])


def _power(signers: set[str]) -> int:
    return sum(p for code, p in POWER.items() if _text(code) in signers)


def test_a_governance_vote_adds_a_validator_that_then_signs_blocks(tmp_path: Path) -> None:
    base = free_base_port(5)
    homes = init_devnet(tmp_path, "gridtokenx-gov-devnet", int(time.time()), base, block_ms=200)
    egat_home, mea_home, pea_home, erc_home = homes
    assert voting_power(load_genesis(egat_home / "genesis.json"), KEYS["NEPO"]) == 0
    nepo_home = init_full_node(
        tmp_path / "nepo", homes, base + 4, key=KEYS["NEPO"], api_port=base + 204
    )
    procs = {home: _start(home) for home in [*homes, nepo_home]}
    clients: list[Client] = []

    def client(home: Path) -> Client:
        clients.append(Client(f"http://127.0.0.1:{read_config(home).api_port}"))
        return clients[-1]

    def wait(check: Callable[[], bool], what: str) -> None:
        assert _wait(check, WAIT), f"{what}\n{_report([*homes, nepo_home])}"

    try:
        egat, mea, pea, erc, nepo = (client(h) for h in [*homes, nepo_home])
        wait(lambda: all(_ready(api) for api in (egat, mea, pea, erc, nepo)), "APIs up")
        before = egat.get("/validators")
        assert before["total_power"] == 33_000
        assert _text("NEPO") not in {m["address"] for m in before["members"]}
        assert nepo.health()["validating"] is False  # a follower: it has no power yet

        # --- the vote: EGAT proposes, every authority votes yes through its own node ---------
        rules = egat.get("/chain")["params"]["governance"]
        assert (rules["voting_period_heights"], rules["timelock_heights"]) == (60, 10)
        join = tx.SubmitProposal(
            tx.ProposalKind.VALIDATOR,
            (tx.ValidatorChange(KEYS["NEPO"].public_key, NEPO_POWER),),
            "NEPO joins the validators",
        )
        submitted = egat.send_and_wait(KEYS["EGAT"], join, timeout=WAIT)
        proposal_id = next(
            e["attrs"]["id"] for e in submitted.events if e["kind"] == "proposal_submitted"
        )
        ballot = tx.CastVote(int(proposal_id), tx.VoteChoice.YES)
        # All five at once, each through the authority's own node; NEPO's through its
        # follower's API, which relays it to the validators.
        voters = ((egat, "EGAT"), (mea, "MEA"), (pea, "PEA"), (erc, "ERC"), (nepo, "NEPO"))
        # Unchecked: a node a block behind EGAT's commit would try the ballot on a state
        # without the proposal; what is tested here is the relay, not the check.
        sent = [(api, api.send(KEYS[code], ballot, check=False)) for api, code in voters]
        for api, tx_hash in sent:
            assert api.wait(tx_hash, timeout=WAIT).status == "committed"

        def proposal() -> dict[str, Any]:
            found: dict[str, Any] = egat.get(f"/governance/proposals/{proposal_id}")
            return found

        tallied = proposal()
        assert (tallied["yes"], tallied["no"], len(tallied["ballots"])) == (39_000, 0, 5)

        def in_force() -> bool:
            found = proposal()
            assert found["status"] in ("VOTING", "PASSED", "EXECUTED"), found
            executed = found["status"] == "EXECUTED"
            return executed and egat.health()["height"] >= found["execute_height"] + 2

        wait(in_force, "the proposal did not execute")
        execute_height = int(proposal()["execute_height"])
        first_signing = execute_height + 2
        events = egat.block(execute_height)["end_events"]
        kinds = [e["kind"] for e in events]
        assert kinds.index("proposal_executed") + 1 == kinds.index("validator_added")
        added = events[kinds.index("validator_added")]["attrs"]
        assert (added["power"], added["from_height"]) == (NEPO_POWER, first_signing)
        after = egat.get("/validators")
        assert after["total_power"] == 39_000
        member = next(m for m in after["members"] if m["address"] == _text("NEPO"))
        assert (member["power"], member["jailed"], member["authority"]) == (
            NEPO_POWER,
            False,
            "NEPO",
        )
        assert nepo.health()["validating"] is True  # the same process, now a signer

        # --- NEPO's precommits reach the commit certificates --------------------------------
        def nepo_signed_one() -> bool:
            top = int(egat.health()["height"])
            return any(_text("NEPO") in _signers(egat, h) for h in range(first_signing, top + 1))

        wait(nepo_signed_one, "NEPO's vote never made it into a commit certificate")
        for h in range(1, first_signing):
            assert _text("NEPO") not in _signers(egat, h), h

        # --- EGAT stops: the others commit only because NEPO signs ------------------------
        # (the arithmetic is in the module docstring: 23,000 alone, 29,000 with NEPO, > 26,000
        # needed)
        procs[egat_home].terminate()
        procs[egat_home].wait(30)
        # EGAT's last commit is E; it may have precommitted E + 1, never anything later.
        without_egat = _height(egat_home) + 2
        target = without_egat + 5
        wait(lambda: _height(mea_home) >= target, "no commits without EGAT")
        for h in range(without_egat, target + 1):
            signers = _signers(mea, h)
            assert _text("EGAT") not in signers and _text("NEPO") in signers, (h, signers)
            assert 3 * _power(signers) > 2 * 39_000, (h, signers)
            assert 3 * _power(signers - {_text("NEPO")}) <= 2 * 39_000  # not without NEPO

        # --- NEPO stops too: MEA, PEA and ERC alone hold no quorum ------------------------
        procs[nepo_home].terminate()
        procs[nepo_home].wait(30)
        time.sleep(2)  # let a height already under way finish
        stalled = max(_height(h) for h in (mea_home, pea_home, erc_home))
        time.sleep(4)
        assert max(_height(h) for h in (mea_home, pea_home, erc_home)) == stalled

        # --- from the stores: the same certified blocks, NEPO's votes in the certificates ---
        for api in clients:
            api.close()
        clients.clear()
        _stop(procs)
        survivors = [mea_home, pea_home, erc_home, nepo_home]
        common = min(_height(h) for h in survivors)
        assert common >= target
        chains = []
        for home in [*survivors, egat_home]:
            top = common if home in survivors else _height(egat_home)
            with Store(home / "data") as db:
                stored = [db.block(n) for n in range(1, top + 1)]
            assert all(s is not None for s in stored), home
            chains.append([s[0] for s in stored if s is not None])
            if home in survivors:
                for s in stored[without_egat - 1 :]:
                    assert s is not None
                    votes = msgspec.msgpack.decode(s[1], type=tuple[Vote, ...])
                    assert KEYS["NEPO"].address in {v.validator for v in votes}, home
        assert all(chain == chains[0] for chain in chains[1:4])
        assert chains[4] == chains[0][: len(chains[4])]  # EGAT's chain is a prefix of theirs
    finally:
        for api in clients:
            api.close()
        _stop(procs)


def test_an_operator_prepares_the_new_authoritys_follower_from_the_cli(tmp_path: Path) -> None:
    """The first steps of docs/governance.md's worked example, without processes: the
    devnet keeps NEPO's dev key, `keys show` gives EGAT's peer id, and `init` with NEPO's
    key makes a home that follows (no genesis power) and dials its peer."""
    runner = CliRunner()
    homes = init_devnet(tmp_path, "gridtokenx-gov-init", 0, 26_650)
    nepo_key = tmp_path / "keys" / "nepo.key"
    assert keystore.load_key(nepo_key, "", allow_insecure=True) == KEYS["NEPO"]
    shown = runner.invoke(
        app, ["keys", "show", str(homes[0] / "node_key.json"), "--allow-insecure"]
    )
    assert shown.exit_code == 0, shown.output
    peer_id = KEYS["EGAT"].address.hex()
    assert f"peer id     {peer_id}" in shown.stdout
    follower = tmp_path / "nepo"
    args = ["init", "--home", str(follower), "--genesis", str(homes[0] / "genesis.json"),
            "--key", str(nepo_key), "--insecure-dev-key", "--listen-port", "26654",
            "--peer", f"127.0.0.1:26650:{peer_id}"]  # fmt: skip
    made = runner.invoke(app, args)
    assert made.exit_code == 0, made.output
    assert "full node (no voting power)" in made.stdout
    config, _, key = load_home(follower, passphrase="")
    assert key == KEYS["NEPO"] and config.dial_all
    assert config.peers == (("127.0.0.1", 26_650, peer_id),)
