"""The dev loop against a real one-validator node (tests/api/test_api_harness.py):
`POST /txs/simulate` and the SDK's `simulate` (sync and async), a checked `send`, and on
the command line `tx ... --dry-run`, the checks before sending with a readable reason,
INTERVAL `next`, `tx reading --now`, and `keys new` in a folder not made yet.

Every refusal is asserted to leave the chain as it was: the signer's nonce and balance,
and nothing in the node's mempool."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gridtokenx.cli.main import app
from gridtokenx.client import AsyncClient, WouldBeRefused
from gridtokenx.wire import tx
from tests.api.test_api_harness import INTERVAL, running_cast, text
from tests.cli.test_cli_client import Live, one_error_line, wait_until

pytestmark = pytest.mark.process
runner = CliRunner()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with running_cast(tmp_path_factory.mktemp("dev-loop")) as (node, api, cast):
        yield Live(node, api, cast, tmp_path_factory.mktemp("keys"))


def _untouched(live: Live, who: object) -> tuple[int, int]:
    balance = live.api.balance(who)  # type: ignore[arg-type]
    return balance.thb_satang, balance.nonce


def _open_interval(live: Live, later: int = 0) -> int:
    """An interval whose gate is well open by the node's clock."""
    return (live.node.time // INTERVAL + 2 + later) * INTERVAL


def test_simulate_returns_the_verdict_and_keeps_nothing(live: Live) -> None:
    office = live.cast.office
    before = _untouched(live, office)
    body = tx.Transfer(tx.Asset.THB, live.cast.home.address, 250)
    verdict = live.api.simulate(live.api.sign(office, body, nonce=before[1]))
    assert verdict.ok and [e["kind"] for e in verdict.events] == ["transfer"]
    assert verdict.height == live.api.health()["height"] + 1 or verdict.height >= 2
    assert verdict.time >= live.node.time - 1
    too_much = tx.Transfer(tx.Asset.THB, live.cast.home.address, 10**12)
    refused = live.api.simulate(live.api.sign(office, too_much, nonce=before[1]))
    assert (refused.ok, refused.code) == (False, "INSUFFICIENT_BALANCE") and refused.message
    assert _untouched(live, office) == before and live.mempool() == 0


def test_simulate_over_http_reports_undecodable_bytes_and_refuses_bad_text(live: Live) -> None:
    with httpx.Client(base_url=live.node.url + "/api/v1") as http:
        garbage = http.post("/txs/simulate", json={"tx": "00ff00ff"})
        assert garbage.status_code == 200
        assert (garbage.json()["ok"], garbage.json()["code"]) == (False, "MALFORMED")
        bad = http.post("/txs/simulate", json={"tx": "not hex, not base64!"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "INVALID_REQUEST"
    assert live.mempool() == 0


def test_a_checked_send_stops_before_submitting_and_keeps_the_nonce(live: Live) -> None:
    office = live.cast.office
    before = _untouched(live, office)
    closed = (live.node.time // INTERVAL) * INTERVAL  # the current interval: gate closed
    order = tx.PlaceOrder(tx.Side.BUY, "BKK", closed, 1_000, 400)
    with pytest.raises(WouldBeRefused) as refused:
        live.api.send(office, order, check=True)
    assert refused.value.code == "GATE_CLOSED" and refused.value.simulation.time > 0
    assert _untouched(live, office) == before and live.mempool() == 0
    # The nonce the refused one took is given back: the next send uses it and commits.
    ok = live.api.send_and_wait(office, tx.Transfer(tx.Asset.THB, live.cast.home.address, 1),
                                check=True)  # fmt: skip
    assert ok.status == "committed"
    assert live.api.balance(office).nonce == before[1] + 1


def test_the_async_client_simulates_and_checks_alike(live: Live) -> None:
    office, home = live.cast.office, live.cast.home

    async def run() -> tuple[bool, str]:
        async with AsyncClient(live.node.url) as api:
            ok = await api.check(office, tx.Transfer(tx.Asset.THB, home.address, 1))
            try:
                misaligned = tx.PlaceOrder(
                    tx.Side.BUY, "BKK", _open_interval(live) + 60, 1_000, 400
                )
                await api.send(office, misaligned, check=True)
            except WouldBeRefused as exc:
                return ok.ok, exc.code
            return ok.ok, "sent"

    before = _untouched(live, office)
    assert asyncio.run(run()) == (True, "MISALIGNED_INTERVAL")
    assert _untouched(live, office) == before and live.mempool() == 0


def test_dry_run_shows_the_verdict_and_sends_nothing(live: Live) -> None:
    before = _untouched(live, live.cast.office)
    result = live.tx("office", "transfer", "THB", text(live.cast.home), "1THB", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would apply" in result.stdout and "nothing sent" in result.stdout
    shown = live.tx("office", "transfer", "THB", text(live.cast.home), "1THB", "--dry-run",
                    "--json")  # fmt: skip
    verdict = json.loads(shown.stdout)
    assert verdict["ok"] and verdict["events"][0]["kind"] == "transfer"
    refused = live.tx("office", "transfer", "THB", text(live.cast.home), "1000000THB", "--dry-run")
    assert "nothing was sent" in one_error_line(refused, "INSUFFICIENT_BALANCE", 1)
    assert _untouched(live, live.cast.office) == before and live.mempool() == 0


def test_a_closed_gate_and_a_misaligned_interval_are_explained_before_sending(
    live: Live,
) -> None:
    before = _untouched(live, live.cast.office)
    past = "2025-06-01T10:00+07:00"
    closed = live.tx("office", "order", "place", "buy", "BKK", past, "1kWh", "4THB/kWh")
    line = one_error_line(closed, "GATE_CLOSED", 1)
    assert "2025-06-01T10:00+07:00" in line and "closed at 2025-06-01T09:55+07:00" in line
    assert "give the interval as next" in line and "nothing was sent" in line
    misaligned = str(_open_interval(live) + 7 * 60)
    wrong = live.tx("office", "order", "place", "buy", "BKK", misaligned, "1kWh", "4THB/kWh")
    line = one_error_line(wrong, "MISALIGNED_INTERVAL", 1)
    assert "not the start of a 15-minute interval" in line and "try " in line
    assert _untouched(live, live.cast.office) == before and live.mempool() == 0


def test_interval_next_is_the_first_open_interval_by_the_nodes_clock(live: Live) -> None:
    receipt = live.tx_json("office", "order", "place", "buy", "BKK", "next", "100Wh", "1THB/kWh")
    accepted = next(e["attrs"] for e in receipt["events"] if e["kind"] == "order_accepted")
    chain = live.api.get("/chain")
    gate = chain["params"]["gate_closure_seconds"]
    start = accepted["interval"]
    assert start % INTERVAL == 0
    assert start - gate > live.node.time  # still open
    assert start - INTERVAL - gate <= live.node.time + 60  # and the first one that is
    later = live.tx_json("office", "order", "place", "buy", "BKK", "next+2", "100Wh", "1THB/kWh")
    accepted = next(e["attrs"] for e in later["events"] if e["kind"] == "order_accepted")
    assert accepted["interval"] == start + 2 * INTERVAL
    bad = live.tx("office", "order", "place", "buy", "BKK", "soon", "100Wh", "1THB/kWh")
    one_error_line(bad, "BAD_INPUT", 2)


def test_reading_now_reports_the_latest_interval_from_the_chains_registers(live: Live) -> None:
    meter = live.query("meter", text(live.cast.meter))
    live.node.advance(INTERVAL)
    wait_until(lambda: live.api.health()["latest_time"] >= live.node.time)
    before = live.api.balance(live.cast.home).grid_wh
    receipt = live.tx_json("meter", "reading", "--now")
    minted = next(e["attrs"] for e in receipt["events"] if e["kind"] == "reading")
    half = meter["rated_capacity_w"] * INTERVAL // 3600 // 2
    assert minted["export_wh"] == half
    assert minted["interval"] == live.node.time // INTERVAL * INTERVAL - INTERVAL
    assert live.api.balance(live.cast.home).grid_wh == before + half
    again = live.tx("meter", "reading", "--now", "--exported", "1kWh")
    assert "no finished interval" in one_error_line(again, "NO_INTERVAL_TO_READ", 1)
    both = live.tx("meter", "reading", "--now", str(minted["interval"]), "0Wh", "1kWh")
    one_error_line(both, "BAD_INPUT", 2)
    not_a_meter = live.tx("office", "reading", "--now")
    one_error_line(not_a_meter, "UNKNOWN_METER", 1)


def test_keys_new_makes_the_folder_and_keys_list_finds_it(tmp_path: Path) -> None:
    folder = tmp_path / "not" / "yet"
    listed = runner.invoke(app, ["keys", "list", str(folder), "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    made = runner.invoke(app, ["keys", "new", str(folder / "alice.key"), "--insecure-dev"])
    assert made.exit_code == 0, made.output
    assert (folder.stat().st_mode & 0o777) == 0o700
    rows = json.loads(runner.invoke(app, ["keys", "list", str(folder), "--json"]).stdout)
    assert [r["file"] for r in rows] == ["alice.key"]
