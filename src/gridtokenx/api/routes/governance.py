"""Governance reads: the weights and voting rules in force, and proposals with their ballots."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from gridtokenx import chain, governance
from gridtokenx.api import views
from gridtokenx.api.errors import not_found
from gridtokenx.api.models import ERRORS
from gridtokenx.node import Node

ProposalId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the proposal's id")]


def _proposal(proposal: governance.Proposal) -> dict[str, Any]:
    """Actions carry their type name: the wire tag alone does not say what an action does."""
    body = views.record(proposal)
    body["actions"] = [{"type": type(a).__name__, **views.plain(a)} for a in proposal.actions]
    return body


def router(node: Node) -> APIRouter:
    api = APIRouter(tags=["governance"], responses=ERRORS)

    @api.get("/governance")
    async def overview() -> dict[str, Any]:
        """Each authority's weight, the governed voting rules, and the open proposals' ids."""
        state = node.app.state
        return {
            "weights": governance.weights(state),
            "rules": views.plain(chain.params(state).governance),
            "active": list(governance.active_ids(state)),
        }

    @api.get("/governance/proposals/{proposal_id}")
    async def proposal(proposal_id: ProposalId) -> dict[str, Any]:
        """A proposal, its tally and status, and every ballot cast on it (voter address)."""
        state = node.app.state
        found = governance.get_proposal(state, proposal_id)
        if found is None:
            raise not_found(f"proposal {proposal_id}")
        prefix = governance.ballot_key(proposal_id, b"")
        ballots = [
            views.record(ballot, voter=key[len(prefix) :]) for key, ballot in state.scan(prefix)
        ]
        return {**_proposal(found), "ballots": ballots}

    return api
