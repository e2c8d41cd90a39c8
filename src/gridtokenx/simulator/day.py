"""The day driver: one market day as a timeline of signed transactions per interval.

Each interval S is traded one interval ahead (orders at S - 15 min, before gate closure at
S - 5 min), delivered during [S, S + 15 min), read by the meters when it ends, and settled
by the end of that same block, once all its trading parties' meters have reported. So with
blocks at every interval boundary a block carries the readings of the interval that just
ended and the orders for the interval after the one starting; N intervals take N + 2 blocks
after the setup. The meters also report the last setup interval (with nothing metered), so
the first traded interval's reading covers that interval alone instead of being spread back
over the intervals since registration. Only the last: a reading may not cover an interval
that began before its meter was registered, and a devnet may commit its registrations late
in the first setup interval, so reporting that one would make the day's transactions
depend on the machine. The registrations must commit before the first traded interval.

With `DayConfig.storyline` on (the default) the day also runs the grid, governance and
certificate features of the ledger: the operators' SCADA reports lead every step that
follows a metered interval (operators.py), the ERC proposes halving the platform fee with
the first traded interval's orders and the four validating authorities vote as soon as it
is final (on the demo devnet, whose periods are a few heights, the day then waits for the
vote to execute before the next step, so the fee in force per interval never depends on
how many blocks the machine makes: see `MarketDay.waits_for_the_vote`), and after the last
readings the certificates issued during the day are claimed (storyline.py). Two facts of
that story come from the chain through the sink (the proposal's id and the certificates
held), read between steps: a step is signed only once the one before it is final.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gridtokenx.ledger import genesis
from gridtokenx.ledger.market import auction
from gridtokenx.ledger.params import AuctionParams, Params
from gridtokenx.simulator import day_ahead, manipulators, storyline
from gridtokenx.simulator.agents import Meters, Plan, Traders, Weather, plan
from gridtokenx.simulator.clock import Day
from gridtokenx.simulator.operators import Scada
from gridtokenx.simulator.population import (
    Archetype,
    Member,
    Population,
    build_population,
    setup_phases,
)
from gridtokenx.simulator.signer import Signer
from gridtokenx.simulator.sink import AuctionClearing, ChainReader, LateForTheChain, Sink
from gridtokenx.wire import crypto, tx

RING_LEAD_SECONDS = 20  # the wash ring's blocks come this long before an interval's orders
BUDGET_SATANG_PER_KWH = 700
"""THB issued per kWh a member may import, bid for or fail to deliver: above the peak
retail rate with Ft and VAT (6.38 THB), the wheeling charge and the imbalance price, so no
order of the model can fail for want of THB."""


@dataclass(frozen=True)
class DayConfig:
    seed: int | str = 1
    participants: int = 300
    date: datetime.date = datetime.date(2026, 4, 22)  # a Wednesday in the hot season
    start_minute: int = 0  # local time of the first traded interval
    intervals: int = 96
    hot_season: bool | None = None  # None: from the date (March-May)
    key_prefix: str = "sim"  # keys are dev keys under this label: change it to rerun a chain
    storyline: bool = True  # grid reports, the fee vote and certificate claims (storyline.py)
    zones: tuple[str, ...] = ()  # where the members live; empty: every zone of the chain
    # Manipulating agents mixed into the day (manipulators.Role values)
    manipulators: tuple[str, ...] = ()
    # Day-ahead curves before the auction gate of the first interval's delivery day
    # (day_ahead.py); the setup then happens before that gate, the day before
    auction: bool = False

    def problems(self, params: Params) -> list[str]:
        found = []
        if self.participants < 6:
            found.append("participants must be at least 6")
        if self.intervals < 1:
            found.append("intervals must be at least 1")
        if not 0 <= self.start_minute < 1440 or self.start_minute * 60 % params.interval_seconds:
            found.append("start_minute must be a multiple of the interval within the day")
        if len(set(self.zones)) != len(self.zones):
            found.append("zones must not repeat")
        if unknown := [r for r in self.manipulators if r not in manipulators.ROLES]:
            found.append(f"unknown manipulators {', '.join(unknown)} (known: "
                         f"{', '.join(manipulators.ROLES)})")  # fmt: skip
        return found

    def first_interval(self, params: Params) -> int:
        return Day.of(self.date, params).midnight + self.start_minute * 60

    def auction_gate(self, params: Params) -> int:
        """The auction gate of the first interval's delivery day (default auction rules:
        the simulated chains never vote on them)."""
        return auction.gate(self.first_interval(params), params, AuctionParams())

    def setup_time(self, params: Params) -> int:
        """Setup (registrations, licences, THB) happens two intervals before trading, or
        with the auction three intervals before its gate (the curves follow the setup)."""
        if self.auction:
            return self.auction_gate(params) - 3 * params.interval_seconds
        return self.first_interval(params) - 2 * params.interval_seconds


@dataclass(frozen=True)
class Step:
    time: int  # chain time at which to submit
    txs: list[bytes]
    read: int  # window index whose readings are in it (-1: the last setup interval)
    traded: int | None  # window index whose orders are in it


class MarketDay:
    """Builds the population and the agents for a config and yields the signed timeline."""

    def __init__(
        self,
        config: DayConfig,
        spec: genesis.Genesis,
        authorities: dict[str, crypto.PrivateKey],
        next_nonce: Callable[[bytes], int] | None = None,
    ) -> None:
        params = spec.params
        if problems := config.problems(params):
            raise ValueError("invalid day: " + "; ".join(problems))
        self.config, self.spec, self.params = config, spec, params
        self.authorities = authorities
        self.seed = str(config.seed)
        self.first_interval = config.first_interval(params)
        self.interval = params.interval_seconds
        codes = [z.code for z in spec.zones]
        if unknown := [z for z in config.zones if z not in codes]:
            raise ValueError(f"invalid day: unknown zones {', '.join(unknown)} (the chain has "
                             f"{', '.join(codes)})")  # fmt: skip
        honest = build_population(
            config.participants, self.seed, list(config.zones) or codes, config.key_prefix
        )
        zones = list(config.zones) or codes
        self.manipulators = manipulators.Manipulators(
            tuple(manipulators.Role(r) for r in config.manipulators),
            "BKK" if "BKK" in zones else zones[0],
            config.key_prefix,
        )
        self.population = Population(honest.members + tuple(self.manipulators.all),
                                     honest.custodian)  # fmt: skip
        first_day = Day.of(config.date, params)
        offset = config.start_minute * 60 // self.interval
        days = [first_day]
        while len(days) * first_day.intervals < offset + config.intervals:
            days.append(days[-1].next())
        weather = Weather(self.seed, config.hot_season)
        self.plans: dict[str, Plan] = {}
        for m in self.population.members:
            whole = plan(m, days, weather)
            cut = slice(offset, offset + config.intervals)
            self.plans[m.name] = Plan(
                whole.forecast_pv[cut],
                whole.actual_pv[cut],
                whole.forecast_load[cut],
                whole.actual_load[cut],
            )
        members = list(self.population.members)
        self.traders = Traders(list(honest.members), self.plans, self.seed)
        self.day_ahead: day_ahead.DayAhead | None = None
        if config.auction:
            cut = slice(offset, offset + config.intervals)
            ahead = {m.name: day_ahead.forecast(m, days, weather)[cut] for m in honest.members}
            self.day_ahead = day_ahead.DayAhead(list(honest.members), ahead, self.seed)
        self.meters = Meters(members, self.plans)
        self.scada = Scada(spec, members, self.plans, config.intervals, self.seed)
        self.signer = Signer(spec.chain_id, next_nonce)

    def start(self, k: int) -> int:
        return self.first_interval + k * self.interval

    def thb_budgets(self) -> dict[str, int]:
        """What the custodian issues: members for their imports and orders, and the
        distribution authorities a float to buy back unsold rooftop export."""
        out: dict[str, int] = {}
        buyback: dict[str, int] = {}
        zones = {z.code: z.distribution_authority for z in self.spec.zones}
        manipulating = {m.name for m in self.manipulators.all}
        for m in self.population.members:
            p = self.plans[m.name]
            wh = sum(p.imports) + sum(p.forecast_load) + sum(p.forecast_pv)
            out[m.name] = wh * BUDGET_SATANG_PER_KWH // 1000 + 10_000
            if m.name in manipulating:
                out[m.name] += self.manipulators.extra_budget()
            code = zones[m.zone]
            buyback[code] = buyback.get(code, 0) + sum(p.exports)
        rate = self.params.tariffs.buyback_msat_per_kwh
        for code, wh in sorted(buyback.items()):
            out[code] = wh * rate // 1_000_000 + 10_000
        return out

    def setup(self) -> list[list[bytes]]:
        return setup_phases(
            self.population,
            self.spec,
            self.authorities,
            self.signer,
            self.config.setup_time(self.params),
            self.thb_budgets(),
        )

    def readings(self, k: int) -> list[bytes]:
        """Every meter's signed reading for window interval `k` (-1: the last setup
        interval; none for the first, see the module docstring)."""
        if k < -1:
            return []
        return [self.signer.sign(m.meter, r) for m, r in self.meters.readings(k, self.start(k))]

    def orders(self, k: int) -> list[bytes]:
        """The agents' signed orders for window interval `k`, in arrival order: the
        manipulators' first moves (if any) before the honest orders, the rest after."""
        start, manip = self.start(k), self.manipulators
        found = manip.first(k, start, self.params, self.plans)
        committed = None if self.day_ahead is None else self.day_ahead.committed
        found += self.traders.orders(k, start, self.params, committed)
        found += manip.after(k, start, self.params)
        return [self.signer.sign(m.key, body) for m, body in found]

    def auctioned(self) -> list[int]:
        """Window intervals in the auction: those of the first interval's delivery day
        (later days' gates fall inside the day, which trades them continuously only)."""
        if self.day_ahead is None:
            return []
        gate = self.config.auction_gate(self.params)
        a = AuctionParams()
        return [k for k in range(self.config.intervals)
                if auction.gate(self.start(k), self.params, a) == gate]  # fmt: skip

    def curves(self) -> dict[int, list[bytes]]:
        """Every member's signed day-ahead curves per interval start, for the intervals
        that have any (call once, after `setup`)."""
        out: dict[int, list[bytes]] = {}
        ahead = self.day_ahead
        if ahead is None:
            return out
        for k in self.auctioned():
            found = ahead.curves(k, self.start(k), self.params)
            if found:
                out[self.start(k)] = [self.signer.sign(m.key, body) for m, body in found]
        return out

    def _auction(self, sink: Sink) -> None:
        """The curves an interval before the gate, then each auctioned interval's clearing
        once the gate has passed: solved and submitted by the in-process sink, awaited from
        the validators (which clear by themselves) on a devnet."""
        if not isinstance(sink, AuctionClearing):
            raise ValueError("this sink cannot clear day-ahead auctions")
        gate = self.config.auction_gate(self.params)
        sink.advance_to(gate - self.interval)
        curves = self.curves()
        sink.submit([raw for batch in curves.values() for raw in batch])
        sink.wait_final()
        _on_time(sink, gate, "the day-ahead curves")
        sink.advance_to(gate)
        erc = self.authorities[storyline.PROPOSER]
        for start in curves:
            sink.clear_auction(start, lambda body: self.signer.sign(erc, body))
        sink.wait_final()
        # On a devnet every validator's node submitted a clearing with its authority's key;
        # the ones that lost are dropped within a few blocks, long before the window opens.
        sink.advance_to(self.start(-1) - 2 * RING_LEAD_SECONDS)
        for key in self.authorities.values():
            self.signer.resync(key.address, sink.next_nonce(key.address))

    def ring_steps(self, k: int) -> Iterator[Step]:
        """The wash ring's offers, then its buys, in blocks just before interval `k`'s
        orders (manipulators.Manipulators.ring)."""
        at = self.start(k - 1)
        for i, moves in enumerate(self.manipulators.ring(k, self.start(k), self.params)):
            if moves:
                signed = [self.signer.sign(m.key, body) for m, body in moves]
                yield Step(at - RING_LEAD_SECONDS + 10 * i, signed, -2, None)

    def manipulation_steps(self, k: int, reader: manipulators.MarketReader) -> Iterator[Step]:
        """Between interval `k`'s orders and its gate closure: the spoofer's cancellations a
        few minutes on, and the gate marker's sweep just before the gate closes."""
        if not self.manipulators.roles:
            return
        start, gate = self.start(k), self.start(k) - self.params.gate_closure_seconds
        mid = self.manipulators.mid(k, start, reader)
        yield Step(self.start(k - 1) + 120, [self.signer.sign(m.key, b) for m, b in mid], -2, None)
        late = self.manipulators.late(k, start, self.params, reader)
        late_at = gate - manipulators.MARK_LEAD_SECONDS
        yield Step(late_at, [self.signer.sign(m.key, b) for m, b in late], -2, None)

    def grid_reports(self, k: int, measured_at: int) -> list[bytes]:
        """The operators' signed SCADA reports of window interval `k`, just ended."""
        return [self.signer.sign(self.authorities[code], body)
                for code, body in self.scada.reports(k, measured_at)]  # fmt: skip

    def fee_proposal(self) -> list[bytes]:
        """The ERC's proposal halving the platform fee, signed with the first traded
        interval's orders."""
        return [self.signer.sign(self.authorities[storyline.PROPOSER],
                                 storyline.fee_proposal(self.params))]  # fmt: skip

    def fee_votes(self, chain: ChainReader | None) -> list[bytes]:
        """The four validating authorities' votes, signed once the proposal is final: its id
        is read from the chain (1 on a new chain, but the day does not rely on that)."""
        proposer = self.authorities[storyline.PROPOSER].address
        title = storyline.fee_title(self.params)
        found = chain.find_proposal(proposer, title) if chain is not None else None
        if found is None:
            raise RuntimeError("the fee proposal is not on chain: steps must be submitted "
                               "and final before the next one is signed")  # fmt: skip
        return [self.signer.sign(self.authorities[code], vote)
                for code, vote in storyline.votes(found)]  # fmt: skip

    def waits_for_the_vote(self) -> bool:
        """Whether the day holds the next step until the fee vote has executed: only when
        the chain's periods make that a few blocks (the demo devnet's), so which intervals
        the new fee applies to is fixed by the day's steps, never by how many blocks a
        machine happens to make per interval (production periods: it stays open)."""
        g = self.params.governance
        return g.voting_period_heights + g.timelock_heights <= storyline.MAX_WAIT_HEIGHTS

    def _vote(self, sink: Sink) -> None:
        """The votes right after the proposal is final, then (see `waits_for_the_vote`)
        blocks until the proposal has left the open list (executed, or failed)."""
        sink.submit(self.fee_votes(sink))
        sink.wait_final()
        if not self.waits_for_the_vote():
            return
        proposer = self.authorities[storyline.PROPOSER].address
        title = storyline.fee_title(self.params)
        for _ in range(2 * storyline.MAX_WAIT_HEIGHTS):  # bounded: heights always advance
            if sink.find_proposal(proposer, title) is None:
                return
            sink.next_block()
        raise RuntimeError("the fee proposal was still open after its voting period and "
                           "timelock")  # fmt: skip

    def steps(self, reader: manipulators.MarketReader | None = None) -> Iterator[Step]:
        """The trading and metering timeline, signed lazily (call after `setup`); with the
        storyline the fee proposal rides with the first traded interval's orders (its
        votes follow once it is final: see `run`). Manipulators need a `reader` to act
        between an interval's orders and its gate closure."""
        n, story = self.config.intervals, self.config.storyline
        for j in range(n + 2):
            traded, read, at = (j if j < n else None), j - 2, self.start(j - 1)
            txs = self.grid_reports(read, at) if story and read >= 0 else []
            if traded is not None:
                yield from self.ring_steps(traded)
            txs += self.readings(read) + ([] if traded is None else self.orders(traded))
            txs += self.fee_proposal() if story and j == 0 else []
            yield Step(at, txs, read, traded)
            if traded is not None and reader is not None:
                yield from self.manipulation_steps(traded, reader)

    def _holders(self) -> list[Member]:
        size = self.params.rec_size_wh
        return [m for m in self.population.members
                if storyline.may_hold_certificates(m, self.plans[m.name], size)]  # fmt: skip

    def _retire(self, member: Member, certificate_id: int) -> bytes:
        name = storyline.beneficiary(member, self.config.date)
        return self.signer.sign(member.key, tx.RetireCertificate(certificate_id, name))

    def claims(self, chain: ChainReader) -> Iterator[list[bytes]]:
        """The certificate claims after the last readings, in batches, each to be final
        before the next is signed: solar farms transfer theirs to the corporate buyer and
        other holders retire their own; then the buyer retires what it holds."""
        buyer = storyline.corporate_buyer(self.population.members, self.plans)
        first: list[bytes] = []
        for m in self._holders():
            for cid in chain.certificates_of(m.key.address):
                if buyer is not None and m.archetype is Archetype.SOLAR_FARM:
                    body = tx.TransferCertificate(cid, buyer.key.address)
                    first.append(self.signer.sign(m.key, body))
                elif m is not buyer:
                    first.append(self._retire(m, cid))
        if first:
            yield first
        if buyer is not None:
            own = [self._retire(buyer, cid) for cid in chain.certificates_of(buyer.key.address)]
            if own:
                yield own

    @property
    def end_time(self) -> int:
        """A time after the block that settles the last interval."""
        return self.start(self.config.intervals) + 1

    def run(
        self,
        sink: Sink,
        on_step: Callable[[Step], None] | None = None,
        on_setup: Callable[[], None] | None = None,
    ) -> None:
        """The setup, the steps and the claims, each final before the next is signed;
        `on_setup` is told when the setup is final (the demo measures the machine there).
        Raises `LateForTheChain` when the chain's clock passed a deadline first: the
        meters' registrations must commit before the last setup interval ends (a reading
        may not cover an interval that began before its meter was registered), and each
        step's orders must be sent before their gate closes."""
        for i, phase in enumerate(self.setup()):
            sink.submit(phase)
            sink.wait_final()
            if i == 0:
                _on_time(sink, self.start(0), "the setup's registrations")
        if on_setup is not None:
            on_setup()
        if self.day_ahead is not None:
            self._auction(sink)
        reader = None
        if self.manipulators.roles:
            if not isinstance(sink, manipulators.MarketReader):
                raise ValueError("manipulators run only on a sink that reads the market")
            reader = sink
        for step in self.steps(reader):
            sink.advance_to(step.time)
            if step.traded is not None:
                gate = self.start(step.traded) - self.params.gate_closure_seconds
                _on_time(sink, gate, f"the orders of interval {step.traded}")
            sink.submit(step.txs)
            sink.wait_final()
            if self.config.storyline and step.traded == 0:
                self._vote(sink)
            if on_step is not None:
                on_step(step)
        for batch in self.claims(sink) if self.config.storyline else ():
            sink.submit(batch)
            sink.wait_final()
        sink.advance_to(self.end_time)


def _on_time(sink: Sink, deadline: int, what: str) -> None:
    if (now := sink.chain_time()) >= deadline:
        raise LateForTheChain(what, deadline, now)
