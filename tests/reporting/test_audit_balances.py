"""The audit export balances on its own: a simulated market day (the simulator's in-process
day, committed block by block by the application over RocksDB) is exported, and
`report verify` checks supply and every settlement from the files alone; a tampered
payment row and a tampered burn row are each named."""

from __future__ import annotations

import csv
import datetime
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridtokenx.cli.main import app as cli
from gridtokenx.ledger import accounts, genesis
from gridtokenx.reporting import balances, export, verify
from gridtokenx.reporting.extract import open_store, text
from gridtokenx.simulator import DayConfig, day_in_blocks
from gridtokenx.simulator.chain import commit_steps
from gridtokenx.storage.store import open_application

DAY = DayConfig(
    seed=5, participants=30, date=datetime.date(2026, 4, 22), start_minute=10 * 60, intervals=6
)


def build_day(data: Path) -> None:
    """The simulator's day, then each step's transactions proposed and committed as one
    block (as tests/golden/generate.py records its chain)."""
    day = day_in_blocks(DAY)
    proposer = genesis.dev_keys()["EGAT"].address
    app = open_application(day.genesis, data)
    try:
        for _ in commit_steps(app, day.blocks, proposer):
            pass
    finally:
        app.close()


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data = tmp_path_factory.mktemp("audit-day") / "data"
    build_day(data)
    yield data


