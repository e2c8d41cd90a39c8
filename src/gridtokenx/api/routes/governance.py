"""Governance reads: the weights, delegations and voting rules in force, and proposals with
their ballots."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from gridtokenx import chain, crypto, governance, registry
from gridtokenx.api import views
from gridtokenx.api.errors import not_found
from gridtokenx.api.models import ERRORS
from gridtokenx.node import Node
from gridtokenx.state import State

ProposalId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the proposal's id")]


def _proposal(proposal: governance.Proposal) -> dict[str, Any]:
    """Actions carry their type name: the wire tag alone does not say what an action does."""
    body = views.record(proposal)
    body["actions"] = [{"type": type(a).__name__, **views.plain(a)} for a in proposal.actions]
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
            "rules": views.plain(chain.params(state).governance),
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
        return {**_proposal(found), "ballots": _ballots(state, proposal_id)}

    return api
