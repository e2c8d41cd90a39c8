"""The SDK against a real one-validator node: signing locally with tracked nonces, typed
results, errors that carry the API's code, bounded waits, and the async twin."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from gridtokenx.client import ApiError, AsyncClient, Balance, Client, FinalityTimeout, Receipt
from gridtokenx.wire import tx
from tests.api.test_api_harness import (
    EGAT,
    MEA,
    MWH,
    Cast,
    LocalNode,
    key,
    produce,
    running_cast,
    solar_farm,
    text,
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNode, Client, Cast]]:
    with running_cast(tmp_path_factory.mktemp("sdk")) as running:
        yield running


def test_sync_client_signs_submits_waits_and_reads(live: tuple[LocalNode, Client, Cast]) -> None:
    _, api, cast = live
    before = api.balance(cast.home)
    assert isinstance(before, Balance) and before.address == text(cast.home)
    hashes = [
        api.send(cast.office, tx.Transfer(tx.Asset.THB, cast.home.address, 100)) for _ in range(3)
    ]
    receipts = [api.wait(h) for h in hashes]  # three in flight: nonces tracked locally
    assert all(isinstance(r, Receipt) and r.status == "committed" for r in receipts)
    assert api.balance(cast.home).thb_satang == before.thb_satang + 300
    assert api.tx(hashes[0]) == receipts[0]
    assert api.block(receipts[0].height or 0)["height"] == receipts[0].height
    assert api.chain_id() == "gridtokenx-api-test"
    results = api.submit_batch([tx.make(cast.office, api.chain_id(), 0, tx.RedeemThb(1))])
    assert results[0]["code"] == "NONCE_REPLAYED"


def test_errors_carry_codes_and_waits_are_bounded(live: tuple[LocalNode, Client, Cast]) -> None:
    _, api, cast = live
    with pytest.raises(ApiError) as missing:
        api.balance(key("nobody"))
    assert missing.value.code == "NOT_FOUND" and missing.value.status == 404
    with pytest.raises(ApiError) as invalid:
        api.get("/accounts/not-an-address")
    assert invalid.value.code == "INVALID_REQUEST"
    far = api.balance(cast.custodian).nonce + 200
    waiting = api.submit(tx.make(cast.custodian, api.chain_id(), far, tx.RedeemThb(1)))
    with pytest.raises(FinalityTimeout):
        api.wait(waiting, timeout=0.5, poll=0.1)
    with pytest.raises(ApiError) as refused:
        api.send(key("nobody"), tx.RedeemThb(1))
    assert refused.value.code == "NOT_FOUND"  # no account: the nonce lookup says so


def test_async_client_waits_over_the_websocket(live: tuple[LocalNode, Client, Cast]) -> None:
    node, api, _ = live

    async def scenario() -> tuple[Receipt, Balance, dict[str, object]]:
        async with AsyncClient(node.url) as client:
            who = key("async-household")
            body = tx.RegisterParticipant(who.address, "BKK", tx.ParticipantKind.HOUSEHOLD, "A")
            receipt = await client.send_and_wait(MEA, body, timeout=20)
            return receipt, await client.balance(who), await client.health()

    receipt, balance, health = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert receipt.status == "committed" and receipt.events[0]["kind"] == "participant_registered"
    assert balance.thb_satang == 0 and balance.nonce == 0
    assert health["chain_id"] == "gridtokenx-api-test"
    assert api.tx(receipt.hash).height == receipt.height


def _farm_with_a_certificate(live: tuple[LocalNode, Client, Cast], label: str) -> tuple[Any, int]:
    """A licensed solar farm whose 1 MWh reading issued one certificate; (owner, its id)."""
    node, api, _ = live
    farm, meter = solar_farm(api, label)
    receipt = produce(node, api, meter, MWH)
    issued = [e["attrs"] for e in receipt.events if e["kind"] == "certificate_issued"]
    assert len(issued) == 1
    return farm, int(issued[0]["id"])


def test_sync_client_reads_certificates_carbon_and_proposals(
    live: tuple[LocalNode, Client, Cast],
) -> None:
    _, api, _ = live
    farm, cert_id = _farm_with_a_certificate(live, "sdk-sync")
    cert = api.certificate(cert_id)
    assert cert["owner"] == text(farm) and cert["energy_wh"] == MWH and not cert["retired"]
    assert [c["id"] for c in api.certificates(farm)["items"]] == [cert_id]
    api.send_and_wait(farm, tx.RetireCertificate(cert_id, "SDK test"))
    assert api.certificates(farm, status="active")["items"] == []
    retired = api.certificates(issued_to=farm.address, status="retired")
    assert [c["beneficiary"] for c in retired["items"]] == ["SDK test"]
    day = cert["issue_day"]
    mine = api.carbon(farm, from_day=day, to_day=api.certificate(cert_id)["retire_day"])
    assert (mine["issued_wh"], mine["retired_wh"], mine["retired_avoided_g"]) == (MWH, MWH, 475_000)
    zone = api.carbon(zone="CEN", from_day=day, to_day=day)
    assert zone["zone"] == "CEN" and zone["issued_wh"] >= MWH
    assert api.carbon(from_day=day)["zones"]["CEN"]["issued_wh"] == zone["issued_wh"]
    with pytest.raises(ValueError):
        api.carbon(farm, zone="CEN")
    with pytest.raises(ApiError) as unknown:
        api.certificate(10**9)
    assert unknown.value.code == "NOT_FOUND"
    with pytest.raises(ApiError) as reversed_days:
        api.carbon(zone="CEN", from_day=20260102, to_day=20260101)
    assert reversed_days.value.code == "INVALID_REQUEST"
    change = (tx.ParamChange("min_fee_satang", 3),)
    submitted = api.send_and_wait(EGAT, tx.SubmitProposal(tx.ProposalKind.PARAMETER, change, "S"))
    pid = next(e["attrs"]["id"] for e in submitted.events if e["kind"] == "proposal_submitted")
    assert api.proposal(pid)["title"] == "S" and api.proposal(pid)["ballots"] == []
    assert pid in [p["id"] for p in api.proposals("active")["items"]]
    assert api.proposals(limit=1)["items"][0]["id"] >= pid


def test_async_client_reads_certificates_carbon_and_proposals(
    live: tuple[LocalNode, Client, Cast],
) -> None:
    node, api, _ = live
    farm, cert_id = _farm_with_a_certificate(live, "sdk-async")
    change = (tx.ParamChange("min_fee_satang", 4),)
    submitted = api.send_and_wait(EGAT, tx.SubmitProposal(tx.ProposalKind.PARAMETER, change, "A"))
    pid = next(e["attrs"]["id"] for e in submitted.events if e["kind"] == "proposal_submitted")

    async def scenario() -> tuple[Any, ...]:
        async with AsyncClient(node.url) as client:
            cert = await client.certificate(cert_id)
            page = await client.certificates(farm, status="active")
            carbon = await client.carbon(farm, from_day=cert["issue_day"])
            zones = await client.carbon(from_day=cert["issue_day"])
            proposals = await client.proposals("VOTING")
            return cert, page, carbon, zones, proposals, await client.proposal(pid)

    cert, page, carbon, zones, proposals, proposal = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert cert["id"] == cert_id and [c["id"] for c in page["items"]] == [cert_id]
    assert carbon["issued_wh"] == MWH and carbon["participant"] == text(farm)
    assert zones["zones"]["CEN"]["issued_wh"] >= MWH
    assert pid in [p["id"] for p in proposals["items"]]
    assert proposal["kind"] == "PARAMETER" and proposal["quorum_bp"] > 0
