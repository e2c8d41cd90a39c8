"""The dashboard's files as the node serves them, and the read-only routes the dashboard
needs (interconnector flows, token supply, carbon, validators' authorities): contract tests
against a real one-validator node (test_api_harness), and the flow arithmetic on a small
lossy link in the ledger sandbox. The browser test is test_dashboard_browser.py."""

from __future__ import annotations

import datetime
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gridtokenx.api.dashboard import STATIC
from gridtokenx.api.routes.market import link_flows
from gridtokenx.client import Client
from gridtokenx.ledger.market import paths
from gridtokenx.wire import tx
from gridtokenx.wire.tx import Side
from tests.api.test_api import error_of, wait_until
from tests.api.test_api_harness import (
    EGAT,
    INTERVAL,
    MWH,
    PEA,
    Cast,
    LocalNode,
    key,
    produce,
    running_cast,
    solar_farm,
    text,
)
from tests.ledger.market.test_market_crosszone import LINK_WH, built, fresh

ROOT = Path(__file__).resolve().parents[2]
V1 = "/api/v1"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNode, Client, Cast]]:
    with running_cast(tmp_path_factory.mktemp("dashboard")) as running:
        yield running


@pytest.fixture(scope="module")
def http(live: tuple[LocalNode, Client, Cast]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live[0].url, timeout=10) as client:
        yield client


def static_files() -> list[Path]:
    return sorted(p for p in STATIC.rglob("*") if p.is_file())


# --- the page ----------------------------------------------------------------------------
def test_the_page_is_served_at_root_with_a_policy_that_keeps_it_on_this_origin(
    http: httpx.Client,
) -> None:
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    # Everything the page loads is on this origin (or inline data): no network at run time.
    linked = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert "/static/dashboard.js" in linked and "/static/vendor/uPlot.iife.min.js" in linked
    # The shared fetch helper is a classic script loaded before the scripts that use it.
    assert linked.index("/static/api.js") < linked.index("/static/dashboard.js")
    assert linked.index("/static/api.js") < linked.index("/static/explorer.js")
    assert all(link.startswith(("/", "data:")) for link in linked), linked
    for name in ("api.js", "dashboard.js", "dashboard.css"):
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", (STATIC / name).read_text())


def test_every_static_file_is_served_as_shipped(http: httpx.Client) -> None:
    types = {".js": "javascript", ".css": "text/css", ".html": "text/html"}
    for path in static_files():
        response = http.get(f"/static/{path.relative_to(STATIC).as_posix()}")
        assert response.status_code == 200, path
        assert response.content == path.read_bytes()
        if path.suffix in types:
            assert types[path.suffix] in response.headers["content-type"]


def test_missing_and_escaping_static_paths_are_not_found_in_the_error_shape(
    http: httpx.Client,
) -> None:
    error_of(http.get("/static/nothing.js"), 404, "NOT_FOUND")
    for escape in ("/static/../dashboard.py", "/static/%2e%2e/dashboard.py"):
        assert http.get(escape).status_code == 404
    paths_documented = http.get(f"{V1}/openapi.json").json()["paths"]
    assert "/" not in paths_documented and not any(
        p.startswith("/static") for p in paths_documented
    )


def test_the_dashboard_ships_as_package_data_with_its_licence_notice() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["gridtokenx"]
    package = STATIC.parents[1]
    shipped = {p for pattern in patterns for p in package.glob(pattern) if p.is_file()}
    assert set(static_files()) <= shipped
    dev = config["project"]["optional-dependencies"]["dev"]
    assert any(re.fullmatch(r"playwright==[0-9.]+", d.split(";")[0].strip()) for d in dev)
    vendor = STATIC / "vendor"
    version = re.search(r"\(v([0-9.]+)\)", (vendor / "uPlot.iife.min.js").read_text()[:200])
    assert version is not None
    notice = (vendor / "NOTICE").read_text()
    assert f"uPlot {version.group(1)}" in notice and "MIT" in notice
    assert "MIT License" in (vendor / "uPlot.LICENSE").read_text()


# --- routes the dashboard reads ----------------------------------------------------------
def test_validators_name_the_authority_of_each_key(http: httpx.Client) -> None:
    members = http.get(f"{V1}/validators").json()["members"]
    assert [(m["authority"], m["jailed"]) for m in members] == [("EGAT", False)]


def test_supply_counts_issued_thb_and_metered_grid(
    live: tuple[LocalNode, Client, Cast], http: httpx.Client
) -> None:
    node, api, cast = live
    before = http.get(f"{V1}/supply").json()
    assert before["thb"]["issued_satang"] == 1_000_000  # the cast's custodian funded the office
    assert before["thb"]["outstanding_satang"] == 1_000_000 - before["thb"]["redeemed_satang"]
    api.send_and_wait(cast.custodian, tx.IssueThb(cast.home.address, 2_500))
    meter = http.get(f"{V1}/meters/{text(cast.meter)}").json()
    first = meter["first_interval"]
    node.advance(2 * INTERVAL)
    wait_until(lambda: api.health()["latest_time"] >= first + INTERVAL)
    api.send_and_wait(cast.meter, tx.MeterReading(first, 0, 700))
    after = http.get(f"{V1}/supply").json()
    assert after["thb"]["issued_satang"] == before["thb"]["issued_satang"] + 2_500
    assert after["grid"]["minted_wh"] == before["grid"]["minted_wh"] + 700
    assert (
        after["grid"]["outstanding_wh"] == after["grid"]["minted_wh"] - after["grid"]["burned_wh"]
    )
    assert after["height"] > before["height"]


