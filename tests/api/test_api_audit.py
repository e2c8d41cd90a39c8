"""Contract tests of GET /api/v1/audit/{address}: a participant's events over a height
range from a real node (consensus, RocksDB, uvicorn on 127.0.0.1), paged with a cursor,
with a capped range and clear errors for bad input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gridtokenx.api.routes import audit
from tests.api.test_api_harness import EGAT, LocalNode, key, text
from tests.reporting.test_reporting_chain import Built, build

V1 = "/api/v1"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Built, httpx.Client]]:
    path = tmp_path_factory.mktemp("audit")
    with LocalNode(path / "data") as node, node.client() as api:
        built = build(node, api)
        with httpx.Client(base_url=node.url + V1, timeout=10) as http:
            yield built, http


def trail(http: httpx.Client, who: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of an audit trail, following `next`."""
    items: list[dict[str, Any]] = []
    while True:
        page = http.get(f"/audit/{who}", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        if body["next"] is None:
            return items
        params = {**params, "after": body["next"]}


def test_the_trail_lists_what_the_participant_sent_and_is_named_in(
    live: tuple[Built, httpx.Client],
) -> None:
    built, http = live
    office = text(built.cast.office)
    items = trail(http, office, from_height=1, to_height=built.head)
    kinds = [i["kind"] for i in items]
    for kind in ("participant_registered", "thb_issued", "order_accepted", "trade",
                 "certificate_transferred", "certificate_retired"):  # fmt: skip
        assert kind in kinds, kinds
    assert "licence_granted" not in kinds and "grid_emergency" not in kinds
    trade = next(i for i in items if i["kind"] == "trade")
    assert trade["tx_hash"] == built.trade_tx and trade["attrs"]["buyer"] == office
    block = http.get(f"/blocks/{trade['height']}").json()
    assert block["hash"] == trade["block_hash"] and trade["tx_hash"] in block["txs"]
    home = text(built.cast.home)  # sold energy it never metered: settlement names it
    debt = next(i for i in trail(http, home, to_height=built.head) if i["kind"] == "debt")
    assert debt["tx_hash"] is None and debt["attrs"]["debtor"] == home  # an end-of-block event
    heights = [i["height"] for i in items]
    assert heights == sorted(heights)
    assert all(i["height"] <= built.head for i in items)


def test_pages_follow_the_cursor_without_gaps_or_repeats(live: tuple[Built, httpx.Client]) -> None:
    built, http = live
    office = text(built.cast.office)
    whole = trail(http, office, from_height=1, to_height=built.head)
    paged = trail(http, office, from_height=1, to_height=built.head, limit=2)
    assert paged == whole and len(whole) > 4
    first = http.get(f"/audit/{office}", params={"to_height": built.head, "limit": 2}).json()
    assert first["items"] == whole[:2] and first["next"] is not None
    assert (first["from_height"], first["to_height"]) == (1, built.head)  # the default window


def test_a_sender_without_attributes_and_an_unknown_address(
    live: tuple[Built, httpx.Client],
) -> None:
    built, http = live
    egat = trail(http, text(EGAT), from_height=1, to_height=built.head)
    assert {"grid_emergency", "zone_halted", "zone_resumed", "proposal_submitted"} <= {
        i["kind"] for i in egat
    }
    assert trail(http, text(key("nobody")), from_height=1, to_height=built.head) == []


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] in ("INVALID_REQUEST", "NOT_FOUND")
    return str(response.json()["error"]["message"])


def test_bad_ranges_cursors_and_addresses_are_rejected(live: tuple[Built, httpx.Client]) -> None:
    built, http = live
    assert built.head < audit.MAX_AUDIT_HEIGHTS
    office = text(built.cast.office)
    assert "1 to 1000 heights" in error_of(
        http.get(f"/audit/{office}", params={"from_height": 5, "to_height": 4}), 422
    )
    assert "above the chain height" in error_of(
        http.get(f"/audit/{office}", params={"to_height": 10**9}), 422
    )
    error_of(http.get(f"/audit/{office}", params={"from_height": 0}), 422)
    error_of(http.get(f"/audit/{office}", params={"after": "1-2-3"}), 422)
    error_of(http.get(f"/audit/{office}", params={"limit": 0}), 422)
    assert "address" in error_of(http.get("/audit/gtxnotanaddress"), 422)


def test_the_range_is_capped_per_request(
    live: tuple[Built, httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    built, http = live
    monkeypatch.setattr(audit, "MAX_AUDIT_HEIGHTS", 10)  # read per request by the route
    office = text(built.cast.office)
    message = error_of(
        http.get(f"/audit/{office}", params={"from_height": 1, "to_height": 11}), 422
    )
    assert "1 to 10 heights" in message
    window = http.get(f"/audit/{office}", params={"to_height": built.head}).json()
    assert (window["from_height"], window["to_height"]) == (built.head - 9, built.head)
    assert all(built.head - 9 <= i["height"] <= built.head for i in window["items"])
