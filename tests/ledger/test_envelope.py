"""Envelope checks shared by every transaction type: chain id, signature, sender, nonce, fee."""

from __future__ import annotations

import msgspec
import pytest

from gridtokenx.ledger import chain_info, invariants, transition
from gridtokenx.wire import errors, tx
from gridtokenx.wire.tx import Asset, IssueThb, SignedTransaction, Transfer
from tests.conftest import Cast, Net, key, sandbox_with_params


def _flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# --- chain id and signature ---------------------------------------------------------------
def test_wrong_chain_id(net: Cast) -> None:
    nonce = net.nonce(net.office.address)
    stx = tx.make(net.office, "gridtokenx-mainnet", nonce, Transfer(Asset.THB, net.home.address, 1))
    net.rejects_tx(stx, errors.WrongChainId, "WRONG_CHAIN_ID")


def test_tampered_signature_bytes(net: Cast) -> None:
    stx = net.sb.sign(net.office, Transfer(Asset.THB, net.home.address, 100))
    for index in (0, 31, 63):
        forged = SignedTransaction(stx.tx, _flip(stx.signature, index))
        net.rejects_tx(forged, errors.InvalidSignature, "INVALID_SIGNATURE")
    # The untampered original still applies.
    transition.apply(net.sb.state, stx, net.sb.context)
    assert net.thb(net.home.address) == 100


@pytest.mark.parametrize("field", ["body", "fee", "nonce", "sender"])
def test_tampered_transaction_after_signing(net: Cast, field: str) -> None:
    stx = net.sb.sign(net.office, Transfer(Asset.THB, net.home.address, 100))
    value: object = {
        "body": Transfer(Asset.THB, net.home.address, 999_999),
        "fee": 1,
        "nonce": stx.tx.nonce + 1,
        "sender": net.home.public_key,
    }[field]
    forged = SignedTransaction(msgspec.structs.replace(stx.tx, **{field: value}), stx.signature)
    net.rejects_tx(forged, errors.InvalidSignature, "INVALID_SIGNATURE")


def test_signature_by_another_key(net: Cast) -> None:
    body = Transfer(Asset.THB, net.home.address, 100)
    unsigned = tx.Transaction(
        net.sb.chain_id, net.nonce(net.office.address), net.office.public_key, 0, body
    )
    forged = SignedTransaction(unsigned, net.home.sign(unsigned.signing_bytes()))
    net.rejects_tx(forged, errors.InvalidSignature, "INVALID_SIGNATURE")


def test_check_signature_false_skips_signature_check(net: Cast) -> None:
    stx = net.sb.sign(net.office, Transfer(Asset.THB, net.home.address, 100))
    forged = SignedTransaction(stx.tx, bytes(64))
    events = transition.apply(net.sb.state, forged, net.sb.context, check_signature=False)
    assert [e.kind for e in events] == ["transfer"]
    assert net.thb(net.home.address) == 100
    assert net.nonce(net.office.address) == stx.tx.nonce + 1
    invariants.check_all(net.sb.state)


def test_check_signature_false_still_checks_everything_else(net: Cast) -> None:
    stx = net.sb.sign(net.office, Transfer(Asset.THB, net.home.address, 100))
    forged = SignedTransaction(stx.tx, bytes(64))
    transition.apply(net.sb.state, forged, net.sb.context, check_signature=False)
    net.rejects_tx(forged, errors.NonceReplayed, "NONCE_REPLAYED", check_signature=False)


# --- sender and nonce ---------------------------------------------------------------------
def test_unknown_sender(net: Cast) -> None:
    stranger = key("stranger")
    stx = tx.make(stranger, net.sb.chain_id, 0, Transfer(Asset.THB, net.home.address, 1))
    net.rejects_tx(stx, errors.UnknownSender, "UNKNOWN_SENDER")


def test_registered_participant_can_send_from_nonce_zero(net: Cast) -> None:
    assert net.nonce(net.home.address) == 0
    net.ok(net.office, Transfer(Asset.THB, net.home.address, 10))
    net.ok(net.home, Transfer(Asset.THB, net.office.address, 10))
    assert net.nonce(net.home.address) == 1


def test_replayed_transaction(net: Cast) -> None:
    stx = net.sb.sign(net.office, Transfer(Asset.THB, net.home.address, 100))
    transition.apply(net.sb.state, stx, net.sb.context)
    net.rejects_tx(stx, errors.NonceReplayed, "NONCE_REPLAYED")
    assert net.thb(net.home.address) == 100


def test_old_nonce_with_new_body_is_replay(net: Cast) -> None:
    net.ok(net.office, Transfer(Asset.THB, net.home.address, 100))
    stale = tx.make(net.office, net.sb.chain_id, 0, Transfer(Asset.THB, net.home.address, 5))
    net.rejects_tx(stale, errors.NonceReplayed, "NONCE_REPLAYED")


def test_nonce_gap(net: Cast) -> None:
    nonce = net.nonce(net.office.address)
    body = Transfer(Asset.THB, net.home.address, 100)
    ahead = tx.make(net.office, net.sb.chain_id, nonce + 1, body)
    net.rejects_tx(ahead, errors.NonceGap, "NONCE_GAP")
    # Once the missing nonce is used, the same transaction applies.
    net.ok(net.office, body)
    transition.apply(net.sb.state, ahead, net.sb.context)
    assert net.nonce(net.office.address) == nonce + 2