def test_flows_and_carbon_follow_a_renewable_cross_zone_trade(
    live: tuple[LocalNode, Client, Cast], http: httpx.Client
) -> None:
    node, api, cast = live
    farm = key("dashboard/cen-farm")
    farm_meter = key("dashboard/cen-farm/meter")
    api.send_and_wait(
        PEA, tx.RegisterParticipant(farm.address, "CEN", tx.ParticipantKind.HOUSEHOLD, "Farm")
    )
    api.send_and_wait(
        PEA, tx.RegisterMeter(farm_meter.public_key, farm.address, "CEN", tx.MeterKind.SOLAR, 5000)
    )
    now = api.health()["latest_time"]
    interval = (now // INTERVAL + 2) * INTERVAL
    day = interval - interval % 86_400
    idle = http.get(f"{V1}/flows/{interval}").json()["interconnectors"]
    assert idle and all(f["net_wh"] == 0 and not f["congested"] for f in idle)
    api.send_and_wait(farm, tx.PlaceOrder(Side.SELL, "CEN", interval, 1_000, 250))
    bought = api.send_and_wait(cast.office, tx.PlaceOrder(Side.BUY, "BKK", interval, 1_000, 400))
    trade = next(e for e in bought.events if e["kind"] == "trade")["attrs"]
    assert trade["quantity_wh"] == 1_000 and trade["loss_bp"] > 0
    flows = {
        (f["zone_a"], f["zone_b"]): f
        for f in http.get(f"{V1}/flows/{interval}").json()["interconnectors"]
    }
    link = flows[("BKK", "CEN")]  # listed with the zones in code order; the energy went CEN->BKK
    assert (link["a_to_b_wh"], link["b_to_a_wh"], link["net_wh"]) == (0, 1_000, -1_000)
    assert link["room_b_to_a_wh"] == link["capacity_wh"] - 1_000
    assert link["room_a_to_b_wh"] == link["capacity_wh"] + 1_000
    assert link["utilisation_bp"] == 1_000 * 10_000 // link["capacity_wh"]
    assert not link["congested"]
    assert all(f["net_wh"] == 0 for pair, f in flows.items() if pair != ("BKK", "CEN"))
    window = {"from": day, "to": day + 86_400}
    unsettled = http.get(f"{V1}/carbon", params=window).json()
    assert unsettled["traded_wh"] >= 1_000 and unsettled["renewable_received_wh"] == 0
    # The farm's meter reports the interval; past the deadline the interval settles.
    node.advance(interval + INTERVAL - api.health()["latest_time"])
    wait_until(lambda: api.health()["latest_time"] >= interval + INTERVAL)
    api.send_and_wait(farm_meter, tx.MeterReading(interval, 0, 1_200))
    deadline = http.get(f"{V1}/chain").json()["params"]["settlement_deadline_seconds"]
    node.advance(deadline + 60)
    wait_until(lambda: http.get(f"{V1}/settlements/{interval}").json()["status"] == "SETTLED", 30)
    carbon = http.get(f"{V1}/carbon", params=window).json()
    # A first reading spreads its export over the intervals since the meter was installed,
    # so the trade delivered what settlement locked for its interval (the ledger's figure).
    delivered = http.get(f"{V1}/trades/{trade['trade']}").json()["delivered_wh"]
    assert 0 < delivered <= 1_000
    received = delivered * (10_000 - trade["loss_bp"]) // 10_000
    factor = carbon["emission_factor_g_per_kwh"]
    assert factor == 475 and carbon["settled_trades"] >= 1
    assert carbon["zones"]["BKK"]["renewable_received_wh"] == received
    assert carbon["zones"]["BKK"]["co2_avoided_g"] == received * factor // 1000
    assert carbon["co2_avoided_g"] == sum(z["co2_avoided_g"] for z in carbon["zones"].values())


@pytest.mark.parametrize(
    "path",
    [
        "/flows/7",  # not an interval start
        "/flows/-900",
        "/carbon?from=7&to=900",
        "/carbon?from=900&to=900",
        f"/carbon?from=0&to={193 * 900}",  # more than 192 intervals
        "/carbon?from=0",
        "/carbon?from=x&to=900",
    ],
)
def test_bad_flow_and_carbon_requests_are_refused_clearly(http: httpx.Client, path: str) -> None:
    before = http.get(f"{V1}/supply").json()
    error_of(http.get(V1 + path), 422, "INVALID_REQUEST")
    assert http.get(f"{V1}/supply").json()["grid"] == before["grid"]


# --- flow arithmetic on a small link -----------------------------------------------------
def test_a_link_filled_by_trades_reports_utilisation_then_congestion() -> None:
    mk, traders = built()  # BKK-CEN carries LINK_WH per interval; every other link is off
    mk = fresh(mk)
    cen_seller = next(t for t, zone, sells in traders if zone == "CEN" and sells)
    bkk_buyer = next(t for t, zone, sells in traders if zone == "BKK" and not sells)

    def link() -> dict[str, object]:
        rows = link_flows(mk.sb.state, mk.T)
        assert all(r["congested"] for r in rows if r["capacity_wh"] == 0)  # switched off
        return next(r for r in rows if (r["zone_a"], r["zone_b"]) == ("BKK", "CEN"))

    assert link()["capacity_wh"] == LINK_WH and link()["congested"] is False
    mk.place(cen_seller, Side.SELL, LINK_WH, 300, zone="CEN")
    mk.place(bkk_buyer, Side.BUY, LINK_WH // 2, 1_000)
    half = link()
    assert half["b_to_a_wh"] == LINK_WH // 2 and half["utilisation_bp"] == 5_000
    view = mk.sb.state.overlay()
    assert half["room_b_to_a_wh"] == paths.link_room_wh(view, mk.T, "CEN", "BKK", INTERVAL)
    assert half["congested"] is False
    mk.place(bkk_buyer, Side.BUY, LINK_WH // 2, 1_000)
    full = link()
    assert full["utilisation_bp"] == 10_000 and full["room_b_to_a_wh"] == 0
    assert full["room_a_to_b_wh"] == 2 * LINK_WH and full["congested"] is True


# --- the certificate and governance panels -----------------------------------------------
def test_every_element_the_script_reads_is_on_the_page() -> None:
    """The script finds its elements by id: a renamed or missing one would fail silently
    in the browser, so every `$("id")` must exist in index.html exactly once."""
    script = (STATIC / "dashboard.js").read_text()
    page = (STATIC / "index.html").read_text()
    wanted = set(re.findall(r'\$\("([a-z0-9-]+)"\)', script))
    assert {"cert-zones", "certificates", "proposals", "decided", "cert-issued"} <= wanted
    for name in sorted(wanted):
        assert page.count(f'id="{name}"') == 1, name
    for topic in ("certificates", "governance"):
        assert f'"{topic}"' in script  # subscribed on the WebSocket


def test_routes_the_certificate_and_governance_panels_read(
    live: tuple[LocalNode, Client, Cast], http: httpx.Client
) -> None:
    """What the panels show: today's per-zone certificate totals (no days given: the
    latest block's local day), the latest certificates and the open and closed proposals,
    with every field the script reads."""
    node, api, _ = live
    _, meter = solar_farm(api, "dashboard-contract")
    issued = produce(node, api, meter, MWH)
    cert_id = next(e["attrs"]["id"] for e in issued.events if e["kind"] == "certificate_issued")
    today = http.get(f"{V1}/carbon/zones").json()
    cert = http.get(f"{V1}/certificates/{cert_id}").json()
    local = datetime.datetime.fromtimestamp(api.health()["latest_time"] + 7 * 3600, datetime.UTC)
    assert today["from_day"] == today["to_day"] == int(local.strftime("%Y%m%d"))
    that_day = http.get(f"{V1}/carbon/zones", params={"from_day": cert["issue_day"]}).json()
    assert that_day["zones"]["CEN"]["issued_wh"] >= MWH
    assert set(today) >= {"from_day", "to_day", "issued_wh", "retired_wh", "issued_avoided_g",
                          "retired_avoided_g", "zones"}  # fmt: skip
    latest = http.get(f"{V1}/certificates", params={"limit": 10}).json()["items"]
    assert latest[0]["id"] == cert_id
    assert set(latest[0]) >= {"id", "source", "zone", "energy_wh", "avoided_g", "owner",
                              "retired", "retire_day", "beneficiary"}  # fmt: skip
    change = (tx.ParamChange("min_fee_satang", 2),)
    body = tx.SubmitProposal(tx.ProposalKind.PARAMETER, change, "dashboard")
    receipt = api.send_and_wait(EGAT, body)
    pid = next(e["attrs"]["id"] for e in receipt.events if e["kind"] == "proposal_submitted")
    open_ = http.get(f"{V1}/governance/proposals", params={"status": "active"}).json()["items"]
    shown = next(p for p in open_ if p["id"] == pid)
    assert set(shown) >= {"id", "kind", "title", "yes", "no", "abstain", "total_weight",
                          "quorum_bp", "approval_bp", "voting_end_height", "timelock_heights",
                          "execute_height", "status"}  # fmt: skip
    api.send_and_wait(EGAT, tx.WithdrawProposal(pid))
    closed = http.get(f"{V1}/governance/proposals", params={"status": "closed", "limit": 5})
    last = closed.json()["items"][0]
    assert (last["id"], last["status"]) == (pid, "WITHDRAWN") and last["outcome"]
