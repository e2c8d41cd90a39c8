"""Renewable energy certificates: accrual from readings, transfer, retirement, carbon totals.

Every transaction goes through `transition.apply` on a Sandbox (conftest `Net.ok` / `Net.rejects`,
which check every invariant, `check_certificates` included, after each step and that a
refusal leaves the state root where it was).
"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.ledger import certificates, chain_info
from gridtokenx.ledger.certificates import Accrual, CarbonTotals, Certificate
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.storage import store
from gridtokenx.wire import codec, errors, tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import (
    MeterKind,
    MeterReading,
    ParticipantKind,
    RetireCertificate,
    TransferCertificate,
)
from tests.conftest import INTERVAL, Cast, Net, key, sandbox_with_params

MWH = 1_000_000
FARM_W = 10_000_000  # 10 MW: 2.5 MWh per 15-minute interval at rated power
DAY1, DAY2 = 20260101, 20260102  # the sandbox starts 2026-01-01 07:00 in Bangkok


def all_certificates(net: Net) -> list[Certificate]:
    found = [c for _, c in net.sb.state.scan(b"cert/")]
    assert all(isinstance(c, Certificate) for c in found)
    return found  # type: ignore[return-value]


def certificate(net: Net, certificate_id: int) -> Certificate:
    cert = net.sb.state.get(certificates.certificate_key(certificate_id), Certificate)
    assert cert is not None
    return cert


def accrual(net: Net, meter: PrivateKey) -> Accrual | None:
    return net.sb.state.get(certificates.accrual_key(meter.address), Accrual)


def participant_totals(net: Net, who: PrivateKey, day: int) -> CarbonTotals | None:
    return net.sb.state.get(certificates.participant_carbon_key(who.address, day), CarbonTotals)


def zone_totals(net: Net, zone: str, day: int) -> CarbonTotals | None:
    return net.sb.state.get(certificates.zone_carbon_key(zone, day), CarbonTotals)


def kinds(events: list[object]) -> list[str]:
    return [e.kind for e in events]  # type: ignore[attr-defined]


@pytest.fixture
def farm(net: Cast) -> tuple[PrivateKey, PrivateKey]:
    """A Central-region solar farm (owner, meter)."""
    owner = net.register("cen-solar-farm", "CEN", ParticipantKind.GENERATOR)
    return owner, net.add_meter("cen-solar-farm", owner, "CEN", MeterKind.SOLAR, FARM_W)


@pytest.fixture
def one(net: Cast, farm: tuple[PrivateKey, PrivateKey]) -> int:
    """Certificate 1, held by the farm."""
    net.produce(farm[1], MWH)
    assert certificate(net, 1).owner == farm[0].address
    return 1


# --- issue ----------------------------------------------------------------------------------
def test_full_mwh_issues_certificates_and_the_rest_carries_over(
    net: Cast, farm: tuple[PrivateKey, PrivateKey]
) -> None:
    owner, meter = farm
    events = net.produce(meter, 2_300_000)
    t1 = net.meter(meter.address).last_interval
    assert kinds(events) == ["reading", "minted", "certificate_issued", "certificate_issued"]
    assert events[2].attrs == {
        "id": 1,
        "owner": owner.address,
        "wh": MWH,
        "meter": meter.address,
        "avoided_g": 475_000,
    }
    first = certificate(net, 1)
    assert first == Certificate(
        id=1,
        owner=owner.address,
        issued_to=owner.address,
        meter=meter.address,
        source=MeterKind.SOLAR,
        zone="CEN",
        first_interval=t1,
        last_interval=t1,
        energy_wh=MWH,
        emission_factor_g_per_kwh=475,
        avoided_g=475_000,  # 1,000 kWh x 475 g/kWh = 475 kg CO2e
        issued_height=net.sb.height,
        issue_day=DAY1,
    )
    assert accrual(net, meter) == Accrual(2 * MWH, 300_000, t1, 2)

    # 0.75 MWh more completes a third certificate that holds energy from both intervals.
    events = net.produce(meter, 750_000)
    t2 = net.meter(meter.address).last_interval
    assert kinds(events) == ["reading", "minted", "certificate_issued"]
    third = certificate(net, 3)
    assert (third.first_interval, third.last_interval) == (t1, t2)
    assert accrual(net, meter) == Accrual(3 * MWH, 50_000, t2, 3)

    # A reading without export changes nothing about certificates.
    assert kinds(net.produce(meter, 0)) == ["reading"]
    assert accrual(net, meter) == Accrual(3 * MWH, 50_000, t2, 3)
    assert net.grid(owner.address) == 3_050_000  # the energy itself is GRID, apart from RECs
    expected = CarbonTotals(issued_wh=3 * MWH, issued_avoided_g=1_425_000)
    assert participant_totals(net, owner, DAY1) == expected
    assert zone_totals(net, "CEN", DAY1) == expected


def test_small_certificates_accrue_across_readings_and_gaps() -> None:
    net = Cast(sandbox_with_params(rec_size_wh=5_000))
    meter = net.home_meter  # 5 kW: at most 1,250 Wh per interval
    starts = []
    for export in (1_000, 1_250, 1_250, 1_250, 1_250):  # 6,000 Wh: one certificate
        net.produce(meter, export)
        starts.append(net.meter(meter.address).last_interval)
    (cert,) = all_certificates(net)
    assert (cert.first_interval, cert.last_interval, cert.energy_wh) == (
        starts[0],
        starts[4],
        5_000,
    )
    assert cert.avoided_g == 2_375  # 5 kWh x 475 g
    assert accrual(net, meter) == Accrual(5_000, 1_000, starts[4], 1)
    # Gateway offline for two intervals: the next reading covers three and may hold 3,750 Wh.
    net.sb.advance(3 * INTERVAL)
    gap_start = net.last_ended_interval()
    m = net.meter(meter.address)
    net.ok(meter, MeterReading(gap_start, m.import_register_wh, m.export_register_wh + 3_750))
    assert accrual(net, meter) == Accrual(5_000, 4_750, starts[4], 1)
    net.produce(meter, 1_250)  # 6,000 again: the second certificate
    second = all_certificates(net)[1]
    last = net.meter(meter.address).last_interval
    assert (second.first_interval, second.last_interval) == (starts[4], last)
    assert accrual(net, meter) == Accrual(10_000, 1_000, last, 2)


def test_a_reading_issues_at_most_the_cap_and_later_readings_issue_the_backlog() -> None:
    """A farm reporting after a gap may owe many certificates at once; the governed cap
    bounds one transaction's writes, and the carried Wh issue first, dated from their own
    intervals, before the new reading's energy."""
    net = Cast(sandbox_with_params(rec_max_per_reading=2))
    owner = net.register("gap-farm", "CEN", ParticipantKind.GENERATOR)
    meter = net.add_meter("gap-farm", owner, "CEN", MeterKind.SOLAR, FARM_W)
    net.grant(owner, tx.LicenceKind.SELLER)
    first = net.meter(meter.address).first_interval
    net.sb.advance(3 * INTERVAL)  # offline: the first reading covers four intervals (10 MWh)
    gap_start = net.last_ended_interval()
    events = net.ok(meter, MeterReading(gap_start, 0, 5_500_000))
    assert kinds(events).count("certificate_issued") == 2  # 5 owed, 2 issued
    assert accrual(net, meter) == Accrual(2 * MWH, 3_500_000, first, 2)
    net.produce(meter, 100_000)  # 3.6 MWh owed: two more, both from the backlog
    third, fourth = all_certificates(net)[2:]
    assert (third.first_interval, fourth.first_interval) == (first, first)
    assert accrual(net, meter) == Accrual(4 * MWH, 1_600_000, first, 4)
    net.produce(meter, 500_000)  # 2.1 MWh owed; both hold carried energy
    fifth, sixth = all_certificates(net)[4:]
    latest = net.meter(meter.address).last_interval
    assert (fifth.first_interval, sixth.first_interval) == (first, first)
    assert sixth.last_interval == latest
    assert accrual(net, meter) == Accrual(6 * MWH, 100_000, latest, 6)  # the backlog is gone
    net.produce(meter, 2_000_000)
    seventh, eighth = all_certificates(net)[6:]
    assert seventh.first_interval == latest  # starts with the 0.1 MWh carried from there
    newest = net.meter(meter.address).last_interval
    assert (eighth.first_interval, eighth.last_interval) == (newest, newest)  # all new energy
    assert accrual(net, meter) == Accrual(8 * MWH, 100_000, newest, 8)
    # The cap bounds issuance, never the energy: GRID was minted for all of it at once.
    assert net.grid(owner.address) == 8_100_000


