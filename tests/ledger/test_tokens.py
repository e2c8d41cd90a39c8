"""Tokens: GRID and THB transfers, the seller-licence gate, THB issuance and redemption."""

from __future__ import annotations

import pytest

from gridtokenx.wire import errors
from gridtokenx.wire.tx import (
    Asset,
    IssueThb,
    LicenceKind,
    MeterKind,
    ParticipantKind,
    RedeemThb,
    RegisterParticipant,
    RevokeLicence,
    Transfer,
)
from tests.conftest import Cast, Net, key, sandbox_with_params


# --- Transfer -----------------------------------------------------------------------------
def test_transfer_grid(net: Cast) -> None:
    net.produce(net.home_meter, 1_200)
    supply = net.supply()
    events = net.ok(net.home, Transfer(Asset.GRID, net.office.address, 700))
    assert events[0].kind == "transfer"
    assert events[0].attrs == {
        "from": net.home.address,
        "to": net.office.address,
        "asset": "GRID",
        "amount": 700,
        "from_balance": 500,  # both balances after the transfer: an audit chains them
        "to_balance": 700,
    }
    assert net.grid(net.home.address) == 500
    assert net.grid(net.office.address) == 700
    assert net.supply() == supply  # a transfer never mints or burns


def test_transfer_thb(net: Cast) -> None:
    before = net.thb(net.office.address)
    supply = net.supply()
    net.ok(net.office, Transfer(Asset.THB, net.home.address, 2_800))
    assert net.thb(net.office.address) == before - 2_800
    assert net.thb(net.home.address) == 2_800
    assert net.supply() == supply


def test_transfer_whole_balance(net: Cast) -> None:
    balance = net.thb(net.office.address)
    net.ok(net.office, Transfer(Asset.THB, net.home.address, balance))
    assert net.thb(net.office.address) == 0


def test_transfer_to_an_authority(net: Cast) -> None:
    net.ok(net.office, Transfer(Asset.THB, net.egat.address, 10))
    assert net.thb(net.egat.address) == 10


@pytest.mark.parametrize("asset", [Asset.GRID, Asset.THB])
def test_transfer_zero_amount(net: Cast, asset: Asset) -> None:
    body = Transfer(asset, net.home.address, 0)
    net.rejects(net.office, body, errors.InvalidAmount, "INVALID_AMOUNT")


@pytest.mark.parametrize("asset", [Asset.GRID, Asset.THB])
def test_self_transfer(net: Cast, asset: Asset) -> None:
    body = Transfer(asset, net.office.address, 1)
    net.rejects(net.office, body, errors.SelfTransfer, "SELF_TRANSFER")


@pytest.mark.parametrize("asset", [Asset.GRID, Asset.THB])
def test_transfer_to_unregistered_recipient(net: Cast, asset: Asset) -> None:
    net.produce(net.home_meter, 100)
    body = Transfer(asset, key("nobody").address, 1)
    sender = net.home if asset is Asset.GRID else net.office
    net.rejects(sender, body, errors.UnknownRecipient, "UNKNOWN_RECIPIENT")


@pytest.mark.parametrize("asset", [Asset.GRID, Asset.THB])
def test_transfer_to_a_meter(net: Cast, asset: Asset) -> None:
    net.produce(net.home_meter, 100)
    body = Transfer(asset, net.home_meter.address, 1)
    sender = net.home if asset is Asset.GRID else net.office
    net.rejects(sender, body, errors.UnknownRecipient, "UNKNOWN_RECIPIENT")


def test_transfer_more_grid_than_held(net: Cast) -> None:
    net.produce(net.home_meter, 100)
    body = Transfer(Asset.GRID, net.office.address, 101)
    net.rejects(net.home, body, errors.InsufficientBalance, "INSUFFICIENT_BALANCE")


def test_transfer_more_thb_than_held(net: Cast) -> None:
    body = Transfer(Asset.THB, net.home.address, net.thb(net.office.address) + 1)
    net.rejects(net.office, body, errors.InsufficientBalance, "INSUFFICIENT_BALANCE")


def test_transfer_with_no_balance(net: Cast) -> None:
    body = Transfer(Asset.THB, net.office.address, 1)
    net.rejects(net.home, body, errors.InsufficientBalance, "INSUFFICIENT_BALANCE")


# --- seller licence gate ------------------------------------------------------------------
def test_small_prosumer_sells_without_licence(net: Cast) -> None:
    net.produce(net.home_meter, 1_000)
    assert net.licence(net.home.address, LicenceKind.SELLER) is None
    net.ok(net.home, Transfer(Asset.GRID, net.office.address, 1_000))
    assert net.grid(net.office.address) == 1_000


