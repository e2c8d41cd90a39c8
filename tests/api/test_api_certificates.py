"""Certificates, certificate carbon totals and governance listings over the API, against a
real one-validator node (test_api_harness): a licensed 10 MW solar farm's readings issue
certificates, which are transferred and retired through the API; the listings by holder,
first owner and status come from the store's secondary index, which must equal what a
rebuild from the state gives. Bad input gets the error shape, never a 5xx.

The store index is also checked without a node: heights written from a ledger sandbox,
then the index wiped and rebuilt when the store is reopened."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from gridtokenx.client import Client
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.storage import store
from gridtokenx.wire import tx
from gridtokenx.wire.crypto import PrivateKey
from tests.api.test_api import error_of
from tests.api.test_api_harness import (
    EGAT,
    ERC,
    FARM_W,
    MEA,
    MWH,
    Cast,
    LocalNode,
    produce,
    running_cast,
    solar_farm,
    text,
)
from tests.conftest import Cast as LedgerCast

V1 = "/api/v1"


BENEFICIARY = "บริษัท กรุงเทพ ออฟฟิศ จำกัด, Scope 2 2026"


class Farmed:
    """The shared cast plus a Central solar farm whose first reading issued two
    certificates (ids 1 and 2) and carried 300,000 Wh over; the farm sold certificate 1 to
    the office, which retired it. Tests only read this (xdist may run them in any order)."""

    def __init__(self, node: LocalNode, api: Client, cast: Cast) -> None:
        self.node, self.api, self.cast = node, api, cast
        self.farm, self.meter = solar_farm(api, "cert-api")
        self.receipt = produce(node, api, self.meter, 2 * MWH + 300_000)
        self.issued = api.get("/certificates/1")
        api.send_and_wait(self.farm, tx.TransferCertificate(1, cast.office.address))
        api.send_and_wait(cast.office, tx.RetireCertificate(1, BENEFICIARY))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farmed]:
    with running_cast(tmp_path_factory.mktemp("certs")) as (node, api, cast):
        yield Farmed(node, api, cast)


@pytest.fixture(scope="module")
def http(live: Farmed) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.node.url + V1, timeout=10) as client:
        yield client


def ids(page: dict[str, Any]) -> list[int]:
    return [c["id"] for c in page["items"]]


def index_keys(db: store.Store) -> list[bytes]:
    """Every entry of a store's certificate index."""
    return [k for tag in (b"co", b"ci", b"cs") for k, _ in db._scan("index", tag)]


# --- certificates ------------------------------------------------------------------------
def test_a_reading_issues_certificates_readable_by_id(live: Farmed, http: httpx.Client) -> None:
    issued = [e["attrs"] for e in live.receipt.events if e["kind"] == "certificate_issued"]
    assert [a["id"] for a in issued] == [1, 2]
    one = live.issued  # as issued, before its sale
    assert http.get("/certificates/2").json()["owner"] == text(live.farm)
    reading = live.api.get(f"/meters/{text(live.meter)}")
    assert one == {
        "id": 1,
        "owner": text(live.farm),
        "issued_to": text(live.farm),
        "meter": text(live.meter),
        "source": "SOLAR",
        "zone": "CEN",
        "first_interval": reading["first_interval"],
        "last_interval": reading["last_interval"],
        "energy_wh": MWH,
        "emission_factor_g_per_kwh": 475,
        "avoided_g": 475_000,
        "issued_height": live.receipt.height,
        "issue_day": one["issue_day"],
        "retire_day": 0,
        "beneficiary": "",
        "retired": False,
    }
    local = datetime.datetime.fromtimestamp(one["last_interval"] + 7 * 3600, datetime.UTC)
    assert one["issue_day"] == int(local.strftime("%Y%m%d"))
    assert FARM_W * 900 // 3600 >= 2 * MWH + 300_000  # the reading fit the meter
    error_of(http.get("/certificates/999999"), 404, "NOT_FOUND")
    error_of(http.get("/certificates/0"), 422, "INVALID_REQUEST")
    error_of(http.get("/certificates/abc"), 422, "INVALID_REQUEST")


