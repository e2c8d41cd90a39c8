"""ERC audit exports read offline from a real node's RocksDB store: every kind of event,
each row tied to its block and transaction; verification passes on an honest export and
names the file and row of every tampering; bad input is a clear error that writes nothing."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from gridtokenx.chain import blocks
from gridtokenx.cli.main import app
from gridtokenx.reporting import ReportError, export, extract, schema, verify
from gridtokenx.reporting.extract import Row
from tests.api.test_api_harness import ERC, text
from tests.reporting.test_reporting_chain import Built, built_chain

FORMATS: tuple[export.Format, ...] = ("csv", "parquet")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Built, Path]:
    path = tmp_path_factory.mktemp("reporting")
    return built_chain(path), path / "data"


@pytest.fixture(scope="module")
def exports(chain: tuple[Built, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("exports")
    with extract.open_store(chain[1]) as store:
        for format in FORMATS:
            export.export_range(store, 1, store.height(), out / format, format)
    return {format: out / format for format in FORMATS}


def rows_of(directory: Path, kind: str, format: export.Format) -> list[Row]:
    return export.read(directory, kind, format)[1]


def rewrite(directory: Path, kind: str, format: export.Format, rows: list[Row]) -> None:
    """Replace a kind's file, as someone editing an export would."""
    names = [name for name, _ in schema.columns(kind)]
    path = directory / export.file_name(kind, format)
    if format == "csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(names)
            writer.writerows([["" if r[n] is None else r[n] for n in names] for r in rows])
    else:
        pq.write_table(pa.Table.from_pylist(rows, schema=export.arrow_schema(kind)), path)


def findings(data: Path, directory: Path) -> list[str]:
    with extract.open_store(data) as store:
        return [str(f) for f in verify.verify(store, directory)]


@pytest.fixture
def copy(exports: dict[str, Path], tmp_path: Path) -> Iterator[dict[str, Path]]:
    yield {f: Path(shutil.copytree(exports[f], tmp_path / f)) for f in FORMATS}


# --- export ---------------------------------------------------------------------------------
@pytest.mark.parametrize("format", FORMATS)
def test_every_kind_is_exported_and_tied_to_its_block_and_transaction(
    chain: tuple[Built, Path], exports: dict[str, Path], format: export.Format
) -> None:
    built, data = chain
    directory = exports[format]
    events = {kind: [r["event"] for r in rows_of(directory, kind, format)] for kind in schema.KINDS}
    assert events["trades"] == ["trade"]
    assert {"trade_settled", "interval_settled"} <= set(events["settlements"])
    assert "payment" in events["payments"] and "zone_report" in events["zone_reports"]
    assert events["licences"] == ["licence_granted", "licence_revoked"]
    assert events["certificates"] == [
        "certificate_issued", "certificate_transferred", "certificate_retired",
    ]  # fmt: skip
    assert events["grid"] == ["grid_emergency", "zone_halted", "zone_resumed"]
    assert events["governance"] == [
        "proposal_submitted", "vote_delegated", "vote_cast", "vote_delegation_cleared",
    ]  # fmt: skip
    delegated, carried, cleared = rows_of(directory, "governance", format)[1:]
    assert (delegated["delegator"], delegated["delegate"], delegated["sender"]) == (
        "ERC", "MEA", text(ERC),
    )  # fmt: skip
    assert (carried["voter"], carried["weight"], carried["delegated"]) == ("MEA", 8000, 7000)
    assert (carried["on_behalf"], carried["other"]) == ("ERC", "")
    assert (cleared["delegate"], cleared["previous_delegate"]) == ("MEA", "")
    (trade,) = rows_of(directory, "trades", format)
    assert trade["tx_hash"] == built.trade_tx and trade["row_kind"] == "tx"
    assert (trade["quantity_wh"], trade["price"], trade["interval"]) == (600, 300, built.interval)
    assert trade["buyer"] == text(built.cast.office) and trade["seller"] == text(built.cast.home)
    assert trade["sender"] == text(built.cast.office) and trade["other"] == ""
    retired = rows_of(directory, "certificates", format)[2]
    assert (
        retired["tx_hash"] == built.retire_tx and retired["beneficiary"] == "Office Scope 2, 2026"
    )
    assert retired["id"] == 1 and retired["owner"] == text(built.cast.office)
    settled = [r for r in rows_of(directory, "settlements", format) if r["row_kind"] == "end_block"]
    assert settled and all(r["tx_hash"] == "" and r["tx_index"] is None for r in settled)
    with extract.open_store(data) as store:
        for r in (trade, retired, settled[0]):
            assert isinstance(r["height"], int)
            stored = store.block(r["height"])
            assert stored is not None and blocks.decode(stored[0]).hash.hex() == r["block_hash"]
        manifest = export.read_manifest(directory)
        assert (manifest["from_height"], manifest["to_height"]) == (1, store.height())
    assert manifest["kinds"]["certificates"] == {"file": f"certificates.{format}", "rows": 3}