def test_non_renewable_export_earns_no_certificate(net: Cast) -> None:
    owner = net.register("cen-chp", "CEN", ParticipantKind.INDUSTRIAL)
    meter = net.add_meter("cen-chp", owner, "CEN", MeterKind.COGENERATION, FARM_W)
    events = net.produce(meter, 2_000_000)
    assert kinds(events) == ["reading", "minted"]
    assert net.grid(owner.address) == 2_000_000
    assert accrual(net, meter) is None and all_certificates(net) == []
    net.produce(net.consumer_meter, 0, import_wh=3_000)
    assert accrual(net, net.consumer_meter) is None


@pytest.mark.parametrize("source", [MeterKind.WIND, MeterKind.HYDRO, MeterKind.BIOMASS])
def test_every_renewable_source_is_certified_and_recorded(net: Cast, source: MeterKind) -> None:
    owner = net.register(f"gen-{source.name}", "NEA", ParticipantKind.GENERATOR)
    meter = net.add_meter(f"gen-{source.name}", owner, "NEA", source, FARM_W)
    net.produce(meter, MWH)
    (cert,) = all_certificates(net)
    assert (cert.source, cert.zone, cert.owner) == (source, "NEA", owner.address)


def test_avoided_emissions_use_the_factor_in_force_at_issue(
    net: Cast, farm: tuple[PrivateKey, PrivateKey]
) -> None:
    owner, meter = farm
    net.produce(meter, MWH)
    # A governance decision moves the factor (done on the state directly: governance
    # transactions are another part of issue 6). Issued certificates keep their figure.
    view = net.sb.state.overlay()
    view.put(
        chain_info.PARAMS_KEY, msgspec.structs.replace(net.params, emission_factor_g_per_kwh=512)
    )
    view.commit()
    net.produce(meter, MWH)
    first, second = all_certificates(net)
    assert (first.emission_factor_g_per_kwh, first.avoided_g) == (475, 475_000)
    assert (second.emission_factor_g_per_kwh, second.avoided_g) == (512, 512_000)
    assert participant_totals(net, owner, DAY1) == CarbonTotals(2 * MWH, 987_000, 0, 0)