def test_transfer_and_retire_move_certificates_between_listings(
    live: Farmed, http: httpx.Client
) -> None:
    farm, office = text(live.farm), text(live.cast.office)
    first = http.get("/certificates", params={"issued_to": farm, "limit": 1}).json()
    assert ids(first) == [2] and first["next"] == "2"
    second = http.get("/certificates", params={"issued_to": farm, "after": first["next"]}).json()
    assert ids(second) == [1] and second["next"] is None
    assert ids(http.get("/certificates", params={"owner": office}).json()) == [1]
    assert ids(http.get("/certificates", params={"owner": farm}).json()) == [2]
    assert http.get("/certificates", params={"issued_to": office}).json()["items"] == []
    retired = http.get("/certificates/1").json()
    assert retired["retired"] is True and retired["beneficiary"] == BENEFICIARY
    assert retired["owner"] == office and retired["retire_day"] >= retired["issue_day"]

    def listed(**params: str) -> list[int]:
        return ids(http.get("/certificates", params=params).json())

    assert listed(owner=office, status="retired") == [1]
    assert listed(owner=office, status="active") == []
    assert listed(owner=farm, status="active") == [2]
    assert listed(issued_to=farm, status="retired") == [1]
    assert listed(status="retired") == [1] and listed(status="active")[-1] == 2
    assert listed()[-2:] == [2, 1]
    assert listed(status="all", after="2") == [1]


def test_the_index_equals_one_rebuilt_from_the_state(live: Farmed) -> None:
    assert live.node.node is not None
    db = live.node.node.app.store

    def rebuilt() -> tuple[list[bytes], int, list[bytes]]:
        before = index_keys(db)
        return before, db.rebuild_certificate_index(), index_keys(db)

    before, count, after = live.node.on_loop(rebuilt)
    assert len(before) == 3 * count and count >= 2  # holder, first owner, status per certificate
    assert after == before


@pytest.mark.parametrize(
    "params",
    [
        {"owner": "gtx-not-an-address"},
        {"issued_to": "nope"},
        {"status": "spent"},
        {"limit": 0},
        {"limit": 501},
        {"after": "x"},
        {"owner": "{farm}", "issued_to": "{farm}"},
    ],
)
def test_bad_certificate_listings_are_refused(
    live: Farmed, http: httpx.Client, params: dict[str, Any]
) -> None:
    filled = {k: text(live.farm) if v == "{farm}" else v for k, v in params.items()}
    error_of(http.get("/certificates", params=filled), 422, "INVALID_REQUEST")


# --- carbon totals -----------------------------------------------------------------------
def test_carbon_totals_per_participant_and_zone(live: Farmed, http: httpx.Client) -> None:
    cert = http.get("/certificates/2").json()
    day = cert["issue_day"]
    farm = http.get(f"/carbon/participants/{text(live.farm)}", params={"from_day": day}).json()
    assert farm["participant"] == text(live.farm)
    assert (farm["from_day"], farm["to_day"]) == (day, day)
    assert (farm["issued_wh"], farm["issued_avoided_g"]) == (2 * MWH, 950_000)
    assert (farm["retired_wh"], farm["retired_avoided_g"]) == (0, 0)
    assert farm["days"] == [{"day": day, "issued_wh": 2 * MWH, "issued_avoided_g": 950_000,
                             "retired_wh": 0, "retired_avoided_g": 0}]  # fmt: skip
    retire_day = http.get("/certificates/1").json()["retire_day"]
    span = {"from_day": min(day, retire_day), "to_day": max(day, retire_day)}
    office = http.get(f"/carbon/participants/{text(live.cast.office)}", params=span).json()
    assert (office["issued_wh"], office["retired_wh"], office["retired_avoided_g"]) == (
        0,
        MWH,
        475_000,
    )
    zone = http.get("/carbon/zones/CEN", params=span).json()
    assert zone["zone"] == "CEN" and zone["issued_wh"] == 2 * MWH
    assert zone["retired_wh"] == MWH and zone["issued_avoided_g"] == 950_000
    assert sum(d["issued_wh"] for d in zone["days"]) == zone["issued_wh"]
    every = http.get("/carbon/zones", params=span).json()
    assert every["zones"]["CEN"] == {k: zone[k] for k in every["zones"]["CEN"]}
    assert every["zones"]["BKK"]["issued_wh"] == 0 and len(every["zones"]) == 7
    assert every["issued_wh"] == 2 * MWH
    # Defaults: the latest block's local day.
    today = http.get("/carbon/zones").json()
    assert today["from_day"] == today["to_day"] >= day
    # A day outside the range counts nothing.
    empty = http.get("/carbon/zones/CEN", params={"from_day": 20250101}).json()
    assert empty["issued_wh"] == 0 and empty["days"] == []


