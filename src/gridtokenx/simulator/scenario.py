"""A scripted Thai morning through the ledger: what `gridtokenx demo` runs for now.

MEA registers Bangkok households and an office, PEA a Central factory with a 1 MW rooftop
plant, the ERC licenses a baht custodian and the factory, meters sign 15-minute readings
along a solar curve, and participants trade energy for THB peer to peer. A few forged or
invalid transactions show the ledger refusing them. Invariants are checked after every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gridtokenx.ledger import invariants
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.wire import crypto, errors, tx

LOCAL_MORNING_START = 7 * 3600  # the sandbox genesis is 07:00 in Bangkok


@dataclass
class Actor:
    name: str
    zone: str
    kind: tx.ParticipantKind
    key: crypto.PrivateKey
    meters: list[tuple[crypto.PrivateKey, tx.MeterKind, int]] = field(default_factory=list)


@dataclass
class ScenarioResult:
    sandbox: Sandbox
    actors: list[Actor]
    accepted: int
    rejected: list[tuple[str, str]]  # (what was attempted, error code)


def _actor(name: str, zone: str, kind: tx.ParticipantKind) -> Actor:
    return Actor(name, zone, kind, crypto.PrivateKey.from_dev_label(f"participant/{name}"))


def solar_export_wh(capacity_w: int, local_seconds: int, interval_seconds: int) -> int:
    """Clear-sky bell from 06:00 to 18:00 local time, 80 % of rated at noon, in whole Wh."""
    hours = (local_seconds + interval_seconds / 2) / 3600
    shape = max(0.0, math.sin(math.pi * (hours - 6) / 12))
    return int(capacity_w * 0.8 * shape * interval_seconds / 3600)


def run(intervals: int = 20) -> ScenarioResult:
    sb = Sandbox()
    rejected: list[tuple[str, str]] = []
    accepted = 0

    def ok(key: crypto.PrivateKey, body: tx.Body) -> None:
        nonlocal accepted
        sb.submit(key, body)
        accepted += 1
        invariants.check_all(sb.state)

    def refused(what: str, key: crypto.PrivateKey, body: tx.Body) -> None:
        root = sb.state.root()
        try:
            sb.submit(key, body)
        except errors.Rejection as exc:
            rejected.append((what, exc.code))
            assert sb.state.root() == root, "a rejected transaction changed the state"
            return
        raise AssertionError(f"{what} was accepted")

    P = tx.ParticipantKind
    households = [_actor(f"bkk-home-{i}", "BKK", P.HOUSEHOLD) for i in range(1, 4)]
    office = _actor("bkk-office", "BKK", P.BUSINESS)
    factory = _actor("cen-factory", "CEN", P.INDUSTRIAL)
    farm = _actor("cen-solar-farm", "CEN", P.GENERATOR)
    custodian = _actor("siam-custody", "BKK", P.CUSTODIAN)
    actors = [*households, office, factory, farm, custodian]
    mea, pea, erc = sb.authority("MEA"), sb.authority("PEA"), sb.authority("ERC")

    for actor in actors:
        registrar = mea if actor.zone == "BKK" else pea
        ok(registrar, tx.RegisterParticipant(actor.key.address, actor.zone, actor.kind, actor.name))
    for i, home in enumerate(households[:2], 1):
        home.meters.append(
            (crypto.PrivateKey.from_dev_label(f"meter/home-{i}"), tx.MeterKind.SOLAR, 5_000)
        )
    households[2].meters.append(
        (crypto.PrivateKey.from_dev_label("meter/home-3"), tx.MeterKind.CONSUMPTION, 10_000)
    )
    factory.meters.append(
        (crypto.PrivateKey.from_dev_label("meter/factory"), tx.MeterKind.SOLAR, 1_000_000)
    )
    farm.meters.append((crypto.PrivateKey.from_dev_label("meter/farm"), tx.MeterKind.SOLAR, 50_000))
    for actor in actors:
        registrar = mea if actor.zone == "BKK" else pea
        for meter_key, kind, capacity in actor.meters:
            ok(
                registrar,
                tx.RegisterMeter(
                    meter_key.public_key, actor.key.address, actor.zone, kind, capacity
                ),
            )

    refused(
        "PEA registering a Bangkok household",
        pea,
        tx.RegisterParticipant(
            crypto.PrivateKey.from_dev_label("participant/intruder").address,
            "BKK",
            P.HOUSEHOLD,
            "x",
        ),
    )
    year = 365 * 86_400
    ok(erc, tx.GrantLicence(custodian.key.address, tx.LicenceKind.CUSTODIAN, sb.time + year))
    ok(erc, tx.GrantLicence(factory.key.address, tx.LicenceKind.SELLER, sb.time + year))
    ok(custodian.key, tx.IssueThb(office.key.address, 10_000_000))  # 100,000 THB
    ok(custodian.key, tx.IssueThb(households[2].key.address, 500_000))  # 5,000 THB
    refused("an office issuing THB", office.key, tx.IssueThb(office.key.address, 100))

    # The distribution authorities hold a THB float to buy back unsold rooftop export.
    for code in ("MEA", "PEA"):
        ok(custodian.key, tx.IssueThb(sb.authority(code).address, 5_000_000))

    interval = sb.genesis.params.interval_seconds
    genesis_time = sb.genesis.genesis_time
    registers: dict[bytes, tuple[int, int]] = {}

    def expected_wh(capacity: int, start: int) -> int:
        return solar_export_wh(capacity, LOCAL_MORNING_START + start - genesis_time, interval)

    def trade(start: int) -> None:
        """Sellers offer their forecast for the interval; buyers bid below the TOU tariff."""
        offers = (
            (households[0], "BKK", 290),  # between buy-back 2.20 and peak TOU 5.80 THB/kWh
            (households[1], "BKK", 300),
            (factory, "CEN", 320),  # cross-zone into Bangkok: 3.232 THB/kWh after 1 % loss
        )
        for seller, zone, price in offers:
            forecast = sum(expected_wh(c, start) for _, _, c in seller.meters) * 9 // 10
            if forecast >= 100:
                ok(seller.key, tx.PlaceOrder(tx.Side.SELL, zone, start, forecast, price))
        ok(households[2].key, tx.PlaceOrder(tx.Side.BUY, "BKK", start, 800, 400))
        ok(office.key, tx.PlaceOrder(tx.Side.BUY, "BKK", start, 120_000, 420))

    def read(start: int) -> None:
        """Every meter reports the interval: solar along the curve, the household's load."""
        for actor in actors:
            for meter_key, kind, capacity in actor.meters:
                imported, exported = registers.get(meter_key.address, (0, 0))
                if kind is tx.MeterKind.CONSUMPTION:
                    imported += 800  # 3.2 kW of morning load
                else:
                    exported += expected_wh(capacity, start)
                registers[meter_key.address] = (imported, exported)
                ok(meter_key, tx.MeterReading(start, imported, exported))

    trade(genesis_time + interval)
    for n in range(1, intervals + 1):
        sb.advance(interval)  # ends the block: expiries and settlement happen here
        now_interval = genesis_time + n * interval
        read(now_interval - interval)
        if n < intervals:
            trade(now_interval + interval)
    for _ in range(2):
        sb.advance(interval)
    read(genesis_time + intervals * interval)
    sb.advance(1)
    invariants.check_all(sb.state)

    last = genesis_time + intervals * interval
    home_meter = households[0].meters[0][0]
    refused(
        "minting the same interval twice",
        home_meter,
        tx.MeterReading(last, 0, registers[home_meter.address][1] + 100),
    )
    refused(
        "the owner forging its own meter reading",
        households[0].key,
        tx.MeterReading(last + interval, 0, 10**6),
    )
    refused(
        "reading above 5 kW x 15 min",
        home_meter,
        tx.MeterReading(last + interval, 0, registers[home_meter.address][1] + 2 * 1_251),
    )
    upcoming = (sb.time // interval + 2) * interval
    refused(
        "an unlicensed 50 kW farm selling",
        farm.key,
        tx.PlaceOrder(tx.Side.SELL, "CEN", upcoming, 1_000, 300),
    )
    refused(
        "a bid after gate closure",
        office.key,
        tx.PlaceOrder(tx.Side.BUY, "BKK", (sb.time // interval) * interval, 1_000, 400),
    )
    refused(
        "spending more THB than held",
        households[2].key,
        tx.Transfer(tx.Asset.THB, office.key.address, 10**9),
    )
    return ScenarioResult(sb, actors, accepted, rejected)