def test_avoided_grams_round_down() -> None:
    net = Cast(sandbox_with_params(rec_size_wh=1_001))
    net.produce(net.home_meter, 1_200)
    (cert,) = all_certificates(net)
    assert cert.avoided_g == 475  # 1.001 kWh x 475 g = 475.475 g, never overstated


def test_issue_day_is_the_local_date_of_the_energy(
    net: Cast, farm: tuple[PrivateKey, PrivateKey]
) -> None:
    owner, meter = farm
    midnight_bkk = net.sb.genesis.genesis_time + 17 * 3600  # 00:00 on 2 January in Bangkok
    net.sb.advance(midnight_bkk + INTERVAL - net.sb.time)
    m = net.meter(meter.address)
    net.ok(meter, MeterReading(midnight_bkk - INTERVAL, 0, m.export_register_wh + MWH))
    net.ok(meter, MeterReading(midnight_bkk, 0, m.export_register_wh + 2 * MWH))
    first, second = all_certificates(net)
    assert (first.issue_day, second.issue_day) == (DAY1, DAY2)
    one_cert = CarbonTotals(issued_wh=MWH, issued_avoided_g=475_000)
    assert participant_totals(net, owner, DAY1) == participant_totals(net, owner, DAY2) == one_cert
    assert zone_totals(net, "CEN", DAY2) == one_cert


