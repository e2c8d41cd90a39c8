"""Invariants that must hold after every transaction; tests call `check_all` after each step.

They scan the whole state, so they are for tests, audits and the demo, not the hot path.
"""

from __future__ import annotations

from gridtokenx.ledger import accounts, certificates, governance, metering, registry
from gridtokenx.ledger.grid import records as grid
from gridtokenx.ledger.market import auction, orderbook, records
from gridtokenx.ledger.state import State
from gridtokenx.wire.tx import Side, VoteChoice


class InvariantViolation(AssertionError):
    pass


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantViolation(message)


def balance_totals(state: State) -> tuple[int, int]:
    """Sum of GRID (Wh) and THB (satang) over all accounts."""
    grid = thb = 0
    for _, record in state.scan(b"acct/"):
        assert isinstance(record, accounts.Account)
        grid += record.grid_wh
        thb += record.thb_satang
    return grid, thb


def check_no_negative_balance(state: State) -> None:
    for key, record in state.scan(b"acct/"):
        assert isinstance(record, accounts.Account)
        _require(
            record.grid_wh >= 0 and record.thb_satang >= 0 and record.nonce >= 0,
            f"negative balance or nonce at {key!r}: {record}",
        )


def check_supply(state: State) -> None:
    """GRID supply = minted - burned = sum of balances; likewise THB issued - redeemed."""
    supply = state.get(accounts.SUPPLY_KEY, accounts.Supply) or accounts.Supply()
    grid, thb = balance_totals(state)
    _require(
        grid == supply.grid_minted_wh - supply.grid_burned_wh,
        f"GRID balances {grid} != minted {supply.grid_minted_wh} - burned {supply.grid_burned_wh}",
    )
    _require(
        thb == supply.thb_issued_satang - supply.thb_redeemed_satang,
        f"THB balances {thb} != issued {supply.thb_issued_satang} - redeemed "
        f"{supply.thb_redeemed_satang}",
    )


def check_mint_trace(state: State) -> None:
    """Every minted Wh is accounted for by exactly one applied reading's export."""
    supply = state.get(accounts.SUPPLY_KEY, accounts.Supply) or accounts.Supply()
    traced = 0
    per_meter: dict[bytes, int] = {}
    for key, record in state.scan(b"read/"):
        assert isinstance(record, metering.ReadingRecord)
        _require(record.minted_wh == record.export_wh, f"reading {key!r} minted != exported")
        traced += record.minted_wh
        meter = key[len(b"read/") : -8]
        per_meter[meter] = per_meter.get(meter, 0) + record.export_wh
    _require(traced == supply.grid_minted_wh, f"traced {traced} != minted {supply.grid_minted_wh}")
    for key, record in state.scan(b"meter/"):
        assert isinstance(record, registry.Meter)
        meter = key[len(b"meter/") :]
        _require(
            per_meter.get(meter, 0) == record.export_register_wh - record.baseline_export_wh,
            f"meter {meter.hex()} register {record.export_register_wh} != readings sum",
        )


def check_state_root(state: State) -> None:
    """The incrementally maintained root equals a root rebuilt from scratch."""
    _require(state.root() == state.recompute_root(), "incremental state root diverged")


def check_market(state: State) -> None:
    """The escrow account holds exactly what open buy orders and unsettled trades reserved,
    and exactly the sellers' export locked for unsettled intervals; the matching engine's
    books equal a rebuild from the order records; every settled zone report conserves
    energy (export = delivered + sold to utility) and money (what buyers paid = what
    sellers got + fees + wheeling)."""
    escrow = state.get(accounts.account_key(accounts.ESCROW_ADDRESS), accounts.Account)
    held_thb = held_grid = 0
    for _, order in state.scan(b"ord/"):
        assert isinstance(order, records.Order)
        if order.status is records.OrderStatus.OPEN and order.side is Side.BUY:
            held_thb += order.escrow_satang
        _require(
            order.status is records.OrderStatus.OPEN or order.escrow_satang == 0,
            f"closed order {order.id} still holds escrow",
        )
    for _, curve in state.scan(b"aucv/"):
        assert isinstance(curve, auction.AuctionCurve)
        if curve.status is auction.CurveStatus.OPEN:
            held_thb += curve.escrow_satang
        _require(
            curve.status is auction.CurveStatus.OPEN or curve.escrow_satang == 0,
            f"closed auction curve {curve.id} still holds escrow",
        )
    live = orderbook.books(state).snapshot()
    _require(live == orderbook.Books.from_state(state).snapshot(), "engine books != order records")
    _require(orderbook.books(state).zones_agree(), "engine books by zone != engine books")
    for _, trade in state.scan(b"trade/"):
        assert isinstance(trade, records.Trade)
        if not trade.settled:
            held_thb += trade.escrow_satang
    for key, pos in state.scan(b"pos/"):
        assert isinstance(pos, records.Position)
        market = state.get(b"ivl/" + key[4:12], records.IntervalMarket)
        if market is not None and market.status is not records.IntervalStatus.SETTLED:
            held_grid += pos.locked_export_wh
    have = (0, 0) if escrow is None else (escrow.thb_satang, escrow.grid_wh)
    _require(have == (held_thb, held_grid), f"escrow {have} != reserved {(held_thb, held_grid)}")
    delivered = received_and_lost = paid = earned = 0
    for key, r in state.scan(b"rep/"):
        assert isinstance(r, records.ZoneReport)
        _require(r.export_wh == r.delivered_wh + r.sold_to_utility_wh, f"energy in {key!r}")
        delivered += r.delivered_wh
        received_and_lost += r.received_wh + r.losses_wh
        paid += r.paid_by_buyers_satang
        earned += r.paid_to_sellers_satang + r.platform_fees_satang + r.wheeling_satang
    _require(delivered == received_and_lost, "delivered != received + losses")
    _require(paid == earned, f"buyers paid {paid} but sellers, fees and wheeling got {earned}")