def test_csv_and_parquet_hold_the_same_rows_and_exports_are_deterministic(
    chain: tuple[Built, Path], exports: dict[str, Path], tmp_path: Path
) -> None:
    for kind in schema.KINDS:
        assert rows_of(exports["csv"], kind, "csv") == rows_of(exports["parquet"], kind, "parquet")
    with extract.open_store(chain[1]) as store:
        export.export_range(store, 1, store.height(), tmp_path / "again", "csv")
        store.checkpoint(tmp_path / "backup")
    for kind in schema.KINDS:
        name = export.file_name(kind, "csv")
        assert (tmp_path / "again" / name).read_bytes() == (exports["csv"] / name).read_bytes()
    with extract.open_store(tmp_path / "backup") as backup:  # a `db backup` checkpoint
        export.export_range(backup, 1, backup.height(), tmp_path / "from-backup", "csv")
    assert (tmp_path / "from-backup" / "trades.csv").read_bytes() == (
        exports["csv"] / "trades.csv"
    ).read_bytes()


def test_a_height_subrange_holds_only_its_events(chain: tuple[Built, Path], tmp_path: Path) -> None:
    with extract.open_store(chain[1]) as store:
        trade_height = rows_of_store(store)["trades"][0]["height"]
        assert isinstance(trade_height, int)
        export.export_range(store, trade_height, trade_height, tmp_path / "one", "csv")
        assert [r["event"] for r in rows_of(tmp_path / "one", "trades", "csv")] == ["trade"]
        assert rows_of(tmp_path / "one", "certificates", "csv") == []
        assert verify.verify(store, tmp_path / "one") == []


def rows_of_store(store: extract.Store) -> dict[str, list[Row]]:
    return extract.extract(store, 1, store.height())


def test_a_time_range_resolves_to_the_heights_of_its_blocks(chain: tuple[Built, Path]) -> None:
    with extract.open_store(chain[1]) as store:
        times = [extract.block_at(store, h).header.time for h in range(1, store.height() + 1)]
        first, last = extract.heights_for_times(store, times[5], times[5] + 1)
        assert times[first - 1] >= times[5] and times[last - 1] <= times[5] + 1
        assert first <= 6 <= last and (first == 1 or times[first - 2] < times[5])
        assert extract.heights_for_times(store, 0, times[-1]) == (1, store.height())
        with pytest.raises(ReportError, match="no block has a time"):
            extract.heights_for_times(store, times[-1] + 1, times[-1] + 100)
        with pytest.raises(ReportError, match="no block has a time"):
            extract.heights_for_times(store, 10, 5)


