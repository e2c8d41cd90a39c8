"""The contexts' read side: the queries the API, the command line, the simulator's summary
and the store read the ledger through, on real Sandbox state (the conftest cast, plus a
solar farm, a delegation and a proposal where a query needs them). Each listing is checked
against the records read one by one, and its `after` cursor against the full listing."""

from __future__ import annotations

import msgspec
import pytest

from gridtokenx.ledger import (
    accounts,
    certificates,
    governance,
    metering,
    registry,
    validator_set,
)
from gridtokenx.ledger.state import State, records_under
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import (
    CastVote,
    DelegateVote,
    LicenceKind,
    MeterKind,
    ParamChange,
    ParticipantKind,
    ProposalKind,
    RetireCertificate,
    SubmitProposal,
    TransferCertificate,
    VoteChoice,
)
from tests.conftest import INTERVAL, Cast

MWH = 1_000_000


class Tagged(msgspec.Struct, frozen=True):
    n: int


class Other(msgspec.Struct, frozen=True):
    n: int


def test_records_under_a_prefix_are_typed_keyed_by_suffix_and_start_after_it() -> None:
    state = State()
    view = state.overlay()
    for key, n in ((b"t/b", 2), (b"t/a", 1), (b"t/c", 3), (b"u/a", 9)):
        view.put(key, Tagged(n))
    view.commit()
    assert list(records_under(state, b"t/", Tagged)) == [
        (b"a", Tagged(1)),
        (b"b", Tagged(2)),
        (b"c", Tagged(3)),
    ]
    assert [at for at, _ in records_under(state, b"t/", Tagged, after=b"a")] == [b"b", b"c"]
    with pytest.raises(TypeError, match="not Other"):
        list(records_under(state, b"t/", Other))