def test_threshold_is_inclusive_and_sums_meters(net: Cast) -> None:
    threshold = net.params.small_prosumer_threshold_w
    assert threshold == 10_000
    seller = net.register("cen-two-roofs", "CEN", ParticipantKind.HOUSEHOLD)
    roof = net.add_meter("roof-a", seller, "CEN", MeterKind.SOLAR, 6_000)
    net.add_meter("roof-b", seller, "CEN", MeterKind.SOLAR, 4_000)
    net.add_meter("usage", seller, "CEN", MeterKind.CONSUMPTION, 20_000)  # does not count
    net.produce(roof, 500)
    sale = Transfer(Asset.GRID, net.office.address, 100)
    net.ok(seller, sale)  # exactly 10 kW: still a small prosumer
    net.add_meter("roof-c", seller, "CEN", MeterKind.SOLAR, 1)
    net.rejects(seller, sale, errors.UnlicensedSeller, "UNLICENSED_SELLER")


def test_large_producer_without_licence(net: Cast) -> None:
    net.produce(net.factory_meter, 5_000)
    body = Transfer(Asset.GRID, net.office.address, 1_000)
    net.rejects(net.factory, body, errors.UnlicensedSeller, "UNLICENSED_SELLER")
    assert net.grid(net.factory.address) == 5_000


def test_licence_gate_comes_before_balance_check(net: Cast) -> None:
    body = Transfer(Asset.GRID, net.office.address, 1)
    net.rejects(net.factory, body, errors.UnlicensedSeller, "UNLICENSED_SELLER")


def test_large_producer_with_seller_licence(net: Cast) -> None:
    net.produce(net.factory_meter, 5_000)
    net.grant(net.factory, LicenceKind.SELLER)
    net.ok(net.factory, Transfer(Asset.GRID, net.office.address, 1_000))
    assert net.grid(net.office.address) == 1_000
    assert net.grid(net.factory.address) == 4_000


def test_large_producer_after_revoke(net: Cast) -> None:
    net.produce(net.factory_meter, 5_000)
    net.grant(net.factory, LicenceKind.SELLER)
    sale = Transfer(Asset.GRID, net.office.address, 1_000)
    net.ok(net.factory, sale)
    net.ok(net.erc, RevokeLicence(net.factory.address, LicenceKind.SELLER))
    net.rejects(net.factory, sale, errors.UnlicensedSeller, "UNLICENSED_SELLER")


def test_large_producer_after_expiry(net: Cast) -> None:
    net.produce(net.factory_meter, 5_000)
    net.grant(net.factory, LicenceKind.SELLER, 1_800)
    sale = Transfer(Asset.GRID, net.office.address, 1_000)
    net.ok(net.factory, sale)
    net.sb.advance(1_800)
    net.rejects(net.factory, sale, errors.UnlicensedSeller, "UNLICENSED_SELLER")


def test_custodian_licence_is_not_a_seller_licence(net: Cast) -> None:
    net.add_meter("custody-roof", net.custodian, "BKK", MeterKind.SOLAR, 20_000)
    body = Transfer(Asset.GRID, net.office.address, 1)
    net.rejects(net.custodian, body, errors.UnlicensedSeller, "UNLICENSED_SELLER")


def test_thb_transfer_never_needs_seller_licence(net: Cast) -> None:
    net.ok(net.custodian, IssueThb(net.factory.address, 5_000))
    net.ok(net.factory, Transfer(Asset.THB, net.office.address, 5_000))
    assert net.thb(net.factory.address) == 0


def test_buyer_without_meters_resells_grid_freely(net: Cast) -> None:
    # Current rule: the gate looks only at the sender's own generating capacity.
    net.produce(net.home_meter, 1_000)
    net.ok(net.home, Transfer(Asset.GRID, net.office.address, 1_000))
    net.ok(net.office, Transfer(Asset.GRID, net.consumer.address, 1_000))
    assert net.grid(net.consumer.address) == 1_000


# --- IssueThb -----------------------------------------------------------------------------
def test_issue_thb(net: Cast) -> None:
    issued = net.supply().thb_issued_satang
    events = net.ok(net.custodian, IssueThb(net.home.address, 12_345))
    assert events[0].kind == "thb_issued"
    assert events[0].attrs == {
        "custodian": net.custodian.address,
        "to": net.home.address,
        "amount": 12_345,
        "total": issued + 12_345,
        "to_balance": 12_345,
    }
    assert net.thb(net.home.address) == 12_345
    assert net.supply().thb_issued_satang == issued + 12_345


def test_issue_thb_to_itself(net: Cast) -> None:
    net.ok(net.custodian, IssueThb(net.custodian.address, 100))
    assert net.thb(net.custodian.address) == 100


def test_issue_thb_by_unlicensed_custodian_kind(net: Cast) -> None:
    other = net.register("unlicensed-custody", "BKK", ParticipantKind.CUSTODIAN)
    body = IssueThb(net.home.address, 100)
    net.rejects(other, body, errors.NotCustodian, "NOT_CUSTODIAN")


@pytest.mark.parametrize("who", ["office", "home", "erc", "mea"])
def test_issue_thb_by_non_custodian(net: Cast, who: str) -> None:
    signer = {"office": net.office, "home": net.home, "erc": net.erc, "mea": net.mea}[who]
    body = IssueThb(net.home.address, 100)
    net.rejects(signer, body, errors.NotCustodian, "NOT_CUSTODIAN")