# --- exactly once, for random readings --------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(
    size=st.integers(300, 4_000),
    readings=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1_250)), min_size=1, max_size=16),
)
def test_each_wh_is_certified_once(size: int, readings: list[tuple[int, int]]) -> None:
    """Certificate k holds cumulative renewable Wh (k*size, (k+1)*size]: it ends at the reading
    where the running total first reaches (k+1)*size and starts at the reading that carried
    the total past k*size (from that reading's first covered interval)."""
    net = Net(sandbox_with_params(rec_size_wh=size))
    owner = net.register("prop-home", "BKK", ParticipantKind.HOUSEHOLD)
    meter = net.add_meter("prop-home", owner, "BKK", MeterKind.SOLAR, 5_000)
    history: list[tuple[int, int, int]] = []  # (covers_from, start, cumulative Wh after)
    total = 0
    for skipped, export in readings:
        m = net.meter(meter.address)
        covers_from = m.first_interval if m.last_interval < 0 else m.last_interval + INTERVAL
        net.sb.advance(skipped * INTERVAL)
        while net.last_ended_interval() < covers_from:
            net.sb.advance(INTERVAL)
        start = net.last_ended_interval()
        net.ok(meter, MeterReading(start, 0, m.export_register_wh + export))  # checks invariants
        total += export
        history.append((covers_from, start, total))
    issued = all_certificates(net)
    assert [c.id for c in issued] == list(range(1, total // size + 1))
    for k, cert in enumerate(issued):
        ends = next(h for h in history if h[2] >= (k + 1) * size)
        begins = next(h for h in history if h[2] > k * size)
        assert (cert.first_interval, cert.last_interval) == (begins[0], ends[1])
        assert cert.energy_wh == size and cert.owner == owner.address
    left = total % size
    oldest = next(h[0] for h in history if h[2] > total - left) if left else -1
    expected = Accrual(len(issued) * size, left, oldest, len(issued)) if total else None
    assert accrual(net, meter) == expected


# --- transfer -------------------------------------------------------------------------------
def test_transfer_moves_the_certificate_not_the_issue_totals(
    net: Cast, farm: tuple[PrivateKey, PrivateKey], one: int
) -> None:
    owner, _ = farm
    events = net.ok(owner, TransferCertificate(one, net.office.address))
    assert events[0].kind == "certificate_transferred"
    assert events[0].attrs == {"id": one, "from": owner.address, "to": net.office.address}
    cert = certificate(net, one)
    assert (cert.owner, cert.issued_to, cert.retired) == (net.office.address, owner.address, False)
    assert participant_totals(net, net.office, DAY1) is None
    # The new owner can pass it on; the farm no longer can.
    net.rejects(
        owner,
        TransferCertificate(one, net.home.address),
        errors.NotCertificateOwner,
        "NOT_CERTIFICATE_OWNER",
    )
    net.ok(net.office, TransferCertificate(one, net.home.address))
    assert certificate(net, one).owner == net.home.address


def test_transfer_rejections(net: Cast, farm: tuple[PrivateKey, PrivateKey], one: int) -> None:
    owner, meter = farm
    R = errors
    net.rejects(
        owner,
        TransferCertificate(2, net.office.address),
        R.UnknownCertificate,
        "UNKNOWN_CERTIFICATE",
    )
    net.rejects(
        owner,
        TransferCertificate(0, net.office.address),
        R.UnknownCertificate,
        "UNKNOWN_CERTIFICATE",
    )
    net.rejects(
        net.office, TransferCertificate(one, net.home.address), R.NotCertificateOwner,
        "NOT_CERTIFICATE_OWNER",
    )  # fmt: skip
    for not_participant in (net.egat.address, meter.address, key("nobody").address):
        net.rejects(
            owner, TransferCertificate(one, not_participant), R.RecipientNotParticipant,
            "RECIPIENT_NOT_PARTICIPANT",
        )  # fmt: skip
    net.rejects(owner, TransferCertificate(one, owner.address), R.SelfTransfer, "SELF_TRANSFER")
    assert certificate(net, one).owner == owner.address


# --- retire ---------------------------------------------------------------------------------
def test_retire_claims_for_the_beneficiary_and_counts_carbon(
    net: Cast, farm: tuple[PrivateKey, PrivateKey], one: int
) -> None:
    owner, _ = farm
    net.ok(owner, TransferCertificate(one, net.office.address))
    beneficiary = "บริษัท กรุงเทพ ออฟฟิศ จำกัด, Scope 2 2026"
    events = net.ok(net.office, RetireCertificate(one, beneficiary))
    assert events[0].kind == "certificate_retired"
    assert events[0].attrs == {
        "id": one,
        "owner": net.office.address,
        "beneficiary": beneficiary,
        "avoided_g": 475_000,
    }
    cert = certificate(net, one)
    assert (cert.retired, cert.retire_day, cert.beneficiary) == (True, DAY1, beneficiary)
    assert cert.owner == net.office.address
    assert participant_totals(net, net.office, DAY1) == CarbonTotals(0, 0, MWH, 475_000)
    assert participant_totals(net, owner, DAY1) == CarbonTotals(MWH, 475_000, 0, 0)
    assert zone_totals(net, "CEN", DAY1) == CarbonTotals(MWH, 475_000, MWH, 475_000)

    # A retired certificate never moves again, and cannot be claimed twice.
    net.rejects(
        net.office, TransferCertificate(one, net.home.address), errors.CertificateRetired,
        "CERTIFICATE_RETIRED",
    )  # fmt: skip
    net.rejects(
        net.office, RetireCertificate(one, "again"), errors.CertificateRetired,
        "CERTIFICATE_RETIRED",
    )  # fmt: skip


def test_retire_rejections(net: Cast, farm: tuple[PrivateKey, PrivateKey], one: int) -> None:
    owner, _ = farm
    limit = net.params.rec_beneficiary_max_chars
    net.rejects(owner, RetireCertificate(9, "x"), errors.UnknownCertificate, "UNKNOWN_CERTIFICATE")
    net.rejects(
        net.office, RetireCertificate(one, "x"), errors.NotCertificateOwner, "NOT_CERTIFICATE_OWNER"
    )
    for bad in ("", "   ", "line\nbreak", "tab\there", "x" * (limit + 1)):
        net.rejects(
            owner, RetireCertificate(one, bad), errors.InvalidBeneficiary, "INVALID_BENEFICIARY"
        )
    assert not certificate(net, one).retired
    net.ok(owner, RetireCertificate(one, "ก" * limit))  # the limit counts characters
    assert certificate(net, one).beneficiary == "ก" * limit


def test_retire_date_is_the_block_date_not_the_energy_date(
    net: Cast, farm: tuple[PrivateKey, PrivateKey], one: int
) -> None:
    owner, _ = farm
    net.sb.advance(86_400)
    net.ok(owner, RetireCertificate(one, "EGCO Group"))
    assert participant_totals(net, owner, DAY1) == CarbonTotals(MWH, 475_000, 0, 0)
    assert participant_totals(net, owner, DAY2) == CarbonTotals(0, 0, MWH, 475_000)


# --- parameters, wire and storage -----------------------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        {"rec_size_wh": 0},
        {"rec_size_wh": -1},
        {"emission_factor_g_per_kwh": -1},
        {"rec_beneficiary_max_chars": 0},
        {"rec_max_per_reading": 0},
    ],
)
def test_params_validate_the_certificate_fields(changes: dict[str, int]) -> None:
    assert Params().validate() == []
    assert msgspec.structs.replace(Params(), **changes).validate() != []


