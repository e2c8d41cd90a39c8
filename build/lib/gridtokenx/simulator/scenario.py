"""A scripted Thai morning through the ledger alone, with no node: `gridtokenx demo-ledger`.

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
    """The morning in steps. The order of the transactions is the scenario (their ids, the
    fills and the final state root follow from it), so each step submits in a fixed order."""
    script = _Script()
    cast = _cast()
    _register(script, cast)
    _license_and_fund(script, cast)
    morning = _Morning(script, cast)
    morning.trade_and_settle(intervals)
    _refusals(script, cast, morning, intervals)
    return ScenarioResult(script.sb, cast.actors, script.accepted, script.rejected)


class _Script:
    """The sandbox and its tally. Invariants are checked after every accepted transaction,
    and a refused one must leave the state root untouched."""

    def __init__(self) -> None:
        self.sb = Sandbox()
        self.accepted = 0
        self.rejected: list[tuple[str, str]] = []

    def ok(self, key: crypto.PrivateKey, body: tx.Body) -> None:
        self.sb.submit(key, body)
        self.accepted += 1
        invariants.check_all(self.sb.state)

    def refused(self, what: str, key: crypto.PrivateKey, body: tx.Body) -> None:
        root = self.sb.state.root()
        try:
            self.sb.submit(key, body)
        except errors.Rejection as exc:
            self.rejected.append((what, exc.code))
            assert self.sb.state.root() == root, "a rejected transaction changed the state"
            return
        raise AssertionError(f"{what} was accepted")


@dataclass
class _Cast:
    households: list[Actor]  # two with rooftop solar, the third only consuming
    office: Actor
    factory: Actor  # in Central, with a 1 MW rooftop plant
    farm: Actor  # a 50 kW solar farm that holds no seller licence
    custodian: Actor

    @property
    def actors(self) -> list[Actor]:
        return [*self.households, self.office, self.factory, self.farm, self.custodian]


def _cast() -> _Cast:
    """Who takes part, with the meters (key, kind, rated watts) each will register."""
    P = tx.ParticipantKind
    households = [_actor(f"bkk-home-{i}", "BKK", P.HOUSEHOLD) for i in range(1, 4)]
    for i, home in enumerate(households[:2], 1):
        home.meters.append(
            (crypto.PrivateKey.from_dev_label(f"meter/home-{i}"), tx.MeterKind.SOLAR, 5_000)
        )
    households[2].meters.append(
        (crypto.PrivateKey.from_dev_label("meter/home-3"), tx.MeterKind.CONSUMPTION, 10_000)
    )
    factory = _actor("cen-factory", "CEN", P.INDUSTRIAL)
    factory.meters.append(
        (crypto.PrivateKey.from_dev_label("meter/factory"), tx.MeterKind.SOLAR, 1_000_000)
    )
    farm = _actor("cen-solar-farm", "CEN", P.GENERATOR)
    farm.meters.append((crypto.PrivateKey.from_dev_label("meter/farm"), tx.MeterKind.SOLAR, 50_000))
    return _Cast(
        households=households,
        office=_actor("bkk-office", "BKK", P.BUSINESS),
        factory=factory,
        farm=farm,
        custodian=_actor("siam-custody", "BKK", P.CUSTODIAN),
    )


def _register(script: _Script, cast: _Cast) -> None:
    """Each zone's distribution authority registers its participants, then their meters;
    the other zone's authority may not."""
    sb = script.sb
    mea, pea = sb.authority("MEA"), sb.authority("PEA")
    for actor in cast.actors:
        registrar = mea if actor.zone == "BKK" else pea
        script.ok(
            registrar,
            tx.RegisterParticipant(actor.key.address, actor.zone, actor.kind, actor.name),
        )
    for actor in cast.actors:
        registrar = mea if actor.zone == "BKK" else pea
        for meter_key, kind, capacity in actor.meters:
            script.ok(
                registrar,
                tx.RegisterMeter(
                    meter_key.public_key, actor.key.address, actor.zone, kind, capacity
                ),
            )
    script.refused(
        "PEA registering a Bangkok household",
        pea,
        tx.RegisterParticipant(
            crypto.PrivateKey.from_dev_label("participant/intruder").address,
            "BKK",
            tx.ParticipantKind.HOUSEHOLD,
            "x",
        ),
    )


def _license_and_fund(script: _Script, cast: _Cast) -> None:
    """The ERC licenses the custodian and the factory (not the farm); the custodian issues
    THB to the buyers and a float to the distribution authorities; nobody else may issue."""
    sb = script.sb
    erc, custodian, office = sb.authority("ERC"), cast.custodian, cast.office
    year = 365 * 86_400
    script.ok(erc, tx.GrantLicence(custodian.key.address, tx.LicenceKind.CUSTODIAN, sb.time + year))
    script.ok(erc, tx.GrantLicence(cast.factory.key.address, tx.LicenceKind.SELLER, sb.time + year))
    script.ok(custodian.key, tx.IssueThb(office.key.address, 10_000_000))  # 100,000 THB
    script.ok(custodian.key, tx.IssueThb(cast.households[2].key.address, 500_000))  # 5,000 THB
    script.refused("an office issuing THB", office.key, tx.IssueThb(office.key.address, 100))
    # The distribution authorities hold a THB float to buy back unsold rooftop export.
    for code in ("MEA", "PEA"):
        script.ok(custodian.key, tx.IssueThb(sb.authority(code).address, 5_000_000))


