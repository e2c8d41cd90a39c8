"""Registry: participants, meters and ERC licences, and who may register or license whom."""

from __future__ import annotations

import pytest

from gridtokenx.ledger import registry
from gridtokenx.wire import errors
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import (
    Asset,
    GrantLicence,
    LicenceKind,
    MeterKind,
    ParticipantKind,
    RegisterMeter,
    RegisterParticipant,
    RevokeLicence,
    Transfer,
)
from tests.conftest import YEAR, Cast, key

P, M, L = ParticipantKind, MeterKind, LicenceKind


def _participant(account: bytes, zone: str = "BKK") -> RegisterParticipant:
    return RegisterParticipant(account, zone, P.HOUSEHOLD, "someone")


def _meter(
    meter: PrivateKey, owner: bytes, zone: str = "BKK", capacity: int = 3_000
) -> RegisterMeter:
    return RegisterMeter(meter.public_key, owner, zone, M.SOLAR, capacity)


# --- RegisterParticipant ------------------------------------------------------------------
def test_mea_registers_a_bangkok_participant(net: Cast) -> None:
    new = key("new-home")
    events = net.ok(net.mea, RegisterParticipant(new.address, "BKK", P.HOUSEHOLD, "Somchai"))
    assert [e.kind for e in events] == ["participant_registered"]
    assert events[0].attrs == {"account": new.address, "zone": "BKK"}
    record = net.sb.state.get(registry.participant_key(new.address), registry.Participant)
    assert record == registry.Participant("BKK", P.HOUSEHOLD, "Somchai", "MEA", net.sb.time)
    assert net.nonce(new.address) == 0
    assert net.sb.balance(new.address) == (0, 0)


@pytest.mark.parametrize("zone", ["CEN", "NTH", "NEA", "EST", "WST", "STH"])
def test_pea_registers_in_its_zones(net: Cast, zone: str) -> None:
    new = key(f"new-{zone}")
    net.ok(net.pea, _participant(new.address, zone))
    record = net.sb.state.get(registry.participant_key(new.address), registry.Participant)
    assert record is not None and record.registered_by == "PEA" and record.zone == zone


def test_pea_cannot_register_in_bangkok(net: Cast) -> None:
    net.rejects(net.pea, _participant(key("x").address, "BKK"), errors.Unauthorised, "UNAUTHORISED")


def test_mea_cannot_register_outside_bangkok(net: Cast) -> None:
    net.rejects(net.mea, _participant(key("x").address, "CEN"), errors.Unauthorised, "UNAUTHORISED")


@pytest.mark.parametrize("code", ["ERC", "EGAT", "NEPO"])
def test_non_distribution_authorities_cannot_register(net: Cast, code: str) -> None:
    signer = net.sb.authority(code)
    net.rejects(signer, _participant(key("x").address), errors.Unauthorised, "UNAUTHORISED")


def test_a_participant_cannot_register(net: Cast) -> None:
    net.rejects(net.home, _participant(key("x").address), errors.Unauthorised, "UNAUTHORISED")


def test_register_participant_unknown_zone(net: Cast) -> None:
    net.rejects(net.mea, _participant(key("x").address, "XYZ"), errors.UnknownZone, "UNKNOWN_ZONE")


def test_register_participant_twice(net: Cast) -> None:
    net.rejects(
        net.mea, _participant(net.home.address), errors.AlreadyRegistered, "ALREADY_REGISTERED"
    )
    # Nor can the other distributor re-register it under a different zone.
    net.rejects(
        net.pea,
        _participant(net.home.address, "CEN"),
        errors.AlreadyRegistered,
        "ALREADY_REGISTERED",
    )


@pytest.mark.parametrize("code", ["EGAT", "MEA", "PEA", "ERC", "NEPO"])
def test_register_an_authority_address(net: Cast, code: str) -> None:
    address = net.sb.authority(code).address
    net.rejects(net.mea, _participant(address), errors.AlreadyRegistered, "ALREADY_REGISTERED")


def test_register_a_meter_address_as_participant(net: Cast) -> None:
    net.rejects(
        net.mea,
        _participant(net.home_meter.address),
        errors.AlreadyRegistered,
        "ALREADY_REGISTERED",
    )