# --- accounts and the registry --------------------------------------------------------------
def test_accounts_list_every_holder_in_address_order(net: Cast) -> None:
    listed = list(accounts.all_accounts(net.sb.state))
    addresses = [address for address, _ in listed]
    assert addresses == sorted(addresses) and net.office.address in addresses
    for address, account in listed:
        assert accounts.get_account(net.sb.state, address) == account
    middle = addresses[len(addresses) // 2]
    after = list(accounts.all_accounts(net.sb.state, after=middle))
    assert after == listed[len(addresses) // 2 + 1 :]
    assert accounts.get_account(net.sb.state, b"\x00" * 20) is None
    assert accounts.supply(net.sb.state).thb_issued_satang == 1_000_000  # the office's THB


def test_participants_page_by_address(net: Cast) -> None:
    listed = list(registry.participants(net.sb.state))
    cast = {net.home, net.consumer, net.office, net.factory, net.custodian}
    assert {address for address, _ in listed} == {who.address for who in cast}
    assert [a for a, _ in listed] == sorted(a for a, _ in listed)
    for address, participant in listed:
        assert registry.get_participant(net.sb.state, address) == participant
    first = listed[0][0]
    assert list(registry.participants(net.sb.state, after=first)) == listed[1:]
    office = registry.get_participant(net.sb.state, net.office.address)
    assert office is not None and (office.zone, office.kind) == ("BKK", ParticipantKind.BUSINESS)


def test_meters_all_or_one_owners_through_its_index(net: Cast) -> None:
    second = net.add_meter("bkk-home-2", net.home, "BKK", MeterKind.SOLAR, 3_000)
    listed = list(registry.meters(net.sb.state))
    expected = {net.home_meter, net.consumer_meter, net.factory_meter, second}
    assert {a for a, _ in listed} == {m.address for m in expected}
    assert [a for a, _ in listed] == sorted(a for a, _ in listed)
    homes = list(registry.meters(net.sb.state, owner=net.home.address))
    assert [a for a, _ in homes] == sorted([net.home_meter.address, second.address])
    assert all(m.owner == net.home.address for _, m in homes)
    rest = registry.meters(net.sb.state, after=homes[0][0], owner=net.home.address)
    assert list(rest) == homes[1:]
    assert list(registry.meters(net.sb.state, owner=net.office.address)) == []  # no meter
    assert registry.get_meter(net.sb.state, second.address) == dict(homes)[second.address]


def test_licences_all_or_one_holders_by_holder_then_kind(net: Cast) -> None:
    net.grant(net.factory, LicenceKind.SELLER)
    net.grant(net.custodian, LicenceKind.SELLER)
    listed = list(registry.licences(net.sb.state))
    expected = sorted(
        [
            (net.factory.address, LicenceKind.SELLER),
            (net.custodian.address, LicenceKind.SELLER),
            (net.custodian.address, LicenceKind.CUSTODIAN),
        ]
    )
    assert [at for at, _ in listed] == expected
    for (holder, kind), licence in listed:
        assert licence == net.licence(holder, kind)
    mine = list(registry.licences(net.sb.state, holder=net.custodian.address))
    assert [kind for (_, kind), _ in mine] == [LicenceKind.SELLER, LicenceKind.CUSTODIAN]
    after = (net.custodian.address, LicenceKind.SELLER)
    assert list(registry.licences(net.sb.state, after, holder=net.custodian.address)) == mine[1:]
    assert list(registry.licences(net.sb.state, after=listed[0][0])) == listed[1:]


def test_authorities_zones_and_interconnectors(net: Cast) -> None:
    codes = {a.code for _, a in registry.authorities(net.sb.state)}
    assert codes == {"EGAT", "MEA", "PEA", "ERC", "NEPO"}
    for address, authority in registry.authorities(net.sb.state):
        assert registry.authority_of(net.sb.state.overlay(), address) == authority
    zone = registry.get_zone(net.sb.state, "BKK")
    assert zone is not None and zone.distribution_authority == "MEA"
    assert registry.get_zone(net.sb.state, "XYZ") is None
    link = registry.get_interconnector(net.sb.state, "CEN", "BKK")  # either order
    assert link is not None and (link.zone_a, link.zone_b) == ("BKK", "CEN")


# --- metering and certificates --------------------------------------------------------------
def test_readings_of_one_meter_and_of_every_meter(net: Cast) -> None:
    net.produce(net.home_meter, 1_000)
    net.produce(net.home_meter, 500)
    net.produce(net.factory_meter, 2_000)
    mine = list(metering.readings(net.sb.state, net.home_meter.address))
    assert [r.export_wh for _, r in mine] == [1_000, 500]
    assert mine[1][0] - mine[0][0] >= INTERVAL  # interval starts, oldest first
    later = metering.readings(net.sb.state, net.home_meter.address, after=mine[0][0])
    assert list(later) == mine[1:]
    every = list(metering.all_readings(net.sb.state))
    assert sorted((m, at) for m, at, _ in every) == [(m, at) for m, at, _ in every]
    assert [(at, r) for m, at, r in every if m == net.home_meter.address] == mine
    assert {m for m, _, _ in every} == {net.home_meter.address, net.factory_meter.address}


def farm_certificates(net: Cast) -> tuple[PrivateKey, PrivateKey]:
    """A Central solar farm that issued certificates 1 and 2; the office retired 1."""
    owner = net.register("cen-farm", "CEN", ParticipantKind.GENERATOR)
    meter = net.add_meter("cen-farm", owner, "CEN", MeterKind.SOLAR, 10_000_000)
    net.produce(meter, 2 * MWH)
    net.ok(owner, TransferCertificate(1, net.office.address))
    net.ok(net.office, RetireCertificate(1, "Scope 2"))
    return owner, meter


def test_certificates_and_their_carbon_totals(net: Cast) -> None:
    owner, _ = farm_certificates(net)
    first, second = (certificates.get_certificate(net.sb.state, i) for i in (1, 2))
    assert first is not None and second is not None
    assert (first.owner, first.retired, second.owner) == (net.office.address, True, owner.address)
    assert certificates.get_certificate(net.sb.state, 3) is None
    assert [c.id for c in certificates.issued(net.sb.state)] == [1, 2]
    issued = certificates.participant_carbon(net.sb.state, owner.address, first.issue_day)
    assert issued is not None and issued.issued_wh == 2 * MWH
    retired = certificates.participant_carbon(net.sb.state, net.office.address, first.retire_day)
    assert retired is not None and retired.retired_wh == MWH
    zone = certificates.zone_carbon(net.sb.state, "CEN", first.issue_day)
    assert zone is not None and zone.issued_avoided_g == first.avoided_g + second.avoided_g
    assert certificates.zone_carbon(net.sb.state, "BKK", first.issue_day) is None


def test_holds_certificate_tells_certificate_keys_from_others(net: Cast) -> None:
    farm_certificates(net)
    changes = net.sb.state.take_changes()
    held = {key for key, record in changes.items() if certificates.holds_certificate(key)}
    assert held and all(isinstance(changes[key], certificates.Certificate) for key in held)
    others = [r for key, r in changes.items() if key not in held]
    assert not any(isinstance(r, certificates.Certificate) for r in others)


# --- governance and the validator set -------------------------------------------------------
def test_proposals_ballots_and_delegations(net: Cast) -> None:
    assert governance.last_proposal_id(net.sb.state) == 0
    assert list(governance.delegations(net.sb.state)) == []
    net.ok(net.pea, DelegateVote("MEA"))
    assert list(governance.delegations(net.sb.state)) == [(net.pea.address, net.mea.address)]
    change = ParamChange("platform_fee_basis_points", 30)
    net.ok(net.egat, SubmitProposal(ProposalKind.MARKET_RULE, (change,), "fee"))
    net.ok(net.egat, SubmitProposal(ProposalKind.MARKET_RULE, (change,), "fee again"))
    assert governance.last_proposal_id(net.sb.state) == 2
    net.ok(net.mea, CastVote(1, VoteChoice.YES))  # carries PEA's weight too
    ballots = dict(governance.ballots(net.sb.state, 1))
    assert set(ballots) == {net.mea.address, net.pea.address}
    assert ballots[net.pea.address].delegate == net.mea.address
    assert ballots[net.mea.address].choice is VoteChoice.YES
    assert list(governance.ballots(net.sb.state, 2)) == []


def test_validator_sets_are_the_sets_that_sign(net: Cast) -> None:
    sets = validator_set.validator_sets(net.sb.state)
    signing = net.sb.validators()
    assert [m.address for m in sets.current] == [v.address for v in signing.validators]
    assert sets.pending == ()
