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
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

import msgspec

from gridtokenx import errors, registry, validator_set
from gridtokenx.chain import PARAMS_KEY, params
from gridtokenx.context import BlockContext, Event, EventValue
from gridtokenx.params import Params
from gridtokenx.state import Overlay, State
from gridtokenx.tx import (
    Action,
    CastVote,
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
    }
)
LICENCE_FIELDS: Final = frozenset({"small_prosumer_threshold_w"})
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


class Counter(msgspec.Struct, frozen=True, array_like=True):
    next_id: int


class Active(msgspec.Struct, frozen=True, array_like=True):
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
    choice: VoteChoice
    weight: int


def proposal_key(proposal_id: int) -> bytes:
    return b"gov/p/" + proposal_id.to_bytes(8)


def ballot_key(proposal_id: int, voter: bytes) -> bytes:
    return b"gov/v/" + proposal_id.to_bytes(8) + voter


def install(view: Overlay, weights: list[tuple[str, int]]) -> None:
    """Genesis weights, from each authority's `governance_weight`."""
    view.put(WEIGHTS_KEY, GovernanceWeights(tuple(sorted(weights))))


def weights(view: State | Overlay) -> dict[str, int]:
    record = view.get(WEIGHTS_KEY, GovernanceWeights)
    return {} if record is None else dict(record.weights)


def get_proposal(view: State | Overlay, proposal_id: int) -> Proposal | None:
    return view.get(proposal_key(proposal_id), Proposal)


def active_ids(view: State | Overlay) -> tuple[int, ...]:
    record = view.get(ACTIVE_KEY, Active)
    return () if record is None else record.ids


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
    if isinstance(action, WeightChange):
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


def _set_params(view: Overlay, changes: list[ParamChange]) -> list[Event]:
    p = params(view)
    for change in changes:
        p = _changed(p, change)
    if problems := p.validate():
        raise errors.InvalidParams("new parameters are invalid: " + "; ".join(problems))
    view.put(PARAMS_KEY, p)
    return [Event("params_changed", {"name": c.name}) for c in changes]


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
    changes = [a for a in actions if isinstance(a, ParamChange)]
    if changes:
        events += _set_params(view, changes)
    return events


# --- transaction handlers -------------------------------------------------------------------
def _require_governor(view: Overlay, sender: bytes) -> tuple[registry.Authority, int]:
    authority = registry.authority_of(view, sender)
    if authority is None:
        raise errors.Unauthorised("only authorities take part in governance")
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
    counter = view.get(COUNTER_KEY, Counter) or Counter(1)
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
    view.put(COUNTER_KEY, Counter(counter.next_id + 1))
    view.put(proposal_key(proposal.id), proposal)
    view.put(ACTIVE_KEY, Active((*active, proposal.id)))
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


def cast_vote(
    view: Overlay, ctx: BlockContext, sender: bytes, body: CastVote, p: Params
) -> list[Event]:
    authority, weight = _require_governor(view, sender)
    proposal = _open_proposal(view, ctx, body.proposal_id)
    if view.get(ballot_key(proposal.id, sender), Ballot) is not None:
        raise errors.AlreadyVoted(f"{authority.code} already voted on proposal {proposal.id}")
    if body.choice is VoteChoice.VETO and not (
        registry.ROLE_REGULATOR in authority.roles and vetoable(proposal)
    ):
        raise errors.VetoNotAllowed(
            "only the regulator may veto, and only market-rule and licence changes"
        )
    view.put(ballot_key(proposal.id, sender), Ballot(body.choice, weight))
    choice = body.choice
    view.put(
        proposal_key(proposal.id),
        msgspec.structs.replace(
            proposal,
            yes=proposal.yes + weight * (choice is VoteChoice.YES),
            no=proposal.no + weight * (choice in (VoteChoice.NO, VoteChoice.VETO)),
            abstain=proposal.abstain + weight * (choice is VoteChoice.ABSTAIN),
            vetoed=proposal.vetoed or choice is VoteChoice.VETO,
        ),
    )
    attrs: dict[str, EventValue] = {
        "id": proposal.id,
        "voter": authority.code,
        "choice": choice.name,
        "weight": weight,
    }
    return [Event("vote_cast", attrs)]


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
    view.put(ACTIVE_KEY, Active(tuple(i for i in active_ids(view) if i != proposal.id)))


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
