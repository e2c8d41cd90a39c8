"""Property test of the whole core at once: trading, grid operation, governance and
certificates interleaved at random on one ledger.

Each of the other property tests drives one area; this one lets them collide, which is where
bookkeeping goes wrong: a vote raises the fee while bids rest, a capacity cut curtails trades
of a party who then trades again, a frequency excursion halts the zones between an order and
its settlement, a vote shrinks the certificate size between two readings of the same meter.
`MixedMachine` keeps a plain model of what the rules say must follow:

- which zones are halted (declarations, excursions outside the band in force, clears);
- the certificates: ids issued per reading from the meter's carried remainder and the
  certificate size and per-reading cap in force, owners, retirements and beneficiaries;
- the governed values the mix votes on, changed exactly when a proposal's execution event
  says so;
- GRID minted: exactly the metered export.

Every transaction is either accepted or refused for a reason the model predicts (a set, so
the order of the ledger's checks does not matter) or, where the model does not follow a
rule, for one of a short list of reasons; a refusal must leave the state root alone. After
every step every ledger invariant holds (`invariants.check_all`: no double certification,
supply, escrow, energy conservation, flows, tallies). At the end the recorded signed
transactions and block boundaries are replayed on a fresh copy of the set-up state: same
outcomes, same events, same state bytes.

MIX_EXAMPLES (default 50) sets the number of runs.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gridtokenx.ledger import certificates, governance, registry, transition
from gridtokenx.ledger.context import BlockContext, Event
from gridtokenx.ledger.invariants import check_all
from gridtokenx.ledger.market import bookkeeping, records
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.ledger.state import State
from gridtokenx.wire import codec, errors, tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import (
    Body,
    CancelOrder,
    CastVote,
    ClearEmergency,
    DeclareEmergency,
    DelegateVote,
    DistributionStatus,
    IssueThb,
    LicenceKind,
    LinkStatus,
    MeterKind,
    MeterReading,
    ParamChange,
    ParticipantKind,
    PlaceOrder,
    ProposalKind,
    RetireCertificate,
    Side,
    SignedTransaction,
    SubmitProposal,
    TimeInForce,
    TransferCertificate,
    TransmissionStatus,
    VoteChoice,
)
from tests.conftest import INTERVAL
from tests.ledger.market.test_market import Market
from tests.ledger.test_governance import governed_sandbox

MIX_EXAMPLES = int(os.environ.get("MIX_EXAMPLES", "50"))
BUY, SELL = Side.BUY, Side.SELL
K = ProposalKind
REC_SIZE = 5_000  # small certificates, so a short run issues (and caps) plenty of them
AUTHORITY_CODES = ("EGAT", "MEA", "PEA", "ERC", "NEPO")

# The governed values the mix votes on, each with the kind of proposal that may carry it.
GOVERNED: dict[str, tuple[ProposalKind, tuple[int, ...]]] = {
    "platform_fee_basis_points": (K.MARKET_RULE, (10, 200, 5_000)),
    "wheeling_satang_per_kwh": (K.MARKET_RULE, (0, 30, 600)),
    "emission_factor_g_per_kwh": (K.PARAMETER, (400, 475, 520)),
    "rec_size_wh": (K.PARAMETER, (2_000, 5_000, 20_000)),
    "rec_max_per_reading": (K.PARAMETER, (1, 2, 100)),
    "frequency_min_mhz": (K.PARAMETER, (49_000, 49_500, 49_900)),
    "frequency_max_mhz": (K.PARAMETER, (50_100, 50_500, 51_000)),
}
CHOICES = st.sampled_from(
    [VoteChoice.YES] * 4 + [VoteChoice.NO, VoteChoice.ABSTAIN, VoteChoice.VETO]
)
FREQUENCIES = (50_000,) * 10 + (49_950, 50_040, 49_400, 50_700)
# (trader, side, zone if not the trader's own, interval index, Wh, satang/kWh, time in force)
ORDERS = st.tuples(
    st.integers(0, 6),
    st.sampled_from([BUY, SELL]),
    st.sampled_from([None, None, None, "BKK", "CEN"]),
    st.integers(0, 2),
    st.integers(1, 30).map(lambda n: n * 100),
    st.one_of(st.integers(285, 315), st.integers(285, 315), st.integers(0, 1_000)),
    st.sampled_from([TimeInForce.GOOD_TILL_GATE] * 3 + [TimeInForce.IMMEDIATE_OR_CANCEL]),
)
BENEFICIARIES = ("Siam Cement Group 2026", "Bangkok Metro scope 2", "", "   ", "bad\nname")

# Refusals the model does not predict, by transaction: each is a rule of its own area that
# the area's tests pin down, and that a random mix hits legitimately.
ORDER_REFUSALS = (
    errors.InvalidOrder,
    errors.SellCapacityExceeded,
    errors.ZoneHalted,
    errors.GateClosed,
    errors.TradingNotOpen,
    errors.InsufficientBalance,
    errors.TooManyOpenOrders,
)
PROPOSAL_REFUSALS = (errors.TooManyProposals,)
DELEGATION_REFUSALS = (
    errors.SelfDelegation,
    errors.DelegationUnchanged,
    errors.DelegationChain,
    errors.NotDelegating,
)


def mixed_sandbox() -> Sandbox:
    """Small certificates and governance that acts within a few blocks."""
    return governed_sandbox(params={"rec_size_wh": REC_SIZE})


class RecordingSandbox(Sandbox):
    """Logs every signed transaction it applies (accepted or not) and every block end."""

    log: list[tuple[BlockContext, SignedTransaction] | int]

    def submit(self, key: PrivateKey, body: Body, fee: int = 0) -> list[Event]:
        stx = self.sign(key, body, fee)
        self.log.append((self.context, stx))
        return transition.apply(self.state, stx, self.context)

    def advance(self, seconds: int) -> list[Event]:
        self.log.append(seconds)
        return super().advance(seconds)


@dataclass(frozen=True)
class Setup:
    mk: Market
    traders: tuple[tuple[PrivateKey, str], ...]  # (participant, home zone)
    meters: tuple[tuple[PrivateKey, PrivateKey, MeterKind, int], ...]  # meter, owner, kind, W


@functools.cache
def built() -> Setup:
    """Built once: the ledger is deterministic, so every run starts from a copy."""
    mk = Market(mixed_sandbox())
    mk.grant(mk.factory, LicenceKind.SELLER)
    cogen = mk.register("mix-bkk-cogen", "BKK", ParticipantKind.INDUSTRIAL)
    cogen_meter = mk.add_meter("mix-bkk-cogen", cogen, "BKK", MeterKind.COGENERATION, 9_000)
    wind = mk.register("mix-cen-wind", "CEN", ParticipantKind.INDUSTRIAL)
    wind_meter = mk.add_meter("mix-cen-wind", wind, "CEN", MeterKind.WIND, 8_000)
    for who in (cogen, wind):
        mk.ok(mk.custodian, IssueThb(who.address, 500_000))
    traders = (
        (mk.home, "BKK"),
        (mk.consumer, "BKK"),
        (mk.office, "BKK"),
        (mk.buyer2, "BKK"),
        (cogen, "BKK"),
        (mk.factory, "CEN"),
        (wind, "CEN"),
    )
    meters = (
        (mk.home_meter, mk.home, MeterKind.SOLAR, 5_000),
        (mk.consumer_meter, mk.consumer, MeterKind.CONSUMPTION, 10_000),
        (cogen_meter, cogen, MeterKind.COGENERATION, 9_000),
        (mk.factory_meter, mk.factory, MeterKind.SOLAR, 50_000),
        (wind_meter, wind, MeterKind.WIND, 8_000),
    )
    return Setup(mk, traders, meters)


def copy_of(mk: Market) -> Market:
    """A market on its own recording sandbox with a copy of the set-up state."""
    clone = copy.copy(mk)
    sb = RecordingSandbox.__new__(RecordingSandbox)
    sb.__dict__.update(mk.sb.__dict__)
    sb.state = copy.deepcopy(mk.sb.state)
    sb.log = []
    clone.sb = sb
    return clone


def state_bytes(state: State) -> list[tuple[bytes, bytes]]:
    return [(k, codec.encode(v)) for k, v in sorted(state.items())]


@dataclass
class ModelCertificate:
    owner: bytes
    beneficiary: str = ""


@dataclass
class Model:
    """What the rules say the ledger must hold, kept without reading the ledger's records."""

    halted: set[str] = field(default_factory=set)
    frequency: int | None = None  # EGAT's latest report
    remainder: dict[bytes, int] = field(default_factory=dict)  # meter -> carried Wh
    certs: dict[int, ModelCertificate] = field(default_factory=dict)
    next_cert: int = 1
    governed: dict[str, int] = field(default_factory=dict)
    proposals: dict[int, tuple[ProposalKind, tuple[ParamChange, ...]]] = field(default_factory=dict)
    voted: set[tuple[int, bytes]] = field(default_factory=set)  # own ballots cast
    minted_wh: int = 0


