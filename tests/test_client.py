"""The SDK against a real one-validator node: signing locally with tracked nonces, typed
results, errors that carry the API's code, bounded waits, and the async twin."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gridtokenx import tx
from gridtokenx.client import ApiError, AsyncClient, Balance, Client, FinalityTimeout, Receipt
from test_api_harness import MEA, Cast, LocalNode, key, running_cast, text


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