def _days_apart(first: str, days: int) -> str:
    start = datetime.date(int(first[:4]), int(first[4:6]), int(first[6:]))
    return (start + datetime.timedelta(days=days)).strftime("%Y%m%d")


def test_carbon_ranges_are_bounded_at_366_days(http: httpx.Client) -> None:
    longest = {"from_day": "20250101", "to_day": _days_apart("20250101", 365)}
    assert http.get("/carbon/zones/CEN", params=longest).status_code == 200
    too_long = {"from_day": "20250101", "to_day": _days_apart("20250101", 366)}
    assert "366" in error_of(http.get("/carbon/zones/CEN", params=too_long), 422, "INVALID_REQUEST")


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/carbon/zones/CEN", {"from_day": "20260230"}, 422, "INVALID_REQUEST"),
        ("/carbon/zones/CEN", {"from_day": "2026-01-01"}, 422, "INVALID_REQUEST"),
        ("/carbon/zones/CEN", {"from_day": "20260102", "to_day": "20260101"}, 422,
         "INVALID_REQUEST"),
        ("/carbon/zones", {"to_day": "20261301"}, 422, "INVALID_REQUEST"),
        ("/carbon/zones", {"from_day": "00000101"}, 422, "INVALID_REQUEST"),
        ("/carbon/zones/cen", {}, 422, "INVALID_REQUEST"),
        ("/carbon/zones/XYZ", {}, 404, "NOT_FOUND"),
        ("/carbon/participants/gtx-typo", {}, 422, "INVALID_REQUEST"),
        ("/carbon/participants/{stranger}", {}, 404, "NOT_FOUND"),
    ],
)  # fmt: skip
def test_bad_carbon_requests_get_their_codes(
    http: httpx.Client, path: str, params: dict[str, str], status: int, code: str
) -> None:
    stranger = text(PrivateKey.from_dev_label("cert-api/stranger"))
    error_of(http.get(path.replace("{stranger}", stranger), params=params), status, code)


# --- governance listings -----------------------------------------------------------------
def test_proposals_newest_first_with_status_filters(live: Farmed, http: httpx.Client) -> None:
    api = live.api
    kind = tx.ProposalKind.PARAMETER
    change = (tx.ParamChange("min_fee_satang", 5),)
    submitted = []
    for title in ("first", "second"):
        receipt = api.send_and_wait(EGAT, tx.SubmitProposal(kind, change, title))
        submitted.append(next(e for e in receipt.events if e["kind"] == "proposal_submitted"))
    first, second = (int(s["attrs"]["id"]) for s in submitted)
    api.send_and_wait(MEA, tx.CastVote(second, tx.VoteChoice.YES))
    api.send_and_wait(EGAT, tx.WithdrawProposal(first))
    everything = http.get("/governance/proposals").json()
    assert ids(everything)[:2] == [second, first] and everything["next"] is None
    top = everything["items"][0]
    assert (top["title"], top["status"], top["yes"], top["kind"]) == ("second", "VOTING", 8000,
                                                                       "PARAMETER")  # fmt: skip
    rules = http.get("/governance").json()["rules"]
    assert (top["quorum_bp"], top["approval_bp"]) == (
        rules["parameter_quorum_bp"],
        rules["parameter_approval_bp"],
    )
    assert "ballots" not in top
    active = ids(http.get("/governance/proposals", params={"status": "active"}).json())
    assert second in active and first not in active
    assert active == sorted(http.get("/governance").json()["active"], reverse=True)
    closed = ids(http.get("/governance/proposals", params={"status": "closed"}).json())
    assert first in closed and second not in closed
    withdrawn = http.get("/governance/proposals", params={"status": "WITHDRAWN"}).json()
    assert ids(withdrawn) == [first]
    page = http.get("/governance/proposals", params={"limit": 1}).json()
    assert ids(page) == [second] and page["next"] == str(second)
    after = http.get("/governance/proposals", params={"after": page["next"], "limit": 1}).json()
    assert ids(after) == [first]
    single = http.get(f"/governance/proposals/{second}").json()
    assert single["quorum_bp"] == top["quorum_bp"] and single["ballots"][0]["voter"] == text(MEA)
    for bad in ({"status": "LOST"}, {"limit": 0}, {"after": "-1"}):
        error_of(http.get("/governance/proposals", params=bad), 422, "INVALID_REQUEST")