STEP_SECONDS = 120  # each rule's transactions make one block, this far apart
# Every block rule's action and argument strategies, for `mixed_block`.
ACTIONS: dict[str, tuple[Callable[..., None], dict[str, st.SearchStrategy[Any]]]] = {}


def block(**strategies: st.SearchStrategy[Any]) -> Callable[[Callable[..., None]], Any]:
    """A rule whose transactions make one block, ended after them. Hypothesis enables a
    random subset of rules per run (swarm testing), so the clock and the heights must move
    with every rule, not only with `advance`, for settlement and governance to happen."""

    def wrap(f: Callable[..., None]) -> Any:
        ACTIONS[f.__name__] = (f, strategies)

        @functools.wraps(f)
        def run(self: MixedMachine, **kwargs: Any) -> None:
            f(self, **kwargs)
            self.end_block(STEP_SECONDS)

        return rule(**strategies)(run)

    return wrap


class MixedMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        setup = built()
        self.mk = copy_of(setup.mk)
        self.traders = setup.traders
        self.meters = setup.meters
        self.start_state = setup.mk.sb.state
        self.start_clock = (setup.mk.sb.height, setup.mk.sb.time)
        p = self.mk.params
        self.model = Model(
            governed={name: getattr(p, name) for name in GOVERNED},
            minted_wh=self.mk.supply().grid_minted_wh,
        )
        self.zones = registry.zone_index(self.mk.sb.state.overlay()).zones
        self.authorities = {code: self.mk.sb.authority(code) for code in AUTHORITY_CODES}
        self.measured: dict[str, int] = {}  # grid status subject -> last measurement time
        self.outcomes: list[tuple[str, bytes]] = []
        self.seen: list[str] = []  # kinds of every event, for the run's statistics

    # --- applying ----------------------------------------------------------------------
    @property
    def params(self) -> Params:
        return self.mk.params

    def submit(
        self,
        who: PrivateKey,
        body: Body,
        predicted: set[type[errors.Rejection]] | None = None,
        tolerated: tuple[type[errors.Rejection], ...] = (),
    ) -> list[Event] | None:
        """Apply; a refusal must be predicted (or tolerated) and leave no trace. With a
        prediction given, an empty one means the transaction must be accepted."""
        root = self.mk.sb.state.root()
        try:
            events = self.mk.sb.submit(who, body)
        except errors.Rejection as exc:
            expected = isinstance(exc, (*(predicted or ()), *tolerated))
            assert expected, f"{body!r} refused: {exc!r}, predicted {predicted}"
            assert self.mk.sb.state.root() == root, f"refused {body!r} changed the state"
            self.outcomes.append(("rejected", exc.code.encode()))
            return None
        assert not predicted, f"{body!r} accepted, but the model predicted {predicted}"
        self.outcomes.append(("accepted", codec.encode(events)))
        self.observe(events)
        return events

    def observe(self, events: list[Event]) -> None:
        """Follow the events the model cannot foresee itself: governance outcomes and the
        halts an excursion or a declaration caused."""
        self.seen += [e.kind for e in events]
        for e in events:
            if e.kind == "proposal_executed":
                _, actions = self.model.proposals[int(e.attrs["id"])]
                for change in actions:
                    assert isinstance(change.value, int)
                    self.model.governed[change.name] = change.value

    # --- trading -----------------------------------------------------------------------
    def open_intervals(self) -> list[int]:
        now, p = self.mk.sb.time, self.params
        first = (now // INTERVAL + 1) * INTERVAL
        return [
            s
            for s in range(first, first + 4 * INTERVAL, INTERVAL)
            if now < s - p.gate_closure_seconds
        ]

    @block(orders=st.lists(ORDERS, min_size=1, max_size=5))
    def place(self, orders: list[tuple[int, Side, str | None, int, int, int, TimeInForce]]) -> None:
        """A few orders in one block: trading is most of what a market's blocks carry."""
        for who, side, elsewhere, interval, quantity, price, tif in orders:
            intervals = self.open_intervals()
            if not intervals:
                return
            trader, home = self.traders[who]
            start = intervals[min(interval, len(intervals) - 1)]
            body = PlaceOrder(side, elsewhere or home, start, quantity, price, tif=tif)
            self.submit(trader, body, tolerated=ORDER_REFUSALS)

    @block(
        seller=st.sampled_from([0, 4, 5, 6]),
        buyer=st.integers(1, 3),
        interval=st.integers(0, 2),
        quantity=st.integers(1, 12).map(lambda n: n * 100),
        price=st.integers(280, 320),
        spread=st.integers(0, 20),
    )
    def cross(
        self, seller: int, buyer: int, interval: int, quantity: int, price: int, spread: int
    ) -> None:
        """An offer from a producer and a Bangkok bid at or above it (across the BKK-CEN
        link, before its loss, for a Central producer): most often a trade."""
        ACTIONS["place"][0](
            self,
            orders=[
                (seller, SELL, None, interval, quantity, price, TimeInForce.GOOD_TILL_GATE),
                (buyer, BUY, None, interval, quantity, price + spread, TimeInForce.GOOD_TILL_GATE),
            ],
        )

    @block(who=st.integers(0, 6), pick=st.integers(0, 20))
    def cancel(self, who: int, pick: int) -> None:
        trader, _ = self.traders[who]
        own = bookkeeping.open_orders(self.mk.sb.state.overlay(), trader.address)
        if own:
            self.submit(trader, CancelOrder(own[pick % len(own)]), predicted=set())

    # --- grid --------------------------------------------------------------------------
    def measured_at(self, subject: str) -> int | None:
        """A measurement time after the subject's last one and not ahead of the clock's
        allowed skew; None when the subject has reported too often this block."""
        at = max(self.measured.get(subject, 0) + 1, self.mk.sb.time)
        if at > self.mk.sb.time + self.params.grid_status_clock_skew_seconds:
            return None
        self.measured[subject] = at
        return at

    @block(
        frequency=st.sampled_from(FREQUENCIES),
        link=st.sampled_from([("BKK", "CEN"), ("BKK", "EST"), ("CEN", "EST")]),
        capacity_kw=st.sampled_from([0, 4, 8, 40, 800_000]),
    )
    def transmission(self, frequency: int, link: tuple[str, str], capacity_kw: int) -> None:
        at = self.measured_at("EGAT")
        if at is None:
            return
        body = TransmissionStatus(at, frequency, (LinkStatus(*link, capacity_kw, 0),))
        if self.submit(self.authorities["EGAT"], body, predicted=set()) is not None:
            self.model.frequency = frequency
            p = self.params
            if not p.frequency_min_mhz <= frequency <= p.frequency_max_mhz:
                self.model.halted |= set(self.zones)

    @block(zone=st.sampled_from(["BKK", "CEN"]), headroom_kw=st.sampled_from([0, 4, 40, 1_000]))
    def distribution(self, zone: str, headroom_kw: int) -> None:
        at = self.measured_at(zone)
        if at is None:
            return
        signer = self.authorities["MEA" if zone == "BKK" else "PEA"]
        self.submit(signer, DistributionStatus(at, zone, 1_000, headroom_kw), predicted=set())

    @block(zones=st.sets(st.sampled_from(["BKK", "CEN", "EST"]), min_size=1))
    def declare(self, zones: set[str]) -> None:
        body = DeclareEmergency(tuple(sorted(zones)), "mixed test")
        if self.submit(self.authorities["EGAT"], body, predicted=set()) is not None:
            self.model.halted |= zones

    @block(zones=st.sets(st.sampled_from(["BKK", "CEN", "EST"]), min_size=1), exact=st.booleans())
    def clear(self, zones: set[str], exact: bool) -> None:
        """Clear some zones; `exact`: the halted ones among them, when there are any."""
        if exact and zones & self.model.halted:
            zones &= self.model.halted
        p, f = self.params, self.model.frequency
        predicted: set[type[errors.Rejection]] = set()
        if f is not None and not p.frequency_min_mhz <= f <= p.frequency_max_mhz:
            predicted.add(errors.FrequencyOutOfBand)
        if not zones <= self.model.halted:
            predicted.add(errors.ZoneNotHalted)
        body = ClearEmergency(tuple(sorted(zones)), "mixed test")
        if self.submit(self.authorities["EGAT"], body, predicted=predicted) is not None:
            self.model.halted -= zones

    # --- governance --------------------------------------------------------------------
    @block(
        proposer=st.sampled_from(AUTHORITY_CODES),
        name=st.sampled_from(sorted(GOVERNED)),
        pick=st.integers(0, 2),
        emergency=st.booleans(),
        votes=st.lists(st.tuples(st.sampled_from(AUTHORITY_CODES), CHOICES), max_size=6),
    )
    def propose(
        self,
        proposer: str,
        name: str,
        pick: int,
        emergency: bool,
        votes: list[tuple[str, VoteChoice]],
    ) -> None:
        """A proposal, and the votes cast on it in the same block (more may follow)."""
        kind, values = GOVERNED[name]
        if emergency and proposer in ("EGAT", "ERC"):
            kind = K.EMERGENCY
        change = ParamChange(name, values[pick])
        body = governance_proposal(kind, change)
        events = self.submit(self.authorities[proposer], body, tolerated=PROPOSAL_REFUSALS)
        if events is None:
            return
        pid = int(events[0].attrs["id"])
        self.model.proposals[pid] = (kind, (change,))
        for voter, choice in votes:
            self.cast(voter, pid, choice)

    @block(
        voter=st.sampled_from(AUTHORITY_CODES),
        pick=st.integers(0, 10),
        choice=CHOICES,
    )
    def vote(self, voter: str, pick: int, choice: VoteChoice) -> None:
        """A vote on a recent proposal, mostly, or an older one (often closed by now)."""
        if not self.model.proposals:
            return
        ids = sorted(self.model.proposals, reverse=True)
        self.cast(voter, ids[pick % len(ids)] if pick > 6 else ids[0], choice)

    def cast(self, voter: str, pid: int, choice: VoteChoice) -> None:
        key = self.authorities[voter]
        proposal = governance.get_proposal(self.mk.sb.state, pid)
        assert proposal is not None
        predicted: set[type[errors.Rejection]] = set()
        if (
            proposal.status is not governance.ProposalStatus.VOTING
            or self.mk.sb.height > proposal.voting_end_height
        ):
            predicted.add(errors.VotingClosed)
        if (pid, key.address) in self.model.voted:
            predicted.add(errors.AlreadyVoted)
        _, (change,) = self.model.proposals[pid]
        vetoable = GOVERNED[change.name][0] is K.MARKET_RULE  # as a rule or an emergency
        if choice is VoteChoice.VETO and not (voter == "ERC" and vetoable):
            predicted.add(errors.VetoNotAllowed)
        if self.submit(key, CastVote(pid, choice), predicted=predicted) is not None:
            self.model.voted.add((pid, key.address))

    @block(delegator=st.sampled_from(AUTHORITY_CODES), to=st.sampled_from((*AUTHORITY_CODES, "")))
    def delegate(self, delegator: str, to: str) -> None:
        self.submit(self.authorities[delegator], DelegateVote(to), tolerated=DELEGATION_REFUSALS)

    # --- metering and certificates -----------------------------------------------------
    @block(
        shares=st.lists(
            st.one_of(st.integers(0, 100), st.integers(0, 100), st.none()), min_size=5, max_size=5
        ),
        import_wh=st.integers(0, 2_000),
    )
    def read(self, shares: list[int | None], import_wh: int) -> None:
        """Each meter (None: not this time) reports its newest ended interval at a share of
        what its rating allows."""
        for meter, share in enumerate(shares):
            if share is not None:
                self.read_meter(meter, share, import_wh)

    def read_meter(self, meter: int, share: int, import_wh: int) -> None:
        key, owner, kind, capacity_w = self.meters[meter]
        m = self.mk.meter(key.address)
        start = m.first_interval if m.last_interval < 0 else m.last_interval + INTERVAL
        if start + INTERVAL > self.mk.sb.time:
            return  # the interval has not ended yet
        # The newest ended interval; after a gap the reading covers every one since.
        interval = (self.mk.sb.time // INTERVAL - 1) * INTERVAL
        covered = (interval - start) // INTERVAL + 1
        most = capacity_w * covered * INTERVAL // 3600
        export = 0 if kind is MeterKind.CONSUMPTION else most * share // 100
        body = MeterReading(
            interval, m.import_register_wh + import_wh, m.export_register_wh + export
        )
        events = self.submit(key, body, predicted=set())
        assert events is not None
        self.model.minted_wh += export
        issued = [e for e in events if e.kind == "certificate_issued"]
        if not kind.renewable:
            assert not issued, "a non-renewable meter earned a certificate"
            return
        p = self.params
        total = self.model.remainder.get(key.address, 0) + export
        count = min(total // p.rec_size_wh, p.rec_max_per_reading) if export else 0
        if export:
            self.model.remainder[key.address] = total - count * p.rec_size_wh
        new_ids = list(range(self.model.next_cert, self.model.next_cert + count))
        assert [e.attrs["id"] for e in issued] == new_ids
        assert all(e.attrs["wh"] == p.rec_size_wh for e in issued)
        for cid in new_ids:
            self.model.certs[cid] = ModelCertificate(owner.address)
        self.model.next_cert += count

    def holders(self) -> list[PrivateKey]:
        return [who for who, _ in self.traders]

    @block(holder=st.integers(0, 6), pick=st.integers(0, 30), to=st.integers(0, 8))
    def transfer(self, holder: int, pick: int, to: int) -> None:
        sender = self.holders()[holder]
        recipients = [*self.holders(), self.authorities["ERC"], self.authorities["MEA"]]
        target = recipients[to]
        cid = self.pick_certificate(sender, pick)
        cert = self.model.certs.get(cid)
        predicted = holding_refusals(cert, sender)
        if not predicted:
            if target in (self.authorities["ERC"], self.authorities["MEA"]):
                predicted.add(errors.RecipientNotParticipant)
            if target.address == sender.address:
                predicted.add(errors.SelfTransfer)
        body = TransferCertificate(cid, target.address)
        if self.submit(sender, body, predicted=predicted) is not None:
            assert cert is not None
            cert.owner = target.address

    @block(
        holder=st.integers(0, 6),
        pick=st.integers(0, 30),
        beneficiary=st.sampled_from(BENEFICIARIES),
    )
    def retire(self, holder: int, pick: int, beneficiary: str) -> None:
        sender = self.holders()[holder]
        cid = self.pick_certificate(sender, pick)
        cert = self.model.certs.get(cid)
        predicted = holding_refusals(cert, sender)
        if not predicted and (not beneficiary.strip() or not beneficiary.isprintable()):
            predicted.add(errors.InvalidBeneficiary)
        body = RetireCertificate(cid, beneficiary)
        if self.submit(sender, body, predicted=predicted) is not None:
            assert cert is not None
            cert.beneficiary = beneficiary

    def pick_certificate(self, sender: PrivateKey, pick: int) -> int:
        """Mostly one of the sender's active certificates; else any id, or one not issued."""
        own = sorted(
            cid
            for cid, c in self.model.certs.items()
            if c.owner == sender.address and not c.beneficiary
        )
        if own and pick % 3:
            return own[pick % len(own)]
        return pick % (self.model.next_cert + 1) + 1

    # Swarm testing turns whole rules off for a run; this one always mixes every area.
    @block(
        actions=st.lists(
            st.one_of(
                [
                    st.fixed_dictionaries(strategies).map(lambda kw, name=name: (name, kw))
                    for name, (_, strategies) in ACTIONS.items()
                ]
            ),
            min_size=2,
            max_size=8,
        )
    )
    def mixed_block(self, actions: list[tuple[str, dict[str, Any]]]) -> None:
        """Actions of every kind in one block: an order, a vote and a capacity cut together."""
        for name, kwargs in actions:
            ACTIONS[name][0](self, **kwargs)

    # --- time --------------------------------------------------------------------------
    @rule(blocks=st.integers(1, 6), seconds=st.sampled_from([1, 60, 300, INTERVAL]))
    def advance(self, blocks: int, seconds: int) -> None:
        """End `blocks` empty blocks, `seconds` apart."""
        for _ in range(blocks):
            self.end_block(seconds)

    def end_block(self, seconds: int) -> None:
        """End the block (expiry, settlement, governance execution); the next starts later."""
        events = self.mk.sb.advance(seconds)
        self.outcomes.append(("block", codec.encode(events)))
        self.observe(events)

    # --- invariants ------------------------------------------------------------------
    @invariant()
    def ledger_invariants_hold(self) -> None:
        check_all(self.mk.sb.state)

    @invariant()
    def the_model_agrees(self) -> None:
        state, view = self.mk.sb.state, self.mk.sb.state.overlay()
        halted = {z for z in self.zones if view.get(records.halt_key(z), records.ZoneHalt)}
        assert halted == self.model.halted
        p = self.params
        assert {name: getattr(p, name) for name in GOVERNED} == self.model.governed
        assert self.mk.supply().grid_minted_wh == self.model.minted_wh
        ledger_certs = {
            c.id: (c.owner, c.beneficiary)
            for _, c in state.scan(b"cert/")
            if isinstance(c, certificates.Certificate)
        }
        model_certs = {cid: (c.owner, c.beneficiary) for cid, c in self.model.certs.items()}
        assert ledger_certs == model_certs
        for address, left in self.model.remainder.items():
            acc = state.get(certificates.accrual_key(address), certificates.Accrual)
            assert acc is not None and acc.remainder_wh == left

    def label_run(self) -> None:
        """What the run reached, for `--hypothesis-show-statistics`."""
        kinds = [k for k, _ in self.outcomes]
        events = self.seen
        for name in (
            "order_accepted",
            "trade",
            "trade_curtailed",
            "interval_settled",
            "certificate_retired",
        ):
            event(f"{name}: {bucket(events.count(name))}")
        event(f"certificates: {bucket(self.model.next_cert - 1)}")
        event(f"proposals executed: {bucket(events.count('proposal_executed'))}")
        event(f"zones halted at the end: {bucket(len(self.model.halted))}")
        event(f"refused: {bucket(kinds.count('rejected'))}")

    def teardown(self) -> None:
        """Replay the run from its signed transactions on a fresh copy of the set-up state:
        the same bytes in give the same outcomes and the same state, byte for byte."""
        replay = Sandbox.__new__(Sandbox)
        replay.__dict__.update(self.mk.sb.__dict__)
        replay.state = copy.deepcopy(self.start_state)
        replay.height, replay.time = self.start_clock
        outcomes: list[tuple[str, bytes]] = []
        for entry in self.mk.sb.log:
            if isinstance(entry, int):
                outcomes.append(("block", codec.encode(replay.advance(entry))))
                continue
            ctx, stx = entry
            assert ctx == replay.context
            wire = tx.decode(stx.encode())
            try:
                outcomes.append(
                    ("accepted", codec.encode(transition.apply(replay.state, wire, ctx)))
                )
            except errors.Rejection as exc:
                outcomes.append(("rejected", exc.code.encode()))
        assert outcomes == self.outcomes
        self.label_run()
        assert replay.state.root() == self.mk.sb.state.root()
        assert state_bytes(replay.state) == state_bytes(self.mk.sb.state)


def holding_refusals(
    cert: ModelCertificate | None, sender: PrivateKey
) -> set[type[errors.Rejection]]:
    """Why `sender` may not move the certificate: none if it exists, is active and is its."""
    if cert is None:
        return {errors.UnknownCertificate}
    if cert.beneficiary:
        return {errors.CertificateRetired}
    if cert.owner != sender.address:
        return {errors.NotCertificateOwner}
    return set()


def bucket(n: int) -> str:
    return "0" if n == 0 else "1-4" if n < 5 else "5+"


def governance_proposal(kind: ProposalKind, change: ParamChange) -> Body:
    return SubmitProposal(kind, (change,), "mixed test")


TestMixedMachine = MixedMachine.TestCase
TestMixedMachine.settings = settings(
    max_examples=MIX_EXAMPLES,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