def test_nonce_advances_by_one_per_accepted_transaction(net: Cast) -> None:
    start = net.nonce(net.office.address)
    for i in range(3):
        net.ok(net.office, Transfer(Asset.THB, net.home.address, 1))
        assert net.nonce(net.office.address) == start + i + 1


def test_rejected_transaction_does_not_advance_nonce(net: Cast) -> None:
    nonce = net.nonce(net.office.address)
    net.rejects(
        net.office,
        Transfer(Asset.THB, net.home.address, 10**12),
        errors.InsufficientBalance,
        "INSUFFICIENT_BALANCE",
    )
    assert net.nonce(net.office.address) == nonce
    # The same nonce is still available for the next transaction.
    stx = tx.make(net.office, net.sb.chain_id, nonce, Transfer(Asset.THB, net.home.address, 1))
    transition.apply(net.sb.state, stx, net.sb.context)
    assert net.nonce(net.office.address) == nonce + 1


# --- fees ---------------------------------------------------------------------------------
def test_fee_is_paid_to_the_fee_collector(net: Cast) -> None:
    collector = chain_info.chain_info(net.sb.state).fee_collector
    assert collector == net.erc.address
    office_before, erc_before = net.thb(net.office.address), net.thb(collector)
    nonce = net.nonce(net.office.address)
    net.ok(net.office, Transfer(Asset.THB, net.home.address, 1_000), fee=250)
    assert net.thb(net.office.address) == office_before - 1_000 - 250
    assert net.thb(collector) == erc_before + 250
    assert net.thb(net.home.address) == 1_000
    assert net.nonce(net.office.address) == nonce + 1


def test_fee_is_not_charged_when_the_body_is_rejected(net: Cast) -> None:
    before = net.thb(net.office.address)
    net.rejects(
        net.office,
        Transfer(Asset.THB, key("nobody").address, 1),
        errors.UnknownRecipient,
        "UNKNOWN_RECIPIENT",
        fee=250,
    )
    assert net.thb(net.office.address) == before
    assert net.thb(net.erc.address) == 0


def test_fee_without_thb(net: Cast) -> None:
    assert net.thb(net.home.address) == 0
    net.rejects(
        net.home,
        Transfer(Asset.THB, net.office.address, 0),
        errors.InsufficientBalance,
        "INSUFFICIENT_BALANCE",
        fee=1,
    )


def test_fee_plus_amount_above_balance(net: Cast) -> None:
    balance = net.thb(net.office.address)
    net.rejects(
        net.office,
        Transfer(Asset.THB, net.home.address, balance),
        errors.InsufficientBalance,
        "INSUFFICIENT_BALANCE",
        fee=1,
    )


def test_fee_below_raised_minimum() -> None:
    net = Net(sandbox_with_params(min_fee_satang=100))
    assert net.params.min_fee_satang == 100
    home = net.register("new", "BKK", tx.ParticipantKind.HOUSEHOLD)
    body = Transfer(Asset.THB, net.mea.address, 1)
    net.rejects(home, body, errors.FeeTooLow, "FEE_TOO_LOW")
    net.rejects(home, body, errors.FeeTooLow, "FEE_TOO_LOW", fee=99)
    # The minimum itself passes the fee check; the participant then has to pay it in THB.
    net.rejects(home, body, errors.InsufficientBalance, "INSUFFICIENT_BALANCE", fee=100)


def test_authorities_and_meters_are_exempt_from_the_minimum_fee() -> None:
    """Authorities start with no THB and meters can never hold any: a positive minimum fee
    must not stop registration or metering."""
    net = Net(sandbox_with_params(min_fee_satang=100))
    home = net.register("exempt-home", "BKK", tx.ParticipantKind.HOUSEHOLD)
    meter = net.add_meter("exempt-home", home, "BKK", tx.MeterKind.SOLAR, 5_000)
    net.produce(meter, 1_000)
    assert net.grid(home.address) == 1_000


def test_fee_at_raised_minimum_is_accepted(net: Cast) -> None:
    # Governance raises the minimum fee after participants hold THB.
    view = net.sb.state.overlay()
    view.put(chain_info.PARAMS_KEY, msgspec.structs.replace(net.params, min_fee_satang=100))
    view.commit()
    body = Transfer(Asset.THB, net.home.address, 1)
    net.rejects(net.office, body, errors.FeeTooLow, "FEE_TOO_LOW", fee=99)
    before = net.thb(net.office.address)
    net.ok(net.office, body, fee=100)
    net.ok(net.office, body, fee=150)
    assert net.thb(net.office.address) == before - 2 - 250
    assert net.thb(net.erc.address) == 250


def test_fee_paid_by_the_fee_collector_itself(net: Cast) -> None:
    net.ok(net.custodian, IssueThb(net.erc.address, 500))
    net.ok(net.erc, Transfer(Asset.THB, net.office.address, 100), fee=50)
    assert net.thb(net.erc.address) == 400


# --- error codes --------------------------------------------------------------------------
def test_every_rejection_code_is_distinct() -> None:
    codes = [cls.code for cls in errors.ALL_REJECTIONS]
    assert len(codes) == len(set(codes))


def test_all_rejections_lists_every_rejection_class() -> None:
    def subclasses(cls: type[errors.Rejection]) -> set[type[errors.Rejection]]:
        found = set(cls.__subclasses__())
        for sub in list(found):
            found |= subclasses(sub)
        return found

    assert subclasses(errors.Rejection) <= set(errors.ALL_REJECTIONS)
    for cls in errors.ALL_REJECTIONS:
        assert cls.code.isupper() and " " not in cls.code
