"""SDK round trips against a real devnet: validator processes started as `gridtokenx node
start` would be, with their APIs on 127.0.0.1. Keys stay in the test (the SDK signs
locally); the sync client registers a participant, a custodian issues THB, the async client
places an order and waits for finality over the WebSocket, and another node's API reads
back the same balance, order and book. Processes are always stopped."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gridtokenx.client import ApiError, AsyncClient, Client
from gridtokenx.client.results import Level
from gridtokenx.devnet.homes import init_devnet
from gridtokenx.ledger import genesis
from gridtokenx.node.home import read_config
from gridtokenx.wire import tx
from gridtokenx.wire.crypto import PrivateKey
from tests.conftest import free_base_port

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]
VALIDATORS = ("EGAT", "MEA")
KEYS = genesis.dev_keys()


def _start(home: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gridtokenx", "node", "start", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=open(home / "node.log", "ab"),
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_ready(api: Client, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if api.health()["height"] >= 1:
                return
        except (ApiError, httpx.HTTPError):
            pass
        time.sleep(0.2)
    raise AssertionError("the devnet API did not come up in time")


def test_sdk_round_trip_against_a_devnet_of_processes(tmp_path: Path) -> None:
    base = free_base_port(len(VALIDATORS))
    homes = init_devnet(
        tmp_path, "gridtokenx-sdk-test", int(time.time()), base, block_ms=200,
        validators=VALIDATORS,
    )  # fmt: skip
    configs = [read_config(h) for h in homes]
    assert [c.api_port for c in configs] == [base + 200, base + 201]
    procs = [_start(h) for h in homes]
    try:
        urls = [f"http://127.0.0.1:{c.api_port}" for c in configs]
        with Client(urls[0]) as egat_api, Client(urls[1]) as mea_api:
            _wait_ready(egat_api)
            _wait_ready(mea_api)
            household = PrivateKey.from_dev_label("sdk-test/household")
            custodian = PrivateKey.from_dev_label("sdk-test/custodian")
            P = tx.ParticipantKind
            mea, erc = KEYS["MEA"], KEYS["ERC"]
            # Two registrations in flight at once: the SDK tracks MEA's nonces.
            first = egat_api.send(
                mea, tx.RegisterParticipant(household.address, "BKK", P.HOUSEHOLD, "Malee")
            )
            second = egat_api.send(
                mea, tx.RegisterParticipant(custodian.address, "BKK", P.CUSTODIAN, "Custody")
            )
            assert egat_api.wait(first).events[0]["kind"] == "participant_registered"
            egat_api.wait(second)
            expiry = int(time.time()) + 86_400
            egat_api.send_and_wait(
                erc, tx.GrantLicence(custodian.address, tx.LicenceKind.CUSTODIAN, expiry)
            )
            issued = egat_api.send_and_wait(custodian, tx.IssueThb(household.address, 50_000))
            assert issued.status == "committed" and issued.height is not None
            with pytest.raises(ApiError) as refused:
                egat_api.submit(tx.make(household, "wrong-chain", 0, tx.RedeemThb(1)))
            assert refused.value.code == "WRONG_CHAIN_ID" and refused.value.status == 400
            now = egat_api.health()["latest_time"]
            interval = (now // 900 + 2) * 900
            order = tx.PlaceOrder(tx.Side.BUY, "BKK", interval, 1_000, 300)

            async def place() -> int:
                async with AsyncClient(urls[1]) as client:
                    receipt = await client.send_and_wait(household, order)
                    accepted = next(e for e in receipt.events if e["kind"] == "order_accepted")
                    return int(accepted["attrs"]["order"])

            order_id = asyncio.run(asyncio.wait_for(place(), 60))
            # Read back from the other node: it committed the same blocks.
            deadline = time.monotonic() + 30
            while (
                mea_api.health()["height"] < egat_api.health()["height"]
                and time.monotonic() < deadline
            ):
                time.sleep(0.1)
            for api in (egat_api, mea_api):
                balance = api.balance(household)
                assert balance.thb_satang < 50_000 and balance.nonce == 1
                assert api.order(order_id).status == "OPEN"
                assert [o.id for o in api.orders(household)] == [order_id]
                assert api.book("BKK", interval).bids == [Level(300, 1_000, 1)]
            stream = egat_api.subscribe({"topic": "blocks"}, timeout=10)
            assert next(stream)["type"] == "block"  # the acknowledgement is not an event
            stream.close()
    finally:
        _stop(procs)
