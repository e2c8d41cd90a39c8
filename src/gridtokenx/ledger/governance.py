"""On-chain governance: authorities propose, vote with governed weights, and passed proposals
execute themselves at a fixed height in end_block (docs/governance.md).

A proposal's life is decided by heights alone: votes count up to `voting_end_height`; the
tally runs in that height's end_block; a passed proposal executes in the end_block of
`voting_end_height + timelock`. Nobody sends an execute transaction, so nothing can run
early, and every node executes at the same point of the same block.

Every action runs against a fork of the block's overlay: if any action fails (the new
parameters no longer validate, the validator change is no longer possible) the proposal is
recorded as FAILED with the reason and none of its actions take effect. Submission runs the
same actions on a throw-away fork, so a proposal that could not execute now is refused
at once with the reason.

An authority may delegate its vote to another (DelegateVote, one level deep). Delegation
never moves weight in advance: when the delegate votes, it also writes a ballot for each
of its delegators that has none on the proposal yet, with the delegate's choice; a
delegator that votes later replaces that ballot with its own. One ballot per authority
and proposal is what keeps every weight counted at most once.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import IntEnum
from typing import Final

import msgspec

from gridtokenx.ledger import registry, validator_set
from gridtokenx.ledger.chain_info import PARAMS_KEY, params
from gridtokenx.ledger.context import BlockContext, Event, EventValue
from gridtokenx.ledger.market import curtailment
from gridtokenx.ledger.params import AUCTION_PARAMS_KEY, AuctionParams, Params
from gridtokenx.ledger.state import Overlay, State, records_under
from gridtokenx.wire import errors
from gridtokenx.wire.tx import (
    Action,
    CastVote,
    DelegateVote,
    InterconnectorChange,
    ParamChange,
    ProposalKind,
    SubmitProposal,
    ValidatorChange,
    ValidatorUnjail,
    VoteChoice,
    WeightChange,
    WithdrawProposal,
)

WEIGHTS_KEY: Final = b"gov/w"
COUNTER_KEY: Final = b"gov/n"
ACTIVE_KEY: Final = b"gov/a"

# Which proposal kind governs a top-level Params field. These name rules, not numbers:
# moving a field between kinds changes who can veto it, which is a protocol change.
MARKET_FIELDS: Final = frozenset(
    {
        "trading_horizon_seconds",
        "gate_closure_seconds",
        "price_min_satang_per_kwh",
        "price_max_satang_per_kwh",
        "tick_satang_per_kwh",
        "min_lot_wh",
        "max_open_orders_per_account",
        "imbalance_satang_per_kwh",
        "platform_fee_basis_points",
        "wheeling_satang_per_kwh",
        "settlement_deadline_seconds",
        "auction",
    }
)
LICENCE_FIELDS: Final = frozenset({"small_prosumer_threshold_w"})
# Parameters set once in the genesis, with the reason a vote cannot move them.
FIXED_FIELDS: Final = {
    "interval_seconds": "interval_seconds is fixed for the life of a chain: every order, "
    "trade, meter reading and settlement is keyed by an interval start on its grid, so a new "
    "length needs a new genesis (Thai meters integrate over 15 minutes)",
}
VETOABLE: Final = frozenset({ProposalKind.MARKET_RULE, ProposalKind.LICENCE_POLICY})
# Emergencies are for grid operators: the transmission system operator and the regulator.
EMERGENCY_ROLES: Final = frozenset({registry.ROLE_TRANSMISSION, registry.ROLE_REGULATOR})
_PREFIX: Final = {
    ProposalKind.PARAMETER: "parameter",
    ProposalKind.VALIDATOR: "validator",
    ProposalKind.LICENCE_POLICY: "licence",
    ProposalKind.MARKET_RULE: "market",
    ProposalKind.EMERGENCY: "emergency",
}


class ProposalStatus(IntEnum):
    VOTING = 1
    PASSED = 2  # waiting for its timelock
    REJECTED = 3  # quorum or approval not reached, or vetoed
    EXECUTED = 4
    FAILED = 5  # passed, but its actions could not execute at the execution height
    WITHDRAWN = 6


class GovernanceWeights(msgspec.Struct, frozen=True, array_like=True):
    """Vote weight per authority code, sorted by code; separate from consensus power."""

    weights: tuple[tuple[str, int], ...]


class ProposalCounter(msgspec.Struct, frozen=True, array_like=True):
    next_id: int


class ActiveProposals(msgspec.Struct, frozen=True, array_like=True):
    """Ids of proposals still voting or waiting to execute, ascending: end_block reads only
    these, never scans the state."""

    ids: tuple[int, ...]


class Proposal(msgspec.Struct, frozen=True, array_like=True):
    id: int
    kind: ProposalKind
    proposer: bytes
    actions: tuple[Action, ...]
    title: str
    submitted_height: int
    voting_end_height: int  # last height whose votes count; tallied in its end_block
    timelock_heights: int
    total_weight: int  # all authorities' weight at submission: the quorum's base
    yes: int = 0
    no: int = 0
    abstain: int = 0
    vetoed: bool = False
    status: ProposalStatus = ProposalStatus.VOTING
    execute_height: int = 0  # set when it passes
    outcome: str = ""  # why it was rejected or failed


class Ballot(msgspec.Struct, frozen=True, array_like=True):
    """One authority's weight on one proposal, at `ballot_key(proposal, authority)`.
    `delegate` is empty when the authority voted itself; otherwise it is the address of the
    delegate whose vote cast this ballot on the authority's behalf, with the delegate's
    choice (a veto carried as a no: the veto is the regulator's own)."""

    choice: VoteChoice
    weight: int
    delegate: bytes = b""


class Delegation(msgspec.Struct, frozen=True, array_like=True):
    """Whose votes carry an authority's weight, at `delegation_key(delegator)`."""

    delegate: bytes


class Delegators(msgspec.Struct, frozen=True, array_like=True):
    """The authorities delegating to one delegate, addresses ascending, at
    `delegators_key(delegate)`: a delegate's vote reads this, never scans the state."""

    addresses: tuple[bytes, ...]


def proposal_key(proposal_id: int) -> bytes:
    return b"gov/p/" + proposal_id.to_bytes(8)


def ballot_key(proposal_id: int, voter: bytes) -> bytes:
    return b"gov/v/" + proposal_id.to_bytes(8) + voter


def delegation_key(delegator: bytes) -> bytes:
    return b"gov/d/" + delegator


def delegators_key(delegate: bytes) -> bytes:
    return b"gov/r/" + delegate


def delegate_of(view: State | Overlay, delegator: bytes) -> bytes | None:
    record = view.get(delegation_key(delegator), Delegation)
    return None if record is None else record.delegate


def delegators_of(view: State | Overlay, delegate: bytes) -> tuple[bytes, ...]:
    record = view.get(delegators_key(delegate), Delegators)
    return () if record is None else record.addresses


def install(view: Overlay, weights: list[tuple[str, int]]) -> None:
    """Genesis weights, from each authority's `governance_weight`."""
    view.put(WEIGHTS_KEY, GovernanceWeights(tuple(sorted(weights))))


def weights(view: State | Overlay) -> dict[str, int]:
    record = view.get(WEIGHTS_KEY, GovernanceWeights)
    return {} if record is None else dict(record.weights)


def get_proposal(view: State | Overlay, proposal_id: int) -> Proposal | None:
    return view.get(proposal_key(proposal_id), Proposal)


def active_ids(view: State | Overlay) -> tuple[int, ...]:
    record = view.get(ACTIVE_KEY, ActiveProposals)
    return () if record is None else record.ids


def last_proposal_id(view: State | Overlay) -> int:
    """The newest proposal's id (ids count up from 1 and are never deleted); 0: none yet."""
    counter = view.get(COUNTER_KEY, ProposalCounter)
    return (counter.next_id if counter is not None else 1) - 1


def ballots(state: State, proposal_id: int) -> Iterator[tuple[bytes, Ballot]]:
    """Every (voter address, ballot) on one proposal, in address order."""
    return records_under(state, ballot_key(proposal_id, b""), Ballot)


def delegations(state: State) -> Iterator[tuple[bytes, bytes]]:
    """Every (delegator, delegate) address pair in force, by delegator."""
    for delegator, record in records_under(state, delegation_key(b""), Delegation):
        yield delegator, record.delegate


def thresholds(p: Params, kind: ProposalKind) -> tuple[int, int]:
    """(quorum, approval) in basis points for proposals of `kind`."""
    prefix = _PREFIX[kind]
    return getattr(p.governance, f"{prefix}_quorum_bp"), getattr(
        p.governance, f"{prefix}_approval_bp"
    )


def _periods(p: Params, kind: ProposalKind) -> tuple[int, int]:
    g = p.governance
    if kind is ProposalKind.EMERGENCY:
        return g.emergency_voting_period_heights, g.emergency_timelock_heights
    return g.voting_period_heights, g.timelock_heights


def _field_kind(name: str) -> ProposalKind:
    top = name.split(".", 1)[0]
    if top in MARKET_FIELDS:
        return ProposalKind.MARKET_RULE
    if top in LICENCE_FIELDS:
        return ProposalKind.LICENCE_POLICY
    return ProposalKind.PARAMETER


def _action_kind(action: Action) -> ProposalKind:
    if isinstance(action, ParamChange):
        return _field_kind(action.name)
    if isinstance(action, WeightChange | InterconnectorChange):
        return ProposalKind.PARAMETER
    return ProposalKind.VALIDATOR


def vetoable(proposal: Proposal) -> bool:
    """Market-rule and licence proposals, and emergencies that touch those rules: the ERC's
    veto cannot be sidestepped by calling a market change an emergency."""
    kinds = {_action_kind(a) for a in proposal.actions}
    return proposal.kind in VETOABLE or (
        proposal.kind is ProposalKind.EMERGENCY and bool(kinds & VETOABLE)
    )


# --- executing actions ----------------------------------------------------------------------
def _changed(p: Params, change: ParamChange) -> Params:
    """`p` with one field replaced; the shape of the value must match the field's."""
    *outer, leaf = change.name.split(".")
    if len(outer) > 1:
        raise errors.InvalidProposal(f"parameter {change.name!r} is nested too deeply")
    holder: object = getattr(p, outer[0], None) if outer else p
    if not isinstance(holder, msgspec.Struct) or leaf not in holder.__struct_fields__:
        raise errors.InvalidProposal(f"no governed parameter is named {change.name!r}")
    if change.name in FIXED_FIELDS:
        raise errors.InvalidProposal(FIXED_FIELDS[change.name])
    current = getattr(holder, leaf)
    if isinstance(current, msgspec.Struct):
        raise errors.InvalidProposal(f"{change.name!r} is a group: name one of its fields")
    if isinstance(current, tuple) != isinstance(change.value, tuple):
        shape = "a tuple of integers" if isinstance(current, tuple) else "an integer"
        raise errors.InvalidProposal(f"parameter {change.name!r} takes {shape}")
    replaced = msgspec.structs.replace(holder, **{leaf: change.value})
    result = msgspec.structs.replace(p, **{outer[0]: replaced}) if outer else replaced
    assert isinstance(result, Params)
    return result


def _param_value(p: Params, name: str) -> object:
    holder: object = p
    for part in name.split("."):
        holder = getattr(holder, part)
    return holder


def _param_text(value: object) -> str:
    """A parameter's value as canonical JSON text (`19720`, `[0,1,2]`): one type for every
    parameter, so the event's `old` and `new` read alike in receipts and audit exports."""
    return msgspec.json.encode(value).decode()


def _changed_auction(a: AuctionParams, change: ParamChange) -> AuctionParams:
    """The auction's parameters live in their own record (params.AuctionParams)."""
    leaf = change.name.removeprefix("auction.")
    if leaf not in a.__struct_fields__ or not isinstance(change.value, int):
        raise errors.InvalidProposal(f"no governed integer parameter is named {change.name!r}")
    return msgspec.structs.replace(a, **{leaf: change.value})


def _set_params(view: Overlay, changes: list[ParamChange]) -> list[Event]:
    p = params(view)
    auction = view.get(AUCTION_PARAMS_KEY, AuctionParams)
    events = []
    for change in changes:
        old: object
        if change.name.startswith("auction."):
            current = auction or AuctionParams()
            auction = _changed_auction(current, change)  # refuses an unknown name first
            old = getattr(current, change.name.removeprefix("auction."))
        else:
            changed = _changed(p, change)  # refuses an unknown name before it is read
            old, p = _param_value(p, change.name), changed
        attrs: dict[str, EventValue] = {
            "name": change.name, "old": _param_text(old), "new": _param_text(change.value),
        }  # fmt: skip
        events.append(Event("params_changed", attrs))
    if auction is not None:
        if problems := auction.validate():
            raise errors.InvalidParams("new auction parameters are invalid: " + "; ".join(problems))
        view.put(AUCTION_PARAMS_KEY, auction)
    if problems := p.validate():
        raise errors.InvalidParams("new parameters are invalid: " + "; ".join(problems))
    view.put(PARAMS_KEY, p)
    return events


def _set_weight(view: Overlay, change: WeightChange) -> list[Event]:
    current = weights(view)
    if change.authority not in current:
        raise errors.InvalidProposal(f"no authority has the code {change.authority!r}")
    current[change.authority] = change.weight
    if not any(current.values()):
        raise errors.InvalidProposal("no authority would be left with a vote")
    install(view, list(current.items()))
    return [
        Event("governance_weight_changed", {"authority": change.authority, "weight": change.weight})
    ]


def _set_interconnector(
    view: Overlay, ctx: BlockContext, change: InterconnectorChange
) -> list[Event]:
    """A lower rating may no longer fit what is already traded across the link (when EGAT has
    not reported it): the same curtailment as an EGAT capacity cut brings it back within."""
    a, b = change.zone_a, change.zone_b
    added = registry.set_interconnector(view, a, b, change.capacity_kw, change.loss_basis_points)
    attrs: dict[str, EventValue] = {
        "zone_a": a,
        "zone_b": b,
        "capacity_kw": change.capacity_kw,
        "loss_basis_points": change.loss_basis_points,
    }
    events = [Event("interconnector_added" if added else "interconnector_rerated", attrs)]
    return events + curtailment.curtail(view, ctx, params(view))


def _execute(view: Overlay, ctx: BlockContext, actions: tuple[Action, ...]) -> list[Event]:
    """Run every action on `view`; raises the first action's Rejection. Parameter changes
    are applied together, after the other actions, and validated once as a whole, so a
    proposal may move two fields that only make sense together (the price band's ends)."""
    events: list[Event] = []
    for action in actions:
        if isinstance(action, ValidatorChange):
            events += validator_set.change_validator(view, ctx, action.public_key, action.power)
        elif isinstance(action, ValidatorUnjail):
            events += validator_set.unjail(view, ctx, action.address)
        elif isinstance(action, WeightChange):
            events += _set_weight(view, action)
        elif isinstance(action, InterconnectorChange):
            events += _set_interconnector(view, ctx, action)
    changes = [a for a in actions if isinstance(a, ParamChange)]
    if changes:
        events += _set_params(view, changes)
    return events


# --- transaction handlers -------------------------------------------------------------------
def _require_authority(view: Overlay, sender: bytes) -> registry.Authority:
    authority = registry.authority_of(view, sender)
    if authority is None:
        raise errors.Unauthorised("only authorities take part in governance")
    return authority


def _require_governor(view: Overlay, sender: bytes) -> tuple[registry.Authority, int]:
    authority = _require_authority(view, sender)
    weight = weights(view).get(authority.code, 0)
    if weight == 0:
        raise errors.NoGovernanceWeight(f"{authority.code} has no governance weight")
    return authority, weight


def submit_proposal(
    view: Overlay, ctx: BlockContext, sender: bytes, body: SubmitProposal, p: Params
) -> list[Event]:
    authority, _ = _require_governor(view, sender)
    if body.kind is ProposalKind.EMERGENCY and not EMERGENCY_ROLES & set(authority.roles):
        raise errors.Unauthorised("only EGAT or the ERC may propose an emergency change")
    if body.kind is not ProposalKind.EMERGENCY:
        for action in body.actions:
            if _action_kind(action) is not body.kind:
                raise errors.InvalidProposal(
                    f"a {body.kind.name} proposal cannot carry {type(action).__name__} "
                    f"({_action_kind(action).name})"
                )
    active = active_ids(view)
    if len(active) >= p.governance.max_active_proposals:
        raise errors.TooManyProposals(f"{len(active)} proposals are already open")
    _execute(view.fork(), ctx, body.actions)  # dry run: refuse what could not execute now
    counter = view.get(COUNTER_KEY, ProposalCounter) or ProposalCounter(1)
    period, timelock = _periods(p, body.kind)
    proposal = Proposal(
        id=counter.next_id,
        kind=body.kind,
        proposer=sender,
        actions=body.actions,
        title=body.title,
        submitted_height=ctx.height,
        voting_end_height=ctx.height + period - 1,
        timelock_heights=timelock,
        total_weight=sum(weights(view).values()),
    )
    view.put(COUNTER_KEY, ProposalCounter(counter.next_id + 1))
    view.put(proposal_key(proposal.id), proposal)
    view.put(ACTIVE_KEY, ActiveProposals((*active, proposal.id)))
    attrs: dict[str, EventValue] = {
        "id": proposal.id,
        "kind": body.kind.name,
        "proposer": authority.code,
        "voting_ends": proposal.voting_end_height,
    }
    return [Event("proposal_submitted", attrs)]


def _open_proposal(view: Overlay, ctx: BlockContext, proposal_id: int) -> Proposal:
    proposal = get_proposal(view, proposal_id)
    if proposal is None:
        raise errors.UnknownProposal(f"no proposal {proposal_id}")
    if proposal.status is not ProposalStatus.VOTING or ctx.height > proposal.voting_end_height:
        raise errors.VotingClosed(
            f"voting on proposal {proposal_id} ended at height {proposal.voting_end_height}"
            if proposal.status is ProposalStatus.VOTING
            else f"proposal {proposal_id} is {proposal.status.name}, no longer voting"
        )
    return proposal


def _counted(proposal: Proposal, choice: VoteChoice, weight: int) -> Proposal:
    """`proposal` with `weight` added to (or, negative, taken from) the tally of `choice`."""
    slot = {VoteChoice.YES: "yes", VoteChoice.ABSTAIN: "abstain"}.get(choice, "no")
    return msgspec.structs.replace(proposal, **{slot: getattr(proposal, slot) + weight})


def _code(view: Overlay, address: bytes) -> str:
    authority = registry.authority_of(view, address)
    assert authority is not None, "delegation records name authorities only"
    return authority.code


def cast_vote(
    view: Overlay, ctx: BlockContext, sender: bytes, body: CastVote, p: Params
) -> list[Event]:
    """The sender's own ballot (replacing one its delegate cast for it), then a ballot with
    the same choice for each of its delegators that has none on this proposal yet."""
    authority, weight = _require_governor(view, sender)
    proposal = _open_proposal(view, ctx, body.proposal_id)
    earlier = view.get(ballot_key(proposal.id, sender), Ballot)
    if earlier is not None and not earlier.delegate:
        raise errors.AlreadyVoted(f"{authority.code} already voted on proposal {proposal.id}")
    choice = body.choice
    if choice is VoteChoice.VETO and not (
        registry.ROLE_REGULATOR in authority.roles and vetoable(proposal)
    ):
        raise errors.VetoNotAllowed(
            "only the regulator may veto, and only market-rule and licence changes"
        )
    attrs: dict[str, EventValue] = {
        "id": proposal.id,
        "voter": authority.code,
        "choice": choice.name,
        "weight": weight,
    }
    if earlier is not None:  # its own vote overrides the one its delegate cast for it
        proposal = _counted(proposal, earlier.choice, -earlier.weight)
        attrs["overrides"] = _code(view, earlier.delegate)
    view.put(ballot_key(proposal.id, sender), Ballot(choice, weight))
    proposal = _counted(proposal, choice, weight)
    carried = VoteChoice.NO if choice is VoteChoice.VETO else choice
    current, on_behalf, delegated = weights(view), [], 0
    for delegator in delegators_of(view, sender):
        if view.get(ballot_key(proposal.id, delegator), Ballot) is not None:
            continue  # it voted already: itself, or through the delegate it had then
        code = _code(view, delegator)
        share = current.get(code, 0)
        if share == 0:
            continue
        view.put(ballot_key(proposal.id, delegator), Ballot(carried, share, sender))
        proposal = _counted(proposal, carried, share)
        on_behalf.append(code)
        delegated += share
    if on_behalf:
        attrs["delegated"] = delegated
        attrs["on_behalf"] = ",".join(sorted(on_behalf))
    vetoed = proposal.vetoed or choice is VoteChoice.VETO
    view.put(proposal_key(proposal.id), msgspec.structs.replace(proposal, vetoed=vetoed))
    return [Event("vote_cast", attrs)]


def delegate_vote(
    view: Overlay, ctx: BlockContext, sender: bytes, body: DelegateVote, p: Params
) -> list[Event]:
    """Name a delegate (or, with an empty code, clear the delegation). Only the future is
    affected: ballots already cast stay as they are."""
    if not body.delegate:
        return _clear_delegation(view, _require_authority(view, sender), sender)
    authority, _ = _require_governor(view, sender)
    ref = view.get(registry.authority_code_key(body.delegate), registry.AuthorityRef)
    if ref is None:
        raise errors.InvalidDelegate(f"no authority has the code {body.delegate!r}")
    if ref.address == sender:
        raise errors.SelfDelegation(f"{authority.code} cannot delegate to itself")
    if weights(view).get(body.delegate, 0) == 0:
        raise errors.InvalidDelegate(f"{body.delegate} has no governance weight to vote with")
    current = delegate_of(view, sender)
    if current == ref.address:
        raise errors.DelegationUnchanged(f"{authority.code} already delegates to {body.delegate}")
    if delegate_of(view, ref.address) is not None:
        raise errors.DelegationChain(f"{body.delegate} delegates its own vote")
    if delegators_of(view, sender):
        raise errors.DelegationChain(f"others delegate to {authority.code}, so it cannot")
    attrs: dict[str, EventValue] = {"delegator": authority.code, "delegate": body.delegate}
    if current is not None:
        attrs["previous_delegate"] = _code(view, current)
        _unlink(view, sender, current)
    view.put(delegation_key(sender), Delegation(ref.address))
    delegators = tuple(sorted((*delegators_of(view, ref.address), sender)))
    view.put(delegators_key(ref.address), Delegators(delegators))
    return [Event("vote_delegated", attrs)]


def _clear_delegation(view: Overlay, authority: registry.Authority, sender: bytes) -> list[Event]:
    """Needs no weight: an authority whose weight was voted away can still undo a
    delegation that would otherwise keep its delegate from delegating."""
    current = delegate_of(view, sender)
    if current is None:
        raise errors.NotDelegating(f"{authority.code} does not delegate its vote")
    _unlink(view, sender, current)
    attrs: dict[str, EventValue] = {"delegator": authority.code, "delegate": _code(view, current)}
    return [Event("vote_delegation_cleared", attrs)]


def _unlink(view: Overlay, delegator: bytes, delegate: bytes) -> None:
    view.delete(delegation_key(delegator))
    rest = tuple(a for a in delegators_of(view, delegate) if a != delegator)
    if rest:
        view.put(delegators_key(delegate), Delegators(rest))
    else:
        view.delete(delegators_key(delegate))


def withdraw_proposal(
    view: Overlay, ctx: BlockContext, sender: bytes, body: WithdrawProposal, p: Params
) -> list[Event]:
    _require_governor(view, sender)
    proposal = _open_proposal(view, ctx, body.proposal_id)
    if proposal.proposer != sender:
        raise errors.Unauthorised("only the proposer may withdraw a proposal")
    _close(view, proposal, ProposalStatus.WITHDRAWN, "withdrawn by the proposer")
    return [Event("proposal_withdrawn", {"id": proposal.id})]


# --- end of block ---------------------------------------------------------------------------
def _close(view: Overlay, proposal: Proposal, status: ProposalStatus, outcome: str) -> None:
    view.put(
        proposal_key(proposal.id), msgspec.structs.replace(proposal, status=status, outcome=outcome)
    )
    view.put(ACTIVE_KEY, ActiveProposals(tuple(i for i in active_ids(view) if i != proposal.id)))


def tally(proposal: Proposal, p: Params) -> str:
    """Why the proposal fails its vote, or "" when it passes."""
    quorum, approval = thresholds(p, proposal.kind)
    yes, decided = proposal.yes, proposal.yes + proposal.no
    cast = decided + proposal.abstain
    if proposal.vetoed:
        return "vetoed by the regulator"
    if cast * 10_000 < quorum * proposal.total_weight:
        return f"quorum not reached: {cast} of {proposal.total_weight} voted; {quorum} bp needed"
    if yes == 0 or yes * 10_000 < approval * decided:
        return f"not approved: {yes} yes of {decided} yes + no; {approval} bp needed"
    return ""


def end_block(view: Overlay, ctx: BlockContext) -> list[Event]:
    """Tally proposals whose voting ends at this height and execute those whose timelock
    ends here, in id order (each sees the effects of the ones before it)."""
    events: list[Event] = []
    for proposal_id in active_ids(view):
        proposal = get_proposal(view, proposal_id)
        assert proposal is not None
        if proposal.status is ProposalStatus.VOTING and ctx.height >= proposal.voting_end_height:
            if reason := tally(proposal, params(view)):
                _close(view, proposal, ProposalStatus.REJECTED, reason)
                events.append(Event("proposal_rejected", {"id": proposal.id, "reason": reason}))
                continue
            at = proposal.voting_end_height + proposal.timelock_heights
            proposal = msgspec.structs.replace(
                proposal, status=ProposalStatus.PASSED, execute_height=at
            )
            view.put(proposal_key(proposal.id), proposal)
            events.append(Event("proposal_passed", {"id": proposal.id, "execute_height": at}))
        if proposal.status is ProposalStatus.PASSED and ctx.height >= proposal.execute_height:
            fork = view.fork()
            try:
                done = _execute(fork, ctx, proposal.actions)
            except errors.Rejection as exc:
                reason = f"{exc.code}: {exc}"
                _close(view, proposal, ProposalStatus.FAILED, reason)
                events.append(Event("proposal_failed", {"id": proposal.id, "reason": reason}))
                continue
            view.absorb(fork)
            _close(view, proposal, ProposalStatus.EXECUTED, "")
            events.append(Event("proposal_executed", {"id": proposal.id}))
            events += done
    return events


RECORDS: Final[tuple[type[msgspec.Struct], ...]] = (
    GovernanceWeights,
    ProposalCounter,
    ActiveProposals,
    Proposal,
    Ballot,
    Delegation,
    Delegators,
)
"""The record types this context stores (`transition.RECORD_TYPES` gathers every context's)."""
