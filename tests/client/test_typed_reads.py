"""The SDK's typed reads against a real one-validator node (tests.api.test_api_harness):
every read decodes what the node answers, field for field (a field the API adds, renames
or retypes fails here, not in a user's program); a full mempool's 429 carries Retry-After
and the SDK waits that long and gets through; the README's SDK example runs as written,
its subscription yielding blocks and no acknowledgement; a refused subscription raises."""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridtokenx.client import NO_RETRY, ApiError, Client, GridTokenXError, StreamError, to_json
from gridtokenx.client import results as r
from gridtokenx.wire import tx
from tests.api.test_api_harness import (
    EGAT,
    INTERVAL,
    MWH,
    Cast,
    LocalNode,
    produce,
    running_cast,
    solar_farm,
    text,
)

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNode, Client, Any]]:
    """A node with something in every read: a reading, a trade in a settled interval, a
    certificate and a proposal."""
    with running_cast(tmp_path_factory.mktemp("typed")) as (node, api, cast):
        produce(node, api, cast.meter, 1_000)  # GRID for the household to sell
        interval = (api.health().latest_time // INTERVAL + 2) * INTERVAL
        sold = api.send_and_wait(
            cast.home, tx.PlaceOrder(tx.Side.SELL, "BKK", interval, 1_000, 300)
        )
        api.send_and_wait(cast.office, tx.PlaceOrder(tx.Side.BUY, "BKK", interval, 600, 310))
        order_id = next(e for e in sold.events if e["kind"] == "order_accepted")["attrs"]["order"]
        farm, farm_meter = solar_farm(api, "typed")
        produce(node, api, farm_meter, MWH)
        change = (tx.ParamChange("min_fee_satang", 2),)
        api.send_and_wait(EGAT, tx.SubmitProposal(tx.ProposalKind.PARAMETER, change, "typed"))
        deadline = api.chain().params["settlement_deadline_seconds"]
        node.advance(interval + INTERVAL + deadline - api.health().latest_time + 1)
        for _ in range(400):  # bounded: 20 s
            if api.settlement(interval).status == "SETTLED":
                break
            time.sleep(0.05)
        facts = {"cast": cast, "interval": interval, "order": order_id, "farm": farm,
                 "farm_meter": farm_meter}  # fmt: skip
        yield node, api, facts


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and the types of the leaves."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def agrees(typed: Any, raw: Any) -> bool:
    """The typed result holds every field of the answer with its value; any field it has
    beyond them is one the answer may leave out (an empty default, as `Carbon.zones` for a
    participant's totals)."""
    shown = to_json(typed)
    extra = {k: v for k, v in shown.items() if k not in raw}
    return {k: v for k, v in shown.items() if k in raw} == raw and not any(extra.values())


def test_every_read_is_typed_and_says_what_the_api_says(
    market: tuple[LocalNode, Client, Any],
) -> None:
    _, api, facts = market
    cast: Cast = facts["cast"]
    home, meter, farm, interval = (
        text(cast.home),
        text(cast.meter),
        facts["farm"],
        facts["interval"],
    )
    trade = api.trades(interval=interval)[0]
    cert = api.certificates(farm).items[0]
    proposal = api.proposals().items[0]
    day = cert.issue_day
    height = api.health().height
    # (typed result, the raw answer of the same request): equal field for field
    same = [
        (api.balance(home), f"/accounts/{home}", {}),
        (api.participant(home), f"/participants/{home}", {}),
        (api.participants(limit=2), "/participants", {"limit": 2}),
        (api.meter(meter), f"/meters/{meter}", {}),
        (api.meters(home), "/meters", {"owner": home}),
        (api.readings(meter), f"/meters/{meter}/readings", {}),
        (api.licences(), "/licences", {}),
        (api.order(facts["order"]), f"/orders/{facts['order']}", {}),
        (api.trade(trade.id), f"/trades/{trade.id}", {}),
        (api.book("BKK", interval), f"/book/BKK/{interval}", {}),
        (api.settlement(interval), f"/settlements/{interval}", {}),
        (api.prices("BKK", interval, interval + INTERVAL), "/prices/BKK",
         {"from": interval, "to": interval + INTERVAL}),
        (api.flows(interval), f"/flows/{interval}", {}),
        (api.grid(), "/grid", {}),
        (api.certificate(cert.id), f"/certificates/{cert.id}", {}),
        (api.certificates(issued_to=farm), "/certificates", {"issued_to": text(farm)}),
        (api.carbon(farm, from_day=day), f"/carbon/participants/{text(farm)}", {"from_day": day}),
        (api.carbon(zone="CEN", from_day=day), "/carbon/zones/CEN", {"from_day": day}),
        (api.carbon(from_day=day), "/carbon/zones", {"from_day": day}),
        (api.governance(), "/governance", {}),
        (api.proposal(proposal.id), f"/governance/proposals/{proposal.id}", {}),
        (api.audit(home, to_height=height), f"/audit/{home}", {"to_height": height}),
        (api.block(2), "/blocks/2", {}),
    ]  # fmt: skip
    for typed, path, params in same:
        assert isinstance(typed, r.Record), path
        assert agrees(typed, api.get(path, **params)), path
    assert to_json(api.orders(home)) == api.get("/orders", account=home)["items"]
    assert to_json(api.trades(interval=interval)) == api.get("/trades", interval=interval)["items"]
    # What moves between two requests (heights, times, peers): the same shape.
    moving = [
        (api.health(), "/health"),
        (api.chain(), "/chain"),
        (api.validators(), "/validators"),
        (api.supply(), "/supply"),
        (api.block(), "/blocks/latest"),
    ]
    for typed, path in moving:
        assert shape(to_json(typed)) == shape(api.get(path)), path
    listed = api.blocks(limit=3)
    assert [b.height for b in listed.items] == list(range(listed.items[0].height, 0, -1))[:3]
    summary = api.blocks(limit=1, after=3).items[0]
    assert agrees(summary, api.get("/blocks", limit=1, after=3)["items"][0])
    assert summary.hash == api.block(2).hash and summary.signers == []  # a summary
    # The attributes say it: typed, not dicts.
    assert trade.buyer == text(cast.office) and trade.quantity_wh == 600 and trade.price == 300
    assert api.book("BKK", interval).asks == []  # settled: the book is gone
    assert api.settlement(interval).reports["BKK"].shortfall_wh >= 0
    assert cert.energy_wh == MWH and not cert.retired
    assert api.block(2).header.height == 2
    assert api.block(api.block(2).hash) == api.block(2)  # by hash
    assert api.participant(home).name == "Somchai"
    assert api.proposal(proposal.id).ballots == [] and proposal.title == "typed"


def test_a_full_mempool_says_when_to_retry_and_the_sdk_waits_that_long(
    market: tuple[LocalNode, Client, Any],
) -> None:
    node, api, facts = market
    cast: Cast = facts["cast"]
    pool = node.on_loop(lambda: node.node.app.mempool)  # type: ignore[union-attr]
    node.on_loop(lambda: setattr(pool, "max_txs", 0))
    try:
        signed = api.sign(cast.office, tx.Transfer(tx.Asset.THB, cast.home.address, 1))
        raw = httpx.post(f"{node.url}/api/v1/txs", json={"tx": signed.hex()}, timeout=10)
        assert raw.status_code == 503 and raw.headers["retry-after"] == "1"
        assert raw.json()["error"]["code"] == "MEMPOOL_FULL"
        with Client(node.url, retry=NO_RETRY) as once, pytest.raises(ApiError) as full:
            once.submit(signed)
        assert (full.value.code, full.value.status, full.value.retry_after) == (
            "MEMPOOL_FULL", 503, 1.0,
        )  # fmt: skip
        assert isinstance(full.value, GridTokenXError)
        room = threading.Timer(0.3, lambda: node.on_loop(lambda: setattr(pool, "max_txs", 50_000)))
        room.start()
        started = time.monotonic()
        tx_hash = api.submit(signed)  # refused once, then asked again after Retry-After
        assert time.monotonic() - started >= 1.0  # it waited what the node asked
        room.join()
        assert api.wait(tx_hash).status == "committed"
    finally:
        node.on_loop(lambda: setattr(pool, "max_txs", 50_000))


def readme_sdk_example() -> str:
    """The README's SDK example (the python block after "`gridtokenx.client` signs")."""
    text_ = README.read_text()
    section = text_[text_.index("`gridtokenx.client` signs locally") :]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None
    return found.group(1)


def test_the_readme_sdk_example_runs_and_its_subscription_yields_blocks_only(
    tmp_path: Path,
) -> None:
    code = readme_sdk_example()
    assert 'Client("http://127.0.0.1:26850")' in code
    with LocalNode(tmp_path / "data") as node:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(code.replace("http://127.0.0.1:26850", node.url), {"__name__": "readme"})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Balance(address='gtx") and lines[1] == "Malee"
    heights = [int(line.split()[0]) for line in lines[2:]]
    assert len(heights) == 3 and heights == sorted(set(heights))  # three blocks, in order


def test_a_refused_subscription_raises_with_the_apis_code(
    market: tuple[LocalNode, Client, Any],
) -> None:
    _, api, _ = market
    with pytest.raises(StreamError) as refused:
        next(api.subscribe({"topic": "weather"}, timeout=10))
    assert refused.value.code == "INVALID_REQUEST" and refused.value.message
