"""API contract tests: every REST endpoint against a real one-validator node (consensus,
RocksDB in a tmp dir, uvicorn on 127.0.0.1), its happy path and its bad input. Rejections
carry the mempool's and decoder's own codes and change nothing."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridtokenx.api.models import MAX_LIMIT, BatchResult
from gridtokenx.client import Client, to_json
from gridtokenx.wire import crypto, tx
from tests.api.test_api_harness import (
    CHAIN,
    EGAT,
    ERC,
    INTERVAL,
    MEA,
    Cast,
    LocalNode,
    key,
    running_cast,
    signed,
    text,
)

V1 = "/api/v1"


def wait_until(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNode, Client, Cast]]:
    with running_cast(tmp_path_factory.mktemp("api")) as running:
        yield running


@pytest.fixture(scope="module")
def http(live: tuple[LocalNode, Client, Cast]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live[0].url + V1, timeout=10) as client:
        yield client


def error_of(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return str(body["error"]["message"])


def nonce(http: httpx.Client, who: Any) -> int:
    return int(http.get(f"/accounts/{text(who)}").json()["nonce"])


# --- transactions ------------------------------------------------------------------------
def test_submit_hex_and_base64_then_status_receipt_and_events(
    live: tuple[LocalNode, Client, Cast], http: httpx.Client
) -> None:
    _, api, cast = live
    before = api.balance(cast.home).thb_satang
    n = nonce(http, cast.office)
    raw = signed(cast.office, n, tx.Transfer(tx.Asset.THB, cast.home.address, 1_500))
    answer = http.post("/txs", json={"tx": raw.hex()})
    assert answer.status_code == 202
    tx_hash = answer.json()["hash"]
    assert tx_hash == tx.hash_of(raw).hex()
    receipt = api.wait(tx_hash)
    assert receipt.height is not None and receipt.index == 0
    status = http.get(f"/txs/{tx_hash}").json()
    assert status["status"] == "committed" and status["height"] == receipt.height
    transfer = next(e for e in status["events"] if e["kind"] == "transfer")
    assert transfer["attrs"]["amount"] == 1_500
    assert transfer["attrs"]["to"] == text(cast.home)
    block = http.get(f"/blocks/{receipt.height}").json()
    assert tx_hash in block["txs"]
    raw2 = signed(cast.office, n + 1, tx.Transfer(tx.Asset.THB, cast.home.address, 500))
    b64 = base64.b64encode(raw2).decode()
    answer = http.post("/txs", json={"tx": b64, "encoding": "base64"})
    assert answer.status_code == 202
    api.wait(answer.json()["hash"])
    assert api.balance(cast.home).thb_satang == before + 2_000


def test_every_admission_rejection_has_its_code_and_changes_nothing(
    live: tuple[LocalNode, Client, Cast], http: httpx.Client
) -> None:
    _, _, cast = live
    n = nonce(http, cast.home)
    pending_before = http.get("/health").json()["mempool_txs"]
    body = tx.Transfer(tx.Asset.THB, cast.office.address, 1)
    good = signed(cast.home, n, body)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"tx": "zz"}, 422, "INVALID_REQUEST"),
        ({"tx": "not base64!"}, 422, "INVALID_REQUEST"),
        ({"tx": "abc", "encoding": "hex"}, 422, "INVALID_REQUEST"),
        ({}, 422, "INVALID_REQUEST"),
        ({"tx": 5}, 422, "INVALID_REQUEST"),
        ({"tx": good[:-3].hex()}, 400, "TRUNCATED"),
        ({"tx": (good + b"\x00").hex()}, 400, "MALFORMED"),
        ({"tx": ("00" * 16_385)}, 400, "OVERSIZED"),
        ({"tx": tx.make(cast.home, "other-chain", n, body).encode().hex()}, 400, "WRONG_CHAIN_ID"),
        ({"tx": (good[:-64] + bytes(64)).hex()}, 400, "INVALID_SIGNATURE"),
        ({"tx": signed(key("nobody"), 0, body).hex()}, 400, "UNKNOWN_SENDER"),
        ({"tx": signed(MEA, 0, body).hex()}, 400, "NONCE_REPLAYED"),
        ({"tx": signed(cast.home, n + 5_000, body).hex()}, 400, "NONCE_TOO_FAR"),
    ]
    for payload, status, code in cases:
        error_of(http.post("/txs", json=payload), status, code)
    # A transaction waiting for an earlier nonce: a second copy, and another with its nonce.
    gap = signed(cast.home, n + 500, body)
    assert http.post("/txs", json={"tx": gap.hex()}).status_code == 202
    assert http.get(f"/txs/{tx.hash_of(gap).hex()}").json()["status"] == "pending"
    error_of(http.post("/txs", json={"tx": gap.hex()}), 409, "DUPLICATE")
    other = signed(cast.home, n + 500, tx.Transfer(tx.Asset.THB, cast.office.address, 2))
    error_of(http.post("/txs", json={"tx": other.hex()}), 409, "NONCE_TAKEN")
    assert http.get("/health").json()["mempool_txs"] == pending_before + 1
    assert nonce(http, cast.home) == n


def test_batch_returns_one_result_per_transaction_in_order(
    live: tuple[LocalNode, Client, Cast], http: httpx.Client
) -> None:
    _, api, cast = live
    n = nonce(http, cast.office)
    ok = [
        signed(cast.office, n + i, tx.Transfer(tx.Asset.THB, cast.home.address, 10))
        for i in range(3)
    ]
    batch = [
        ok[0].hex(),
        "00",
        ok[1].hex(),
        signed(key("x"), 0, tx.RedeemThb(1)).hex(),
        ok[2].hex(),
    ]
    answer = http.post("/txs/batch", json={"txs": batch})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    results = answer.json()["results"]
    documented = BatchResult.model_validate(answer.json())  # the shape the schema gives
    assert documented.results[0].hash == tx.decode(ok[0]).hash.hex()
    assert [r["accepted"] for r in results] == [True, False, True, False, True]
    assert [r["code"] for r in results] == ["", "MALFORMED", "", "UNKNOWN_SENDER", ""]
    for r in results:
        if r["accepted"]:
            api.wait(r["hash"])
    assert nonce(http, cast.office) == n + 3
    error_of(http.post("/txs/batch", json={"txs": []}), 422, "INVALID_REQUEST")
    error_of(http.post("/txs/batch", json={"txs": ["00"] * 1001}), 422, "INVALID_REQUEST")
    error_of(http.post("/txs/batch", json={"txs": ["nothex!"]}), 422, "INVALID_REQUEST")


def test_tx_status_of_unknown_and_malformed_hashes(http: httpx.Client) -> None:
    error_of(http.get(f"/txs/{'ab' * 32}"), 404, "NOT_FOUND")
    error_of(http.get("/txs/xyz"), 422, "INVALID_REQUEST")
    error_of(http.get(f"/txs/{'ab' * 33}"), 422, "INVALID_REQUEST")


# --- chain -------------------------------------------------------------------------------
def test_blocks_latest_by_height_by_hash_and_pages(http: httpx.Client) -> None:
    latest = http.get("/blocks/latest").json()
    height = latest["height"]
    assert latest["header"]["height"] == height and latest["header"]["chain_id"] == CHAIN
    assert latest["header"]["proposer"] == text(EGAT)
    assert http.get(f"/blocks/{height}").json()["hash"] == latest["hash"]
    assert http.get(f"/blocks/hash/{latest['hash']}").json()["height"] == height
    first = http.get("/blocks", params={"limit": 3}).json()
    assert len(first["items"]) == 3 and first["next"] is not None
    heights = [b["height"] for b in first["items"]]
    assert heights == sorted(heights, reverse=True)
    second = http.get("/blocks", params={"limit": 3, "after": first["next"]}).json()
    assert second["items"][0]["height"] == heights[-1] - 1
    error_of(http.get("/blocks/99999999"), 404, "NOT_FOUND")
    error_of(http.get(f"/blocks/hash/{'00' * 32}"), 404, "NOT_FOUND")
    error_of(http.get("/blocks/0"), 422, "INVALID_REQUEST")
    error_of(http.get("/blocks/abc"), 422, "INVALID_REQUEST")
    error_of(http.get("/blocks", params={"limit": 0}), 422, "INVALID_REQUEST")
    error_of(http.get("/blocks/hash/xyz"), 422, "INVALID_REQUEST")


def test_validators_chain_health_and_openapi(http: httpx.Client) -> None:
    vals = http.get("/validators").json()
    assert [m["address"] for m in vals["members"]] == [text(EGAT)]
    assert vals["total_power"] == vals["members"][0]["power"] > 0
    chain = http.get("/chain").json()
    assert chain["chain_id"] == CHAIN and chain["params"]["interval_seconds"] == INTERVAL
    health = http.get("/health").json()
    assert health["validating"] is True and health["halted"] is None and health["height"] > 0
    spec = http.get("/openapi.json").json()
    assert "/api/v1/txs" in spec["paths"] and "/api/v1/book/{zone}/{interval}" in spec["paths"]
    root = str(http.base_url).removesuffix("/api/v1/")
    assert "swagger" in httpx.get(root + "/docs").text.lower()


# --- registry ----------------------------------------------------------------------------
def test_accounts_participants_and_pagination(
    live: tuple[LocalNode, Client, Cast], http: httpx.Client
) -> None:
    _, _, cast = live
    account = http.get(f"/accounts/{text(cast.office)}").json()
    assert account["address"] == text(cast.office) and account["thb_satang"] > 0
    error_of(http.get(f"/accounts/{text(key('stranger'))}"), 404, "NOT_FOUND")
    typo = text(cast.office)[:-1] + ("a" if text(cast.office)[-1] != "a" else "b")
    assert "checksum" in error_of(http.get(f"/accounts/{typo}"), 422, "INVALID_REQUEST")
    error_of(http.get("/accounts/hello"), 422, "INVALID_REQUEST")
    one = http.get(f"/participants/{text(cast.home)}").json()
    assert one["name"] == "Somchai" and one["kind"] == "HOUSEHOLD" and one["zone"] == "BKK"
    error_of(http.get(f"/participants/{text(key('stranger'))}"), 404, "NOT_FOUND")
    seen: list[str] = []
    after = None
    for _ in range(10):  # bounded walk over pages of one
        cursor = {} if after is None else {"after": after}
        page = http.get("/participants", params={"limit": 1, **cursor}).json()
        seen += [p["address"] for p in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert sorted(seen) == sorted(text(w) for w in (cast.home, cast.office, cast.custodian))
    assert len(seen) == len(set(seen))
    error_of(http.get("/participants", params={"after": "nope"}), 422, "INVALID_REQUEST")


def test_accounts_list_in_pages_that_add_up_to_the_supply(
    live: tuple[LocalNode, Client, Cast], http: httpx.Client
) -> None:
    _, api, cast = live
    seen: list[dict[str, Any]] = []
    after = None
    for _ in range(200):  # bounded walk over pages of three
        page = api.accounts(limit=3, after=after)
        assert len(page.items) <= 3
        seen += to_json(page.items)
        after = page.next
        if after is None:
            break
    addresses = [a["address"] for a in seen]
    assert addresses == sorted(addresses, key=lambda a: crypto.address_from_text(a))
    assert len(addresses) == len(set(addresses))
    assert {text(w) for w in (cast.home, cast.office, cast.custodian)} <= set(addresses)
    whole = http.get("/accounts", params={"limit": MAX_LIMIT}).json()
    assert whole["next"] is None and whole["items"] == seen
    supply = http.get("/supply").json()  # one page is one committed state: it adds up
    assert sum(a["grid_wh"] for a in whole["items"]) == supply["grid"]["outstanding_wh"]
    assert sum(a["thb_satang"] for a in whole["items"]) == supply["thb"]["outstanding_satang"]
    assert [set(a) for a in seen[:1]] == [{"address", "grid_wh", "thb_satang", "nonce"}]
    error_of(http.get("/accounts", params={"after": "nope"}), 422, "INVALID_REQUEST")
    error_of(http.get("/accounts", params={"limit": 0}), 422, "INVALID_REQUEST")
    spec = http.get("/openapi.json").json()
    listed = spec["paths"]["/api/v1/accounts"]["get"]["responses"]["200"]["content"]
    assert listed["application/json"]["schema"]["$ref"].endswith("/AccountPage")


def test_meters_readings_and_licences(
    live: tuple[LocalNode, Client, Cast], http: httpx.Client
) -> None:
    node, api, cast = live
    meter = http.get(f"/meters/{text(cast.meter)}").json()
    assert meter["owner"] == text(cast.home) and meter["kind"] == "SOLAR"
    assert meter["public_key"] == cast.meter.public_key.hex()
    owned = http.get("/meters", params={"owner": text(cast.home)}).json()["items"]
    assert [m["address"] for m in owned] == [text(cast.meter)]
    assert len(http.get("/meters").json()["items"]) == 1
    assert http.get("/meters", params={"owner": text(cast.office)}).json()["items"] == []
    error_of(http.get(f"/meters/{text(cast.home)}"), 404, "NOT_FOUND")
    # A reading needs its interval to have ended: move block time on by two intervals.
    first = meter["first_interval"]
    node.advance(2 * INTERVAL)
    wait_until(lambda: http.get("/health").json()["latest_time"] >= first + INTERVAL)
    reading = tx.MeterReading(first, 100, 900)
    api.send_and_wait(cast.meter, reading)
    rows = http.get(f"/meters/{text(cast.meter)}/readings").json()["items"]
    assert len(rows) == 1
    assert rows[0]["interval_start"] == first and rows[0]["export_wh"] == 900
    assert rows[0]["minted_wh"] == 900
    after = http.get(f"/meters/{text(cast.meter)}/readings", params={"after": first}).json()
    assert after["items"] == []
    error_of(http.get(f"/meters/{text(cast.home)}/readings"), 404, "NOT_FOUND")
    licences = http.get("/licences").json()["items"]
    assert [(x["holder"], x["kind"], x["valid"]) for x in licences] == [
        (text(cast.custodian), "CUSTODIAN", True)
    ]
    mine = http.get("/licences", params={"holder": text(cast.custodian)}).json()["items"]
    assert mine == licences
    assert http.get("/licences", params={"holder": text(cast.home)}).json()["items"] == []
    cursor = f"{text(cast.custodian)}-2"
    assert http.get("/licences", params={"after": cursor}).json()["items"] == []
    error_of(http.get("/licences", params={"after": "gtx-9"}), 422, "INVALID_REQUEST")


# --- market ------------------------------------------------------------------------------
def test_orders_book_trades_prices_and_settlement(
    live: tuple[LocalNode, Client, Cast], http: httpx.Client
) -> None:
    node, api, cast = live
    now = http.get("/health").json()["latest_time"]
    interval = (now // INTERVAL + 2) * INTERVAL
    sell = tx.PlaceOrder(tx.Side.SELL, "BKK", interval, 1_000, 300)
    sold = api.send_and_wait(cast.home, sell)
    order_id = next(e for e in sold.events if e["kind"] == "order_accepted")["attrs"]["order"]
    book = http.get(f"/book/BKK/{interval}").json()
    assert book["asks"] == [{"price": 300, "quantity_wh": 1_000, "orders": 1}]
    assert book["bids"] == []
    buy = tx.PlaceOrder(tx.Side.BUY, "BKK", interval, 600, 310)
    bought = api.send_and_wait(cast.office, buy)
    trade_event = next(e for e in bought.events if e["kind"] == "trade")["attrs"]
    assert trade_event["quantity_wh"] == 600 and trade_event["price"] == 300
    book = http.get(f"/book/BKK/{interval}", params={"levels": 1}).json()
    assert book["asks"] == [{"price": 300, "quantity_wh": 400, "orders": 1}]
    order = http.get(f"/orders/{order_id}").json()
    assert order["remaining_wh"] == 400 and order["status"] == "OPEN" and order["side"] == "SELL"
    mine = http.get("/orders", params={"account": text(cast.home)}).json()["items"]
    assert [o["id"] for o in mine] == [order_id]
    in_book = http.get("/orders", params={"zone": "BKK", "interval": interval}).json()
    assert [o["id"] for o in in_book["items"]] == [order_id]
    error_of(http.get("/orders"), 422, "INVALID_REQUEST")
    error_of(http.get("/orders", params={"zone": "BKK"}), 422, "INVALID_REQUEST")
    error_of(http.get("/orders/123456789"), 404, "NOT_FOUND")
    error_of(http.get("/orders/-1"), 422, "INVALID_REQUEST")
    trades = http.get("/trades", params={"interval": interval}).json()["items"]
    assert len(trades) == 1 and trades[0]["buyer"] == text(cast.office)
    trade_id = trades[0]["id"]
    assert http.get(f"/trades/{trade_id}").json()["seller"] == text(cast.home)
    recent = http.get("/trades", params={"limit": 1}).json()
    assert recent["items"][0]["id"] == trade_id
    assert http.get("/trades", params={"zone": "CEN"}).json()["items"] == []
    error_of(http.get("/trades/99999999"), 404, "NOT_FOUND")
    error_of(http.get("/book/bkk/0"), 422, "INVALID_REQUEST")
    error_of(http.get(f"/book/XYZ/{interval}"), 404, "NOT_FOUND")
    prices = http.get("/prices/BKK", params={"from": interval, "to": interval + INTERVAL}).json()
    row = prices["intervals"][0]
    assert row["volume_wh"] == 600 and row["vwap"] == 300 and row["trades"] == 1
    assert row["tariff_msat_per_kwh"] > row["buyback_msat_per_kwh"] > 0
    error_of(http.get("/prices/BKK", params={"from": interval, "to": interval}), 422,
             "INVALID_REQUEST")  # fmt: skip
    error_of(http.get("/prices/BKK", params={"from": interval + 1, "to": interval + INTERVAL}),
             422, "INVALID_REQUEST")  # fmt: skip
    status = http.get(f"/settlements/{interval}").json()
    assert status["status"] == "OPEN" and status["reports"] == {}
    error_of(http.get(f"/settlements/{interval + 7}"), 422, "INVALID_REQUEST")
    error_of(http.get(f"/settlements/{interval + 100 * INTERVAL}"), 404, "NOT_FOUND")
    # Past the settlement deadline the interval settles without readings.
    params = http.get("/chain").json()["params"]
    node.advance(interval + INTERVAL + params["settlement_deadline_seconds"] - now + 1)

    def settled() -> bool:
        return bool(http.get(f"/settlements/{interval}").json()["status"] == "SETTLED")

    wait_until(settled)
    result = http.get(f"/settlements/{interval}").json()
    reports = result["reports"]
    assert reports["BKK"]["shortfall_wh"] == 600  # sold, never metered in that interval
    assert status["settled_height"] is None
    block = http.get(f"/blocks/{result['settled_height']}").json()
    settled_there = [
        e for e in block["end_events"] if e["kind"] in ("interval_settled", "zone_report")
    ]
    assert {e["kind"] for e in settled_there} == {"interval_settled", "zone_report"}
    assert all(e["attrs"]["interval"] == interval for e in settled_there)
    (bkk,) = [e["attrs"] for e in settled_there if e["kind"] == "zone_report"]
    assert bkk["zone"] == "BKK" and bkk["shortfall_wh"] == 600
    assert http.get(f"/orders/{order_id}").json()["status"] == "EXPIRED"
    assert http.get(f"/trades/{trade_id}").json()["settled"] is True


def test_grid_status_follows_a_zone_halt(
    live: tuple[LocalNode, Client, Cast], http: httpx.Client
) -> None:
    _, api, _ = live
    zones = {z["code"]: z for z in http.get("/grid").json()["zones"]}
    assert len(zones) == 7 and not zones["CEN"]["halted"]
    api.send_and_wait(EGAT, tx.SetZoneHalt("CEN", True, "substation fault"))
    grid = http.get("/grid").json()
    cen = next(z for z in grid["zones"] if z["code"] == "CEN")
    assert cen["halted"] and cen["halt"]["reason"] == "substation fault"
    assert cen["halt"]["halted_by"] == "EGAT"
    assert grid["interconnectors"] and all(i["capacity_kw"] > 0 for i in grid["interconnectors"])
    api.send_and_wait(EGAT, tx.SetZoneHalt("CEN", False))
    assert not next(z for z in http.get("/grid").json()["zones"] if z["code"] == "CEN")["halted"]


def test_grid_shows_reported_status(
    live: tuple[LocalNode, Client, Cast], http: httpx.Client
) -> None:
    _, api, _ = live
    at = api.block()["header"]["time"]
    link = tx.LinkStatus("CEN", "BKK", 750_000, 420_000)
    api.send_and_wait(EGAT, tx.TransmissionStatus(at, 50_020, (link,)))
    api.send_and_wait(MEA, tx.DistributionStatus(at, "BKK", 8_200_000, 40_000))
    grid = http.get("/grid").json()
    assert grid["frequency"] == {"measured_at": at, "frequency_mhz": 50_020, "reported_by": "EGAT"}
    bkk_cen = next(
        i for i in grid["interconnectors"] if {i["zone_a"], i["zone_b"]} == {"BKK", "CEN"}
    )
    assert bkk_cen["capacity_kw"] == 800_000  # genesis
    assert bkk_cen["measured"] == {"measured_at": at, "capacity_kw": 750_000, "flow_kw": -420_000}
    bkk = next(z for z in grid["zones"] if z["code"] == "BKK")
    assert bkk["distribution"]["headroom_kw"] == 40_000 and bkk["balance"] is None
    flows = http.get(f"/flows/{(at // INTERVAL + 2) * INTERVAL}").json()["interconnectors"]
    row = next(r for r in flows if {r["zone_a"], r["zone_b"]} == {"BKK", "CEN"})
    assert row["capacity_wh"] == 750_000 * 1000 * INTERVAL // 3600  # the market's capacity


def test_governance_overview_and_a_proposal_with_its_ballots(
    live: tuple[LocalNode, Client, Cast], http: httpx.Client
) -> None:
    _, api, _ = live
    overview = http.get("/governance").json()
    assert overview["weights"] == {
        "EGAT": 10000,
        "MEA": 8000,
        "PEA": 8000,
        "ERC": 7000,
        "NEPO": 6000,
    }
    assert overview["rules"]["voting_period_heights"] == 86_400
    assert overview["authorities"]["MEA"] == text(MEA) and overview["delegations"] == {}
    change = (tx.ParamChange("tariffs.ft_msat_per_kwh", 19_720),)
    receipt = api.send_and_wait(EGAT, tx.SubmitProposal(tx.ProposalKind.PARAMETER, change, "Ft"))
    pid = next(e["attrs"]["id"] for e in receipt.events if e["kind"] == "proposal_submitted")
    api.send_and_wait(ERC, tx.DelegateVote("MEA"))
    assert http.get("/governance").json()["delegations"] == {"ERC": "MEA"}
    api.send_and_wait(MEA, tx.CastVote(int(pid), tx.VoteChoice.NO))  # carries the ERC's 7,000
    api.send_and_wait(ERC, tx.DelegateVote(""))
    assert int(pid) in http.get("/governance").json()["active"]
    assert http.get("/governance").json()["delegations"] == {}
    found = http.get(f"/governance/proposals/{pid}").json()
    assert found["kind"] == "PARAMETER" and found["status"] == "VOTING" and found["title"] == "Ft"
    assert found["actions"] == [
        {"type": "ParamChange", "name": "tariffs.ft_msat_per_kwh", "value": 19720}
    ]
    assert (found["yes"], found["no"], found["proposer"]) == (0, 15000, text(EGAT))
    assert sorted(found["ballots"], key=lambda b: b["weight"]) == [
        {
            "voter": text(ERC),
            "choice": "NO",
            "weight": 7000,
            "delegate": text(MEA),
            "carried_weight": 0,
            "on_behalf": [],
        },
        {
            "voter": text(MEA),
            "choice": "NO",
            "weight": 8000,
            "delegate": None,
            "carried_weight": 15000,
            "on_behalf": [text(ERC)],
        },
    ]
    error_of(http.get("/governance/proposals/999"), 404, "NOT_FOUND")
    error_of(http.get("/governance/proposals/0"), 422, "INVALID_REQUEST")


def test_unknown_paths_and_methods_use_the_error_shape(http: httpx.Client) -> None:
    error_of(http.get("/nothing-here"), 404, "NOT_FOUND")
    assert http.put("/txs", json={}).status_code == 405
    assert (
        http.post(
            "/txs", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )


def test_the_store_keeps_receipts_across_a_restart(tmp_path: Path) -> None:
    """The status endpoint answers from the stored receipt after the node restarts (the
    mempool that saw the transaction is gone)."""
    with LocalNode(tmp_path / "data") as node, node.client() as api:
        body = tx.RegisterParticipant(key("p").address, "BKK", tx.ParticipantKind.HOUSEHOLD, "P")
        tx_hash = api.send(MEA, body)
        first = api.wait(tx_hash)
    with LocalNode(tmp_path / "data") as node, node.client() as api:
        again = api.tx(tx_hash)
        assert again == first and again.events[0]["kind"] == "participant_registered"
        assert api.get(f"/blocks/{first.height}")["txs"] == [tx_hash]