# --- RegisterMeter ------------------------------------------------------------------------
def test_register_meter(net: Cast) -> None:
    meter = key("meter/new")
    body = RegisterMeter(meter.public_key, net.office.address, "BKK", M.SOLAR, 8_000)
    events = net.ok(net.mea, body)
    assert events[0].kind == "meter_registered"
    assert events[0].attrs == {"meter": meter.address, "owner": net.office.address, "zone": "BKK"}
    record = net.meter(meter.address)
    assert record.owner == net.office.address
    assert record.public_key == meter.public_key
    assert record.rated_capacity_w == 8_000
    assert record.last_interval == -1
    assert (record.import_register_wh, record.export_register_wh) == (0, 0)
    assert net.nonce(meter.address) == 0  # the meter signs with its own account
    assert registry.generating_capacity_w(net.sb.state.overlay(), net.office.address) == 8_000


def test_consumption_meter_adds_no_generating_capacity(net: Cast) -> None:
    assert registry.generating_capacity_w(net.sb.state.overlay(), net.consumer.address) == 0
    assert registry.generating_capacity_w(net.sb.state.overlay(), net.home.address) == 5_000


def test_generating_capacity_sums_over_meters(net: Cast) -> None:
    net.add_meter("home-2", net.home, "BKK", M.WIND, 2_500)
    net.add_meter("home-3", net.home, "BKK", M.CONSUMPTION, 7_000)
    assert registry.generating_capacity_w(net.sb.state.overlay(), net.home.address) == 7_500


def test_pea_registers_meter_in_its_zone(net: Cast) -> None:
    net.ok(net.pea, _meter(key("meter/cen-2"), net.factory.address, "CEN"))


@pytest.mark.parametrize(("signer", "zone"), [("PEA", "BKK"), ("MEA", "CEN"), ("ERC", "BKK")])
def test_register_meter_wrong_distributor(net: Cast, signer: str, zone: str) -> None:
    body = _meter(key("meter/x"), net.home.address, zone)
    net.rejects(net.sb.authority(signer), body, errors.Unauthorised, "UNAUTHORISED")


def test_participant_cannot_register_meter(net: Cast) -> None:
    body = _meter(key("meter/x"), net.home.address)
    net.rejects(net.home, body, errors.Unauthorised, "UNAUTHORISED")


def test_register_meter_unknown_owner(net: Cast) -> None:
    body = _meter(key("meter/x"), key("nobody").address)
    net.rejects(net.mea, body, errors.UnknownParticipant, "UNKNOWN_PARTICIPANT")


def test_register_meter_owned_by_an_authority(net: Cast) -> None:
    body = _meter(key("meter/x"), net.egat.address)
    net.rejects(net.mea, body, errors.UnknownParticipant, "UNKNOWN_PARTICIPANT")


@pytest.mark.parametrize("kind", [M.SOLAR, M.CONSUMPTION])
def test_register_meter_zero_capacity(net: Cast, kind: MeterKind) -> None:
    body = RegisterMeter(key("meter/x").public_key, net.home.address, "BKK", kind, 0)
    net.rejects(net.mea, body, errors.InvalidCapacity, "INVALID_CAPACITY")


def test_register_meter_same_key_twice(net: Cast) -> None:
    body = _meter(net.home_meter, net.office.address)
    net.rejects(net.mea, body, errors.MeterAlreadyRegistered, "METER_ALREADY_REGISTERED")


def test_register_meter_same_key_in_another_zone(net: Cast) -> None:
    body = _meter(net.home_meter, net.factory.address, "CEN")
    net.rejects(net.pea, body, errors.MeterAlreadyRegistered, "METER_ALREADY_REGISTERED")


def test_register_meter_with_a_participant_key(net: Cast) -> None:
    body = _meter(net.office, net.home.address)
    net.rejects(net.mea, body, errors.AlreadyRegistered, "ALREADY_REGISTERED")


def test_register_meter_with_an_authority_key(net: Cast) -> None:
    body = _meter(net.erc, net.home.address)
    net.rejects(net.mea, body, errors.AlreadyRegistered, "ALREADY_REGISTERED")