# --- the WebSocket -----------------------------------------------------------------------
def test_certificate_and_governance_events_are_pushed(live: Farmed) -> None:
    farm, meter = solar_farm(live.api, "cert-api/ws", "NTH")
    issued = produce(live.node, live.api, meter, MWH)
    cert = next(e["attrs"]["id"] for e in issued.events if e["kind"] == "certificate_issued")
    url = live.node.url.replace("http://", "ws://") + V1 + "/ws"
    with connect(url) as socket:
        for topic in ("certificates", "governance"):
            socket.send(json.dumps({"op": "subscribe", "topic": topic}))
        live.api.send_and_wait(farm, tx.TransferCertificate(cert, live.cast.home.address))
        change = (tx.ParamChange("min_fee_satang", 7),)
        proposal = tx.SubmitProposal(tx.ProposalKind.PARAMETER, change, "pushed")
        live.api.send_and_wait(ERC, proposal)
        seen: list[dict[str, Any]] = []
        while not {"certificate", "governance"} <= {m["type"] for m in seen}:
            seen.append(json.loads(socket.recv(timeout=15)))
    moved = next(m for m in seen if m["type"] == "certificate")
    assert moved["event"] == "certificate_transferred" and moved["id"] == cert
    assert moved["to"] == text(live.cast.home) and moved["height"] >= 1
    submitted = next(m for m in seen if m["type"] == "governance")
    assert submitted["event"] == "proposal_submitted" and submitted["proposer"] == "ERC"


def test_openapi_documents_the_new_routes(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/certificates",
        "/api/v1/certificates/{certificate_id}",
        "/api/v1/carbon/participants/{address}",
        "/api/v1/carbon/zones/{zone}",
        "/api/v1/carbon/zones",
        "/api/v1/governance/proposals",
    ):
        assert path in paths


# --- the index in the store, without a node ----------------------------------------------
def test_the_store_index_follows_each_height_and_rebuilds_on_open(tmp_path: Path) -> None:
    """Certificates issued, transferred and retired in a ledger sandbox, each step written
    as a height: the index lists what the state holds; a store whose index is lost gets it
    back, identical, when it is opened."""
    net = LedgerCast(Sandbox())
    db = store.Store(tmp_path / "db")
    db.save_genesis_state(net.sb.state)
    height = 0

    def commit() -> None:
        nonlocal height
        height += 1
        db.commit_height(height, b"b", b"c", [], net.sb.state.take_changes())

    farm = net.register("store-farm", "CEN", tx.ParticipantKind.GENERATOR)
    meter = net.add_meter("store-farm", farm, "CEN", tx.MeterKind.SOLAR, FARM_W)
    buyer = net.register("store-buyer", "BKK", tx.ParticipantKind.BUSINESS)
    net.produce(meter, 2 * MWH)
    commit()
    owned = store.certificate_index_prefix("owner", "a", farm.address)
    assert db.certificate_ids(owned) == [2, 1]
    net.ok(farm, tx.TransferCertificate(1, buyer.address))
    net.ok(buyer, tx.RetireCertificate(1, "Scope 2"))
    commit()
    assert db.certificate_ids(owned) == [2]
    retired = store.certificate_index_prefix("owner", "r", buyer.address)
    assert db.certificate_ids(retired) == [1]
    assert db.certificate_ids(store.certificate_index_prefix("issued", "r", farm.address)) == [1]
    assert db.certificate_ids(store.certificate_index_prefix("all", "a"), before=2) == []
    kept = index_keys(db)
    held = {(c.id, c.owner, c.retired) for _, c in net.sb.state.scan(store.CERT_PREFIX)}
    assert held == {(1, buyer.address, True), (2, farm.address, False)}
    # Lose the index (as a store from before it existed), then reopen.
    index, meta = db.db.get_column_family("index"), db.db.get_column_family("meta")
    for key in kept:
        del index[key]
    del meta[store.CERT_INDEX_KEY]
    del index, meta
    assert index_keys(db) == []
    db.close()
    with store.Store(tmp_path / "db") as reopened:
        assert index_keys(reopened) == kept
        assert reopened.load_state().root() == net.sb.state.root()