def test_bad_ranges_and_directories_are_clear_errors_that_write_nothing(
    chain: tuple[Built, Path], tmp_path: Path
) -> None:
    with extract.open_store(chain[1]) as store:
        top = store.height()
        for first, last, message in (
            (0, 3, "starts below 1"),
            (5, 4, "is empty"),
            (1, top + 1, "above the store's height"),
        ):
            with pytest.raises(ReportError, match=message):
                export.export_range(store, first, last, tmp_path / "out", "csv")
            assert not (tmp_path / "out").exists()
        (tmp_path / "used").mkdir()
        (tmp_path / "used" / "keep.txt").write_text("x")
        with pytest.raises(ReportError, match="not an empty directory"):
            export.export_range(store, 1, top, tmp_path / "used", "csv")
        assert [p.name for p in (tmp_path / "used").iterdir()] == ["keep.txt"]
        with pytest.raises(ReportError, match="manifest"):
            verify.verify(store, tmp_path / "used")
    with pytest.raises(ReportError, match="not a GridTokenX store"):
        extract.open_store(tmp_path)


# --- verification ---------------------------------------------------------------------------
@pytest.mark.parametrize("format", FORMATS)
def test_an_honest_export_verifies(
    chain: tuple[Built, Path], exports: dict[str, Path], format: export.Format
) -> None:
    assert findings(chain[1], exports[format]) == []


@pytest.mark.parametrize("format", FORMATS)
def test_a_changed_amount_is_named_by_file_row_and_column(
    chain: tuple[Built, Path], copy: dict[str, Path], format: export.Format
) -> None:
    rows = rows_of(copy[format], "payments", format)
    number = next(i for i, r in enumerate(rows, start=1) if r["event"] == "payment")
    true_amount = rows[number - 1]["amount"]
    assert isinstance(true_amount, int)
    rows[number - 1]["amount"] = true_amount + 1
    rewrite(copy[format], "payments", format, rows)
    found = findings(chain[1], copy[format])
    assert found[0] == (
        f"payments.{format} row {number}: amount is {true_amount + 1}, the chain says {true_amount}"
    )
    # The export's own balances name the same row: its settlement record says otherwise, and
    # the payer's and payee's balances after it no longer follow by its amount.
    named = [f for f in found[1:] if f"payments.{format} row {number}" in f]
    assert any("paid or owed" in f for f in named), found
    assert sum("takes its balance" in f or "has no" in f for f in named) == 2, found
    assert all(f in named or f.startswith("manifest.json: account") for f in found[1:]), found


@pytest.mark.parametrize("format", FORMATS)
def test_a_tampered_transfer_is_named_by_the_chain_and_by_both_accounts_balances(
    chain: tuple[Built, Path], copy: dict[str, Path], format: export.Format
) -> None:
    rows = rows_of(copy[format], "transfers", format)
    assert [(r["asset"], r["amount"]) for r in rows] == [("THB", 1_234)]
    rows[0]["amount"] = 1_000
    rewrite(copy[format], "transfers", format, rows)
    found = findings(chain[1], copy[format])
    at_row = [f for f in found if f.startswith(f"transfers.{format} row 1: ")]
    assert at_row[0].endswith("amount is 1000, the chain says 1234"), found
    # From the files alone: the payer's and the payee's balances after it do not follow.
    assert sum("takes its balance from" in f for f in at_row) == 2, found
    assert all(f.startswith(f"transfers.{format} row 1") or f.startswith("manifest.json: account")
               for f in found), found  # fmt: skip


@pytest.mark.parametrize("format", FORMATS)
def test_a_deleted_row_is_reported_missing(
    chain: tuple[Built, Path], copy: dict[str, Path], format: export.Format
) -> None:
    rows = rows_of(copy[format], "certificates", format)
    gone = rows.pop(1)
    rewrite(copy[format], "certificates", format, rows)
    assert findings(chain[1], copy[format]) == [
        f"certificates.{format}: missing certificate_transferred event at height "
        f"{gone['height']} tx {gone['tx_hash']} event_index 0"
    ]