def test_register_meter_unknown_zone(net: Cast) -> None:
    body = _meter(key("meter/x"), net.home.address, "XYZ")
    net.rejects(net.mea, body, errors.UnknownZone, "UNKNOWN_ZONE")


# --- GrantLicence -------------------------------------------------------------------------
def test_erc_grants_a_seller_licence(net: Cast) -> None:
    expires = net.sb.time + YEAR
    events = net.ok(net.erc, GrantLicence(net.factory.address, L.SELLER, expires))
    assert events[0].kind == "licence_granted"
    assert events[0].attrs == {
        "holder": net.factory.address,
        "kind": "SELLER",
        "expires_at": expires,
    }
    assert net.licence(net.factory.address, L.SELLER) == registry.Licence(net.sb.time, expires, 0)
    assert net.licence_valid(net.factory.address, L.SELLER)
    assert not net.licence_valid(net.factory.address, L.CUSTODIAN)


@pytest.mark.parametrize("code", ["EGAT", "MEA", "PEA", "NEPO"])
def test_only_erc_grants_licences(net: Cast, code: str) -> None:
    body = GrantLicence(net.factory.address, L.SELLER, net.sb.time + YEAR)
    net.rejects(net.sb.authority(code), body, errors.Unauthorised, "UNAUTHORISED")


def test_participant_cannot_grant_itself_a_licence(net: Cast) -> None:
    body = GrantLicence(net.factory.address, L.SELLER, net.sb.time + YEAR)
    net.rejects(net.factory, body, errors.Unauthorised, "UNAUTHORISED")


def test_grant_licence_to_unregistered_holder(net: Cast) -> None:
    body = GrantLicence(key("nobody").address, L.SELLER, net.sb.time + YEAR)
    net.rejects(net.erc, body, errors.UnknownParticipant, "UNKNOWN_PARTICIPANT")


def test_grant_licence_to_a_meter(net: Cast) -> None:
    body = GrantLicence(net.factory_meter.address, L.SELLER, net.sb.time + YEAR)
    net.rejects(net.erc, body, errors.UnknownParticipant, "UNKNOWN_PARTICIPANT")


@pytest.mark.parametrize("offset", [-1, 0])
def test_grant_licence_expiry_not_in_future(net: Cast, offset: int) -> None:
    body = GrantLicence(net.factory.address, L.SELLER, net.sb.time + offset)
    net.rejects(net.erc, body, errors.InvalidExpiry, "INVALID_EXPIRY")


def test_grant_licence_expiring_one_second_later(net: Cast) -> None:
    net.ok(net.erc, GrantLicence(net.factory.address, L.SELLER, net.sb.time + 1))
    assert net.licence_valid(net.factory.address, L.SELLER)
    net.sb.advance(1)
    assert not net.licence_valid(net.factory.address, L.SELLER)


@pytest.mark.parametrize("kind", [P.HOUSEHOLD, P.BUSINESS, P.INDUSTRIAL, P.GENERATOR, P.RETAILER])
def test_custodian_licence_needs_custodian_participant(net: Cast, kind: ParticipantKind) -> None:
    holder = key(f"holder-{kind.name}")
    net.ok(net.mea, RegisterParticipant(holder.address, "BKK", kind, "x"))
    body = GrantLicence(holder.address, L.CUSTODIAN, net.sb.time + YEAR)
    net.rejects(net.erc, body, errors.InvalidParticipantKind, "INVALID_PARTICIPANT_KIND")


def test_seller_licence_for_any_participant_kind(net: Cast) -> None:
    net.ok(net.erc, GrantLicence(net.custodian.address, L.SELLER, net.sb.time + YEAR))


def test_renewing_a_licence_extends_it(net: Cast) -> None:
    first = net.sb.time + 3_600
    net.ok(net.erc, GrantLicence(net.factory.address, L.SELLER, first))
    net.sb.advance(1_800)
    net.ok(net.erc, GrantLicence(net.factory.address, L.SELLER, first + YEAR))
    licence = net.licence(net.factory.address, L.SELLER)
    assert licence == registry.Licence(net.sb.time, first + YEAR, 0)
    net.sb.advance(3_600)  # past the first expiry
    assert net.licence_valid(net.factory.address, L.SELLER)


