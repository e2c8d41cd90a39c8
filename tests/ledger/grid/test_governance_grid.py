"""Governed grid data: interconnector ratings, loss factors and new links change by a vote
(InterconnectorChange), and parameters fixed for a chain's life are refused with the reason.
Every fact is read back from the ledger state after the proposal executes in end_block."""

from __future__ import annotations

import msgspec
import pytest

from gridtokenx.ledger import registry
from gridtokenx.ledger.governance import ProposalStatus
from gridtokenx.ledger.grid import records as grid
from gridtokenx.ledger.market import paths, records
from gridtokenx.wire import codec, errors, tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import (
    InterconnectorChange,
    LinkStatus,
    ParamChange,
    PlaceOrder,
    ProposalKind,
    Side,
    SubmitProposal,
    TransmissionStatus,
    VoteChoice,
)
from tests.ledger.market.test_market import Market, licensed_factory
from tests.ledger.test_governance import finish, governed_sandbox, kinds, proposal, propose, vote

BUY, SELL, YES = Side.BUY, Side.SELL, VoteChoice.YES


@pytest.fixture
def gm() -> Market:
    return Market(governed_sandbox())


def passed(gm: Market, signer: PrivateKey, *actions: tx.Action) -> list[object]:
    """Propose a PARAMETER change, vote it through and run it to execution."""
    pid = propose(gm, signer, ProposalKind.PARAMETER, *actions)
    vote(gm, pid, (gm.egat, YES), (gm.mea, YES), (gm.pea, YES))
    events = finish(gm, pid)
    assert proposal(gm, pid).status is ProposalStatus.EXECUTED, proposal(gm, pid).outcome
    return events  # type: ignore[return-value]


def link(gm: Market, a: str, b: str) -> registry.Interconnector | None:
    return gm.sb.state.get(registry.interconnector_key(a, b), registry.Interconnector)


def test_a_vote_rerates_a_link_and_new_trades_take_its_loss(gm: Market) -> None:
    licensed_factory(gm)
    gm.place(gm.factory, SELL, 2_000, 250, zone="CEN")
    gm.ok(gm.office, PlaceOrder(BUY, "BKK", gm.T, 1_000, 400))
    (first,) = gm.trades()
    assert first.loss_bp == 100  # the genesis BKK-CEN loss
    events = passed(gm, gm.egat, InterconnectorChange("CEN", "BKK", 900_000, 250))
    assert "interconnector_rerated" in kinds(events)  # type: ignore[arg-type]
    rated = link(gm, "BKK", "CEN")
    assert rated is not None
    assert (rated.zone_a, rated.zone_b) == ("BKK", "CEN")  # the genesis order: flows keep sign
    assert (rated.capacity_kw, rated.loss_basis_points) == (900_000, 250)
    gm.ok(gm.buyer2, PlaceOrder(BUY, "BKK", gm.T, 1_000, 400))
    second = max(gm.trades(), key=lambda t: t.id)
    assert second.loss_bp == 250
    assert {t.id: t.loss_bp for t in gm.trades()}[first.id] == 100  # history keeps its loss


def test_a_vote_builds_a_new_link_that_paths_then_use(gm: Market) -> None:
    view = gm.sb.state.overlay()
    before = paths.find(view, "NTH", "STH")
    assert before is not None and len(before.zones) > 2  # round by CEN and WST today
    assert link(gm, "NTH", "STH") is None
    events = passed(gm, gm.egat, InterconnectorChange("STH", "NTH", 200_000, 500))
    added = [e for e in events if e.kind == "interconnector_added"]  # type: ignore[attr-defined]
    assert len(added) == 1
    assert ("NTH", "STH") in registry.zone_index(gm.sb.state.overlay()).links
    direct = paths.find(gm.sb.state.overlay(), "NTH", "STH")
    assert direct is not None and direct.zones == ("NTH", "STH") and direct.loss_bp == 500


def test_a_lower_rating_curtails_what_no_longer_fits(gm: Market) -> None:
    licensed_factory(gm)
    gm.place(gm.factory, SELL, 3_000, 250, zone="CEN")
    for who in (gm.office, gm.buyer2):
        gm.ok(who, PlaceOrder(BUY, "BKK", gm.T, 1_500, 400))
    assert sum(t.quantity_wh for t in gm.trades()) == 3_000
    # 8 kW on BKK-CEN is 2,000 Wh per 15-minute interval (EGAT has not reported it): the
    # newest trade gives back 1,000 Wh, as after an EGAT cut.
    events = passed(gm, gm.egat, InterconnectorChange("BKK", "CEN", 8, 100))
    cuts = [e.attrs for e in events if e.kind == "trade_curtailed"]  # type: ignore[attr-defined]
    newest = max(gm.trades(), key=lambda t: t.id)
    assert [(c["trade"], c["curtailed_wh"]) for c in cuts] == [(newest.id, 1_000)]
    view = gm.sb.state.overlay()
    flow = view.get(records.flow_key(gm.T, "CEN", "BKK"), records.FlowUsed)
    assert flow == records.FlowUsed(2_000)


def test_egats_reported_capacity_still_governs_the_market(gm: Market) -> None:
    gm.ok(gm.egat, TransmissionStatus(gm.sb.time, 50_000, (LinkStatus("BKK", "CEN", 40, 0),)))
    passed(gm, gm.egat, InterconnectorChange("BKK", "CEN", 900_000, 100 + 1))
    view = gm.sb.state.overlay()
    assert grid.link_capacity_kw(view, "BKK", "CEN") == 40  # measured beats rated


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (InterconnectorChange("BKK", "BKK", 1, 1), errors.InvalidGridUpdate),
        (InterconnectorChange("BKK", "XYZ", 1, 1), errors.UnknownZone),
        (InterconnectorChange("BKK", "CEN", 800_000, 100), errors.InvalidProposal),  # unchanged
    ],
)
def test_interconnector_changes_that_could_not_execute_are_refused(
    gm: Market, change: InterconnectorChange, error: type[errors.Rejection]
) -> None:
    body = SubmitProposal(ProposalKind.PARAMETER, (change,), "bad link")
    gm.rejects(gm.egat, body, error, error.code)


def test_an_interconnector_change_is_a_parameter_proposal(gm: Market) -> None:
    body = SubmitProposal(
        ProposalKind.MARKET_RULE, (InterconnectorChange("BKK", "CEN", 1, 1),), "wrong kind"
    )
    gm.rejects(gm.egat, body, errors.InvalidProposal, "INVALID_PROPOSAL")


def test_the_loss_factor_is_bounded_on_the_wire(gm: Market) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(["BKK", "CEN", 1, 10_000], InterconnectorChange)
    ok = InterconnectorChange("BKK", "CEN", 1, 9_999)
    body = SubmitProposal(ProposalKind.PARAMETER, (ok,), "")
    stx = tx.make(gm.egat, gm.sb.chain_id, 0, body)
    assert tx.decode(stx.encode()) == stx
    raw = bytearray(stx.encode())
    at = raw.find(codec.encode(9_999))
    raw[at : at + 3] = codec.encode(10_000)  # the same width, out of range
    with pytest.raises(codec.DecodeError):
        tx.decode(bytes(raw))


def test_the_settlement_interval_is_fixed_for_the_chains_life(gm: Market) -> None:
    body = SubmitProposal(ProposalKind.PARAMETER, (ParamChange("interval_seconds", 1_800),), "")
    gm.rejects(gm.egat, body, errors.InvalidProposal, "INVALID_PROPOSAL")
    assert gm.params.interval_seconds == 900
