"""Governance reads: the weights, delegations and voting rules in force, and proposals with
their ballots.

Proposal ids count up from 1 and proposals are never deleted, so the newest-first listing
walks ids down from the counter; with a `status` filter it looks at most
`MAX_PROPOSAL_PROBES` ids per request and hands back a cursor to go on from. Open
proposals (`status=active`) come from the ledger's own list of them, with no walk."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Path, Query

from gridtokenx.api import models, views
from gridtokenx.api.deps import NodeDep
from gridtokenx.api.errors import not_found
from gridtokenx.api.models import ERRORS
from gridtokenx.api.routes.common import Limit
from gridtokenx.ledger import chain_info, governance, registry
from gridtokenx.ledger.state import State
from gridtokenx.wire import crypto

MAX_PROPOSAL_PROBES: Final = 1_000
ProposalId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the proposal's id")]
StatusFilter = Literal[
    "active", "closed", "VOTING", "PASSED", "REJECTED", "EXECUTED", "FAILED", "WITHDRAWN"
]
_OPEN: Final = (governance.ProposalStatus.VOTING, governance.ProposalStatus.PASSED)

router = APIRouter(tags=["governance"], responses=ERRORS)


def _proposal(state: State, proposal: governance.Proposal) -> dict[str, Any]:
    """Actions carry their type name: the wire tag alone does not say what an action does.
    The thresholds are those in force now, the ones its tally will apply."""
    body = views.record(proposal)
    body["actions"] = [{"type": type(a).__name__, **views.plain(a)} for a in proposal.actions]
    quorum, approval = governance.thresholds(chain_info.params(state), proposal.kind)
    body["quorum_bp"], body["approval_bp"] = quorum, approval
    return body


def _codes(state: State) -> dict[bytes, str]:
    """Authority address -> code (a handful of records)."""
    return {address: a.code for address, a in registry.authorities(state)}


def _ballots(state: State, proposal_id: int) -> list[dict[str, Any]]:
    """Each ballot with the weight its vote carries: a voter's own ballot carries its own
    weight plus the ballots it cast for its delegators (`on_behalf`); a ballot its delegate
    cast carries 0 there, so the carried weights add up to the tally."""
    found = dict(governance.ballots(state, proposal_id))
    cast_for: dict[bytes, list[bytes]] = {}
    for voter, ballot in found.items():
        if ballot.delegate:
            cast_for.setdefault(ballot.delegate, []).append(voter)
    return [
        {
            **views.record(ballot, voter=voter),
            "delegate": views.plain(ballot.delegate) if ballot.delegate else None,
            "carried_weight": 0
            if ballot.delegate
            else ballot.weight + sum(found[v].weight for v in cast_for.get(voter, [])),
            "on_behalf": views.plain(cast_for.get(voter, [])),
        }
        for voter, ballot in found.items()
    ]


def _matches(proposal: governance.Proposal, status: StatusFilter | None) -> bool:
    if status is None:
        return True
    if status in ("active", "closed"):
        return (proposal.status in _OPEN) == (status == "active")
    return proposal.status.name == status


@router.get("/governance", response_model=models.GovernanceOverview)
async def overview(node: NodeDep) -> dict[str, Any]:
    """Each authority's weight and address, who delegates its vote to whom (delegator
    code -> delegate code), the governed voting rules, and the open proposals' ids."""
    state = node.app.state
    codes = _codes(state)
    by_code = {code: address for address, code in codes.items()}
    delegations = {
        codes[delegator]: codes[delegate] for delegator, delegate in governance.delegations(state)
    }
    return {
        "weights": governance.weights(state),
        "authorities": {c: crypto.address_to_text(a) for c, a in sorted(by_code.items())},
        "delegations": dict(sorted(delegations.items())),
        "rules": views.plain(chain_info.params(state).governance),
        "active": list(governance.active_ids(state)),
    }


@router.get("/governance/proposals/{proposal_id}", response_model=models.ProposalWithBallots)
async def proposal(proposal_id: ProposalId, node: NodeDep) -> dict[str, Any]:
    """A proposal, its tally and status, and every ballot on it (voter address, the
    delegate that cast it if any, the weight each vote carries)."""
    state = node.app.state
    found = governance.get_proposal(state, proposal_id)
    if found is None:
        raise not_found(f"proposal {proposal_id}")
    return {**_proposal(state, found), "ballots": _ballots(state, proposal_id)}


@router.get("/governance/proposals", response_model=models.Page[models.Proposal])
async def proposals(
    node: NodeDep,
    status: Annotated[
        StatusFilter | None, Query(description="one status, active or closed")
    ] = None,
    limit: Limit = 50,
    after: Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")] = None,
) -> dict[str, Any]:
    """Proposals newest first (without ballots); `status` keeps one status, `active`
    (voting or waiting to execute) or `closed`. A filtered page looks at up to 1000
    ids: it may come back short with a `next` to continue from. `after` is an id."""
    state = node.app.state
    top = governance.last_proposal_id(state)
    if after is not None:
        top = min(top, int(after) - 1)
    if status == "active":
        ids = [i for i in reversed(governance.active_ids(state)) if i <= top]
    else:
        ids = list(range(top, max(top - MAX_PROPOSAL_PROBES, 0), -1))
    items: list[dict[str, Any]] = []
    for proposal_id in ids:
        found = governance.get_proposal(state, proposal_id)
        if found is None or not _matches(found, status):
            continue
        if len(items) == limit:
            return {"items": items, "next": str(items[-1]["id"])}
        items.append(_proposal(state, found))
    probed_all = status == "active" or not ids or ids[-1] == 1
    return {"items": items, "next": None if probed_all else str(ids[-1])}
