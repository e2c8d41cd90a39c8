"""`gridtokenx tx`, `query` and `keys import/list` against a real one-validator node with its
API on 127.0.0.1 (tests/test_api_harness.py): every transaction command waits for
finality, refusals carry the ledger's code and exit 1, bad input exits 2 with nothing
submitted, and --json output parses."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner, Result

from gridtokenx.cli.main import app
from gridtokenx.client import ApiError, Client
from gridtokenx.ledger.params import Governance
from gridtokenx.node import keystore
from gridtokenx.wire import crypto, tx
from tests.api.test_api_harness import (
    CHAIN,
    EGAT,
    ERC,
    INTERVAL,
    KEYS,
    MEA,
    MWH,
    Cast,
    LocalNode,
    build_cast,
    key,
    produce,
    running_cast,
    solar_farm,
    text,
)
from tests.cli.test_errors import error_lines
from tests.ledger.test_validator_changes import equivocation

pytestmark = pytest.mark.process

PASSPHRASE = "correct horse battery staple"
runner = CliRunner()


class Live:
    """The running node, its SDK client, the cast and a key file per signer."""

    def __init__(self, node: LocalNode, api: Client, cast: Cast, keys: Path) -> None:
        self.node, self.api, self.cast, self.keys = node, api, cast, keys
        signers = {
            "mea": MEA,
            "erc": ERC,
            "egat": EGAT,
            "pea": KEYS["PEA"],
            "nepo": KEYS["NEPO"],
            "home": cast.home,
            "office": cast.office,
            "custodian": cast.custodian,
            "meter": cast.meter,
        }
        for name, signer in signers.items():
            keystore.save_insecure_dev_key(keys / f"{name}.key", signer)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        node = [] if "--node" in args else ["--node", self.node.url]
        return runner.invoke(app, [*args, *node], env=env)

    def tx(self, signer: str, *args: str, env: dict[str, str] | None = None) -> Result:
        path = str(self.keys / f"{signer}.key")
        return self.run("tx", *args, "--key", path, "--allow-insecure", env=env)

    def tx_json(self, signer: str, *args: str) -> dict[str, Any]:
        result = self.tx(signer, *args, "--json")
        assert result.exit_code == 0, result.output
        receipt: dict[str, Any] = json.loads(result.stdout)
        assert receipt["status"] == "committed" and receipt["height"] >= 1
        return receipt

    def query(self, *args: str) -> Any:
        result = self.run("query", *args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def mempool(self) -> int:
        assert self.node.node is not None
        app_ = self.node.node.app
        return self.node.on_loop(lambda: len(app_.mempool))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with running_cast(tmp_path_factory.mktemp("cli-client")) as (node, api, cast):
        yield Live(node, api, cast, tmp_path_factory.mktemp("keys"))


def kinds(receipt: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in receipt["events"]]


def attrs(receipt: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e["attrs"] for e in receipt["events"] if e["kind"] == kind)  # type: ignore[no-any-return]


def one_error_line(result: Result, code: str, status: int) -> str:
    """The error contract (tests.cli.test_errors), with exactly one line."""
    (message,) = error_lines(result, code, status)
    assert "Traceback" not in result.output
    return f"error: {code}: {message}"


def wait_until(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# --- transactions ------------------------------------------------------------------------
def test_transfer_waits_for_finality_and_shows_events(live: Live) -> None:
    before = live.api.balance(live.cast.home).thb_satang
    result = live.tx("office", "transfer", "THB", text(live.cast.home), "1.50THB")
    assert result.exit_code == 0, result.output
    assert "committed at height" in result.stdout and "transfer" in result.stdout
    assert live.api.balance(live.cast.home).thb_satang == before + 150
    receipt = live.tx_json("office", "transfer", "thb", text(live.cast.home), "2satang")
    assert "transfer" in kinds(receipt)
    assert live.api.tx(receipt["hash"]).height == receipt["height"]
    assert live.api.balance(live.cast.home).thb_satang == before + 152


def test_no_wait_returns_the_hash_at_once(live: Live) -> None:
    result = live.tx(
        "office", "transfer", "THB", text(live.cast.home), "1satang", "--no-wait", "--json"
    )
    assert result.exit_code == 0, result.output
    submitted = json.loads(result.stdout)
    assert submitted["status"] == "pending" and len(submitted["hash"]) == 64
    assert live.api.wait(submitted["hash"]).status == "committed"


def test_registry_and_licence_commands(live: Live) -> None:
    who, meter = key("cli/solar-home"), key("cli/solar-meter")
    receipt = live.tx_json("mea", "register-participant", text(who), "bkk", "household", "Nok")
    assert kinds(receipt) == ["participant_registered"]
    assert live.query("participant", text(who))["name"] == "Nok"
    receipt = live.tx_json(
        "mea",
        "register-meter",
        meter.public_key.hex(),
        text(who),
        "BKK",
        "solar",
        "3.5kW",
        "--export-register",
        "12kWh",
    )
    shown = live.query("meter", text(meter))
    assert shown["rated_capacity_w"] == 3_500 and shown["owner"] == text(who)
    expiry = str(live.node.time + 86_400)
    live.tx_json("erc", "grant-licence", text(who), "seller", "--expires", expiry)
    licences = live.query("licences", "--holder", text(who))["items"]
    assert [(x["kind"], x["valid"]) for x in licences] == [("SELLER", True)]
    live.tx_json("erc", "revoke-licence", text(who), "seller")
    licences = live.query("licences", "--holder", text(who))["items"]
    assert [(x["kind"], x["valid"]) for x in licences] == [("SELLER", False)]
    account = live.query("account", text(who))
    assert account["participant"]["zone"] == "BKK" and len(account["meters"]) == 1


def test_thb_issue_and_redeem(live: Live) -> None:
    custodian = live.api.balance(live.cast.custodian).thb_satang
    live.tx_json("custodian", "issue-thb", text(live.cast.custodian), "10THB")
    assert live.api.balance(live.cast.custodian).thb_satang == custodian + 1_000
    receipt = live.tx_json("custodian", "redeem-thb", "2.5THB")
    assert receipt["events"]
    assert live.api.balance(live.cast.custodian).thb_satang == custodian + 750


def test_meter_reading_signed_by_the_meter_mints_grid(live: Live) -> None:
    first = live.query("meter", text(live.cast.meter))["first_interval"]
    live.node.advance(2 * INTERVAL)
    wait_until(lambda: live.api.health()["latest_time"] >= first + INTERVAL)
    before = live.api.balance(live.cast.home).grid_wh
    live.tx_json("meter", "reading", str(first), "0.1kWh", "900Wh")
    assert live.api.balance(live.cast.home).grid_wh == before + 900
    readings = live.query("meter", text(live.cast.meter), "--readings")["items"]
    assert [r["export_wh"] for r in readings] == [900]


def test_order_place_amend_trade_and_cancel(live: Live) -> None:
    interval = (live.api.health()["latest_time"] // INTERVAL + 2) * INTERVAL
    sold = live.tx_json("home", "order", "place", "sell", "BKK", str(interval), "1kWh", "3THB/kWh")
    order_id = attrs(sold, "order_accepted")["order"]
    live.tx_json("home", "order", "amend", str(order_id), "800Wh", "300satang/kWh")
    book = live.query("book", "BKK", str(interval))
    assert book["asks"] == [{"price": 300, "quantity_wh": 800, "orders": 1}]
    table = live.run("query", "book", "BKK", str(interval))
    assert table.exit_code == 0 and "0.800" in table.stdout and "3.00" in table.stdout
    bought = live.tx_json(
        "office",
        "order",
        "place",
        "buy",
        "bkk",
        str(interval),
        "600Wh",
        "3.10THB/kWh",
        "--tif",
        "ioc",
    )
    assert attrs(bought, "trade")["quantity_wh"] == 600
    trades = live.query("trades", "--interval", str(interval))["items"]
    assert len(trades) == 1 and trades[0]["buyer"] == text(live.cast.office)
    mine = live.query("orders", "--account", text(live.cast.home))["items"]
    assert [(o["id"], o["remaining_wh"]) for o in mine] == [(order_id, 200)]
    in_book = live.query("orders", "--zone", "BKK", "--interval", str(interval))["items"]
    assert [o["id"] for o in in_book] == [order_id]
    cancelled = live.tx_json("home", "order", "cancel", str(order_id))
    assert cancelled["events"]
    assert live.query("orders", "--id", str(order_id))["status"] != "OPEN"
    prices = live.query("prices", "BKK", "--from", str(interval), "--to", str(interval + INTERVAL))
    assert prices["intervals"][0]["trades"] == 1


def test_halt_and_resume_commands(live: Live) -> None:
    halted = live.tx_json("egat", "halt", "BKK", "--reason", "feeder fault")
    assert halted["events"]
    live.tx_json("egat", "resume", "BKK")


def test_the_validator_set_changes_only_by_proposal(live: Live) -> None:
    """The ERC's direct commands are gone, and so are their transactions: an old signed
    SetValidator (tag 13) is an unknown type at the API. Proposals are refused at once
    when they could not execute."""
    for retired in ("set-validator", "unjail-validator"):
        gone = live.run("tx", retired, "--help")
        assert gone.exit_code == 2 and "No such command" in gone.output
    newcomer = key("cli/validator")
    unsigned = [CHAIN, live.api.balance(ERC).nonce, ERC.public_key, 0, [13, newcomer.public_key, 1]]
    message = tx.TX_SIGNING_DOMAIN + b"\x00" + msgspec.msgpack.encode(unsigned)
    with pytest.raises(ApiError) as refused:
        live.api.submit(msgspec.msgpack.encode([unsigned, ERC.sign(message)]))
    assert refused.value.code == "UNKNOWN_TX_TYPE"
    one_error_line(live.tx("erc", "propose-unjail", text(EGAT)), "VALIDATOR_NOT_JAILED", 1)
    one_error_line(live.tx("erc", "propose-unjail", text(newcomer)), "UNKNOWN_VALIDATOR", 1)
    emergency = live.tx_json("erc", "propose-validator", newcomer.public_key.hex(), "1",
                             "--emergency", "--title", "standby validator")  # fmt: skip
    assert attrs(emergency, "proposal_submitted")["kind"] == "EMERGENCY"
    mea_emergency = live.tx("mea", "propose-validator", newcomer.public_key.hex(), "1",
                            "--emergency")  # fmt: skip
    one_error_line(mea_emergency, "UNAUTHORISED", 1)


def test_grid_commands(live: Live) -> None:
    at = str(live.api.block()["header"]["time"])  # the node's clock, not the test's
    status = live.tx_json(
        "egat", "grid-status", "50010", "--link", "CEN-BKK:700000:450000",
        "--zone", "BKK:2100000:9300000", "--measured-at", at,
    )  # fmt: skip
    assert kinds(status) == ["transmission_status", "link_capacity"]
    assert attrs(status, "link_capacity") == {
        "link": "BKK-CEN",
        "from_kw": 800_000,
        "to_kw": 700_000,
    }
    zone_report = live.tx_json("mea", "zone-status", "BKK", "8200000", "40000", "--measured-at", at)
    assert attrs(zone_report, "distribution_status")["headroom_kw"] == 40_000
    halted = live.tx_json("egat", "emergency", "NTH", "NEA", "--reason", "N-1 contingency")
    assert kinds(halted).count("zone_halted") == 2
    cleared = live.tx_json("egat", "clear-emergency", "NTH", "NEA")
    assert kinds(cleared) == ["zone_resumed", "zone_resumed"]
    one_error_line(live.tx("mea", "clear-emergency", "BKK"), "ZONE_NOT_HALTED", 1)


def test_governance_commands(live: Live) -> None:
    proposed = live.tx_json(
        "egat", "propose-param", "tariffs.holidays", "20260413,20260414", "--title", "Songkran"
    )
    submitted = attrs(proposed, "proposal_submitted")
    assert submitted["kind"] == "PARAMETER" and submitted["proposer"] == "EGAT"
    pid = str(submitted["id"])
    voted = live.tx_json("mea", "vote", pid, "yes")
    assert attrs(voted, "vote_cast") == {
        "id": int(pid),
        "voter": "MEA",
        "choice": "YES",
        "weight": 8000,
    }
    one_error_line(live.tx("mea", "vote", pid, "no"), "ALREADY_VOTED", 1)
    one_error_line(live.tx("erc", "vote", pid, "veto"), "VETO_NOT_ALLOWED", 1)
    one_error_line(live.tx("home", "vote", pid, "yes"), "UNAUTHORISED", 1)
    market = live.tx("egat", "propose-param", "gate_closure_seconds", "600")
    one_error_line(market, "INVALID_PROPOSAL", 1)
    one_error_line(live.tx("egat", "propose-param", "min_fee_satang", "x"), "BAD_INPUT", 2)
    newcomer = key("cli/voted-validator")
    validator = live.tx_json("erc", "propose-validator", newcomer.public_key.hex(), "1")
    assert attrs(validator, "proposal_submitted")["kind"] == "VALIDATOR"
    assert kinds(live.tx_json("egat", "withdraw-proposal", pid)) == ["proposal_withdrawn"]
    one_error_line(live.tx("mea", "vote", pid, "yes"), "VOTING_CLOSED", 1)


def test_propose_interconnector_with_units(live: Live) -> None:
    proposed = live.tx_json("egat", "propose-interconnector", "NTH", "STH", "200MW", "2.5%")
    assert attrs(proposed, "proposal_submitted")["kind"] == "PARAMETER"
    (pid,) = [p["id"] for p in live.api.get("/governance/proposals")["items"]][:1]
    action = live.api.get(f"/governance/proposals/{pid}")["actions"][0]
    assert (action["capacity_kw"], action["loss_basis_points"]) == (200_000, 250)
    for bad in (("NTH", "STH", "200", "1%"), ("NTH", "STH", "1.5W", "1%"),
                ("NTH", "STH", "1MW", "100%"), ("NTH", "nth", "1MW", "1bp")):  # fmt: skip
        one_error_line(live.tx("egat", "propose-interconnector", *bad), "BAD_INPUT", 2)
    one_error_line(live.tx("egat", "propose-interconnector", "NTH", "XYZ", "1MW", "1%"),
                   "UNKNOWN_ZONE", 1)  # fmt: skip


def test_delegate_vote_by_code_or_address_and_clear(live: Live) -> None:
    delegated = live.tx_json("erc", "delegate-vote", "egat")
    assert attrs(delegated, "vote_delegated") == {"delegator": "ERC", "delegate": "EGAT"}
    one_error_line(live.tx("erc", "delegate-vote", text(EGAT)), "DELEGATION_UNCHANGED", 1)
    moved = live.tx_json("erc", "delegate-vote", text(MEA))  # by address, looked up on the node
    assert attrs(moved, "vote_delegated") == {
        "delegator": "ERC",
        "delegate": "MEA",
        "previous_delegate": "EGAT",
    }
    assert live.api.get("/governance")["delegations"] == {"ERC": "MEA"}
    one_error_line(live.tx("mea", "delegate-vote", "ERC"), "DELEGATION_CHAIN", 1)
    one_error_line(live.tx("mea", "delegate-vote", "MEA"), "SELF_DELEGATION", 1)
    proposed = live.tx_json("egat", "propose-param", "min_fee_satang", "1", "--title", "fees")
    pid = attrs(proposed, "proposal_submitted")["id"]
    voted = attrs(live.tx_json("mea", "vote", str(pid), "no"), "vote_cast")
    assert (voted["weight"], voted["delegated"], voted["on_behalf"]) == (8000, 7000, "ERC")
    found = live.api.get(f"/governance/proposals/{pid}")
    assert found["no"] == 15_000
    mine = next(b for b in found["ballots"] if b["voter"] == text(MEA))
    assert (mine["carried_weight"], mine["on_behalf"]) == (15_000, [text(ERC)])
    cleared = live.tx_json("erc", "delegate-vote", "--clear")
    assert attrs(cleared, "vote_delegation_cleared") == {"delegator": "ERC", "delegate": "MEA"}
    one_error_line(live.tx("erc", "delegate-vote", "--clear"), "NOT_DELEGATING", 1)
    one_error_line(live.tx("erc", "delegate-vote", "XYZ"), "INVALID_DELEGATE", 1)
    stranger = one_error_line(live.tx("erc", "delegate-vote", text(live.cast.home)),
                              "INVALID_DELEGATE", 1)  # fmt: skip
    assert "is not an authority" in stranger
    nonce = live.api.balance(ERC).nonce
    for bad in (["EGAT", "--clear"], [], ["gtx-not-an-address"], ["E" * 17]):
        one_error_line(live.tx("erc", "delegate-vote", *bad), "BAD_INPUT", 2)
    assert live.api.get("/governance")["delegations"] == {}
    assert live.api.balance(ERC).nonce == nonce
    assert kinds(live.tx_json("egat", "withdraw-proposal", str(pid))) == ["proposal_withdrawn"]


# --- a vote that unjails, end to end on a node with short voting periods ------------------
SHORT_VOTES = Governance(
    voting_period_heights=100,  # 5 s at 20 blocks a second: time for four CLI votes
    timelock_heights=2,
    emergency_voting_period_heights=100,
    emergency_timelock_heights=2,
)


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path = tmp_path_factory.mktemp("cli-governed")
    with LocalNode(path / "data", governance=SHORT_VOTES) as node, node.client() as api:
        yield Live(node, api, build_cast(api), tmp_path_factory.mktemp("governed-keys"))


def _member(live: Live, who: crypto.PrivateKey) -> dict[str, Any] | None:
    members = live.query("validators")["members"]
    return next((m for m in members if m["address"] == text(who)), None)


def _vote_through(live: Live, receipt: dict[str, Any]) -> int:
    """Every authority with a node key here votes yes with `tx vote`; then wait until the
    proposal has executed and its change is in force (two heights later)."""
    proposal_id = attrs(receipt, "proposal_submitted")["id"]
    for voter in ("egat", "mea", "pea", "erc"):  # 33,000 of 39,000
        live.tx_json(voter, "vote", str(proposal_id), "yes")

    def executed() -> bool:
        found = live.api.get(f"/governance/proposals/{proposal_id}")
        assert found["status"] in ("VOTING", "PASSED", "EXECUTED"), found
        return found["status"] == "EXECUTED" and (
            live.api.health()["height"] >= found["execute_height"] + 2
        )

    wait_until(executed, 60)
    return int(proposal_id)


def test_a_jailed_validator_is_voted_back_with_propose_unjail(governed: Live) -> None:
    live = governed
    standby = key("cli/standby-validator")  # power 1: EGAT's 10,000 still commits alone
    added = live.tx_json("egat", "propose-validator", standby.public_key.hex(), "1")
    _vote_through(live, added)
    joined = _member(live, standby)
    assert joined is not None and (joined["power"], joined["jailed"]) == (1, False)
    height = live.api.health()["height"]
    evidence = equivocation(CHAIN, standby, height)  # it signed two blocks at one height
    node = live.node.node
    assert node is not None
    live.node.on_loop(lambda: node.app.report_evidence(evidence))
    wait_until(lambda: (_member(live, standby) or {}).get("jailed") is True, 30)

    one_error_line(live.tx("mea", "propose-unjail", text(standby), "--emergency"),
                   "UNAUTHORISED", 1)  # fmt: skip
    proposed = live.tx_json("erc", "propose-unjail", text(standby), "--title", "pardoned")
    submitted = attrs(proposed, "proposal_submitted")
    assert (submitted["kind"], submitted["proposer"]) == ("VALIDATOR", "ERC")
    found = live.api.get(f"/governance/proposals/{submitted['id']}")
    assert found["actions"] == [{"type": "ValidatorUnjail", "address": text(standby)}]
    assert found["title"] == "pardoned"
    _vote_through(live, proposed)
    back = _member(live, standby)
    assert back is not None and (back["power"], back["jailed"]) == (1, False)
    one_error_line(live.tx("erc", "propose-unjail", text(standby)), "VALIDATOR_NOT_JAILED", 1)


def test_a_ledger_refusal_exits_1_with_its_code_and_changes_nothing(live: Live) -> None:
    before = live.api.balance(live.cast.home)
    result = live.tx("home", "transfer", "THB", text(live.cast.office), "1000000THB")
    line = one_error_line(result, "INSUFFICIENT_BALANCE", 1)  # tried first: never sent
    assert "nothing was sent" in line and "the signer holds" in line
    unchecked = live.tx("home", "transfer", "THB", text(live.cast.office), "1000000THB",
                        "--no-check")  # fmt: skip
    # Sent unchecked, it goes into a block and fails there: its nonce is used, no THB moves
    # (the fee is 0 here), and the error says where.
    assert "failed in block" in one_error_line(unchecked, "INSUFFICIENT_BALANCE", 1)
    after = live.api.balance(live.cast.home)
    assert (after.thb_satang, after.nonce) == (before.thb_satang, before.nonce + 1)
    stranger = live.keys / "stranger.key"
    keystore.save_insecure_dev_key(stranger, key("cli/stranger"))
    unknown = live.run("tx", "redeem-thb", "1THB", "--key", str(stranger), "--allow-insecure")
    assert "register it first" in one_error_line(unknown, "UNKNOWN_SENDER", 1)


@pytest.mark.parametrize(
    "args",
    [
        ["transfer", "THB", "{to}", "1.5"],  # no unit
        ["transfer", "GRID", "{to}", "5THB"],  # wrong unit for the asset
        ["transfer", "GRID", "{to}", "1.0005kWh"],  # not whole Wh
        ["transfer", "THB", "gtx-not-an-address", "1THB"],
        ["transfer", "EUR", "{to}", "1THB"],
        ["transfer", "THB", "{to}", "1THB", "--fee", "1"],
        ["transfer", "THB", "{to}", "1THB", "--node", "ftp://127.0.0.1:1"],
        ["order", "place", "buy", "BKK", "2026-01-01T10:00", "1kWh", "3THB/kWh"],  # naive time
        ["order", "place", "buy", "B1", "1767236400", "1kWh", "3THB/kWh"],
        ["order", "place", "buy", "BKK", "1767236400", "1kWh", "3THB"],  # price needs /kWh
        ["order", "place", "hold", "BKK", "1767236400", "1kWh", "3THB/kWh"],
        ["order", "place", "buy", "BKK", "1767236400", "1kWh", "3THB/kWh", "--tif", "day"],
        ["order", "cancel", "x1"],
        ["register-meter", "abcd", "{to}", "BKK", "solar", "5kW"],
        ["propose-validator", "{pk}", "100001"],
        ["propose-validator", "abcd", "1"],
        ["propose-unjail", "gtx-not-an-address"],
        ["propose-unjail", "{to}", "--title", "x" * 257],
        ["halt", "BKK", "--reason", "x" * 129],
        ["grid-status", "50000", "--link", "BKK:1:1"],  # no A-B pair
        ["grid-status", "50000", "--zone", "BKK:1"],
        ["grid-status", "50Hz"],
        ["zone-status", "BKK", "1kW", "1"],
        ["emergency", "BKK", "--reason", "x" * 129],
    ],
)
def test_bad_input_exits_2_and_submits_nothing(live: Live, args: list[str]) -> None:
    fill = {"{to}": text(live.cast.home), "{pk}": key("cli/pk").public_key.hex()}
    before = live.api.balance(live.cast.office).nonce
    result = live.tx("office", *(fill.get(a, a) for a in args))
    one_error_line(result, "BAD_INPUT", 2)
    assert live.mempool() == 0 and live.api.balance(live.cast.office).nonce == before


def test_key_problems_are_one_line_errors(live: Live, tmp_path: Path) -> None:
    to = text(live.cast.home)
    missing = live.run("tx", "redeem-thb", "1THB", "--key", str(tmp_path / "none.key"))
    one_error_line(missing, "BAD_INPUT", 2)
    insecure = live.run("tx", "redeem-thb", "1THB", "--key", str(live.keys / "custodian.key"))
    one_error_line(insecure, "INSECURE_KEY", 1)
    encrypted = tmp_path / "office.key"
    env = {"GRIDTOKENX_PASSPHRASE": PASSPHRASE}
    imported = runner.invoke(
        app,
        ["keys", "import", str(encrypted), "--private-key-hex", live.cast.office.seed.hex()],
        env=env,
    )
    assert imported.exit_code == 0, imported.output

    def pay(passphrase: str) -> Result:
        args = ("tx", "transfer", "THB", to, "1satang", "--key", str(encrypted))
        return live.run(*args, env={"GRIDTOKENX_PASSPHRASE": passphrase})

    signed = pay(PASSPHRASE)
    assert signed.exit_code == 0 and "committed" in signed.stdout, signed.output
    assert "passphrase" in one_error_line(pay("wrong"), "KEYSTORE", 1)
    no_passphrase = pay("")
    one_error_line(no_passphrase, "NO_PASSPHRASE", 1)


# --- queries -----------------------------------------------------------------------------
def test_queries_as_tables_and_json(live: Live) -> None:
    home = text(live.cast.home)
    balance = live.query("balance", home)
    assert balance["address"] == home and balance["nonce"] >= 0
    table = live.run("query", "balance", home)
    assert table.exit_code == 0 and "THB" in table.stdout and "kWh" in table.stdout
    health = live.query("health")
    assert health["chain_id"] == "gridtokenx-api-test" and health["height"] >= 1
    latest = live.query("block")
    assert latest["height"] >= 1
    assert live.query("block", "1")["height"] == 1
    assert live.query("block", latest["hash"])["height"] == latest["height"]
    participants = live.query("participant")["items"]
    assert home in [p["address"] for p in participants]
    shown = live.run("query", "participant", home)
    assert shown.exit_code == 0 and "Somchai" in shown.stdout
    receipt = live.tx_json("office", "transfer", "THB", home, "1satang")
    status = live.query("tx", receipt["hash"])
    assert status["status"] == "committed" and status["height"] == receipt["height"]
    assert live.run("query", "tx", receipt["hash"]).stdout.startswith("committed at height")
    assert live.query("validators")["total_power"] > 0
    assert isinstance(live.query("trades")["items"], list)
    assert len(live.query("prices", "BKK")["intervals"]) == 96
    for name in ("health", "validators", "trades", "licences", "block"):
        assert live.run("query", name).exit_code == 0


def test_query_failures_exit_with_their_codes(live: Live) -> None:
    one_error_line(live.run("query", "balance", text(key("cli/nobody"))), "NOT_FOUND", 1)
    one_error_line(live.run("query", "balance", "gtx-typo"), "BAD_INPUT", 2)
    one_error_line(live.run("query", "orders"), "BAD_INPUT", 2)
    one_error_line(live.run("query", "orders", "--zone", "BKK"), "BAD_INPUT", 2)
    one_error_line(live.run("query", "block", "abc"), "BAD_INPUT", 2)
    one_error_line(live.run("query", "block", "999999"), "NOT_FOUND", 1)
    one_error_line(live.run("query", "tx", "ab" * 32), "NOT_FOUND", 1)
    misaligned = live.run("query", "prices", "BKK", "--from", "1767229201", "--to", "1767240000")
    one_error_line(misaligned, "INVALID_REQUEST", 2)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_node_is_one_line_from_a_real_process() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    out = subprocess.run(
        [sys.executable, "-m", "gridtokenx", "query", "health", "--node", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: UNREACHABLE: "), out.stderr


# --- keys import / list ------------------------------------------------------------------
def test_keys_import_encrypts_and_never_overwrites(tmp_path: Path) -> None:
    env = {"GRIDTOKENX_PASSPHRASE": PASSPHRASE}
    seed = key("cli/import").seed
    path = tmp_path / "a.key"
    made = runner.invoke(
        app, ["keys", "import", str(path), "--private-key-hex", seed.hex()], env=env
    )
    assert made.exit_code == 0, made.output
    assert crypto.address_to_text(crypto.PrivateKey(seed).address) in made.stdout
    assert keystore.load_key(path, PASSPHRASE).seed == seed
    assert "seed" not in json.loads(path.read_text())  # encrypted, not a dev key
    original = path.read_bytes()
    again = runner.invoke(
        app, ["keys", "import", str(path), "--private-key-hex", "11" * 32], env=env
    )
    one_error_line(again, "KEY_EXISTS", 1)
    assert path.read_bytes() == original
    seed_file = tmp_path / "seed.hex"
    full = crypto.PrivateKey(seed)
    seed_file.write_text((full.seed + full.public_key).hex() + "\n")  # libsodium's 64 bytes
    from_file = runner.invoke(
        app, ["keys", "import", str(tmp_path / "b.key"), "--from-file", str(seed_file)], env=env
    )
    assert from_file.exit_code == 0, from_file.output
    piped = runner.invoke(
        app,
        ["keys", "import", str(tmp_path / "c.key"), "--from-file", "-"],
        env=env,
        input=seed.hex(),
    )
    assert piped.exit_code == 0, piped.output
    for args in (
        [],
        ["--private-key-hex", "zz"],
        ["--private-key-hex", "11" * 31],
        ["--private-key-hex", "11" * 32, "--from-file", str(seed_file)],
    ):
        bad = runner.invoke(app, ["keys", "import", str(tmp_path / "d.key"), *args], env=env)
        one_error_line(bad, "BAD_INPUT", 2)
    assert not (tmp_path / "d.key").exists()
    no_pass = runner.invoke(
        app,
        ["keys", "import", str(tmp_path / "e.key"), "--private-key-hex", seed.hex()],
        env={"GRIDTOKENX_PASSPHRASE": ""},
    )
    one_error_line(no_pass, "NO_PASSPHRASE", 1)
    assert not (tmp_path / "e.key").exists()


def test_keys_list_shows_every_key_file(tmp_path: Path) -> None:
    keys = tmp_path / ".gridtokenx" / "keys"
    keys.mkdir(parents=True)
    dev, secret = key("cli/list-dev"), key("cli/list-secret")
    keystore.save_insecure_dev_key(keys / "dev.key", dev)
    keystore.save_key(keys / "secret.json", secret, PASSPHRASE)
    (keys / "notes.txt").write_text("not a key")
    env = {"HOME": str(tmp_path), "GRIDTOKENX_PASSPHRASE": PASSPHRASE}
    listed = runner.invoke(app, ["keys", "list", "--json"], env=env)  # the default directory
    assert listed.exit_code == 0, listed.output
    rows = {r["file"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {"dev.key", "secret.json"}
    assert rows["dev.key"]["public_key"] == dev.public_key.hex() and rows["dev.key"]["insecure"]
    assert rows["secret.json"]["address"] == text(secret)
    assert rows["secret.json"]["public_key"] is None and not rows["secret.json"]["insecure"]
    decrypted = runner.invoke(
        app, ["keys", "list", "--dir", str(keys), "--decrypt", "--json"], env=env
    )
    assert decrypted.exit_code == 0, decrypted.output
    rows = {r["file"]: r for r in json.loads(decrypted.stdout)}
    assert rows["secret.json"]["public_key"] == secret.public_key.hex()
    table = runner.invoke(app, ["keys", "list", str(keys)], env=env)
    assert table.exit_code == 0 and "dev.key" in table.stdout and "secret.json" in table.stdout
    both = runner.invoke(app, ["keys", "list", str(keys), "--dir", str(keys)])
    one_error_line(both, "BAD_INPUT", 2)
    missing = runner.invoke(app, ["keys", "list", str(tmp_path / "none")])  # none made yet
    assert missing.exit_code == 0 and "does not exist yet" in missing.stdout
    assert (
        json.loads(runner.invoke(app, ["keys", "list", str(tmp_path / "none"), "--json"]).stdout)
        == []
    )
    one_error_line(runner.invoke(app, ["keys", "list", str(keys / "dev.key")]), "BAD_INPUT", 2)


# --- certificates, carbon, governance and grid -------------------------------------------
def test_certificate_commands_transfer_retire_and_read(live: Live) -> None:
    farm, meter = solar_farm(live.api, "cli-farm")
    keystore.save_insecure_dev_key(live.keys / "cli-farm.key", farm)
    issued = produce(live.node, live.api, meter, 2 * MWH)
    first, second = (e["attrs"]["id"] for e in issued.events if e["kind"] == "certificate_issued")
    farm_text, office = text(farm), text(live.cast.office)
    held = live.query("certificates", farm_text)
    assert [c["id"] for c in held["items"]] == [second, first]
    table = live.run("query", "certificates", farm_text)
    assert table.exit_code == 0 and "MWh" in table.stdout and "475" in table.stdout
    moved = live.tx_json("cli-farm", "transfer-certificate", str(first), office)
    assert attrs(moved, "certificate_transferred") == {"id": first, "from": farm_text, "to": office}
    assert [c["id"] for c in live.query("certificates", office, "--active")["items"]] == [first]
    retired = live.tx_json("office", "retire-certificate", str(first), "--beneficiary", "T77 2026")
    assert attrs(retired, "certificate_retired")["beneficiary"] == "T77 2026"
    assert [c["id"] for c in live.query("certificates", office, "--retired")["items"]] == [first]
    assert live.query("certificates", office, "--active")["items"] == []
    issued_to = live.query("certificates", farm_text, "--issued")["items"]
    assert [c["id"] for c in issued_to] == [second, first]
    one = live.query("certificate", str(first))
    assert one["retired"] is True and one["owner"] == office
    shown = live.run("query", "certificate", str(first))
    assert "1 MWh (1000000 Wh)" in shown.stdout and "475 kg CO2e" in shown.stdout
    day = str(one["issue_day"])
    carbon = live.query("carbon", farm_text, "--from-day", day, "--to-day", day)
    assert (carbon["issued_wh"], carbon["issued_avoided_g"]) == (2 * MWH, 950_000)
    iso = f"{day[:4]}-{day[4:6]}-{day[6:]}"
    zone = live.query("carbon", "--zone", "cen", "--from-day", iso)
    assert zone["zone"] == "CEN" and zone["issued_wh"] >= 2 * MWH
    drawn = live.run("query", "carbon", farm_text, "--from-day", day)
    assert drawn.exit_code == 0 and "issued MWh" in drawn.stdout and "950" in drawn.stdout
    # Refusals exit 1 with the ledger's code; nothing changes.
    again = live.tx("office", "retire-certificate", str(first), "--beneficiary", "twice")
    one_error_line(again, "CERTIFICATE_RETIRED", 1)
    unknown = live.tx("cli-farm", "transfer-certificate", "999999", office)
    one_error_line(unknown, "UNKNOWN_CERTIFICATE", 1)
    not_mine = live.tx("office", "transfer-certificate", str(second), farm_text)
    one_error_line(not_mine, "NOT_CERTIFICATE_OWNER", 1)
    assert live.query("certificate", str(second))["owner"] == farm_text
    one_error_line(live.run("query", "certificate", "999999"), "NOT_FOUND", 1)


@pytest.mark.parametrize(
    "args",
    [
        ["tx", "transfer-certificate", "x1", "{to}"],
        ["tx", "transfer-certificate", "1", "gtx-typo"],
        ["tx", "retire-certificate", "1", "--beneficiary", "  "],
        ["tx", "retire-certificate", "1", "--beneficiary", "tab\there"],
        ["query", "certificates", "{to}", "--retired", "--active"],
        ["query", "certificates", "gtx-typo"],
        ["query", "certificates", "{to}", "--after", "x"],
        ["query", "certificate", "one"],
        ["query", "carbon"],
        ["query", "carbon", "{to}", "--zone", "BKK"],
        ["query", "carbon", "{to}", "--from-day", "20260230"],
        ["query", "carbon", "--zone", "BKK", "--from-day", "2026/01/01"],
        ["query", "carbon", "--zone", "B1"],
        ["query", "carbon", "{to}", "--from-day", "20260102", "--to-day", "20260101"],
        ["query", "proposals", "--status", "lost"],
        ["query", "proposal", "x"],
    ],
)
def test_bad_certificate_and_governance_input_exits_2(live: Live, args: list[str]) -> None:
    filled = [text(live.cast.home) if a == "{to}" else a for a in args]
    before = live.api.balance(live.cast.office).nonce
    extra = ["--key", str(live.keys / "office.key"), "--allow-insecure"] if args[0] == "tx" else []
    one_error_line(live.run(*filled, *extra), "BAD_INPUT", 2)
    assert live.mempool() == 0 and live.api.balance(live.cast.office).nonce == before


def test_a_too_long_carbon_range_is_refused_by_the_node(live: Live) -> None:
    span = ("--from-day", "20250101", "--to-day", "20260102")
    result = live.run("query", "carbon", "--zone", "BKK", *span)
    assert "366" in one_error_line(result, "INVALID_REQUEST", 2)
    one_error_line(live.run("query", "carbon", "--zone", "XYZ"), "NOT_FOUND", 1)


def test_proposal_and_grid_queries(live: Live) -> None:
    proposed = live.tx_json("egat", "propose-param", "min_fee_satang", "9", "--title", "Fee nine")
    pid = attrs(proposed, "proposal_submitted")["id"]
    live.tx_json("mea", "vote", str(pid), "abstain")
    active = live.query("proposals", "--status", "active")["items"]
    mine = next(p for p in active if p["id"] == pid)
    assert (mine["title"], mine["abstain"], mine["status"]) == ("Fee nine", 8000, "VOTING")
    assert mine["quorum_bp"] > 0 and mine["approval_bp"] > 0
    table = live.run("query", "proposals", "--status", "VOTING")
    assert table.exit_code == 0 and "Fee" in table.stdout and "8000" in table.stdout
    one = live.query("proposal", str(pid))
    assert one["ballots"] == [
        {
            "voter": text(MEA),
            "choice": "ABSTAIN",
            "weight": 8000,
            "delegate": None,
            "carried_weight": 8000,
            "on_behalf": [],
        }
    ]
    shown = live.run("query", "proposal", str(pid))
    assert shown.exit_code == 0 and "ParamChange" in shown.stdout and "quorum" in shown.stdout
    one_error_line(live.run("query", "proposal", "999999"), "NOT_FOUND", 1)
    grid = live.query("grid")
    assert len(grid["zones"]) == 7 and grid["interconnectors"]
    drawn = live.run("query", "grid")
    assert drawn.exit_code == 0 and "interconnectors" in drawn.stdout
    assert "BKK-CEN" in drawn.stdout and "frequency" in drawn.stdout