class _Morning:
    """Trading and metering interval by interval; `registers` holds each meter's cumulative
    (import, export) Wh as last read."""

    def __init__(self, script: _Script, cast: _Cast) -> None:
        self.script, self.cast = script, cast
        self.interval_seconds = script.sb.genesis.params.interval_seconds
        self.genesis_time = script.sb.genesis.genesis_time
        self.registers: dict[bytes, tuple[int, int]] = {}

    def trade_and_settle(self, intervals: int) -> None:
        """Trade each interval before its gate closes and read it once it has ended; the
        block ends (`Sandbox.advance`) expire and settle. The last interval traded is read
        after two more intervals have passed, and one more block end settles it."""
        sb, interval = self.script.sb, self.interval_seconds
        self.trade(self.genesis_time + interval)
        for n in range(1, intervals + 1):
            sb.advance(interval)  # ends the block: expiries and settlement happen here
            now_interval = self.genesis_time + n * interval
            self.read(now_interval - interval)
            if n < intervals:
                self.trade(now_interval + interval)
        for _ in range(2):
            sb.advance(interval)
        self.read(self.last_interval(intervals))
        sb.advance(1)
        invariants.check_all(sb.state)

    def last_interval(self, intervals: int) -> int:
        return self.genesis_time + intervals * self.interval_seconds

    def expected_wh(self, capacity_w: int, start: int) -> int:
        local_seconds = LOCAL_MORNING_START + start - self.genesis_time
        return solar_export_wh(capacity_w, local_seconds, self.interval_seconds)

    def trade(self, start: int) -> None:
        """Sellers offer their forecast for the interval; buyers bid below the TOU tariff."""
        cast, ok = self.cast, self.script.ok
        offers = (
            (cast.households[0], "BKK", 290),  # between buy-back 2.20 and peak TOU 5.80 THB/kWh
            (cast.households[1], "BKK", 300),
            (cast.factory, "CEN", 320),  # cross-zone into Bangkok: 3.232 THB/kWh after 1 % loss
        )
        for seller, zone, price in offers:
            forecast = sum(self.expected_wh(c, start) for _, _, c in seller.meters) * 9 // 10
            if forecast >= 100:
                ok(seller.key, tx.PlaceOrder(tx.Side.SELL, zone, start, forecast, price))
        ok(cast.households[2].key, tx.PlaceOrder(tx.Side.BUY, "BKK", start, 800, 400))
        ok(cast.office.key, tx.PlaceOrder(tx.Side.BUY, "BKK", start, 120_000, 420))

    def read(self, start: int) -> None:
        """Every meter reports the interval: solar along the curve, the household's load."""
        for actor in self.cast.actors:
            for meter_key, kind, capacity in actor.meters:
                imported, exported = self.registers.get(meter_key.address, (0, 0))
                if kind is tx.MeterKind.CONSUMPTION:
                    imported += 800  # 3.2 kW of morning load
                else:
                    exported += self.expected_wh(capacity, start)
                self.registers[meter_key.address] = (imported, exported)
                self.script.ok(meter_key, tx.MeterReading(start, imported, exported))


def _refusals(script: _Script, cast: _Cast, morning: _Morning, intervals: int) -> None:
    """After the morning: readings that would mint twice, be forged or exceed the meter's
    rating; an unlicensed seller; a bid after gate closure; an overdraft."""
    sb, interval = script.sb, morning.interval_seconds
    last = morning.last_interval(intervals)
    home_meter = cast.households[0].meters[0][0]
    exported = morning.registers[home_meter.address][1]
    script.refused(
        "minting the same interval twice",
        home_meter,
        tx.MeterReading(last, 0, exported + 100),
    )
    script.refused(
        "the owner forging its own meter reading",
        cast.households[0].key,
        tx.MeterReading(last + interval, 0, 10**6),
    )
    script.refused(
        "reading above 5 kW x 15 min",
        home_meter,
        tx.MeterReading(last + interval, 0, exported + 2 * 1_251),
    )
    upcoming = (sb.time // interval + 2) * interval
    script.refused(
        "an unlicensed 50 kW farm selling",
        cast.farm.key,
        tx.PlaceOrder(tx.Side.SELL, "CEN", upcoming, 1_000, 300),
    )
    script.refused(
        "a bid after gate closure",
        cast.office.key,
        tx.PlaceOrder(tx.Side.BUY, "BKK", (sb.time // interval) * interval, 1_000, 400),
    )
    script.refused(
        "spending more THB than held",
        cast.households[2].key,
        tx.Transfer(tx.Asset.THB, cast.office.key.address, 10**9),
    )
