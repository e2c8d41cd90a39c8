"""Governance reads: the weights, delegations and voting rules in force, and proposals with
their ballots.

Proposal ids count up from 1 and proposals are never deleted, so the newest-first listing
walks ids down from the counter; with a `status` filter it looks at most
`MAX_PROPOSAL_PROBES` ids per request and hands back a cursor to go on from. Open
proposals (`status=active`) come from the ledger's own list of them, with no walk."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Path, Query

from gridtokenx.api import views
from gridtokenx.api.errors import not_found
from gridtokenx.api.models import ERRORS, Page
from gridtokenx.api.routes.common import Limit
from gridtokenx.ledger import chain_info, governance, registry
from gridtokenx.ledger.state import State
from gridtokenx.node.runtime import Node
from gridtokenx.wire import crypto

MAX_PROPOSAL_PROBES: Final = 1_000
ProposalId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the proposal's id")]
StatusFilter = Literal[
    "active", "closed", "VOTING", "PASSED", "REJECTED", "EXECUTED", "FAILED", "WITHDRAWN"
]
_OPEN: Final = (governance.ProposalStatus.VOTING, governance.ProposalStatus.PASSED)


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
    prefix = b"auth/"
    return {
        key[len(prefix) :]: a.code
        for key, a in state.scan(prefix)
        if isinstance(a, registry.Authority)
    }


def _ballots(state: State, proposal_id: int) -> list[dict[str, Any]]:
    """Each ballot with the weight its vote carries: a voter's own ballot carries its own
    weight plus the ballots it cast for its delegators (`on_behalf`); a ballot its delegate
    cast carries 0 there, so the carried weights add up to the tally."""
    prefix = governance.ballot_key(proposal_id, b"")
    found: dict[bytes, governance.Ballot] = {}
    for key, ballot in state.scan(prefix):
        assert isinstance(ballot, governance.Ballot)
        found[key[len(prefix) :]] = ballot
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


def router(node: Node) -> APIRouter:
    api = APIRouter(tags=["governance"], responses=ERRORS)

    @api.get("/governance")
    async def overview() -> dict[str, Any]:
        """Each authority's weight and address, who delegates its vote to whom (delegator
        code -> delegate code), the governed voting rules, and the open proposals' ids."""
        state = node.app.state
        codes = _codes(state)
        by_code = {code: address for address, code in codes.items()}
        delegations = {
            codes[key[len(b"gov/d/") :]]: codes[d.delegate]
            for key, d in state.scan(b"gov/d/")
            if isinstance(d, governance.Delegation)
        }
        return {
            "weights": governance.weights(state),
            "authorities": {c: crypto.address_to_text(a) for c, a in sorted(by_code.items())},
            "delegations": dict(sorted(delegations.items())),
            "rules": views.plain(chain_info.params(state).governance),
            "active": list(governance.active_ids(state)),
        }

    @api.get("/governance/proposals/{proposal_id}")
    async def proposal(proposal_id: ProposalId) -> dict[str, Any]:
        """A proposal, its tally and status, and every ballot on it (voter address, the
        delegate that cast it if any, the weight each vote carries)."""
        state = node.app.state
        found = governance.get_proposal(state, proposal_id)
        if found is None:
            raise not_found(f"proposal {proposal_id}")
        return {**_proposal(state, found), "ballots": _ballots(state, proposal_id)}

    @api.get("/governance/proposals", response_model=Page)
    async def proposals(
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
        counter = state.get(governance.COUNTER_KEY, governance.ProposalCounter)
        top = (counter.next_id if counter is not None else 1) - 1
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

    return api
