"""Property tests: random valid and invalid transactions against an independent model.

`LedgerMachine` drives random sequences of every core transaction type (with valid and
invalid variations drawn by Hypothesis) through a Sandbox holding the conftest `Cast`, on a
chain with no minimum fee or with a positive one. A plain-Python model keeps the records
the ledger should hold. For each transaction the rule
works out from the model every reason it must be refused (a set, so the test does not depend
on the order in which the ledger checks them): the ledger must accept exactly when the set
is empty, and otherwise raise one of them. After every step the whole state must equal the
model record for record, every invariant must hold and the incremental root must equal a
root rebuilt from scratch. At the end of each run the logged signed transactions are
replayed from their wire bytes on a fresh sandbox, which must reach identical outcomes,
events, root and state bytes; `test_same_signed_sequence_gives_identical_ledgers` does the
same on two more fresh sandboxes with different root-computation schedules.
"""

from __future__ import annotations

import datetime
import string
from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gridtokenx.ledger import (
    accounts,
    certificates,
    chain_info,
    genesis,
    invariants,
    metering,
    registry,
    transition,
)
from gridtokenx.ledger.accounts import Account, Supply
from gridtokenx.ledger.context import BlockContext, Event
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.ledger.state import State
from gridtokenx.wire import codec, errors, tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import (
    Asset,
    GrantLicence,
    IssueThb,
    LicenceKind,
    MeterKind,
    MeterReading,
    ParticipantKind,
    RedeemThb,
    RegisterMeter,
    RegisterParticipant,
    RetireCertificate,
    RevokeLicence,
    SignedTransaction,
    Transaction,
    Transfer,
    TransferCertificate,
)
from tests.conftest import INTERVAL, YEAR, Cast, Net, key, sandbox_with_params

T = TypeVar("T")
Reasons = set[type[errors.Rejection]]
Outcome = tuple[str, bytes]  # ("accepted", encoded events) or ("rejected", code)

U64_MAX = 2**63 - 1  # the largest amount a transaction field may carry
MAX_AMOUNT = 2**63 - 1  # and the largest balance or supply total the ledger may hold
CODES = frozenset(cls.code for cls in errors.ALL_REJECTIONS)
DEFAULTS = Params()
MAX_AGE_INTERVALS = DEFAULTS.reading_max_age_seconds // INTERVAL

# --- the cast, by key (conftest.Cast derives the same keys from the same labels) ------------
_AUTHORITY_KEYS = genesis.dev_keys()
EGAT, MEA, PEA, ERC, NEPO = (_AUTHORITY_KEYS[c] for c in ("EGAT", "MEA", "PEA", "ERC", "NEPO"))
HOME, CONSUMER, OFFICE, FACTORY, CUSTODIAN = (
    key(label)
    for label in ("bkk-home", "bkk-consumer", "bkk-office", "cen-factory", "siam-custody")
)
HOME_METER, CONSUMER_METER, FACTORY_METER = (
    key(f"meter/{label}") for label in ("bkk-home", "bkk-consumer", "cen-factory")
)
STRANGERS = tuple(key(f"props/stranger/{i}") for i in range(3))  # no account until registered
SPARE_METERS = tuple(key(f"props/meter/{i}") for i in range(3))  # meter keys not yet registered
AUTHORITIES = (EGAT, MEA, PEA, ERC, NEPO)
PARTICIPANTS = (HOME, CONSUMER, OFFICE, FACTORY, CUSTODIAN)
METERS = (HOME_METER, CONSUMER_METER, FACTORY_METER)
EVERYONE = AUTHORITIES + PARTICIPANTS + METERS + STRANGERS + SPARE_METERS
KNOWN_ZONES = tuple(code for code, _, _ in genesis.ZONES)
KEYED = tuple((k, k.address) for k in EVERYONE)  # addresses cost a key derivation each


