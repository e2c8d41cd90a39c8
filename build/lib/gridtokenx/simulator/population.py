"""Who takes part in the market day: homes, offices, factories and solar farms per zone.

Sizes and temperaments are drawn from a seeded generator per member, so a seed names one
population. Everyone joins through real transactions (see `setup_phases`): the zone's
distribution authority (MEA for Bangkok, PEA elsewhere) registers the participant and its
meter, the ERC licenses the baht custodian and every seller above the small-prosumer
threshold, and the custodian issues THB. The phases must commit one after the other,
because a sender (the custodian) must exist before its own transactions are admitted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from gridtokenx.ledger import genesis
from gridtokenx.simulator.signer import Signer
from gridtokenx.wire import crypto, tx

YEAR: Final = 365 * 86_400


class Archetype(StrEnum):
    SOLAR_HOME = "solar-home"  # household with 3-10 kW rooftop PV (the rooftop scheme's cap)
    HOME = "home"  # household without PV
    OFFICE = "office"  # office or shop, some with rooftop PV
    FACTORY = "factory"  # two or three shifts, some with large rooftop PV
    SOLAR_FARM = "solar-farm"  # 1-5 MW ground-mounted plant on trackers


KINDS: Final = {
    Archetype.SOLAR_HOME: tx.ParticipantKind.HOUSEHOLD,
    Archetype.HOME: tx.ParticipantKind.HOUSEHOLD,
    Archetype.OFFICE: tx.ParticipantKind.BUSINESS,
    Archetype.FACTORY: tx.ParticipantKind.INDUSTRIAL,
    Archetype.SOLAR_FARM: tx.ParticipantKind.GENERATOR,
}

ZONE_WEIGHTS: Final = {"BKK": 30, "CEN": 14, "NTH": 12, "NEA": 18, "EST": 12, "WST": 6, "STH": 8}
"""Rough share of participants per zone (Bangkok dense, the Northeast populous); zones of
another genesis that are not listed get weight 10."""
FARM_ZONES: Final = ("CEN", "NEA", "NTH", "WST", "EST", "STH")


@dataclass(frozen=True)
class Member:
    """A participant and its one meter (bidirectional if it has PV)."""

    name: str
    zone: str
    archetype: Archetype
    key: crypto.PrivateKey
    meter: crypto.PrivateKey
    pv_w: int  # rooftop or plant rating; 0 without PV
    load_w: int  # households: daily Wh; offices: peak W; factories: first-shift W; farms: 0
    three_shifts: bool
    ask_permille: int  # where its asks sit between buy-back and retail (0 = at buy-back)
    bid_permille: int  # how far its bids sit below what retail makes worthwhile
    import_register_wh: int  # the meter's reading at installation (never minted)

    @property
    def meter_kind(self) -> tx.MeterKind:
        return tx.MeterKind.SOLAR if self.pv_w else tx.MeterKind.CONSUMPTION

    @property
    def meter_capacity_w(self) -> int:
        """Export rating for PV meters; a consumption meter's is its supply rating."""
        if self.pv_w:
            return self.pv_w
        if self.archetype is Archetype.HOME:
            return 15_000
        return max(self.load_w * 3 // 2, 1_000)


@dataclass(frozen=True)
class Population:
    members: tuple[Member, ...]
    custodian: crypto.PrivateKey

    def in_zone(self, zone: str) -> list[Member]:
        return [m for m in self.members if m.zone == zone]


def _counts(participants: int) -> dict[Archetype, int]:
    if participants < 6:
        raise ValueError(f"at least 6 participants are needed, not {participants}")
    farms = max(1, participants // 60)
    factories = max(1, participants * 6 // 100)
    offices = max(1, participants // 10)
    rest = participants - farms - factories - offices
    solar_homes = rest * 45 // 100
    return {
        Archetype.SOLAR_FARM: farms,
        Archetype.FACTORY: factories,
        Archetype.OFFICE: offices,
        Archetype.SOLAR_HOME: solar_homes,
        Archetype.HOME: rest - solar_homes,
    }


def spread_over_zones(count: int, zones: list[str]) -> list[str]:
    """Smooth weighted round robin: the first few members already land in different zones,
    in proportion to `ZONE_WEIGHTS` as the count grows."""
    weights = {z: ZONE_WEIGHTS.get(z, 10) for z in zones}
    total = sum(weights.values())
    current = dict.fromkeys(zones, 0)
    out = []
    for _ in range(count):
        for z in zones:
            current[z] += weights[z]
        pick = max(zones, key=lambda z: current[z])  # first of equals: the zone order
        current[pick] -= total
        out.append(pick)
    return out


def _member(archetype: Archetype, index: int, zone: str, seed: str, prefix: str) -> Member:
    name = f"{zone.lower()}-{archetype.value}-{index}"
    rng = random.Random(f"{seed}/member/{name}")
    pv = load = 0
    three_shifts = False
    ask, bid = rng.randint(150, 550), rng.randint(50, 500)
    if archetype is Archetype.SOLAR_HOME:
        pv, load = rng.randrange(3_000, 10_001, 500), rng.randrange(6_000, 15_001, 100)
    elif archetype is Archetype.HOME:
        load = rng.randrange(5_000, 14_001, 100)
    elif archetype is Archetype.OFFICE:
        load = rng.randrange(20_000, 150_001, 1_000)
        pv = rng.randrange(20_000, 100_001, 5_000) if rng.randint(1, 10) <= 4 else 0
        ask = rng.randint(100, 400)
    elif archetype is Archetype.FACTORY:
        load = rng.randrange(200_000, 1_000_001, 10_000)
        pv = rng.randrange(100_000, 800_001, 10_000) if rng.randint(1, 2) == 1 else 0
        three_shifts, ask = rng.randint(1, 2) == 1, rng.randint(100, 400)
    else:
        pv, ask = rng.randrange(1_000_000, 5_000_001, 250_000), rng.randint(30, 250)
    return Member(
        name=name,
        zone=zone,
        archetype=archetype,
        key=crypto.PrivateKey.from_dev_label(f"{prefix}/participant/{name}"),
        meter=crypto.PrivateKey.from_dev_label(f"{prefix}/meter/{name}"),
        pv_w=pv,
        load_w=load,
        three_shifts=three_shifts,
        ask_permille=ask,
        bid_permille=bid,
        import_register_wh=rng.randrange(0, 50_000_000),
    )


def build_population(
    participants: int, seed: str, zones: list[str], prefix: str = "sim"
) -> Population:
    """`participants` members over `zones` (farms only outside Bangkok, where land is)."""
    members = []
    for archetype, count in _counts(participants).items():
        if archetype is Archetype.SOLAR_FARM:
            rural = [z for z in FARM_ZONES if z in zones] or zones
            placed = [rural[i % len(rural)] for i in range(count)]
        else:
            placed = spread_over_zones(count, zones)
        seen: dict[str, int] = {}
        for zone in placed:
            seen[zone] = seen.get(zone, 0) + 1
            members.append(_member(archetype, seen[zone], zone, seed, prefix))
    custodian = crypto.PrivateKey.from_dev_label(f"{prefix}/custodian")
    return Population(tuple(members), custodian)


def needs_licence(member: Member, threshold_w: int) -> bool:
    return member.pv_w > threshold_w


def setup_phases(
    population: Population,
    spec: genesis.Genesis,
    authorities: dict[str, crypto.PrivateKey],
    signer: Signer,
    now: int,
    thb_satang: dict[str, int],
) -> list[list[bytes]]:
    """Signed setup transactions in three phases: registrations, licences, THB.

    `thb_satang` maps member names (and authority codes) to what the custodian issues them.
    """
    registrar = {z.code: authorities[z.distribution_authority] for z in spec.zones}
    erc = authorities["ERC"]
    custodian = population.custodian
    expires = now + YEAR
    P = tx.ParticipantKind
    first = [
        signer.sign(
            registrar["BKK"] if "BKK" in registrar else registrar[spec.zones[0].code],
            tx.RegisterParticipant(custodian.address, _custodian_zone(spec), P.CUSTODIAN,
                                   "Siam Baht Custody"),
        )
    ]  # fmt: skip
    for m in population.members:
        by = registrar[m.zone]
        body = tx.RegisterParticipant(m.key.address, m.zone, KINDS[m.archetype], m.name)
        first.append(signer.sign(by, body))
        first.append(
            signer.sign(
                by,
                tx.RegisterMeter(m.meter.public_key, m.key.address, m.zone, m.meter_kind,
                                 m.meter_capacity_w, m.import_register_wh, 0),
            )
        )  # fmt: skip
    second = [signer.sign(erc, tx.GrantLicence(custodian.address, tx.LicenceKind.CUSTODIAN,
                                               expires))]  # fmt: skip
    threshold = spec.params.small_prosumer_threshold_w
    for m in population.members:
        if needs_licence(m, threshold):
            second.append(
                signer.sign(erc, tx.GrantLicence(m.key.address, tx.LicenceKind.SELLER, expires))
            )
    third = []
    names = {m.name: m.key.address for m in population.members}
    names.update({code: key.address for code, key in authorities.items()})
    for name, amount in thb_satang.items():
        if amount > 0:
            third.append(signer.sign(custodian, tx.IssueThb(names[name], amount)))
    return [first, second, third]


def _custodian_zone(spec: genesis.Genesis) -> str:
    codes = [z.code for z in spec.zones]
    return "BKK" if "BKK" in codes else codes[0]
