"""The Tendermint consensus algorithm for one validator, as a sans-I/O state machine.

This follows Algorithm 1 of "The latest gossip on BFT consensus" (Buchman, Kwon and
Milosevic, 2018) rule by rule; the comments name the rule's line in the paper. Events go in
(`start`, `on_proposal`, `on_vote`, `on_timeout`, `on_value`), actions come out
(`Broadcast`, `ScheduleTimeout`, `RequestValue`, `Decide`, `ReportEvidence`). There is no
socket, clock, thread or randomness here: the node, or the simulator, delivers messages and
fires timeouts, which is what lets a seeded simulator replay any run exactly.

Validity of a proposed block is the application's question; the driver answers it when it
delivers the proposal (`on_proposal(p, valid=...)`). Signatures of incoming messages are
checked here, with the verifier the driver passes in.

Everything a restarted validator must not forget (its round, step, lock, and the votes it
has already signed at this height) is in `Persistent`: the driver writes it to its
write-ahead log before it sends anything the core asked it to broadcast. A crash can still
lose those sends (a killed process's socket buffers go with it), so on restart the core
counts its logged votes again and broadcasts them once more: when the others need exactly
that vote for a quorum (two of four down, one back), nothing else would ever deliver it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

import msgspec

from gridtokenx.wire import crypto
from gridtokenx.wire.validators import ValidatorSet
from gridtokenx.wire.votes import (
    NIL,
    Evidence,
    Proposal,
    Vote,
    VoteType,
    block_id,
    sign_proposal,
    sign_vote,
)

Verifier = Callable[[bytes, bytes, bytes], bool]  # (public key, message, signature)


class Step(IntEnum):
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3


# --- actions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Broadcast:
    message: Proposal | Vote


@dataclass(frozen=True)
class ScheduleTimeout:
    height: int
    round: int
    step: Step
    delay_ms: int


@dataclass(frozen=True)
class RequestValue:
    """This validator proposes: the driver builds a block and calls `on_value`."""

    height: int
    round: int


@dataclass(frozen=True)
class Decide:
    height: int
    round: int
    block: bytes
    commit: tuple[Vote, ...]  # precommits for the block by more than 2/3 of the power


@dataclass(frozen=True)
class ReportEvidence:
    evidence: Evidence


Action = Broadcast | ScheduleTimeout | RequestValue | Decide | ReportEvidence


@dataclass(frozen=True)
class Timeouts:
    """Round r waits base + r x increment, so rounds lengthen until the network keeps up."""

    propose_ms: int = 1000
    prevote_ms: int = 500
    precommit_ms: int = 500
    increment_ms: int = 250

    def of(self, step: Step, round: int) -> int:
        base = {
            Step.PROPOSE: self.propose_ms,
            Step.PREVOTE: self.prevote_ms,
            Step.PRECOMMIT: self.precommit_ms,
        }
        return base[step] + round * self.increment_ms


class Persistent(msgspec.Struct, array_like=True):
    """The validator's state that must survive a crash (written ahead of every send).

    `signed` holds every vote this validator signed at this height, in signing order: after
    a restart it re-sends them (the crash may have lost them on the way) and never signs a
    second, different vote for a round and type it already voted in. It is a tuple, replaced
    rather than appended to, so a copy of the state (what the driver last logged) never
    changes with it. A WAL written before the field existed decodes with it empty."""

    height: int
    round: int = 0
    step: Step = Step.PROPOSE
    locked_block: bytes | None = None
    locked_round: int = -1
    valid_block: bytes | None = None
    valid_round: int = -1
    signed: tuple[Vote, ...] = ()


@dataclass
class _RoundVotes:
    votes: dict[bytes, Vote] = field(default_factory=dict)  # validator -> its first vote
    counted: dict[tuple[bytes, bytes], Vote] = field(default_factory=dict)  # (validator, block)
    power_for: dict[bytes, int] = field(default_factory=dict)  # block id -> power
    total: int = 0


class Core:
    """One validator's view of consensus at one height at a time."""

    def __init__(
        self,
        chain_id: str,
        validators: ValidatorSet,
        key: crypto.PrivateKey | None,
        verify: Verifier,
        height: int,
        timeouts: Timeouts | None = None,
        persistent: Persistent | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.validators = validators
        self.key = key  # None for a full node that follows without voting
        self.address = key.address if key is not None else b""
        self.verify = verify
        self.timeouts = timeouts or Timeouts()
        self.state = persistent or Persistent(height)
        self._reset_height()

    # --- bookkeeping -----------------------------------------------------------------------
    def _reset_height(self) -> None:
        self.proposals: dict[int, Proposal] = {}
        self.valid: dict[bytes, bool] = {}  # block id -> the application's verdict
        self.votes: dict[tuple[int, VoteType], _RoundVotes] = {}
        self.round_senders: dict[int, dict[bytes, int]] = {}  # round -> validator -> power
        self.decided = False
        self._fired: set[tuple[str, int]] = set()  # "for the first time" rules already run

    def _tally(self, round: int, vtype: VoteType) -> _RoundVotes:
        return self.votes.setdefault((round, vtype), _RoundVotes())

    def _first(self, rule: str, round: int) -> bool:
        if (rule, round) in self._fired:
            return False
        self._fired.add((rule, round))
        return True

    @property
    def height(self) -> int:
        return self.state.height

    def is_validator(self) -> bool:
        return self.key is not None and self.validators.power(self.address) > 0

    # --- events ----------------------------------------------------------------------------
    def start(self) -> list[Action]:
        """Begin (or, after a restart, resume) the current height and round.

        On resume the votes from the WAL are broadcast again and counted in this core's own
        tallies first: peers may never have received them, and without its own vote this
        validator could not see a quorum it belongs to."""
        actions: list[Action] = []
        for vote in self.state.signed:
            if vote.height == self.state.height:
                actions.append(Broadcast(vote))
                actions += self.on_vote(vote)
        return actions + self._start_round(self.state.round, resume=True)

    def on_value(self, height: int, round: int, block: bytes) -> list[Action]:
        """The block this validator proposes, built by the driver after a RequestValue."""
        s = self.state
        if (height, round) != (s.height, s.round) or s.step is not Step.PROPOSE:
            return []
        if self.validators.proposer(height, round) != self.address or self.key is None:
            return []
        proposal = sign_proposal(
            self.key, self.chain_id, Proposal(height, round, block, -1, self.address)
        )
        self.valid[proposal.block_id] = True
        return [Broadcast(proposal), *self._take_proposal(proposal, valid=True)]

    def on_proposal(self, proposal: Proposal, *, valid: bool) -> list[Action]:
        s = self.state
        if proposal.height != s.height or proposal.round < 0:
            return []
        if proposal.proposer != self.validators.proposer(proposal.height, proposal.round):
            return []
        member = self.validators.get(proposal.proposer)
        if member is None or not self.verify(
            member.public_key, proposal.signing_bytes(self.chain_id), proposal.signature
        ):
            return []
        return self._take_proposal(proposal, valid)

    def _take_proposal(self, proposal: Proposal, valid: bool) -> list[Action]:
        """A proposal of this height whose proposer and signature are right (checked, or
        signed here: this validator's own is not verified again, an Ed25519 verify a
        height saved)."""
        if proposal.round in self.proposals:
            return []  # a second proposal for the round from its proposer is ignored
        self.proposals[proposal.round] = proposal
        # A block once valid at this height stays valid: the application's verdict is a
        # function of the block and the height's state, except the proposal's time, which
        # the driver judges at a fresh proposal only. Letting a later "invalid" overwrite
        # it would turn a locked block into one nobody may prevote again.
        self.valid[proposal.block_id] = valid or self.valid.get(proposal.block_id, False)
        self._seen(proposal.round, proposal.proposer)
        return self._react(proposal.round)

    def on_vote(self, vote: Vote) -> list[Action]:
        if vote.height != self.state.height or vote.round < 0:
            return []
        member = self.validators.get(vote.validator)
        if member is None or not self.verify(
            member.public_key, vote.signing_bytes(self.chain_id), vote.signature
        ):
            return []
        return self._take_vote(vote, member.power)

    def _own_vote(self, vote: Vote) -> list[Action]:
        """Count a vote this validator has just signed: its signature is not verified again
        (two Ed25519 verifies a height saved). Its address is in the set (it votes), and an
        address is the hash of its key, so the set holds this very key for it."""
        return self._take_vote(vote, self.validators.power(self.address))

    def _take_vote(self, vote: Vote, power: int) -> list[Action]:
        """A vote of this height whose signer and signature are right."""
        tally = self._tally(vote.round, vote.type)
        earlier = tally.votes.get(vote.validator)
        if earlier is None:
            tally.votes[vote.validator] = vote
            tally.total += power  # the "any 2f + 1" rules count each validator once
            self._seen(vote.round, vote.validator)
            return self._count(tally, vote, power)
        key = (vote.validator, vote.block_id)
        if earlier.block_id == vote.block_id or key in tally.counted:
            return []  # a duplicate
        evidence: list[Action] = [ReportEvidence(Evidence(earlier, vote))]
        # An equivocator's other vote still counts for a block someone proposed (or nil):
        # a correct validator may have locked on a polka that included it, and everyone must
        # be able to see that polka, or the lock would never be released. Votes for block
        # ids nobody proposed are not counted, so an equivocator cannot make us track many.
        if vote.block_id != NIL and vote.block_id not in self.valid:
            return evidence
        return evidence + self._count(tally, vote, power)

    def _count(self, tally: _RoundVotes, vote: Vote, power: int) -> list[Action]:
        tally.counted[(vote.validator, vote.block_id)] = vote
        tally.power_for[vote.block_id] = tally.power_for.get(vote.block_id, 0) + power
        return self._react(vote.round)

    def on_timeout(self, height: int, round: int, step: Step) -> list[Action]:
        s = self.state
        if height != s.height or round != s.round:
            return []
        if step is Step.PROPOSE and s.step is Step.PROPOSE:  # OnTimeoutPropose, line 57
            return self._vote(VoteType.PREVOTE, NIL)
        if step is Step.PREVOTE and s.step is Step.PREVOTE:  # OnTimeoutPrevote, line 61
            return self._vote(VoteType.PRECOMMIT, NIL)
        if step is Step.PRECOMMIT:  # OnTimeoutPrecommit, line 65
            return self._start_round(round + 1)
        return []

    # --- the rules -------------------------------------------------------------------------
    def _seen(self, round: int, sender: bytes) -> None:
        self.round_senders.setdefault(round, {})[sender] = self.validators.power(sender)

    def _start_round(self, round: int, *, resume: bool = False) -> list[Action]:
        """StartRound, line 11. On resume after a restart (`start` has re-sent and counted
        the logged votes already) a validator past PROPOSE signs nothing new here."""
        s = self.state
        actions: list[Action] = []
        if not resume or round != s.round:
            s.round, s.step = round, Step.PROPOSE
        elif s.step is not Step.PROPOSE:
            # The validator already voted in this round before it crashed: its WAL state says
            # so. Ask for the timeouts again and let the votes of others move it on.
            actions.append(self._timeout(s.step))
            return actions + self._react(round)
        if self.is_validator() and self.validators.proposer(s.height, round) == self.address:
            if s.valid_block is not None:
                proposal = Proposal(s.height, round, s.valid_block, s.valid_round, self.address)
                assert self.key is not None
                proposal = sign_proposal(self.key, self.chain_id, proposal)
                self.valid[proposal.block_id] = True
                actions.append(Broadcast(proposal))
                actions += self._take_proposal(proposal, valid=True)
            else:
                actions.append(RequestValue(s.height, round))
        actions.append(self._timeout(Step.PROPOSE))
        return actions + self._react(round)

    def _timeout(self, step: Step) -> ScheduleTimeout:
        s = self.state
        return ScheduleTimeout(s.height, s.round, step, self.timeouts.of(step, s.round))

    def _vote(self, vtype: VoteType, bid: bytes) -> list[Action]:
        s = self.state
        s.step = Step.PREVOTE if vtype is VoteType.PREVOTE else Step.PRECOMMIT
        if not self.is_validator():
            return self._react(s.round)
        assert self.key is not None
        for earlier in s.signed:
            if (earlier.height, earlier.round, earlier.type) == (s.height, s.round, vtype):
                # Already signed before a restart (the step rules should not get here): send
                # that vote again rather than equivocate with a second one.
                return [Broadcast(earlier), *self._own_vote(earlier)]
        vote = sign_vote(self.key, self.chain_id, Vote(s.height, s.round, vtype, bid, self.address))
        s.signed = (*s.signed, vote)  # logged by the driver before the broadcast goes out
        return [Broadcast(vote), *self._own_vote(vote)]

    def _polka(self, round: int, bid: bytes) -> bool:
        tally = self.votes.get((round, VoteType.PREVOTE))
        return tally is not None and self.validators.is_quorum(tally.power_for.get(bid, 0))

    def _react(self, round: int) -> list[Action]:
        """Run every rule whose condition may have become true; repeat until none fires."""
        actions: list[Action] = []
        while (fired := self._react_once()) is not None:
            actions += fired
        return actions

    def _react_once(self) -> list[Action] | None:
        """The first rule that fires, with its actions; None when no rule applies."""
        s = self.state
        if self.decided:
            return None
        # Decision, line 49: a proposal of any round with a quorum of precommits for it.
        for r, candidate in sorted(self.proposals.items()):
            tally = self.votes.get((r, VoteType.PRECOMMIT))
            bid = candidate.block_id
            if (
                tally is not None
                and self.validators.is_quorum(tally.power_for.get(bid, 0))
                and self.valid.get(bid)
            ):
                return self._decide(r, candidate, tally)
        # Skip ahead, line 55: more than 1/3 of the power is in a later round.
        for r, senders in sorted(self.round_senders.items()):
            if r > s.round and self.validators.is_one_honest(sum(senders.values())):
                return self._start_round(r)
        r = s.round
        proposal = self.proposals.get(r)
        prevotes = self.votes.get((r, VoteType.PREVOTE))
        precommits = self.votes.get((r, VoteType.PRECOMMIT))
        if proposal is not None and s.step is Step.PROPOSE:
            bid, valid = proposal.block_id, self.valid.get(proposal.block_id, False)
            if proposal.valid_round == -1:  # line 22
                good = valid and (s.locked_round == -1 or s.locked_block == proposal.block)
                return self._vote(VoteType.PREVOTE, bid if good else NIL)
            vr = proposal.valid_round
            if 0 <= vr < r and self._polka(vr, bid):  # line 28
                good = valid and (s.locked_round <= vr or s.locked_block == proposal.block)
                return self._vote(VoteType.PREVOTE, bid if good else NIL)
        quorum = self.validators.is_quorum
        if (
            s.step is Step.PREVOTE
            and prevotes is not None
            and quorum(prevotes.total)
            and self._first("prevote-any", r)
        ):  # line 34
            return [self._timeout(Step.PREVOTE)]
        if (
            proposal is not None
            and self.valid.get(proposal.block_id)
            and s.step is not Step.PROPOSE
            and self._polka(r, proposal.block_id)
            and self._first("polka", r)
        ):  # line 36
            s.valid_block, s.valid_round = proposal.block, r
            if s.step is Step.PREVOTE:
                s.locked_block, s.locked_round = proposal.block, r
                return self._vote(VoteType.PRECOMMIT, proposal.block_id)
            return []
        if s.step is Step.PREVOTE and self._polka(r, NIL):  # line 44
            return self._vote(VoteType.PRECOMMIT, NIL)
        if precommits is not None and quorum(precommits.power_for.get(NIL, 0)):
            # Not in the paper: more than 2/3 of the power precommitted nil, so no block can
            # gather a quorum of precommits in this round. Waiting out the precommit
            # timeout (line 47) then only delays the next proposer, by 0.5 s for each
            # proposer that is down or late. Moving rounds is a liveness choice; safety
            # rests on the locks and the quorums, which this does not touch.
            return self._start_round(r + 1)
        if (
            precommits is not None and quorum(precommits.total) and self._first("precommit-any", r)
        ):  # line 47
            return [self._timeout(Step.PRECOMMIT)]
        return None

    def _decide(self, round: int, proposal: Proposal, tally: _RoundVotes) -> list[Action]:
        """Line 49: decide, then move to the next height at round 0."""
        bid = proposal.block_id
        commit = tuple(
            sorted(
                (v for v in tally.counted.values() if v.block_id == bid), key=lambda v: v.validator
            )
        )
        decision = Decide(self.state.height, round, proposal.block, commit)
        self.decided = True
        return [decision]

    def on_commit(self, height: int, block: bytes, commit: tuple[Vote, ...]) -> list[Action]:
        """A certified block for this height from a peer (catch-up and block sync): decide
        it if the certificate holds, whatever round this validator is in."""
        if height != self.state.height or self.decided:
            return []
        if not check_commit(self.chain_id, self.validators, height, block, commit, self.verify):
            return []
        self.decided = True
        return [Decide(height, commit[0].round, block, commit)]

    def advance(self, validators: ValidatorSet | None = None) -> list[Action]:
        """After the driver has executed and stored the decided block: start the next height,
        signed by `validators` when the ledger changed the set (jailing, governance)."""
        assert self.decided, "advance() only after a decision"
        if validators is not None:
            self.validators = validators
        self.state = Persistent(self.state.height + 1)
        self._reset_height()
        return self.start()


def check_commit(
    chain_id: str,
    validators: ValidatorSet,
    height: int,
    block: bytes,
    commit: tuple[Vote, ...],
    verify: Verifier,
) -> bool:
    """A commit certificate is valid when distinct validators with more than 2/3 of the
    power signed precommits for this block at this height (any one round)."""
    if len({v.round for v in commit}) != 1:
        return False
    power = signed_power(chain_id, validators, height, block, commit, verify, strict=True)
    return power is not None and validators.is_quorum(power)


def signed_power(
    chain_id: str,
    validators: ValidatorSet,
    height: int,
    block: bytes,
    commit: tuple[Vote, ...],
    verify: Verifier,
    *,
    strict: bool,
) -> int | None:
    """The power of `validators` whose valid precommits for `block` at `height` are in
    `commit`, each counted once. `strict`: None when any vote is not one of those (a
    certificate must hold nothing else); otherwise such votes are skipped (a light client
    counts how much of a set it trusts signed a certificate of another set)."""
    bid = block_id(block)
    seen: set[bytes] = set()
    power = 0
    for vote in commit:
        member = validators.get(vote.validator)
        if (
            member is None
            or vote.validator in seen
            or vote.height != height
            or vote.type is not VoteType.PRECOMMIT
            or vote.block_id != bid
            or not verify(member.public_key, vote.signing_bytes(chain_id), vote.signature)
        ):
            if strict:
                return None
            continue
        seen.add(vote.validator)
        power += member.power
    return power