def check_grid_flows(state: State) -> None:
    """Interconnector use and zone imports are exactly the cross-zone trades behind them,
    so a curtailment that shrinks a trade gives back exactly what it took."""
    flows: dict[bytes, int] = {}
    imports: dict[bytes, int] = {}
    for _, trade in state.scan(b"trade/"):
        assert isinstance(trade, records.Trade)
        if len(trade.path) < 2 or not trade.quantity_wh:
            continue
        for a, b in zip(trade.path, trade.path[1:], strict=False):
            key = records.flow_key(trade.interval_start, a, b)
            flows[key] = flows.get(key, 0) + trade.quantity_wh
        key = grid.zone_import_key(trade.interval_start, trade.path[-1])
        imports[key] = imports.get(key, 0) + trade.quantity_wh
    stored_flows = {k: r.wh for k, r in state.scan(b"flow/") if isinstance(r, records.FlowUsed)}
    stored_imports = {k: r.wh for k, r in state.scan(b"gimp/") if isinstance(r, grid.ZoneImport)}
    _require(stored_flows == flows, f"link flows {stored_flows} != trades {flows}")
    _require(stored_imports == imports, f"zone imports {stored_imports} != trades {imports}")


def check_certificates(state: State) -> None:
    """No Wh is certified twice: per renewable meter, certified Wh + carried remainder ==
    renewable Wh exported (the register increase, which `check_mint_trace` ties to the
    readings), and the certified Wh are exactly its certificates. Certificates have distinct
    ids below the sequence, each meter's follow interval order, each avoided figure follows
    from its recorded factor, and the carbon totals equal a regrouping of the certificates."""
    certified: dict[bytes, int] = {}
    last_interval: dict[bytes, int] = {}
    expected: dict[bytes, certificates.CarbonTotals] = {}
    count = 0

    def add(key: bytes, **deltas: int) -> None:
        totals = expected.get(key, certificates.CarbonTotals())
        expected[key] = certificates.CarbonTotals(
            *(
                getattr(totals, f) + deltas.get(f, 0)
                for f in certificates.CarbonTotals.__struct_fields__
            )
        )

    for key, cert in state.scan(b"cert/"):
        assert isinstance(cert, certificates.Certificate)
        count += 1
        _require(key == certificates.certificate_key(cert.id), f"certificate {cert.id} misfiled")
        _require(cert.source.renewable, f"certificate {cert.id} from a non-renewable meter")
        _require(cert.first_interval <= cert.last_interval, f"certificate {cert.id} range")
        _require(
            cert.last_interval >= last_interval.get(cert.meter, -1),
            f"certificate {cert.id} is out of its meter's interval order",
        )
        _require(
            cert.avoided_g
            == certificates.avoided_g(cert.energy_wh, cert.emission_factor_g_per_kwh),
            f"certificate {cert.id} avoided emissions do not follow from its factor",
        )
        _require(cert.retired == bool(cert.beneficiary), f"certificate {cert.id} beneficiary state")
        last_interval[cert.meter] = cert.last_interval
        certified[cert.meter] = certified.get(cert.meter, 0) + cert.energy_wh
        issued = {"issued_wh": cert.energy_wh, "issued_avoided_g": cert.avoided_g}
        add(certificates.participant_carbon_key(cert.issued_to, cert.issue_day), **issued)
        add(certificates.zone_carbon_key(cert.zone, cert.issue_day), **issued)
        if cert.retired:
            retired = {"retired_wh": cert.energy_wh, "retired_avoided_g": cert.avoided_g}
            add(certificates.participant_carbon_key(cert.owner, cert.retire_day), **retired)
            add(certificates.zone_carbon_key(cert.zone, cert.retire_day), **retired)
    sequence = state.get(certificates.SEQUENCE_KEY, certificates.CertificateSequence)
    _require(
        count == (0 if sequence is None else sequence.next_id - 1),
        f"{count} certificates but the sequence says otherwise: {sequence}",
    )
    for key, meter in state.scan(b"meter/"):
        assert isinstance(meter, registry.Meter)
        address = key[len(b"meter/") :]
        acc = state.get(certificates.accrual_key(address), certificates.Accrual)
        exported = meter.export_register_wh - meter.baseline_export_wh
        if not meter.kind.renewable:
            _require(acc is None, f"non-renewable meter {address.hex()} accrues certificates")
            continue
        done, left = (0, 0) if acc is None else (acc.certified_wh, acc.remainder_wh)
        _require(
            done + left == exported,
            f"meter {address.hex()}: certified {done} + remainder {left} != exported {exported}",
        )
        _require(certified.get(address, 0) == done, f"meter {address.hex()} certificates")
    actual = dict(state.scan(b"co2p/")) | dict(state.scan(b"co2z/"))
    _require(actual == expected, "carbon totals differ from the certificates they sum")