def test_issue_thb_by_revoked_custodian(net: Cast) -> None:
    net.ok(net.erc, RevokeLicence(net.custodian.address, LicenceKind.CUSTODIAN))
    body = IssueThb(net.home.address, 100)
    net.rejects(net.custodian, body, errors.NotCustodian, "NOT_CUSTODIAN")


def test_issue_thb_by_expired_custodian(net: Cast) -> None:
    licence = net.licence(net.custodian.address, LicenceKind.CUSTODIAN)
    assert licence is not None
    net.sb.advance(licence.expires_at - net.sb.time)
    body = IssueThb(net.home.address, 100)
    net.rejects(net.custodian, body, errors.NotCustodian, "NOT_CUSTODIAN")


def test_issue_thb_to_unregistered(net: Cast) -> None:
    body = IssueThb(key("nobody").address, 100)
    net.rejects(net.custodian, body, errors.UnknownRecipient, "UNKNOWN_RECIPIENT")


def test_issue_thb_to_a_meter(net: Cast) -> None:
    body = IssueThb(net.home_meter.address, 100)
    net.rejects(net.custodian, body, errors.UnknownRecipient, "UNKNOWN_RECIPIENT")


def test_issue_zero_thb(net: Cast) -> None:
    body = IssueThb(net.home.address, 0)
    net.rejects(net.custodian, body, errors.InvalidAmount, "INVALID_AMOUNT")


def test_issue_to_newly_registered_participant(net: Cast) -> None:
    new = key("new")
    net.rejects(
        net.custodian, IssueThb(new.address, 1), errors.UnknownRecipient, "UNKNOWN_RECIPIENT"
    )
    net.ok(net.mea, RegisterParticipant(new.address, "BKK", ParticipantKind.HOUSEHOLD, "new"))
    net.ok(net.custodian, IssueThb(new.address, 1))


# --- RedeemThb ----------------------------------------------------------------------------
def test_redeem_thb(net: Cast) -> None:
    net.ok(net.office, Transfer(Asset.THB, net.custodian.address, 40_000))
    redeemed = net.supply().thb_redeemed_satang
    events = net.ok(net.custodian, RedeemThb(30_000))
    assert events[0].kind == "thb_redeemed"
    assert events[0].attrs == {
        "custodian": net.custodian.address, "amount": 30_000, "total": redeemed + 30_000,
        "from_balance": 10_000,
    }  # fmt: skip
    assert net.thb(net.custodian.address) == 10_000
    assert net.supply().thb_redeemed_satang == redeemed + 30_000
    assert net.supply().outstanding(Asset.THB) == net.thb(net.office.address) + 10_000


def test_redeem_more_than_held(net: Cast) -> None:
    net.ok(net.custodian, IssueThb(net.custodian.address, 500))
    net.rejects(net.custodian, RedeemThb(501), errors.InsufficientBalance, "INSUFFICIENT_BALANCE")


def test_redeem_zero(net: Cast) -> None:
    net.rejects(net.custodian, RedeemThb(0), errors.InvalidAmount, "INVALID_AMOUNT")


@pytest.mark.parametrize("who", ["office", "erc"])
def test_redeem_by_non_custodian(net: Cast, who: str) -> None:
    signer = net.office if who == "office" else net.erc
    net.rejects(signer, RedeemThb(100), errors.NotCustodian, "NOT_CUSTODIAN")


def test_redeem_by_revoked_custodian(net: Cast) -> None:
    # Current rule: once revoked, a custodian cannot redeem the THB it still holds.
    net.ok(net.custodian, IssueThb(net.custodian.address, 500))
    net.ok(net.erc, RevokeLicence(net.custodian.address, LicenceKind.CUSTODIAN))
    net.rejects(net.custodian, RedeemThb(500), errors.NotCustodian, "NOT_CUSTODIAN")


def test_issuance_beyond_the_63_bit_range_is_refused(net: Cast) -> None:
    limit = 2**63 - 1
    outstanding = net.supply().thb_issued_satang
    net.ok(net.custodian, IssueThb(net.consumer.address, limit - outstanding))
    exc = net.rejects(
        net.custodian, IssueThb(net.home.address, 1), errors.AmountOverflow, "AMOUNT_OVERFLOW"
    )
    assert "exceed" in str(exc)
    assert net.supply().thb_issued_satang == limit


def test_custodian_issues_thb_under_a_positive_minimum_fee() -> None:
    """THB enters the chain through issuance, so issuance cannot require THB for its fee."""
    net = Net(sandbox_with_params(min_fee_satang=50))
    custodian = net.register("fee/custodian", "BKK", ParticipantKind.CUSTODIAN)
    net.grant(custodian, LicenceKind.CUSTODIAN)
    net.ok(custodian, IssueThb(custodian.address, 100_000))
    # Everything else the custodian does pays the minimum, now that it holds THB.
    net.rejects(custodian, RedeemThb(10), errors.FeeTooLow, "FEE_TOO_LOW", fee=49)
    net.ok(custodian, RedeemThb(10), fee=50)
    # An unlicensed sender gets no exemption.
    other = net.register("fee/other", "BKK", ParticipantKind.HOUSEHOLD)
    net.rejects(other, IssueThb(other.address, 1), errors.FeeTooLow, "FEE_TOO_LOW")