@pytest.mark.parametrize("format", FORMATS)
def test_wrong_block_and_tx_hashes_and_a_duplicate_are_named(
    chain: tuple[Built, Path], copy: dict[str, Path], format: export.Format
) -> None:
    rows = rows_of(copy[format], "governance", format)
    rows[0]["block_hash"] = "00" * 32
    real_tx = rows[1]["tx_hash"]
    rows[1]["tx_hash"] = "ab" * 32
    rows.append(dict(rows[0]))
    rewrite(copy[format], "governance", format, rows)
    found = findings(chain[1], copy[format])
    name = f"governance.{format}"
    assert found[0].startswith(f"{name} row 1: block_hash {'00' * 32} is not the block at height")
    assert (
        found[1]
        == f"{name} row 2: tx {'ab' * 32} is not in the block at height {rows[1]['height']}"
    )
    assert found[2] == f"{name} row {len(rows)}: duplicates an earlier row"
    assert found[3] == (
        f"{name}: missing vote_delegated event at height {rows[1]['height']} tx {real_tx} "
        "event_index 0"
    )
    assert len(found) == 4


def test_changed_columns_and_a_foreign_chain_are_reported(
    chain: tuple[Built, Path], copy: dict[str, Path]
) -> None:
    path = copy["csv"] / "licences.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0].replace("holder", "licensee"), *lines[1:]]) + "\n")
    manifest = copy["csv"] / export.MANIFEST
    manifest.write_text(manifest.read_text().replace("gridtokenx-api-test", "other-chain"))
    found = findings(chain[1], copy["csv"])
    assert found[0].startswith("manifest.json: chain_id is 'other-chain'")
    assert found[1].startswith("licences.csv: columns are [") and "licensee" in found[1]
    assert len(found) == 2


# --- command line ---------------------------------------------------------------------------
def test_cli_export_and_verify_exit_codes(chain: tuple[Built, Path], tmp_path: Path) -> None:
    data = str(chain[1])
    runner = CliRunner()
    run = runner.invoke(
        app, ["report", "export", "--data", data, "--from-height", "1", "--to-height", "20",
              "--format", "parquet", "--out", str(tmp_path / "p")],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "exported heights 1..20" in run.output
    run = runner.invoke(app, ["report", "verify", "--data", data, "--export", str(tmp_path / "p")])
    assert run.exit_code == 0 and "matches the chain" in run.output
    run = runner.invoke(app, ["report", "export", "--data", data, "--out", str(tmp_path / "c")])
    assert run.exit_code == 0, run.output
    rows = rows_of(tmp_path / "c", "trades", "csv")
    rows[0]["price"] = 1
    rewrite(tmp_path / "c", "trades", "csv", rows)
    run = runner.invoke(app, ["report", "verify", "--data", data, "--export", str(tmp_path / "c")])
    assert run.exit_code == 1
    assert "trades.csv row 1: price is 1, the chain says 300" in run.output
    assert "1 mismatches" in run.output


def test_cli_time_range_and_bad_input_exit_2(chain: tuple[Built, Path], tmp_path: Path) -> None:
    data = str(chain[1])
    runner = CliRunner()
    with extract.open_store(chain[1]) as store:
        start, end = (extract.block_at(store, h).header.time for h in (1, 10))
    run = runner.invoke(
        app, ["report", "export", "--data", data, "--from-time", str(start), "--to-time",
              str(end), "--out", str(tmp_path / "t")],
    )  # fmt: skip
    assert run.exit_code == 0 and "exported heights 1.." in run.output, run.output
    assert export.read_manifest(tmp_path / "t")["from_height"] == 1
    for args, message in (
        (["--format", "xlsx"], "--format must be csv or parquet"),
        (["--from-height", "1", "--from-time", "5"], "only one of them"),
        (["--from-time", "5"], "needs both"),
        (["--from-height", "9", "--to-height", "3"], "is empty"),
    ):
        out = tmp_path / "bad"
        run = runner.invoke(app, ["report", "export", "--data", data, "--out", str(out), *args])
        assert run.exit_code == 2 and message in run.output, run.output
        assert not out.exists()
    run = runner.invoke(app, ["report", "export", "--data", str(tmp_path), "--out", str(out)])
    assert run.exit_code == 2 and "not a GridTokenX store" in run.output
    run = runner.invoke(app, ["report", "verify", "--data", data, "--export", str(tmp_path)])
    assert run.exit_code == 2 and "manifest.json" in run.output
