"""The day's storyline beyond trading: a fee vote and the certificate claims at the end.

Besides the grid operators' reports (operators.py), a storyline day (`DayConfig.storyline`)
exercises governance and renewable energy certificates with transactions the ledger
already knows:

- **A fee vote.** With the first traded interval's orders the ERC proposes a MARKET_RULE
  change halving the platform fee (`platform_fee_basis_points`, 10 -> 5 by default); once
  it is final EGAT, MEA, PEA and the ERC vote yes. Periods are heights, and the number of
  blocks per interval depends on the machine and the clock's speed, so when the periods
  are short (at most `MAX_WAIT_HEIGHTS`, as on the demo devnet) the day holds its next
  step until the vote has executed: the new fee then applies from the second traded
  interval at any speed. With longer periods the day does not wait and the summary reads
  the proposal's status from state.
- **Certificate claims.** Certificates are issued by the ledger to the owners of renewable
  meters (one per MWh exported), so their ids are only known from the chain. After the
  last readings are final, solar farms hand theirs to a corporate buyer (the office or
  factory importing the most energy over the day), which retires them in its own name;
  other holders (factories or offices with rooftop PV) retire their own.

Nothing here reads the ledger: the functions build bodies from the population and the
plans, and the day (day.py) asks its sink for what only the chain knows (the proposal's
id, the certificates a member holds).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Final

from gridtokenx.ledger.params import Params
from gridtokenx.simulator.agents import Plan
from gridtokenx.simulator.population import Archetype, Member
from gridtokenx.wire import tx

PROPOSER: Final = "ERC"
VOTERS: Final = ("EGAT", "MEA", "PEA", "ERC")
"""The validating authorities of the demo devnet; NEPO keeps its weight and abstains."""
CORPORATE: Final = (Archetype.OFFICE, Archetype.FACTORY)
MAX_WAIT_HEIGHTS: Final = 20
"""Voting period plus timelock up to which the day waits for the fee vote to execute."""


def fee_title(params: Params) -> str:
    """The proposal's title; the day finds its proposal on chain by proposer and title."""
    now = params.platform_fee_basis_points
    return f"Halve the P2P platform fee to {now // 2 / 100:.2f} %"


def fee_proposal(params: Params) -> tx.SubmitProposal:
    """Halving the platform fee is a market rule (the ERC could veto it)."""
    change = tx.ParamChange("platform_fee_basis_points", params.platform_fee_basis_points // 2)
    return tx.SubmitProposal(tx.ProposalKind.MARKET_RULE, (change,), fee_title(params))


def votes(proposal_id: int) -> list[tuple[str, tx.CastVote]]:
    return [(code, tx.CastVote(proposal_id, tx.VoteChoice.YES)) for code in VOTERS]


def may_hold_certificates(member: Member, plan: Plan, rec_size_wh: int) -> bool:
    """Whether the member's meter exports a whole certificate over the window: the members
    are registered by the day itself, so their meters accrue from zero and nobody else can
    hold a certificate of theirs. This only spares the sink a read per member."""
    return member.meter_kind.renewable and sum(plan.exports) >= rec_size_wh


def corporate_buyer(members: Sequence[Member], plans: dict[str, Plan]) -> Member | None:
    """The office or factory with the largest metered import over the window (the first
    in population order on a tie), or None if the population has none."""
    corporate = [m for m in members if m.archetype in CORPORATE]
    if not corporate:
        return None
    return max(corporate, key=lambda m: sum(plans[m.name].imports))


def beneficiary(member: Member, date: datetime.date) -> str:
    """Whom a retirement claims the energy for: the retiring member itself."""
    return f"{member.name} ({member.zone}), renewable electricity claimed for {date.isoformat()}"