@pytest.fixture(scope="module")
def exported(day: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit-export") / "erc"
    with open_store(day) as store:
        export.export_range(store, 1, store.height(), out, "csv")
    return out


def rows(directory: Path, kind: str) -> list[dict[str, str]]:
    with (directory / f"{kind}.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def edit(directory: Path, kind: str, number: int, column: str, value: str) -> None:
    """Change one cell of a CSV file (row `number`, 1-based, not counting the header)."""
    path = directory / f"{kind}.csv"
    with path.open(newline="") as f:
        lines = list(csv.reader(f))
    lines[number][lines[0].index(column)] = value
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(lines)


def copy_of(exported: Path, tmp_path: Path) -> Path:
    target = tmp_path / "erc"
    shutil.copytree(exported, target)
    return target


def test_a_demo_day_exports_every_movement_and_balances_from_the_files_alone(
    day: Path, exported: Path
) -> None:
    events = {kind: Counter(r["event"] for r in rows(exported, kind)) for kind in (
        "mints", "burns", "payments", "settlements", "zone_reports", "thb",
    )}  # fmt: skip
    assert events["mints"]["minted"] > 0 and events["thb"]["thb_issued"] > 0
    assert events["settlements"]["trade_settled"] > 0 and events["zone_reports"]["zone_report"]
    burnt_for = Counter(r["for"] for r in rows(exported, "burns"))
    paid_for = Counter(r["for"] for r in rows(exported, "payments") if r["event"] == "payment")
    assert burnt_for["import_covered"] > 0
    assert {"trade_value", "platform_fee", "tou_tariff"} <= set(paid_for), paid_for
    trades = rows(exported, "trades")
    assert trades and all(r["buy_order"] and r["sell_order"] for r in trades)
    # The export alone balances, and also matches the chain it came from.
    assert verify.verify(None, exported) == []
    with open_store(day) as store:
        assert verify.verify(store, exported) == []
        supply = accounts.supply(store)
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["supply"]["closing"] == {
        field: getattr(supply, field) for field in balances.SUPPLY_SERIES
    }
    minted = sum(int(r["amount"]) for r in rows(exported, "mints"))
    burnt = sum(int(r["amount"]) for r in rows(exported, "burns"))
    opening, closing = manifest["supply"]["opening"], manifest["supply"]["closing"]
    assert minted - burnt == (closing["grid_minted_wh"] - closing["grid_burned_wh"]) - (
        opening["grid_minted_wh"] - opening["grid_burned_wh"]
    )


def test_every_account_reconciles_from_genesis_to_the_head_in_wh_and_satang(
    day: Path, exported: Path
) -> None:
    """The export's movements account for every balance: each account's opening is its
    genesis balance and its closing its balance in the head's state, read from the state, not
    from the events. A movement without an event would leave its account off by it."""
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["escrow_account"] == export.ESCROW_ACCOUNT
    stated = manifest["accounts"]
    start = genesis.build_state(day_in_blocks(DAY).genesis)
    with open_store(day) as store:
        head = {text(a): acct for a, acct in accounts.all_accounts(store.load_state())}
    at_genesis = {text(a): acct for a, acct in accounts.all_accounts(start)}
    assert export.ESCROW_ACCOUNT in stated and len(stated) > DAY.participants
    for address, account in head.items():
        before = at_genesis.get(address, accounts.Account(0, 0, 0))
        for unit, have, had in (("grid_wh", account.grid_wh, before.grid_wh),
                                ("thb_satang", account.thb_satang, before.thb_satang)):  # fmt: skip
            assert stated.get(address, {}).get(unit, [had, had]) == [had, have], (address, unit)
    moved = Counter(r["for"] for r in rows(exported, "escrow") if r["event"] == "escrow")
    assert moved["delivery"] > 0, moved  # GRID from the escrow to each buyer at settlement
    assert rows(exported, "transfers") or True  # the day may hold no peer transfer


def test_a_tampered_transfer_and_escrow_row_are_each_named(exported: Path, tmp_path: Path) -> None:
    directory = copy_of(exported, tmp_path)
    accepted = _first(directory, "escrow", event="order_accepted", side="BUY")
    held = int(rows(directory, "escrow")[accepted - 1]["escrow_satang"])
    edit(directory, "escrow", accepted, "escrow_satang", str(held - 3))
    delivered = _first(directory, "escrow", event="escrow", **{"for": "delivery"})
    balance = int(rows(directory, "escrow")[delivered - 1]["to_balance"])
    edit(directory, "escrow", delivered, "to_balance", str(balance + 1))
    findings = [str(f) for f in verify.verify(None, directory)]
    named = {f.split(":")[0] for f in findings if " row " in f.split(":")[0]}
    assert named == {f"escrow.csv row {accepted}", f"escrow.csv row {delivered}"} | {
        f.split(":")[0] for f in findings if f.startswith("escrow.csv") and "the row says" in f
    }, findings
    assert any(f.startswith(f"escrow.csv row {accepted}: order_accepted of {held - 3} "
                            "thb_satang debited") for f in findings), findings  # fmt: skip
    assert any(f.startswith(f"escrow.csv row {delivered}: escrow of") and
               f.endswith(f"the row says {balance + 1}") for f in findings), findings  # fmt: skip
    assert any(f.startswith("manifest.json: account") for f in findings), findings


def test_the_same_chain_exports_byte_identical_files(day: Path, exported: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp, open_store(day) as store:
        again = Path(tmp) / "erc"
        export.export_range(store, 1, store.height(), again, "csv")
        for path in sorted(exported.iterdir()):
            assert (again / path.name).read_bytes() == path.read_bytes(), path.name


def _first(directory: Path, kind: str, **match: str) -> int:
    for number, r in enumerate(rows(directory, kind), start=1):
        if all(r[k] == v for k, v in match.items()):
            return number
    raise AssertionError(f"no {kind} row with {match}")


def test_a_tampered_payment_row_and_burn_row_are_each_named(exported: Path, tmp_path: Path) -> None:
    directory = copy_of(exported, tmp_path)
    paid = _first(directory, "payments", event="payment", **{"for": "trade_value"})
    burnt = _first(directory, "burns", **{"for": "import_covered"})
    value = int(rows(directory, "payments")[paid - 1]["amount"])
    amount = int(rows(directory, "burns")[burnt - 1]["amount"])
    edit(directory, "payments", paid, "amount", str(value + 7))
    edit(directory, "burns", burnt, "amount", str(amount - 1))
    findings = [str(f) for f in verify.verify(None, directory)]
    assert any(f.startswith(f"payments.csv row {paid}: trade_value") for f in findings), findings
    # The payer's and the payee's balances after it no longer follow by the row's amount.
    paid_findings = [f for f in findings if f.startswith(f"payments.csv row {paid}:")]
    assert sum("takes its balance from" in f for f in paid_findings) == 2, paid_findings
    burn_findings = [f for f in findings if f.startswith(f"burns.csv row {burnt}:")]
    assert len(burn_findings) == 3, findings  # its settlement record, supply, the escrow's balance
    assert any("grid_burned_wh" in f for f in burn_findings)
    assert any("grid_wh debited" in f for f in burn_findings)
    # Nothing else is blamed on a row: only the two edited rows and the zone totals over them.
    named_rows = {f.split(":")[0] for f in findings if " row " in f.split(":")[0]}
    zone_rows = {n for n in named_rows if n.startswith("zone_reports.csv")}
    assert named_rows - zone_rows == {f"payments.csv row {paid}", f"burns.csv row {burnt}"}


def test_a_deleted_burn_and_a_wrong_zone_report_are_found(exported: Path, tmp_path: Path) -> None:
    directory = copy_of(exported, tmp_path)
    burns = (directory / "burns.csv").read_text().splitlines(keepends=True)
    deleted = json.dumps(burns[3])
    (directory / "burns.csv").write_text("".join(burns[:3] + burns[4:]))
    report = _first(directory, "zone_reports")
    received = int(rows(directory, "zone_reports")[report - 1]["received_wh"])
    edit(directory, "zone_reports", report, "received_wh", str(received + 1))
    findings = [str(f) for f in verify.verify(None, directory)]
    assert any("grid_burned_wh" in f for f in findings), (deleted, findings)
    assert any(f.startswith(f"zone_reports.csv row {report}: received_wh") for f in findings)


def test_a_manifest_without_supply_is_a_finding_not_a_crash(exported: Path, tmp_path: Path) -> None:
    directory = copy_of(exported, tmp_path)
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["supply"]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    findings = [str(f) for f in verify.verify(None, directory)]
    assert findings == ["manifest.json: has no opening and closing supply"]


def test_cli_verify_without_a_store_checks_the_balances(exported: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["report", "verify", "--export", str(exported)])
    assert ok.exit_code == 0, ok.output
    assert "balances" in ok.output
    directory = copy_of(exported, tmp_path)
    paid = _first(directory, "payments", event="payment", **{"for": "platform_fee"})
    edit(directory, "payments", paid, "amount", "999999")
    bad = runner.invoke(cli, ["report", "verify", "--export", str(directory)])
    assert bad.exit_code == 1
    assert f"payments.csv row {paid}: platform_fee" in bad.output


def test_a_past_interval_exports_from_the_block_that_settled_it(
    day: Path, exported: Path, tmp_path: Path
) -> None:
    reports = rows(exported, "zone_reports")
    interval, height = int(reports[-1]["interval"]), int(reports[-1]["height"])
    out = tmp_path / "one"
    run = CliRunner().invoke(cli, [
        "report", "export", "--data", str(day), "--interval", str(interval), "--out", str(out),
    ])  # fmt: skip
    assert run.exit_code == 0, run.output
    assert f"exported heights {height}..{height}" in run.output
    zone_reports = rows(out, "zone_reports")
    assert {r["interval"] for r in zone_reports} >= {str(interval)}
    assert [r for r in zone_reports if r["interval"] == str(interval)] == [
        r for r in reports if r["interval"] == str(interval)
    ]
    # A range that starts mid-chain opens at the supply the chain had before it.
    assert verify.verify(None, out) == []
    manifest = json.loads((out / "manifest.json").read_text())
    earlier = [r for r in rows(exported, "burns") if int(r["height"]) < height]
    assert manifest["supply"]["opening"]["grid_burned_wh"] == int(earlier[-1]["total"])


def test_an_interval_that_is_not_settled_or_misaligned_is_bad_input(
    day: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    for interval, says in ((DAY_END_FAR, "no block after interval"), (901, "not the start")):
        run = runner.invoke(cli, [
            "report", "export", "--data", str(day), "--interval", str(interval),
            "--out", str(tmp_path / str(interval)),
        ])  # fmt: skip
        assert run.exit_code == 2 and says in run.output, run.output
        assert not (tmp_path / str(interval)).exists()
    both = runner.invoke(cli, [
        "report", "export", "--data", str(day), "--interval", "0", "--from-height", "1",
        "--out", str(tmp_path / "both"),
    ])  # fmt: skip
    assert both.exit_code == 2 and "only one of them" in both.output


DAY_END_FAR = 4_102_444_800  # 2100-01-01: no block of the day is that late