class _RecordingSandbox(Sandbox):
    """Records the signed transactions the conftest Cast submits to set itself up."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[tuple[BlockContext, SignedTransaction]] = []

    def submit(self, key: PrivateKey, body: tx.Body, fee: int = 0) -> list[Event]:
        stx = self.sign(key, body, fee)
        self.script.append((self.context, stx))
        return transition.apply(self.state, stx, self.context)


_cast = Cast(_RecordingSandbox())  # checks every invariant after each setup transaction
assert (_cast.home, _cast.consumer, _cast.office, _cast.factory, _cast.custodian) == PARTICIPANTS
assert (_cast.home_meter, _cast.consumer_meter, _cast.factory_meter) == METERS
assert (_cast.egat, _cast.mea, _cast.pea, _cast.erc, _cast.nepo) == AUTHORITIES
CAST_SETUP = tuple(_cast.sb.script)


def fresh_cast(
    min_fee: int = 0,
    rec_size: int = DEFAULTS.rec_size_wh,
    rec_cap: int = DEFAULTS.rec_max_per_reading,
) -> Sandbox:
    """A new Sandbox brought to the Cast's state by applying its recorded setup again. With a
    positive minimum fee the same zero-fee setup must still go through: its signers are
    authorities and a licensed custodian issuing THB, all of them exempt. A small certificate
    size lets the Cast's small meters earn renewable certificates within a short run, and a
    small per-reading cap makes them carry a backlog of whole certificates."""
    changes = {"min_fee_satang": min_fee, "rec_size_wh": rec_size, "rec_max_per_reading": rec_cap}
    custom = changes != {
        "min_fee_satang": 0,
        "rec_size_wh": DEFAULTS.rec_size_wh,
        "rec_max_per_reading": DEFAULTS.rec_max_per_reading,
    }
    sb = sandbox_with_params(**changes) if custom else Sandbox()
    for ctx, stx in CAST_SETUP:
        transition.apply(sb.state, stx, ctx)
    assert (sb.time, sb.height) == (_cast.sb.time, _cast.sb.height)
    return sb


# --- strategies -----------------------------------------------------------------------------
everyone = st.sampled_from(EVERYONE)
fees = st.sampled_from([0, 0, 0, 0, 0, 0, 1, 250, 10**6, U64_MAX])  # mostly none
zones = st.one_of(
    st.sampled_from(KNOWN_ZONES), st.text(string.ascii_uppercase, min_size=2, max_size=8)
)
names = st.text(string.ascii_letters + " -.", min_size=1, max_size=24)


def prefer(*keys: PrivateKey) -> st.SearchStrategy[PrivateKey]:
    """One of the keys likely to make the transaction valid, or anyone."""
    return st.one_of(st.sampled_from(keys), everyone)


def amounts_around(have: int) -> st.SearchStrategy[int]:
    """Amounts within, at, just above and far above an available balance (and zero)."""
    have = max(have, 0)
    above = min(have + 1, U64_MAX)
    return st.one_of(
        st.integers(1, max(have, 1)),
        st.sampled_from(sorted({0, have, above})),
        st.integers(above, U64_MAX),
    )


def produces(kind: MeterKind) -> bool:
    return kind is not MeterKind.CONSUMPTION


# --- shared helpers -------------------------------------------------------------------------
def outcome_of(state: State, stx: SignedTransaction, ctx: BlockContext) -> Outcome:
    try:
        events = transition.apply(state, stx, ctx)
    except errors.Rejection as exc:
        return ("rejected", exc.code.encode())
    return ("accepted", codec.encode(events))


def state_bytes(state: State) -> list[tuple[bytes, bytes]]:
    return [(k, codec.encode(v)) for k, v in sorted(state.items())]


def names_of(reasons: Reasons) -> list[str]:
    return sorted(r.__name__ for r in reasons)


class Model:
    """The records the ledger should hold, kept by straightforward rules from the docs.

    It starts as a snapshot of the state after the Cast's setup; from then on only the
    machine's expectations change it, never the ledger.
    """

    def __init__(self, state: State) -> None:
        self.records: dict[bytes, msgspec.Struct] = dict(state.items())
        self.fee_collector = chain_info.chain_info(state).fee_collector
        self.params = chain_info.params(state)

    def account(self, address: bytes) -> Account | None:
        record = self.records.get(accounts.account_key(address))
        assert record is None or isinstance(record, Account)
        return record

    def participant(self, address: bytes) -> registry.Participant | None:
        record = self.records.get(registry.participant_key(address))
        assert record is None or isinstance(record, registry.Participant)
        return record

    def authority(self, address: bytes) -> registry.Authority | None:
        record = self.records.get(registry.authority_key(address))
        assert record is None or isinstance(record, registry.Authority)
        return record

    def meter(self, address: bytes) -> registry.Meter | None:
        record = self.records.get(registry.meter_key(address))
        assert record is None or isinstance(record, registry.Meter)
        return record

    def licence(self, holder: bytes, kind: LicenceKind) -> registry.Licence | None:
        record = self.records.get(registry.licence_key(holder, kind))
        assert record is None or isinstance(record, registry.Licence)
        return record

    def licence_valid(self, holder: bytes, kind: LicenceKind, time: int) -> bool:
        lic = self.licence(holder, kind)
        return lic is not None and lic.revoked_at == 0 and time < lic.expires_at

    def is_holder(self, address: bytes) -> bool:
        return self.participant(address) is not None or self.authority(address) is not None

    def generating_capacity(self, owner: bytes) -> int:
        """From the meter records themselves, not the ledger's per-owner index."""
        return sum(
            m.rated_capacity_w
            for k, m in self.records.items()
            if k.startswith(b"meter/")
            and isinstance(m, registry.Meter)
            and m.owner == owner
            and produces(m.kind)
        )

    def supply(self) -> Supply:
        record = self.records.get(accounts.SUPPLY_KEY, Supply())
        assert isinstance(record, Supply)
        return record

    def balance(self, address: bytes, asset: Asset) -> int:
        acct = self.account(address)
        return 0 if acct is None else acct.balance(asset)

    def thb_after_fee(self, address: bytes, sender: bytes, fee: int) -> int:
        """An account's THB once the sender has paid the fee to the collector."""
        paid = fee if address == sender else 0
        received = fee if address == self.fee_collector else 0
        return self.balance(address, Asset.THB) - paid + received

    def available_thb(self, address: bytes, fee: int) -> int:
        """THB the body can spend once the fee is paid (the collector pays itself)."""
        return self.thb_after_fee(address, address, fee)

    def fee_exempt(self, sender: bytes, time: int, *, issuing: bool) -> bool:
        """Authorities, meters, and a licensed custodian issuing THB pay no minimum fee. (An
        IssueThb from a meter is not exempt: it fails NOT_CUSTODIAN or FEE_TOO_LOW either way.)"""
        if self.authority(sender) is not None:
            return True
        if issuing:
            return self.licence_valid(sender, LicenceKind.CUSTODIAN, time)
        return self.meter(sender) is not None

    # --- changes ------------------------------------------------------------------------
    def put(self, key: bytes, record: msgspec.Struct) -> None:
        self.records[key] = record

    def move(self, address: bytes, asset: Asset, delta: int) -> None:
        acct = self.account(address)
        assert acct is not None
        if asset is Asset.GRID:
            acct = msgspec.structs.replace(acct, grid_wh=acct.grid_wh + delta)
        else:
            acct = msgspec.structs.replace(acct, thb_satang=acct.thb_satang + delta)
        for value in (acct.grid_wh, acct.thb_satang):
            assert 0 <= value <= MAX_AMOUNT, f"the model itself went out of range: {acct}"
        self.put(accounts.account_key(address), acct)

    def count(self, field: str, amount: int) -> None:
        s = self.supply()
        self.put(
            accounts.SUPPLY_KEY, msgspec.structs.replace(s, **{field: getattr(s, field) + amount})
        )

    def open_account(self, address: bytes) -> None:
        self.records.setdefault(accounts.account_key(address), Account(0, 0, 0))

    def set_nonce(self, address: bytes, nonce: int) -> None:
        acct = self.account(address)
        assert acct is not None
        self.put(accounts.account_key(address), msgspec.structs.replace(acct, nonce=nonce))

    def certificate(self, certificate_id: int) -> certificates.Certificate | None:
        record = self.records.get(certificates.certificate_key(certificate_id))
        assert record is None or isinstance(record, certificates.Certificate)
        return record

    def certificate_ids(self) -> list[int]:
        prefix = b"cert/"
        return [int.from_bytes(k[len(prefix) :]) for k in self.records if k.startswith(prefix)]

    def day(self, time: int) -> int:
        """Local date as YYYYMMDD, worked out with datetime's time zones."""
        zone = datetime.timezone(datetime.timedelta(seconds=self.params.tariffs.utc_offset_seconds))
        return int(datetime.datetime.fromtimestamp(time, zone).strftime("%Y%m%d"))

    def carbon_writes(
        self, writes: dict[bytes, msgspec.Struct], who: bytes, zone: str, day: int, field: str,
        wh: int, g: int,
    ) -> None:  # fmt: skip
        """Add to the day's totals of `who` and of `zone` (field: "issued" or "retired")."""
        for totals_key in (
            certificates.participant_carbon_key(who, day),
            certificates.zone_carbon_key(zone, day),
        ):
            totals = writes.get(totals_key) or self.records.get(
                totals_key, certificates.CarbonTotals()
            )
            assert isinstance(totals, certificates.CarbonTotals)
            changed = {
                f"{field}_wh": getattr(totals, f"{field}_wh") + wh,
                f"{field}_avoided_g": getattr(totals, f"{field}_avoided_g") + g,
            }
            writes[totals_key] = msgspec.structs.replace(totals, **changed)

    def certify(
        self, address: bytes, meter: registry.Meter, covers_from: int, start: int, wh: int,
        height: int,
    ) -> tuple[dict[bytes, msgspec.Struct], list[Event]]:  # fmt: skip
        """The records and events a reading's renewable export makes: the carried Wh and
        then the reading's queue up in export order, and each full certificate's worth at
        the head of the queue is issued, up to the per-reading cap; the first chunk a
        certificate draws from dates it."""
        writes: dict[bytes, msgspec.Struct] = {}
        if not meter.kind.renewable or wh == 0:
            return writes, []
        key = certificates.accrual_key(address)
        acc = self.records.get(key, certificates.Accrual(0, 0, -1, 0))
        assert isinstance(acc, certificates.Accrual)
        seq = self.records.get(certificates.SEQUENCE_KEY, certificates.CertificateSequence(1))
        assert isinstance(seq, certificates.CertificateSequence)
        size, factor = self.params.rec_size_wh, self.params.emission_factor_g_per_kwh
        grams = size * factor // 1000
        queue = [[acc.remainder_from, acc.remainder_wh], [covers_from, wh]]
        queue = [chunk for chunk in queue if chunk[1]]
        events, day = [], self.day(start)
        next_id = seq.next_id
        while (
            sum(c[1] for c in queue) >= size
            and next_id - seq.next_id < self.params.rec_max_per_reading
        ):
            oldest, need = queue[0][0], size
            while need:
                took = min(need, queue[0][1])
                queue[0][1] -= took
                need -= took
                if queue[0][1] == 0:
                    queue.pop(0)
            writes[certificates.certificate_key(next_id)] = certificates.Certificate(
                next_id, meter.owner, meter.owner, address, meter.kind, meter.zone,
                oldest, start, size, factor, grams, height, day,
            )  # fmt: skip
            self.carbon_writes(writes, meter.owner, meter.zone, day, "issued", size, grams)
            attrs: dict[str, int | str | bytes] = {"id": next_id, "owner": meter.owner}
            attrs |= {"wh": size, "meter": address, "avoided_g": grams}
            events.append(Event("certificate_issued", attrs))
            next_id += 1
        remainder = sum(c[1] for c in queue)
        oldest = queue[0][0] if queue else -1
        issued = next_id - seq.next_id
        writes[key] = certificates.Accrual(
            acc.certified_wh + issued * size, remainder, oldest,
            acc.issued + issued,
        )  # fmt: skip
        if issued:
            writes[certificates.SEQUENCE_KEY] = certificates.CertificateSequence(next_id)
        return writes, events

    # --- shared rules ---------------------------------------------------------------------
    def distributor_reasons(self, signer: bytes, zone: str) -> Reasons:
        reasons: Reasons = set()
        z = self.records.get(registry.zone_key(zone))
        if z is None:
            reasons.add(errors.UnknownZone)
        auth = self.authority(signer)
        if (
            auth is None
            or registry.ROLE_DISTRIBUTION not in auth.roles
            or (isinstance(z, registry.Zone) and auth.code != z.distribution_authority)
        ):
            reasons.add(errors.Unauthorised)
        return reasons

    def regulator_reasons(self, signer: bytes) -> Reasons:
        auth = self.authority(signer)
        if auth is None or registry.ROLE_REGULATOR not in auth.roles:
            return {errors.Unauthorised}
        return set()


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.min_fee = 0
        self.rec_size = DEFAULTS.rec_size_wh
        self.rec_cap = DEFAULTS.rec_max_per_reading
        self.sb = fresh_cast()
        self.model = Model(self.sb.state)
        self.accepted: list[SignedTransaction] = [stx for _, stx in CAST_SETUP]
        self.log: list[tuple[BlockContext, SignedTransaction, Outcome]] = []

    @property
    def time(self) -> int:
        return self.sb.time

    # --- applying -----------------------------------------------------------------------
    def _apply(self, stx: SignedTransaction, reasons: Reasons) -> list[Event] | None:
        """Apply; check the accept/reject decision, the no-trace rule and the nonce step."""
        state, ctx = self.sb.state, self.sb.context
        root, size = state.root(), len(state)
        account_key = accounts.account_key(stx.tx.sender_address)
        before = state.get(account_key, Account)
        try:
            events = transition.apply(state, stx, ctx)
        except errors.Rejection as exc:
            self.log.append((ctx, stx, ("rejected", exc.code.encode())))
            event(f"{type(stx.tx.body).__name__}: {exc.code}")
            assert exc.code in CODES, f"{exc.code!r} is not a declared rejection code"
            assert type(exc) in errors.ALL_REJECTIONS
            assert type(exc) in reasons, (
                f"rejected with {type(exc).__name__} ({exc}); expected {names_of(reasons) or 'ok'}"
            )
            assert state.root() == root, "a rejected transaction changed the state root"
            assert len(state) == size, "a rejected transaction changed the record count"
            assert state.get(account_key, Account) == before
            return None
        self.log.append((ctx, stx, ("accepted", codec.encode(events))))
        event(f"{type(stx.tx.body).__name__}: accepted")
        assert not reasons, f"accepted, but expected one of {names_of(reasons)}"
        after = state.get(account_key, Account)
        assert before is not None and after is not None
        assert after.nonce == before.nonce + 1 == stx.tx.nonce + 1
        self.accepted.append(stx)
        return events

    def _submit(
        self,
        signer: PrivateKey,
        body: tx.Body,
        fee: int,
        reasons: Reasons,
        effect: Callable[[], None],
        expected_events: list[Event],
    ) -> None:
        """Sign with the right nonce and chain; on acceptance move the model the same way."""
        m, sender = self.model, signer.address
        account = m.account(sender)
        if account is None:
            reasons = {errors.UnknownSender}  # the envelope refuses it before anything else
        else:
            if fee < m.params.min_fee_satang and not m.fee_exempt(
                sender, self.time, issuing=isinstance(body, IssueThb)
            ):
                reasons = reasons | {errors.FeeTooLow}
            if fee > account.thb_satang:
                reasons = reasons | {errors.InsufficientBalance}
            if m.thb_after_fee(m.fee_collector, sender, fee) > MAX_AMOUNT:
                reasons = reasons | {errors.AmountOverflow}
        nonce = 0 if account is None else account.nonce
        stx = tx.make(signer, self.sb.chain_id, nonce, body, fee)
        events = self._apply(stx, reasons)
        if events is None:
            return
        if fee:
            m.move(sender, Asset.THB, -fee)
            m.move(m.fee_collector, Asset.THB, fee)
            paid = {"from": sender, "to": m.fee_collector, "amount": fee, **self._balances(
                sender, m.fee_collector, Asset.THB)}  # fmt: skip
            expected_events = [Event("fee_paid", paid), *expected_events]
        effect()
        m.set_nonce(sender, nonce + 1)
        assert events == [self._with_balances(e) for e in expected_events]

    def _balances(self, source: bytes | None, target: bytes | None, asset: Asset) -> dict[str, int]:
        """What a value event carries: the model's balances after its movement."""
        out = {}
        if source is not None:
            out["from_balance"] = self.model.balance(source, asset)
        if target is not None:
            out["to_balance"] = self.model.balance(target, asset)
        return out

    def _with_balances(self, event: Event) -> Event:
        """A handler's value event with the balances after it (each rule moves value once, so
        the model after the rule's effect holds them)."""
        a = event.attrs
        if event.kind == "transfer":
            asset = Asset[str(a["asset"])]
            moved = self._balances(bytes(a["from"]), bytes(a["to"]), asset)  # type: ignore[arg-type]
        elif event.kind in ("thb_issued", "minted"):
            asset = Asset.THB if event.kind == "thb_issued" else Asset.GRID
            moved = self._balances(None, bytes(a["to"]), asset)  # type: ignore[arg-type]
        elif event.kind == "thb_redeemed":
            moved = self._balances(bytes(a["custodian"]), None, Asset.THB)  # type: ignore[arg-type]
        else:
            return event
        return Event(event.kind, a | moved)

    @initialize(data=st.data())
    def first_production(self, data: st.DataObject) -> None:
        """Choose the chain's minimum fee (none, or a positive one under which the Cast must
        still set up), then seed some GRID: one interval on, the two solar meters report."""
        self.min_fee = data.draw(st.sampled_from([0, 0, 40]), label="minimum fee")
        self.rec_size = data.draw(
            st.sampled_from([2_000, 2_000, 777, DEFAULTS.rec_size_wh]), label="certificate size"
        )
        self.rec_cap = data.draw(
            st.sampled_from([DEFAULTS.rec_max_per_reading, 1, 2]), label="certificates per reading"
        )
        if (
            self.min_fee
            or self.rec_size != DEFAULTS.rec_size_wh
            or self.rec_cap != DEFAULTS.rec_max_per_reading
        ):
            self.sb = fresh_cast(self.min_fee, self.rec_size, self.rec_cap)
            self.model = Model(self.sb.state)
            assert self.model.params.min_fee_satang == self.min_fee
            assert self.model.params.rec_size_wh == self.rec_size
        self.sb.advance(INTERVAL)
        start = self.time - INTERVAL
        for meter_key in (HOME_METER, FACTORY_METER):
            meter = self.model.meter(meter_key.address)
            assert meter is not None
            limit = meter.rated_capacity_w * INTERVAL // 3600
            export = data.draw(st.integers(1, limit), label="first export")
            reasons = self._reading(meter_key, start, 0, meter.export_register_wh + export, 0)
            assert not reasons

    # --- drawing valid values, or (as the drawn plan says) anything -------------------
    def _plan(self, data: st.DataObject, *fields: str) -> frozenset[str]:
        """Which fields to draw from everything instead of from the valid choices: none
        (a transaction meant to succeed), one of them, or all of them at once. Shrinking
        moves towards the first choice: to the valid plan, then to the first field listed."""
        mode = data.draw(st.sampled_from(["valid", "one", "one", "all"]), label="plan")
        if mode == "valid":
            return frozenset()
        if mode == "all":
            return frozenset(fields)
        return frozenset([data.draw(st.sampled_from(fields), label="wild field")])

    @staticmethod
    def _pick(
        data: st.DataObject,
        label: str,
        valid: Sequence[T],
        anything: st.SearchStrategy[T],
        wild: bool,
    ) -> T:
        if valid and not wild:
            return data.draw(st.sampled_from(valid), label=label)
        return data.draw(anything, label=label)

    def _keys(self, predicate: Callable[[bytes], bool]) -> list[PrivateKey]:
        return [k for k, address in KEYED if predicate(address)]

    def _fee(
        self, data: st.DataObject, signer: PrivateKey, wild: bool, *, issuing: bool = False
    ) -> int:
        """A fee the signer can pay and the minimum allows (usually the least), or any fee."""
        m = self.model
        if wild:
            below = max(m.params.min_fee_satang - 1, 0)  # just under the minimum
            return data.draw(st.one_of(fees, st.just(below)), label="fee")
        exempt = m.fee_exempt(signer.address, self.time, issuing=issuing)
        least = 0 if exempt else m.params.min_fee_satang
        most = max(least, min(m.balance(signer.address, Asset.THB), least + 500))
        return data.draw(st.integers(least, most), label="fee")

    # --- tokens -------------------------------------------------------------------------
    @rule(data=st.data())
    def transfer(self, data: st.DataObject) -> None:
        m = self.model
        wild = self._plan(data, "amount", "to", "sender", "fee")
        asset = data.draw(st.sampled_from(Asset), label="asset")

        def may_send(a: bytes) -> bool:
            if m.account(a) is None or m.balance(a, asset) == 0:
                return False
            return asset is Asset.THB or (
                m.generating_capacity(a) <= m.params.small_prosumer_threshold_w
                or m.licence_valid(a, LicenceKind.SELLER, self.time)
            )

        sender = self._pick(data, "sender", self._keys(may_send), everyone, "sender" in wild)
        fee = self._fee(data, sender, "fee" in wild)
        if asset is Asset.THB:
            have = m.available_thb(sender.address, fee)
        else:
            have = m.balance(sender.address, asset)
        if "amount" in wild or have <= 0:
            amount = data.draw(amounts_around(have), label="amount")
        else:
            amount = data.draw(st.integers(1, have), label="amount")
        recipients = self._keys(lambda a: m.is_holder(a) and a != sender.address)
        recipients += [k for k in self._custodians() if k != sender] * 2  # so they can redeem
        to = self._pick(data, "to", recipients, everyone, "to" in wild)
        reasons: Reasons = set()
        if amount == 0:
            reasons.add(errors.InvalidAmount)
        if to.address == sender.address:
            reasons.add(errors.SelfTransfer)
        if not m.is_holder(to.address):
            reasons.add(errors.UnknownRecipient)
        if (
            asset is Asset.GRID
            and m.generating_capacity(sender.address) > m.params.small_prosumer_threshold_w
            and not m.licence_valid(sender.address, LicenceKind.SELLER, self.time)
        ):
            reasons.add(errors.UnlicensedSeller)
        if amount > have:
            reasons.add(errors.InsufficientBalance)
        if asset is Asset.THB:
            to_balance = m.thb_after_fee(to.address, sender.address, fee)
        else:
            to_balance = m.balance(to.address, asset)
        if to_balance + amount > MAX_AMOUNT:
            reasons.add(errors.AmountOverflow)

        def effect() -> None:
            m.move(sender.address, asset, -amount)
            m.move(to.address, asset, amount)

        attrs = {"from": sender.address, "to": to.address, "asset": asset.name, "amount": amount}
        body = Transfer(asset, to.address, amount)
        self._submit(sender, body, fee, reasons, effect, [Event("transfer", attrs)])

    def _custodians(self) -> list[PrivateKey]:
        return self._keys(lambda a: self.model.licence_valid(a, LicenceKind.CUSTODIAN, self.time))

    def _near_custodians(self) -> st.SearchStrategy[PrivateKey]:
        """Custodian participants whatever their licence (expired, revoked), or anyone."""
        return prefer(
            *self._keys(
                lambda a: (
                    (p := self.model.participant(a)) is not None
                    and p.kind is ParticipantKind.CUSTODIAN
                )
            )
        )

    @rule(data=st.data())
    def issue_thb(self, data: st.DataObject) -> None:
        m = self.model
        wild = self._plan(data, "sender", "to", "amount", "fee")
        sender = self._pick(
            data, "sender", self._custodians(), self._near_custodians(), "sender" in wild
        )
        # Custodians weighted up, so that they come to hold THB they can redeem.
        recipients = self._custodians() * 3 + self._keys(m.is_holder)
        to = self._pick(data, "to", recipients, everyone, "to" in wild)
        fee = self._fee(data, sender, "fee" in wild, issuing=True)
        issued = m.supply().thb_issued_satang
        to_thb = m.thb_after_fee(to.address, sender.address, fee)
        headroom = MAX_AMOUNT - max(issued, to_thb)  # the most that still fits 63 bits
        amounts = st.integers(1, 10**10)
        if "amount" in wild:
            edges = [headroom, headroom + 1, U64_MAX]
            amounts = st.one_of(
                st.integers(0, 10**12), st.sampled_from([min(max(e, 0), U64_MAX) for e in edges])
            )
        amount = data.draw(amounts, label="amount")
        reasons: Reasons = set()
        if amount == 0:
            reasons.add(errors.InvalidAmount)
        if not m.licence_valid(sender.address, LicenceKind.CUSTODIAN, self.time):
            reasons.add(errors.NotCustodian)
        if not m.is_holder(to.address):
            reasons.add(errors.UnknownRecipient)
        if to_thb + amount > MAX_AMOUNT or issued + amount > MAX_AMOUNT:
            reasons.add(errors.AmountOverflow)

        def effect() -> None:
            m.move(to.address, Asset.THB, amount)
            m.count("thb_issued_satang", amount)

        attrs = {"custodian": sender.address, "to": to.address, "amount": amount}
        event = Event("thb_issued", attrs | {"total": issued + amount})
        self._submit(sender, IssueThb(to.address, amount), fee, reasons, effect, [event])

    @rule(data=st.data())
    def redeem_thb(self, data: st.DataObject) -> None:
        m = self.model
        wild = self._plan(data, "amount", "sender", "fee")
        holding = [k for k in self._custodians() if m.balance(k.address, Asset.THB)]
        sender = self._pick(data, "sender", holding, self._near_custodians(), "sender" in wild)
        fee = self._fee(data, sender, "fee" in wild)
        have = m.available_thb(sender.address, fee)
        if "amount" in wild or have <= 0:
            amount = data.draw(amounts_around(have), label="amount")
        else:
            amount = data.draw(st.integers(1, have), label="amount")
        reasons: Reasons = set()
        if amount == 0:
            reasons.add(errors.InvalidAmount)
        if not m.licence_valid(sender.address, LicenceKind.CUSTODIAN, self.time):
            reasons.add(errors.NotCustodian)
        if amount > have:
            reasons.add(errors.InsufficientBalance)
        if m.supply().thb_redeemed_satang + amount > MAX_AMOUNT:
            reasons.add(errors.AmountOverflow)

        def effect() -> None:
            m.move(sender.address, Asset.THB, -amount)
            m.count("thb_redeemed_satang", amount)

        total = m.supply().thb_redeemed_satang + amount
        event = Event(
            "thb_redeemed", {"custodian": sender.address, "amount": amount, "total": total}
        )
        self._submit(sender, RedeemThb(amount), fee, reasons, effect, [event])

    # --- registry -----------------------------------------------------------------------
    def _zone_and_distributor(
        self, data: st.DataObject, wild: frozenset[str]
    ) -> tuple[str, PrivateKey]:
        zone = data.draw(zones if "zone" in wild else st.sampled_from(KNOWN_ZONES), label="zone")
        distributor = [MEA] if zone == "BKK" else [PEA] if zone in KNOWN_ZONES else []
        signer = self._pick(data, "signer", distributor, everyone, "signer" in wild)
        return zone, signer

    def _unregistered(self, address: bytes) -> bool:
        m = self.model
        return not (m.participant(address) or m.authority(address) or m.meter(address))

    @rule(data=st.data())
    def register_participant(self, data: st.DataObject) -> None:
        m = self.model
        wild = self._plan(data, "account", "signer", "zone", "fee")
        zone, signer = self._zone_and_distributor(data, wild)
        fresh = self._keys(self._unregistered)
        account = self._pick(data, "account", fresh, everyone, "account" in wild).address
        kind = data.draw(st.sampled_from(ParticipantKind), label="kind")
        name = data.draw(names, label="name")
        fee = self._fee(data, signer, "fee" in wild)
        reasons = m.distributor_reasons(signer.address, zone)
        if not self._unregistered(account):
            reasons.add(errors.AlreadyRegistered)
        auth = m.authority(signer.address)
        time = self.time

        def effect() -> None:
            assert auth is not None
            record = registry.Participant(zone, kind, name, auth.code, time)
            m.put(registry.participant_key(account), record)
            m.open_account(account)

        body = RegisterParticipant(account, zone, kind, name)
        event = Event("participant_registered", {"account": account, "zone": zone})
        self._submit(signer, body, fee, reasons, effect, [event])

    @rule(data=st.data())
    def register_meter(self, data: st.DataObject) -> None:
        m = self.model
        wild = self._plan(data, "meter", "owner", "capacity", "signer", "zone", "fee")
        zone, signer = self._zone_and_distributor(data, wild)
        fresh = self._keys(self._unregistered)
        meter_key = self._pick(data, "meter", fresh, everyone, "meter" in wild)
        owners = self._keys(lambda a: m.participant(a) is not None)
        owner = self._pick(data, "owner", owners, everyone, "owner" in wild).address
        kind = data.draw(st.sampled_from(MeterKind), label="kind")
        # Capacities that take the owner's generation to the seller threshold or just over it.
        headroom = m.params.small_prosumer_threshold_w - m.generating_capacity(owner)
        capacities = st.one_of(
            st.sampled_from([c for c in (headroom, headroom + 1) if c > 0] or [1]),
            st.integers(1, 60_000),
        )
        if "capacity" in wild:
            capacities = st.integers(0, 60_000)
        capacity = data.draw(capacities, label="capacity")
        import0 = data.draw(st.integers(0, 10**6), label="import register")
        export0 = data.draw(st.integers(0, 10**6), label="export register")
        fee = self._fee(data, signer, "fee" in wild)
        address = meter_key.address
        reasons = m.distributor_reasons(signer.address, zone)
        if m.participant(owner) is None:
            reasons.add(errors.UnknownParticipant)
        if capacity == 0:
            reasons.add(errors.InvalidCapacity)
        if m.meter(address) is not None:
            reasons.add(errors.MeterAlreadyRegistered)
        if m.participant(address) is not None or m.authority(address) is not None:
            reasons.add(errors.AlreadyRegistered)
        time = self.time

        def effect() -> None:
            first = time - time % m.params.interval_seconds
            meter = registry.Meter(
                owner=owner,
                zone=zone,
                kind=kind,
                rated_capacity_w=capacity,
                public_key=meter_key.public_key,
                registered_at=time,
                first_interval=first,
                last_interval=-1,
                import_register_wh=import0,
                export_register_wh=export0,
                baseline_export_wh=export0,
            )
            m.put(registry.meter_key(address), meter)
            index_key = registry.owner_meters_key(owner)
            index = m.records.get(index_key, registry.OwnerMeters((), 0))
            assert isinstance(index, registry.OwnerMeters)
            generating = index.generating_capacity_w + (capacity if produces(kind) else 0)
            m.put(index_key, registry.OwnerMeters((*index.meters, address), generating))
            m.open_account(address)

        body = RegisterMeter(meter_key.public_key, owner, zone, kind, capacity, import0, export0)
        event = Event("meter_registered", {"meter": address, "owner": owner, "zone": zone})
        self._submit(signer, body, fee, reasons, effect, [event])

    @rule(data=st.data())
    def grant_licence(self, data: st.DataObject) -> None:
        m = self.model
        wild = self._plan(data, "expiry", "kind", "holder", "signer", "fee")
        signer = self._pick(data, "signer", [ERC], everyone, "signer" in wild)
        holders = self._keys(lambda a: m.participant(a) is not None)
        # Custodians that lost their licence weighted up, so that THB can flow again.
        unlicensed = self._keys(
            lambda a: (
                (p := m.participant(a)) is not None
                and p.kind is ParticipantKind.CUSTODIAN
                and not m.licence_valid(a, LicenceKind.CUSTODIAN, self.time)
            )
        )
        holders += unlicensed * 3
        holder = self._pick(data, "holder", holders, everyone, "holder" in wild).address
        participant = m.participant(holder)
        kinds = [LicenceKind.SELLER]
        if participant is not None and participant.kind is ParticipantKind.CUSTODIAN:
            kinds += [LicenceKind.CUSTODIAN] * 2
        kind = self._pick(data, "kind", kinds, st.sampled_from(LicenceKind), "kind" in wild)
        offsets = st.one_of(st.integers(1, 4 * INTERVAL), st.integers(1, YEAR))
        if "expiry" in wild:
            offsets = st.integers(-2 * INTERVAL, YEAR)
        time = self.time
        expires = max(0, time + data.draw(offsets, label="expiry offset"))
        fee = self._fee(data, signer, "fee" in wild)
        reasons = m.regulator_reasons(signer.address)
        if participant is None:
            reasons.add(errors.UnknownParticipant)
        if expires <= time:
            reasons.add(errors.InvalidExpiry)
        if (
            kind is LicenceKind.CUSTODIAN
            and participant is not None
            and participant.kind is not ParticipantKind.CUSTODIAN
        ):
            reasons.add(errors.InvalidParticipantKind)

        def effect() -> None:
            m.put(registry.licence_key(holder, kind), registry.Licence(time, expires, 0))

        attrs = {"holder": holder, "kind": kind.name, "expires_at": expires}
        body = GrantLicence(holder, kind, expires)
        self._submit(signer, body, fee, reasons, effect, [Event("licence_granted", attrs)])

    @rule(data=st.data())
    def revoke_licence(self, data: st.DataObject) -> None:
        m = self.model
        wild = self._plan(data, "licence", "signer", "fee")
        signer = self._pick(data, "signer", [ERC], everyone, "signer" in wild)
        time = self.time
        held = [
            (address, kind)
            for _, address in KEYED
            for kind in LicenceKind
            if m.licence_valid(address, kind, time)
        ]
        anything = st.tuples(everyone.map(lambda k: k.address), st.sampled_from(LicenceKind))
        granted = [  # every licence ever granted, expired and revoked ones too
            (key[4:-1], LicenceKind(key[-1])) for key in m.records if key.startswith(b"lic/")
        ]
        if granted:
            anything = st.one_of(st.sampled_from(granted), anything)
        holder, kind = self._pick(data, "licence", held, anything, "licence" in wild)
        fee = self._fee(data, signer, "fee" in wild)
        reasons = m.regulator_reasons(signer.address)
        lic = m.licence(holder, kind)
        if not m.licence_valid(holder, kind, time):
            reasons.add(errors.LicenceNotFound)

        def effect() -> None:
            assert lic is not None
            m.put(registry.licence_key(holder, kind), msgspec.structs.replace(lic, revoked_at=time))

        event = Event("licence_revoked", {"holder": holder, "kind": kind.name})
        self._submit(signer, RevokeLicence(holder, kind), fee, reasons, effect, [event])

    # --- metering -----------------------------------------------------------------------
    def _reading(
        self, signer: PrivateKey, start: int, import_wh: int, export_wh: int, fee: int
    ) -> Reasons:
        """Submit a reading; returns the reasons the model expected it to be refused for."""
        m, p, time, length = self.model, self.model.params, self.time, INTERVAL
        address = signer.address
        meter = m.meter(address)
        reasons: Reasons = set()
        if meter is None:
            reasons.add(errors.UnknownMeter)
            covers_from = imported = exported = 0
        else:
            if start % length:
                reasons.add(errors.MisalignedInterval)
            if start + length > time + p.reading_clock_skew_seconds:
                reasons.add(errors.ReadingOutsideWindow)
            if start + p.reading_max_age_seconds < time:
                reasons.add(errors.ReadingOutsideWindow)
            if start < meter.first_interval:
                reasons.add(errors.ReadingBeforeRegistration)
            if start == meter.last_interval:
                reasons.add(errors.DuplicateReading)
            if start < meter.last_interval:
                reasons.add(errors.ReadingOutOfOrder)
            imported = import_wh - meter.import_register_wh
            exported = export_wh - meter.export_register_wh
            if imported < 0 or exported < 0:
                reasons.add(errors.RegisterNotMonotonic)
            if exported > 0 and meter.kind is MeterKind.CONSUMPTION:
                reasons.add(errors.ExportOnConsumptionMeter)
            last = meter.last_interval
            covers_from = meter.first_interval if last < 0 else last + length
            covered = (start - covers_from) // length + 1
            # At most rated power for the covered time, in whole Wh (W * s / 3600, rounded down).
            if exported > meter.rated_capacity_w * length // 3600 * covered:
                reasons.add(errors.OverCapacity)
            most = max(m.supply().grid_minted_wh, m.balance(meter.owner, Asset.GRID))
            if most + exported > MAX_AMOUNT:
                reasons.add(errors.AmountOverflow)
        height = self.sb.height

        def effect() -> None:
            assert meter is not None
            updated = msgspec.structs.replace(
                meter,
                last_interval=start,
                import_register_wh=import_wh,
                export_register_wh=export_wh,
            )
            m.put(registry.meter_key(address), updated)
            record = metering.ReadingRecord(
                meter.owner, meter.zone, covers_from, imported, exported, exported, height
            )
            m.put(metering.reading_key(address, start), record)
            if exported:
                m.move(meter.owner, Asset.GRID, exported)
                m.count("grid_minted_wh", exported)
            m.records.update(cert_writes)

        attrs = {"meter": address, "interval": start, "import_wh": imported, "export_wh": exported}
        events = [Event("reading", attrs)]
        if exported and meter is not None:
            total = m.supply().grid_minted_wh + exported
            minted = {"to": meter.owner, "meter": address, "interval": start, "amount": exported,
                      "total": total}  # fmt: skip
            events.append(Event("minted", minted))
        cert_writes: dict[bytes, msgspec.Struct] = {}
        if meter is not None and not reasons:  # a refused reading would issue nothing
            cert_writes, issued = m.certify(address, meter, covers_from, start, exported, height)
            events += issued
        body = MeterReading(start, import_wh, export_wh)
        self._submit(signer, body, fee, reasons, effect, events)
        return reasons

    @rule(data=st.data())
    def meter_reading(self, data: st.DataObject) -> None:
        """Any signer, any interval near the meter's history, registers that may go backwards
        or beyond capacity: mostly invalid, sometimes valid."""
        meters = self._keys(lambda a: self.model.meter(a) is not None)
        signer = data.draw(prefer(*meters), label="signer")
        meter = self.model.meter(signer.address)
        newest = (self.time + DEFAULTS.reading_clock_skew_seconds - INTERVAL) // INTERVAL * INTERVAL
        anchors = [newest]
        if meter is not None:
            anchors.append(meter.first_interval)
            if meter.last_interval >= 0:
                anchors += [meter.last_interval, meter.last_interval + INTERVAL]
        anchor = data.draw(st.sampled_from(anchors), label="anchor")
        shift = data.draw(
            st.one_of(
                st.just(0),
                st.integers(-3, 3),
                st.integers(-MAX_AGE_INTERVALS - 3, -MAX_AGE_INTERVALS + 3),  # too old
                st.integers(4, 10**6),  # far future
            ),
            label="interval shift",
        )
        misalign = data.draw(st.one_of(st.just(0), st.integers(1, INTERVAL - 1)), label="offset")
        start = max(0, anchor + shift * INTERVAL + misalign)
        imp, exp = (0, 0) if meter is None else (meter.import_register_wh, meter.export_register_wh)
        per_interval = 1_000 if meter is None else meter.rated_capacity_w * INTERVAL // 3600
        import_delta = data.draw(
            st.one_of(st.integers(0, 5_000), st.integers(-5, -1)), label="import delta"
        )
        export_delta = data.draw(
            st.one_of(
                st.integers(0, per_interval),
                st.sampled_from([per_interval, per_interval + 1]),
                st.integers(-5, -1),
                st.integers(0, 10**8),
            ),
            label="export delta",
        )
        fee = data.draw(st.one_of(st.just(0), fees), label="fee")
        self._reading(signer, start, max(0, imp + import_delta), max(0, exp + export_delta), fee)

    @rule(data=st.data())
    def planned_reading(self, data: st.DataObject) -> None:
        """A registered meter's next reading, valid unless the plan breaks the interval
        (replayed, earlier, misaligned, not ended, too old), a register (going backwards) or
        the export (just over capacity). Wrong signers and fees are `meter_reading`'s job."""
        m, p = self.model, self.model.params
        wild = self._plan(data, "export", "interval", "import")
        registered = self._keys(lambda a: m.meter(a) is not None)
        signer = data.draw(st.sampled_from(registered), label="meter")
        meter = m.meter(signer.address)
        assert meter is not None
        skew = p.reading_clock_skew_seconds
        first, last = meter.first_interval, meter.last_interval
        target = max(last + INTERVAL, first)  # the next interval the meter may report
        if target + INTERVAL > self.time + skew:  # move the clock until it has ended
            self.sb.advance(target + INTERVAL - skew - self.time)
        imp, exp = meter.import_register_wh, meter.export_register_wh
        per_interval = meter.rated_capacity_w * INTERVAL // 3600
        newest = (self.time + skew - INTERVAL) // INTERVAL * INTERVAL
        oldest = -(-(self.time - p.reading_max_age_seconds) // INTERVAL) * INTERVAL
        low = max(target, oldest)
        start = INTERVAL * data.draw(st.integers(low // INTERVAL, newest // INTERVAL))
        if "interval" in wild:
            start = data.draw(
                st.sampled_from(
                    [
                        last,  # replayed
                        target - INTERVAL,  # earlier than allowed
                        start + data.draw(st.integers(1, INTERVAL - 1)),  # misaligned
                        newest + INTERVAL,  # not yet ended (the first such interval)
                        oldest - INTERVAL,  # just older than the window
                        first - INTERVAL,  # before registration
                    ]
                ),
                label="bad interval",
            )
            start = max(start, 0)
        covered = max((start - target) // INTERVAL + 1, 1)
        limit = per_interval * covered
        import_wh = imp + data.draw(st.integers(0, 10_000), label="import")
        if "import" in wild:
            import_wh = max(0, imp - data.draw(st.integers(1, 5), label="import drop"))
        can_export = meter.kind is not MeterKind.CONSUMPTION
        export_wh = exp + (data.draw(st.integers(0, limit), label="export") if can_export else 0)
        if "export" in wild:
            export_wh = data.draw(
                st.sampled_from([exp + limit + 1, exp + limit, exp + 1, max(0, exp - 1)]),
                label="bad export",
            )
        reasons = self._reading(signer, start, import_wh, export_wh, 0)
        assert wild or not reasons, f"a valid plan built a bad reading: {names_of(reasons)}"

    # --- certificates -------------------------------------------------------------------
    def _certificate(self, data: st.DataObject, wild: bool) -> int:
        """An active certificate's id, or (wild) any id: retired, unknown, or one of those."""
        m = self.model
        ids = m.certificate_ids()
        active = [i for i in ids if (c := m.certificate(i)) is not None and not c.retired]
        anything = st.one_of(st.sampled_from([0, len(ids) + 1, U64_MAX]), st.integers(0, 50))
        if ids:
            anything = st.one_of(st.sampled_from(ids), anything)
        return self._pick(data, "certificate", active, anything, wild)

    def _holder_reasons(self, certificate_id: int, sender: bytes) -> Reasons:
        cert = self.model.certificate(certificate_id)
        if cert is None:
            return {errors.UnknownCertificate}
        reasons: Reasons = set()
        if cert.retired:
            reasons.add(errors.CertificateRetired)
        if cert.owner != sender:
            reasons.add(errors.NotCertificateOwner)
        return reasons

    def _owner_of(self, certificate_id: int) -> list[PrivateKey]:
        cert = self.model.certificate(certificate_id)
        return [] if cert is None else self._keys(lambda a: a == cert.owner)

    @rule(data=st.data())
    def transfer_certificate(self, data: st.DataObject) -> None:
        m = self.model
        wild = self._plan(data, "certificate", "sender", "to", "fee")
        certificate_id = self._certificate(data, "certificate" in wild)
        owner = self._owner_of(certificate_id)
        sender = self._pick(data, "sender", owner, everyone, "sender" in wild)
        others = self._keys(lambda a: m.participant(a) is not None and a != sender.address)
        to = self._pick(data, "to", others, everyone, "to" in wild).address
        fee = self._fee(data, sender, "fee" in wild)
        reasons = self._holder_reasons(certificate_id, sender.address)
        if m.participant(to) is None:
            reasons.add(errors.RecipientNotParticipant)
        if to == sender.address:
            reasons.add(errors.SelfTransfer)
        cert = m.certificate(certificate_id)

        def effect() -> None:
            assert cert is not None
            key = certificates.certificate_key(certificate_id)
            m.put(key, msgspec.structs.replace(cert, owner=to))

        attrs = {"id": certificate_id, "from": sender.address, "to": to}
        body = TransferCertificate(certificate_id, to)
        self._submit(sender, body, fee, reasons, effect, [Event("certificate_transferred", attrs)])

    @rule(data=st.data())
    def retire_certificate(self, data: st.DataObject) -> None:
        m = self.model
        wild = self._plan(data, "certificate", "sender", "beneficiary", "fee")
        certificate_id = self._certificate(data, "certificate" in wild)
        sender = self._pick(
            data, "sender", self._owner_of(certificate_id), everyone, "sender" in wild
        )
        limit = m.params.rec_beneficiary_max_chars
        beneficiary = data.draw(
            st.one_of(
                st.sampled_from(["", "  ", "a\nb", "x" * limit, "x" * (limit + 1)]),
                st.text(max_size=limit + 2),
            )
            if "beneficiary" in wild
            else names.filter(str.strip),
            label="beneficiary",
        )
        fee = self._fee(data, sender, "fee" in wild)
        reasons = self._holder_reasons(certificate_id, sender.address)
        if not beneficiary.strip() or not beneficiary.isprintable() or len(beneficiary) > limit:
            reasons.add(errors.InvalidBeneficiary)
        cert, day = m.certificate(certificate_id), m.day(self.time)

        def effect() -> None:
            assert cert is not None
            retired = msgspec.structs.replace(cert, retire_day=day, beneficiary=beneficiary)
            writes: dict[bytes, msgspec.Struct] = {
                certificates.certificate_key(certificate_id): retired
            }
            m.carbon_writes(
                writes, sender.address, cert.zone, day, "retired", cert.energy_wh, cert.avoided_g
            )
            m.records.update(writes)

        attrs: dict[str, int | str | bytes] = {"id": certificate_id, "owner": sender.address}
        attrs |= {"beneficiary": beneficiary, "avoided_g": 0 if cert is None else cert.avoided_g}
        body = RetireCertificate(certificate_id, beneficiary)
        self._submit(sender, body, fee, reasons, effect, [Event("certificate_retired", attrs)])

    @rule(
        seconds=st.one_of(
            st.integers(1, 4 * INTERVAL),
            st.sampled_from([INTERVAL, 86_400, DEFAULTS.reading_max_age_seconds + INTERVAL]),
        )
    )
    def advance_clock(self, seconds: int) -> None:
        self.sb.advance(seconds)

    # --- envelopes ----------------------------------------------------------------------
    @rule(data=st.data())
    def bad_envelope(self, data: st.DataObject) -> None:
        """Wrong chain id, wrong nonce and forged signatures, alone or together."""
        signer = data.draw(prefer(OFFICE, HOME, CUSTODIAN, MEA, HOME_METER), label="signer")
        body = data.draw(
            st.sampled_from(
                [
                    Transfer(Asset.THB, EGAT.address, 1),
                    IssueThb(OFFICE.address, 5),
                    RedeemThb(1),
                    MeterReading(0, 0, 0),
                ]
            ),
            label="body",
        )
        fee = data.draw(fees, label="fee")
        wrong_chain = data.draw(st.booleans(), label="wrong chain")
        shift = data.draw(
            st.one_of(st.just(0), st.integers(-3, -1), st.integers(1, 2**40)), label="nonce shift"
        )
        forgery = data.draw(
            st.sampled_from([None, "other key", "tampered", "random bytes"]), label="forgery"
        )
        account = self.model.account(signer.address)
        expected = 0 if account is None else account.nonce
        nonce = expected + shift
        if nonce < 0 or not (wrong_chain or shift or forgery):
            nonce = expected + 1  # make sure something is wrong
        chain = self.sb.chain_id
        if wrong_chain:
            chain = data.draw(
                st.text(string.printable, min_size=1, max_size=64).filter(lambda c: c != chain),
                label="chain id",
            )
        transaction = Transaction(chain, nonce, signer.public_key, fee, body)
        signature = signer.sign(transaction.signing_bytes())
        if forgery == "other key":
            impostor = data.draw(everyone.filter(lambda k: k != signer), label="impostor")
            signature = impostor.sign(transaction.signing_bytes())
        elif forgery == "tampered":  # a genuine signature over a different fee
            transaction = msgspec.structs.replace(transaction, fee=fee ^ 1)
        elif forgery == "random bytes":
            signature = data.draw(st.binary(min_size=64, max_size=64), label="signature")
        reasons: Reasons = set()
        if wrong_chain:
            reasons.add(errors.WrongChainId)
        if forgery:
            reasons.add(errors.InvalidSignature)
        if account is None:
            reasons.add(errors.UnknownSender)
        elif nonce < expected:
            reasons.add(errors.NonceReplayed)
        elif nonce > expected:
            reasons.add(errors.NonceGap)
        assert reasons
        self._apply(SignedTransaction(transaction, signature), reasons)

    @rule(data=st.data())
    def replay_accepted(self, data: st.DataObject) -> None:
        stx = data.draw(st.sampled_from(self.accepted), label="replayed")
        self._apply(stx, {errors.NonceReplayed})

    # --- after every step ---------------------------------------------------------------
    @invariant()
    def ledger_matches_model(self) -> None:
        state = self.sb.state
        # check_all includes the incremental root == recompute_root() check.
        invariants.check_all(state)
        actual = dict(state.items())
        if actual != self.model.records:
            keys = actual.keys() | self.model.records.keys()
            diff = [
                (k, actual.get(k), self.model.records.get(k))
                for k in sorted(keys)
                if actual.get(k) != self.model.records.get(k)
            ]
            raise AssertionError(f"ledger (left) and model (right) differ: {diff[:5]}")

    def teardown(self) -> None:
        """The same signed transactions, decoded from their wire bytes and applied to a fresh
        sandbox with the root computed only at the end, give the same everything."""
        replay = fresh_cast(self.min_fee, self.rec_size, self.rec_cap).state
        for ctx, stx, outcome in self.log:
            assert outcome_of(replay, tx.decode(stx.encode()), ctx) == outcome
        assert replay.root() == self.sb.state.root()
        assert state_bytes(replay) == state_bytes(self.sb.state)


LedgerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase


# --- determinism over a pre-drawn sequence --------------------------------------------------
_RULES = (
    "transfer",
    "issue_thb",
    "redeem_thb",
    "register_participant",
    "register_meter",
    "grant_licence",
    "revoke_licence",
    "meter_reading",
    "planned_reading",
    "bad_envelope",
    "replay_accepted",
    "advance_clock",
    "transfer_certificate",
    "retire_certificate",
)


def test_fresh_cast_is_the_conftest_cast() -> None:
    sb = fresh_cast()
    assert state_bytes(sb.state) == state_bytes(_cast.sb.state)
    assert sb.state.root() == _cast.sb.state.root() == sb.state.recompute_root()
    assert len(CAST_SETUP) >= 10


@settings(max_examples=30, deadline=None)
@given(data=st.data(), length=st.integers(1, 40))
def test_same_signed_sequence_gives_identical_ledgers(data: st.DataObject, length: int) -> None:
    # Draw a sequence of signed transactions, valid and not, with the machine's own rules
    # (which check every outcome against the model as they go).
    machine = LedgerMachine()
    machine.first_production(data)
    for _ in range(length):
        name = data.draw(st.sampled_from(_RULES), label="rule")
        if name == "advance_clock":
            machine.advance_clock(data.draw(st.integers(1, 4 * INTERVAL), label="seconds"))
        else:
            getattr(machine, name)(data)
    script = [(ctx, stx) for ctx, stx, _ in machine.log]
    expected = [outcome for _, _, outcome in machine.log]

    def run(*, wire: bool, root_every_step: bool) -> tuple[list[Outcome], list[bytes], bytes]:
        state = fresh_cast(machine.min_fee, machine.rec_size, machine.rec_cap).state
        outcomes, roots = [], []
        for ctx, stx in script:
            outcomes.append(outcome_of(state, tx.decode(stx.encode()) if wire else stx, ctx))
            if root_every_step:
                roots.append(state.root())
        invariants.check_all(state)
        return outcomes, roots, codec.encode(state_bytes(state))

    a_outcomes, a_roots, a_bytes = run(wire=False, root_every_step=True)
    b_outcomes, _, b_bytes = run(wire=True, root_every_step=False)
    assert a_outcomes == b_outcomes == expected
    assert a_bytes == b_bytes == codec.encode(state_bytes(machine.sb.state))
    assert a_roots[-1] == machine.sb.state.root() == machine.sb.state.recompute_root()
    # Every accepted transaction changes the root (at least the sender's nonce moves).
    previous = [
        fresh_cast(machine.min_fee, machine.rec_size, machine.rec_cap).state.root(),
        *a_roots[:-1],
    ]
    for (kind, _), before, after in zip(a_outcomes, previous, a_roots, strict=True):
        assert (before != after) == (kind == "accepted")


# --- the minimum fee ------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(min_fee=st.integers(1, 10**6), fee=st.integers(0, 2 * 10**6))
def test_minimum_fee_binds_participants_not_authorities_or_meters(min_fee: int, fee: int) -> None:
    net = Net(sandbox_with_params(min_fee_satang=min_fee))
    # Authorities are exempt from the minimum: a zero fee is enough ...
    member = net.register("fee/member", "BKK", ParticipantKind.HOUSEHOLD)
    meter = net.add_meter("fee/member", member, "BKK", MeterKind.SOLAR, 5_000)
    body = RegisterParticipant(key("fee/other").address, "BKK", ParticipantKind.HOUSEHOLD, "o")
    if fee == 0:
        net.ok(net.mea, body, fee)
    else:  # ... but a positive fee is still paid, and authorities start with no THB.
        net.rejects(net.mea, body, errors.InsufficientBalance, "INSUFFICIENT_BALANCE", fee)
    # A participant must pay at least the minimum.
    transfer = Transfer(Asset.THB, net.egat.address, 1)
    if fee < min_fee:
        net.rejects(member, transfer, errors.FeeTooLow, "FEE_TOO_LOW", fee)
    else:
        net.rejects(member, transfer, errors.InsufficientBalance, "INSUFFICIENT_BALANCE", fee)
    # Meters are exempt too.
    net.sb.advance(INTERVAL)
    reading = MeterReading(net.last_ended_interval(), 0, 10)
    if fee == 0:
        net.ok(meter, reading, fee)
        assert net.grid(member.address) == 10
    else:
        net.rejects(meter, reading, errors.InsufficientBalance, "INSUFFICIENT_BALANCE", fee)