_SLOT: dict[VoteChoice, int] = {
    VoteChoice.YES: 0,
    VoteChoice.NO: 1,
    VoteChoice.VETO: 1,
    VoteChoice.ABSTAIN: 2,
}


def _is_authority(state: State, address: bytes) -> bool:
    return state.get(registry.authority_key(address), registry.Authority) is not None


def check_governance(state: State) -> None:
    """Every proposal's tally is exactly the weight of its ballots by choice (a veto counts
    as a no), delegated weight included, and the active index lists exactly the proposals
    still voting or waiting. Ballots are one per authority and proposal, so no authority's
    weight counts twice; a ballot cast by a delegate follows that delegate's own ballot on
    the same proposal (one level: the delegate voted itself). The delegation records
    mirror each other and stay one level deep."""
    counted: dict[int, list[int]] = {}
    ballots: dict[bytes, governance.Ballot] = {}
    for key, ballot in state.scan(b"gov/v/"):
        assert isinstance(ballot, governance.Ballot)
        ballots[key] = ballot
    for key, ballot in ballots.items():
        proposal_id, voter = int.from_bytes(key[6:14]), key[14:]
        _require(_is_authority(state, voter), f"ballot {key!r} is not an authority's")
        counted.setdefault(proposal_id, [0, 0, 0])[_SLOT[ballot.choice]] += ballot.weight
        if ballot.delegate:
            cast = ballots.get(governance.ballot_key(proposal_id, ballot.delegate))
            _require(
                cast is not None
                and not cast.delegate
                and ballot.choice is not VoteChoice.VETO
                and _SLOT[ballot.choice] == _SLOT[cast.choice],
                f"ballot {key!r} does not follow its delegate's own ballot",
            )
    live = []
    for _, proposal in state.scan(b"gov/p/"):
        assert isinstance(proposal, governance.Proposal)
        have = [proposal.yes, proposal.no, proposal.abstain]
        _require(have == counted.pop(proposal.id, [0, 0, 0]), f"tally of {proposal.id} != ballots")
        if proposal.status in (governance.ProposalStatus.VOTING, governance.ProposalStatus.PASSED):
            live.append(proposal.id)
    _require(not counted, f"ballots for unknown proposals {sorted(counted)}")
    _require(
        tuple(sorted(live)) == governance.active_ids(state), "active proposals != open records"
    )
    check_delegations(state)


def check_delegations(state: State) -> None:
    """`gov/d/` (delegator -> delegate) and `gov/r/` (delegate -> its delegators, sorted)
    say the same thing; nobody delegates to itself, and no delegate delegates."""
    delegates: dict[bytes, bytes] = {}
    for key, record in state.scan(b"gov/d/"):
        assert isinstance(record, governance.Delegation)
        delegates[key[6:]] = record.delegate
    listed: dict[bytes, bytes] = {}
    for key, record in state.scan(b"gov/r/"):
        assert isinstance(record, governance.Delegators)
        _require(bool(record.addresses), f"empty delegator list at {key!r}")
        _require(list(record.addresses) == sorted(set(record.addresses)), f"{key!r} unsorted")
        for delegator in record.addresses:
            _require(delegator not in listed, f"{delegator.hex()} is listed by two delegates")
            listed[delegator] = key[6:]
    _require(listed == delegates, "delegators lists != delegation records")
    for delegator, delegate in delegates.items():
        _require(delegator != delegate, f"{delegator.hex()} delegates to itself")
        _require(delegate not in delegates, f"{delegate.hex()} is a delegate and delegates")
        _require(
            _is_authority(state, delegator) and _is_authority(state, delegate),
            f"delegation {delegator.hex()} -> {delegate.hex()} names a non-authority",
        )


def check_all(state: State) -> None:
    check_no_negative_balance(state)
    check_supply(state)
    check_mint_trace(state)
    check_market(state)
    check_grid_flows(state)
    check_certificates(state)
    check_governance(state)
    check_state_root(state)