def test_regrant_after_revoke_restores_the_licence(net: Cast) -> None:
    net.grant(net.factory, L.SELLER)
    net.ok(net.erc, RevokeLicence(net.factory.address, L.SELLER))
    assert not net.licence_valid(net.factory.address, L.SELLER)
    net.grant(net.factory, L.SELLER)
    assert net.licence_valid(net.factory.address, L.SELLER)


def test_regrant_with_an_earlier_expiry_shortens_the_licence(net: Cast) -> None:
    # Current rule: a grant overwrites, so "renewing" with an earlier date shortens it.
    net.grant(net.factory, L.SELLER, YEAR)
    net.grant(net.factory, L.SELLER, 60)
    net.sb.advance(60)
    assert not net.licence_valid(net.factory.address, L.SELLER)


# --- RevokeLicence ------------------------------------------------------------------------
def test_erc_revokes_a_licence(net: Cast) -> None:
    net.grant(net.factory, L.SELLER)
    net.sb.advance(10)
    events = net.ok(net.erc, RevokeLicence(net.factory.address, L.SELLER))
    assert events[0].kind == "licence_revoked"
    assert events[0].attrs == {"holder": net.factory.address, "kind": "SELLER"}
    licence = net.licence(net.factory.address, L.SELLER)
    assert licence is not None and licence.revoked_at == net.sb.time
    assert not net.licence_valid(net.factory.address, L.SELLER)


def test_revoke_without_licence(net: Cast) -> None:
    body = RevokeLicence(net.factory.address, L.SELLER)
    net.rejects(net.erc, body, errors.LicenceNotFound, "LICENCE_NOT_FOUND")


def test_revoke_other_kind_than_held(net: Cast) -> None:
    body = RevokeLicence(net.custodian.address, L.SELLER)
    net.rejects(net.erc, body, errors.LicenceNotFound, "LICENCE_NOT_FOUND")


def test_revoke_for_unregistered_holder(net: Cast) -> None:
    body = RevokeLicence(key("nobody").address, L.SELLER)
    net.rejects(net.erc, body, errors.LicenceNotFound, "LICENCE_NOT_FOUND")


def test_revoke_expired_licence(net: Cast) -> None:
    net.grant(net.factory, L.SELLER, 3_600)
    net.sb.advance(3_600)
    body = RevokeLicence(net.factory.address, L.SELLER)
    net.rejects(net.erc, body, errors.LicenceNotFound, "LICENCE_NOT_FOUND")


@pytest.mark.parametrize("code", ["EGAT", "MEA", "PEA", "NEPO"])
def test_only_erc_revokes(net: Cast, code: str) -> None:
    body = RevokeLicence(net.custodian.address, L.CUSTODIAN)
    net.rejects(net.sb.authority(code), body, errors.Unauthorised, "UNAUTHORISED")
    net.rejects(net.custodian, body, errors.Unauthorised, "UNAUTHORISED")
    assert net.licence_valid(net.custodian.address, L.CUSTODIAN)


def test_revoke_twice(net: Cast) -> None:
    body = RevokeLicence(net.custodian.address, L.CUSTODIAN)
    net.ok(net.erc, body)
    net.rejects(net.erc, body, errors.LicenceNotFound, "LICENCE_NOT_FOUND")


# --- licence validity over time -----------------------------------------------------------
def test_licence_valid_until_expiry(net: Cast) -> None:
    net.grant(net.factory, L.SELLER, 7_200)
    net.sb.advance(7_199)
    assert net.licence_valid(net.factory.address, L.SELLER)
    net.sb.advance(1)  # expires_at itself is outside the licence
    assert not net.licence_valid(net.factory.address, L.SELLER)


def test_licence_expiry_gates_selling(net: Cast) -> None:
    net.produce(net.factory_meter, 1_000)
    net.grant(net.factory, L.SELLER, 3_600)
    sale = Transfer(Asset.GRID, net.office.address, 100)
    net.ok(net.factory, sale)
    net.sb.advance(3_599)
    net.ok(net.factory, sale)
    net.sb.advance(1)
    net.rejects(net.factory, sale, errors.UnlicensedSeller, "UNLICENSED_SELLER")
