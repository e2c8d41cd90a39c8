"""The chain the reporting tests export and audit: a real one-validator node (consensus,
RocksDB in a tmp dir, API on 127.0.0.1) that commits trades and their settlement, a THB
transfer, a licence grant and revocation, a certificate issued, transferred and retired, a grid
emergency declared and cleared, and a governance proposal with a vote carrying a delegated
weight."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from gridtokenx.client import Client
from gridtokenx.wire import crypto, tx
from tests.api.test_api import wait_until
from tests.api.test_api_harness import (
    EGAT,
    ERC,
    INTERVAL,
    MEA,
    Cast,
    LocalNode,
    build_cast,
    key,
    text,
)

MWH = 1_000_000


@dataclass
class Built:
    cast: Cast
    farm: crypto.PrivateKey
    interval: int
    trade_tx: str  # the transaction that matched the trade
    retire_tx: str
    head: int  # the height when the scenario finished


def build(node: LocalNode, api: Client) -> Built:
    cast = build_cast(api)  # participants, a meter, a custodian licence, THB for the office
    with httpx.Client(base_url=node.url + "/api/v1", timeout=10) as http:
        farm, farm_meter = key("wind-farm"), key("meter/wind-farm")
        api.send_and_wait(
            MEA, tx.RegisterParticipant(farm.address, "BKK", tx.ParticipantKind.GENERATOR, "Wind")
        )
        api.send_and_wait(
            MEA,
            tx.RegisterMeter(farm_meter.public_key, farm.address, "BKK", tx.MeterKind.WIND, 10**7),
        )
        first = http.get(f"/meters/{text(farm_meter)}").json()["first_interval"]
        now = http.get("/health").json()["latest_time"]
        interval = (now // INTERVAL + 2) * INTERVAL
        api.send_and_wait(cast.home, tx.PlaceOrder(tx.Side.SELL, "BKK", interval, 1_000, 300))
        trade = api.send_and_wait(
            cast.office, tx.PlaceOrder(tx.Side.BUY, "BKK", interval, 600, 310)
        )
        assert any(e["kind"] == "trade" for e in trade.events)
        api.send_and_wait(cast.office, tx.Transfer(tx.Asset.THB, farm.address, 1_234))
        node.advance(2 * INTERVAL)
        wait_until(lambda: http.get("/health").json()["latest_time"] >= first + INTERVAL)
        issued = api.send_and_wait(farm_meter, tx.MeterReading(first, 0, MWH))
        assert any(e["kind"] == "certificate_issued" for e in issued.events), issued
        api.send_and_wait(farm, tx.TransferCertificate(1, cast.office.address))
        retire = api.send_and_wait(cast.office, tx.RetireCertificate(1, "Office Scope 2, 2026"))
        api.send_and_wait(EGAT, tx.DeclareEmergency(("CEN",), "substation fire"))
        api.send_and_wait(EGAT, tx.ClearEmergency(("CEN",), "restored"))
        change = (tx.ParamChange("tariffs.ft_msat_per_kwh", 19_720),)
        api.send_and_wait(EGAT, tx.SubmitProposal(tx.ProposalKind.PARAMETER, change, "Ft"))
        api.send_and_wait(ERC, tx.DelegateVote("MEA"))
        api.send_and_wait(MEA, tx.CastVote(1, tx.VoteChoice.YES))  # carries the ERC's weight
        api.send_and_wait(ERC, tx.DelegateVote(""))
        api.send_and_wait(ERC, tx.RevokeLicence(cast.custodian.address, tx.LicenceKind.CUSTODIAN))
        deadline = http.get("/chain").json()["params"]["settlement_deadline_seconds"]
        node.advance(interval + INTERVAL + deadline - node.time + 1)
        wait_until(lambda: http.get(f"/settlements/{interval}").json()["status"] == "SETTLED")
        head = http.get("/health").json()["height"]
    return Built(cast, farm, interval, trade.hash, retire.hash, head)


def built_chain(path: Path) -> Built:
    """Build the chain in `path / "data"` and stop its node, leaving the store offline."""
    with LocalNode(path / "data") as node, node.client() as api:
        return build(node, api)