def test_beneficiary_wire_bound() -> None:
    signer = key("wire")
    biggest = tx.make(signer, "x" * 64, 2**63 - 1, RetireCertificate(2**63 - 1, "ญ" * 1024))
    assert len(biggest.encode()) < codec.MAX_TX_SIZE
    assert tx.decode(biggest.encode()) == biggest
    raw = msgspec.msgpack.decode(biggest.encode())
    raw[0][4][2] = "x" * (tx.BENEFICIARY_MAX_CHARS + 1)
    with pytest.raises(codec.Malformed):
        tx.decode(msgspec.msgpack.encode(raw))


def test_certificate_records_persist(
    net: Cast, farm: tuple[PrivateKey, PrivateKey], one: int
) -> None:
    net.ok(farm[0], RetireCertificate(one, "PTT"))
    for prefix in (b"cert", b"co2p/", b"co2z/"):
        for _, record in net.sb.state.scan(prefix):
            assert store.decode_record(store.encode_record(record)) == record


def test_same_readings_give_the_same_certificates_and_root() -> None:
    roots = []
    for _ in range(2):
        net = Cast(Sandbox())
        owner = net.register("det-farm", "CEN", ParticipantKind.GENERATOR)
        meter = net.add_meter("det-farm", owner, "CEN", MeterKind.WIND, FARM_W)
        for export in (900_000, 2_500_000, 10, 1_600_000):
            net.produce(meter, export)
        net.ok(owner, RetireCertificate(2, "Siam Cement"))
        roots.append((net.sb.state.root(), [codec.encode(c) for c in all_certificates(net)]))
    assert roots[0] == roots[1]
    assert len(roots[0][1]) == 5
