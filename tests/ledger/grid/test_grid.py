"""Grid management (tags 15-18): status updates and their rejections, capacity cuts with
curtailment, zone import headroom, frequency excursions and emergencies, and emergency
priority in the mempool. Every fact is read back from the ledger state."""

from __future__ import annotations

import pytest

from gridtokenx.chain.mempool import Mempool
from gridtokenx.ledger import accounts, registry
from gridtokenx.ledger.grid import records as grid
from gridtokenx.ledger.market import bookkeeping, paths, records
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.ledger.state import Overlay
from gridtokenx.wire import errors, tx
from gridtokenx.wire.crypto import PrivateKey
from gridtokenx.wire.tx import (
    ClearEmergency,
    DeclareEmergency,
    DistributionStatus,
    LinkStatus,
    PlaceOrder,
    SetZoneHalt,
    Side,
    TransmissionStatus,
    ZoneBalance,
)
from tests.ledger.market.test_market import Market, licensed_factory, trade_events

BUY, SELL = Side.BUY, Side.SELL
NORMAL = 50_000


@pytest.fixture
def mk(sb: Sandbox) -> Market:
    return Market(sb)


def status(mk: Market, *links: LinkStatus, frequency: int = NORMAL, at: int | None = None) -> list:
    body = TransmissionStatus(mk.sb.time if at is None else at, frequency, links)
    return mk.ok(mk.egat, body)


def halted(mk: Market, zone: str) -> records.ZoneHalt | None:
    return mk.sb.state.get(records.halt_key(zone), records.ZoneHalt)


# --- status updates ------------------------------------------------------------------------
def test_transmission_status_records_frequency_links_and_zone_balances(mk: Market) -> None:
    body = TransmissionStatus(
        mk.sb.time,
        50_020,
        (LinkStatus("CEN", "BKK", 600_000, 450_000),),
        (ZoneBalance("BKK", 2_100_000, 9_300_000),),
    )
    events = mk.ok(mk.egat, body)
    state = mk.sb.state.overlay()
    assert grid.transmission(state) == grid.TransmissionState(mk.sb.time, 50_020, "EGAT")
    # Stored in sorted orientation: 450 MW CEN->BKK is -450 MW BKK->CEN.
    link = state.get(grid.link_state_key("BKK", "CEN"), grid.LinkState)
    assert link == grid.LinkState(mk.sb.time, 600_000, -450_000)
    assert grid.link_capacity_kw(state, "BKK", "CEN") == 600_000
    assert grid.link_capacity_kw(state, "BKK", "EST") == 400_000  # genesis, not reported
    balance = state.get(grid.zone_balance_key("BKK"), grid.ZoneBalanceState)
    assert balance == grid.ZoneBalanceState(mk.sb.time, 2_100_000, 9_300_000)
    assert [e.kind for e in events] == ["transmission_status", "link_capacity"]
    assert events[1].attrs == {"link": "BKK-CEN", "from_kw": 800_000, "to_kw": 600_000}


def test_distribution_status_by_the_zones_distributor(mk: Market) -> None:
    mk.ok(mk.mea, DistributionStatus(mk.sb.time, "BKK", 8_000, 40))
    mk.ok(mk.pea, DistributionStatus(mk.sb.time, "CEN", 5_000, 100))
    state = mk.sb.state.overlay()
    assert mk.sb.state.get(grid.distribution_key("BKK"), grid.DistributionState) == (
        grid.DistributionState(mk.sb.time, "MEA", 8_000, 40)
    )
    assert grid.import_room_wh(state, mk.T, "BKK", 900) == 10_000  # 40 kW x 15 min
    assert grid.import_room_wh(state, mk.T, "NTH", 900) is None  # not reported: no limit


def test_status_authority_rejections(mk: Market) -> None:
    now = mk.sb.time
    for signer in (mk.mea, mk.erc, mk.office):
        mk.rejects(signer, TransmissionStatus(now, NORMAL), errors.Unauthorised, "UNAUTHORISED")
    mk.rejects(
        mk.pea, DistributionStatus(now, "BKK", 1, 1), errors.Unauthorised, "UNAUTHORISED"
    )  # Bangkok is MEA's
    mk.rejects(mk.mea, DistributionStatus(now, "CEN", 1, 1), errors.Unauthorised, "UNAUTHORISED")
    mk.rejects(mk.egat, DistributionStatus(now, "CEN", 1, 1), errors.Unauthorised, "UNAUTHORISED")
    mk.rejects(mk.pea, DistributionStatus(now, "XX", 1, 1), errors.UnknownZone, "UNKNOWN_ZONE")


def test_stale_future_and_out_of_order_updates_are_rejected(mk: Market) -> None:
    p = mk.params
    now = mk.sb.time
    old = now - p.grid_status_max_age_seconds - 1
    ahead = now + p.grid_status_clock_skew_seconds + 1
    mk.rejects(
        mk.egat, TransmissionStatus(old, NORMAL), errors.StaleGridStatus, "STALE_GRID_STATUS"
    )
    mk.rejects(
        mk.egat,
        TransmissionStatus(ahead, NORMAL),
        errors.GridStatusFromFuture,
        "GRID_STATUS_FROM_FUTURE",
    )
    mk.rejects(
        mk.mea, DistributionStatus(old, "BKK", 1, 1), errors.StaleGridStatus, "STALE_GRID_STATUS"
    )
    status(mk, at=now - 10)
    for at in (now - 10, now - 11):  # the same measurement again, or an older one
        mk.rejects(
            mk.egat,
            TransmissionStatus(at, NORMAL),
            errors.GridStatusOutOfOrder,
            "GRID_STATUS_OUT_OF_ORDER",
        )
    status(mk, at=now - 9)  # newer, though still before the block: accepted
    mk.ok(mk.mea, DistributionStatus(now, "BKK", 1, 1))
    mk.rejects(
        mk.mea,
        DistributionStatus(now, "BKK", 2, 2),
        errors.GridStatusOutOfOrder,
        "GRID_STATUS_OUT_OF_ORDER",
    )
    mk.ok(mk.pea, DistributionStatus(now, "CEN", 1, 1))  # another subject: its own order


def test_bad_values_are_rejected(mk: Market) -> None:
    now = mk.sb.time
    link = LinkStatus("BKK", "CEN", 1, 0)
    for body, exc in (
        (TransmissionStatus(now, 0), errors.InvalidGridUpdate),
        (
            TransmissionStatus(now, NORMAL, (link, LinkStatus("CEN", "BKK", 2, 0))),
            errors.InvalidGridUpdate,
        ),
        (
            TransmissionStatus(now, NORMAL, (), (ZoneBalance("BKK", 1, 1),) * 2),
            errors.InvalidGridUpdate,
        ),
        (
            TransmissionStatus(now, NORMAL, (LinkStatus("BKK", "STH", 1, 0),)),
            errors.UnknownInterconnector,
        ),
        (TransmissionStatus(now, NORMAL, (LinkStatus("BKK", "XX", 1, 0),)), errors.UnknownZone),
        (TransmissionStatus(now, NORMAL, (), (ZoneBalance("XX", 1, 1),)), errors.UnknownZone),
    ):
        mk.rejects(mk.egat, body, exc, exc.code)
    assert grid.transmission(mk.sb.state.overlay()) is None


# --- congestion ----------------------------------------------------------------------------
def test_market_uses_the_latest_capacity(mk: Market) -> None:
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 2_000, 250, zone="CEN")
    # Cut both ways out of Bangkok: BKK-CEN and BKK-EST to zero.
    status(mk, LinkStatus("BKK", "CEN", 0, 0), LinkStatus("BKK", "EST", 0, 0))
    assert trade_events(mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 400))) == []
    # 4 kW back on BKK-CEN: 1,000 Wh per 15-minute interval. The resting bid does not
    # re-match by itself, a new one does, up to the room.
    status(mk, LinkStatus("BKK", "CEN", 4, 4), at=mk.sb.time + 1)
    [trade] = trade_events(mk.ok(mk.buyer2, PlaceOrder(BUY, "BKK", mk.T, 1_500, 400)))
    assert trade.attrs["quantity_wh"] == 1_000


def test_capacity_cut_curtails_newest_cross_zone_trades_first(mk: Market) -> None:
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 3_000, 250, zone="CEN")
    buyers = (mk.office, mk.buyer2, mk.consumer)
    for who in buyers:
        mk.ok(who, PlaceOrder(BUY, "BKK", mk.T, 1_000, 400))
    t1, t2, t3 = sorted(mk.trades(), key=lambda t: t.id)
    assert t1.path == ("CEN", "BKK") and t3.quantity_wh == 1_000
    before = {who.address: mk.thb(who.address) for who in buyers}
    escrow = mk.escrow_thb()
    # 6 kW = 1,500 Wh per interval: 1,500 Wh of the 3,000 traded must go, newest first.
    events = status(mk, LinkStatus("BKK", "CEN", 6, 0))
    cuts = [e.attrs for e in events if e.kind == "trade_curtailed"]
    assert [(c["trade"], c["curtailed_wh"], c["remaining_wh"]) for c in cuts] == [
        (t3.id, 1_000, 0),
        (t2.id, 500, 500),
    ]
    after = {t.id: t for t in mk.trades()}
    assert (after[t1.id].quantity_wh, after[t2.id].quantity_wh, after[t3.id].quantity_wh) == (
        1_000,
        500,
        0,
    )
    # Refunds: the buyers get back exactly the escrow the lost energy no longer needs.
    p = mk.params
    assert after[t3.id].escrow_satang == 0
    assert after[t2.id].escrow_satang == bookkeeping.buyer_cost_satang(500, 250, p)
    assert mk.thb(mk.consumer.address) - before[mk.consumer.address] == t3.escrow_satang
    refund2 = t2.escrow_satang - after[t2.id].escrow_satang
    assert (
        mk.thb(mk.buyer2.address) - before[mk.buyer2.address] == refund2 == cuts[1]["refund_satang"]
    )
    assert mk.thb(mk.office.address) == before[mk.office.address]
    assert mk.escrow_thb() == escrow - t3.escrow_satang - refund2
    # Seller's position released, link and import totals given back.
    assert (
        bookkeeping.position(mk.sb.state.overlay(), mk.T, "CEN", mk.factory.address).sold_wh
        == 1_500
    )
    view = mk.sb.state.overlay()
    assert view.get(records.flow_key(mk.T, "CEN", "BKK"), records.FlowUsed) == records.FlowUsed(
        1_500
    )
    assert grid.imported_wh(view, mk.T, "BKK") == 1_500
    # The released energy may be offered again (its capacity was freed).
    mk.place(mk.factory, SELL, 1_500, 250, zone="CEN")


def test_cut_leaves_started_intervals_alone(mk: Market) -> None:
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 1_000, 250, zone="CEN")
    mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 1_000, 400))
    mk.end_blocks_until(mk.T + 60)  # delivery of T has begun
    events = status(mk, LinkStatus("BKK", "CEN", 0, 0))
    assert [e for e in events if e.kind == "trade_curtailed"] == []
    assert mk.trades()[0].quantity_wh == 1_000


def test_zone_headroom_limits_p2p_import_per_interval(mk: Market) -> None:
    licensed_factory(mk)
    mk.ok(mk.mea, DistributionStatus(mk.sb.time, "BKK", 9_000, 4))  # 4 kW: 1,000 Wh/interval
    mk.place(mk.factory, SELL, 3_000, 250, zone="CEN")
    [trade] = trade_events(mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 2_000, 400)))
    assert trade.attrs["quantity_wh"] == 1_000  # the rest of the bid rests
    assert trade_events(mk.ok(mk.buyer2, PlaceOrder(BUY, "BKK", mk.T, 500, 400))) == []
    assert grid.imported_wh(mk.sb.state.overlay(), mk.T, "BKK") == 1_000
    # Local trades are not imports: the rest of the office's bid takes a Bangkok offer.
    [local] = trade_events(mk.ok(mk.home, PlaceOrder(SELL, "BKK", mk.T, 500, 300)))
    assert local.attrs["quantity_wh"] == 500 and local.attrs["seller_zone"] == "BKK"
    # The next interval has its own headroom.
    nxt = mk.T + 900
    mk.place(mk.factory, SELL, 3_000, 250, zone="CEN", interval=nxt)
    [other] = trade_events(mk.ok(mk.buyer2, PlaceOrder(BUY, "BKK", nxt, 2_000, 400)))
    assert other.attrs["quantity_wh"] == 1_000
    assert grid.imported_wh(mk.sb.state.overlay(), nxt, "BKK") == 1_000


# --- emergencies ---------------------------------------------------------------------------
def test_frequency_excursion_halts_every_zone_until_cleared(mk: Market) -> None:
    bid = mk.place(mk.office, BUY, 500, 300)
    events = status(mk, frequency=49_300)
    assert [e.kind for e in events].count("zone_halted") == 7
    halt = halted(mk, "BKK")
    assert halt is not None and halt.halted_by == "EGAT" and "49300 mHz" in halt.reason
    mk.rejects(mk.home, PlaceOrder(SELL, "BKK", mk.T, 500, 300), errors.ZoneHalted, "ZONE_HALTED")
    assert mk.order(bid).status is records.OrderStatus.OPEN  # open orders stay
    mk.rejects(mk.mea, ClearEmergency(("BKK",)), errors.FrequencyOutOfBand, "FREQUENCY_OUT_OF_BAND")
    resume = SetZoneHalt("BKK", False, "resume")  # nor through a plain zone resume
    mk.rejects(mk.mea, resume, errors.FrequencyOutOfBand, "FREQUENCY_OUT_OF_BAND")
    status(mk, frequency=50_010, at=mk.sb.time + 1)  # back in band: nothing resumes by itself
    assert halted(mk, "BKK") is not None
    mk.ok(mk.mea, ClearEmergency(("BKK",), "frequency restored"))
    assert halted(mk, "BKK") is None and halted(mk, "CEN") is not None
    [trade] = trade_events(mk.ok(mk.home, PlaceOrder(SELL, "BKK", mk.T, 500, 300)))
    assert trade.attrs["buyer"] == mk.office.address
    mk.rejects(
        mk.factory, PlaceOrder(SELL, "CEN", mk.T, 500, 300), errors.ZoneHalted, "ZONE_HALTED"
    )


def test_frequency_excursion_keeps_an_earlier_halt_reason(mk: Market) -> None:
    mk.ok(mk.egat, DeclareEmergency(("CEN",), "substation fire"))
    status(mk, frequency=50_600)
    cen, bkk = halted(mk, "CEN"), halted(mk, "BKK")
    assert cen is not None and cen.reason == "substation fire"
    assert bkk is not None and "50600 mHz" in bkk.reason


def test_declared_emergency_halts_listed_zones_and_resumes_with_rematch(mk: Market) -> None:
    licensed_factory(mk)
    mk.ok(mk.egat, DeclareEmergency(("CEN",), "N-1 contingency"))
    mk.place(mk.office, BUY, 1_000, 400)  # Bangkok still trades
    mk.rejects(
        mk.factory, PlaceOrder(SELL, "CEN", mk.T, 500, 250), errors.ZoneHalted, "ZONE_HALTED"
    )
    mk.ok(mk.pea, ClearEmergency(("CEN",)))
    mk.place(mk.factory, SELL, 1_000, 250, zone="CEN")
    assert len(mk.trades()) == 1


def test_emergency_rejections(mk: Market) -> None:
    for signer in (mk.mea, mk.pea, mk.erc, mk.office):
        mk.rejects(signer, DeclareEmergency(("BKK",)), errors.Unauthorised, "UNAUTHORISED")
    mk.rejects(
        mk.egat, DeclareEmergency(("BKK", "BKK")), errors.InvalidGridUpdate, "INVALID_GRID_UPDATE"
    )
    mk.rejects(mk.egat, DeclareEmergency(("XX",)), errors.UnknownZone, "UNKNOWN_ZONE")
    mk.rejects(mk.egat, ClearEmergency(("BKK",)), errors.ZoneNotHalted, "ZONE_NOT_HALTED")
    mk.ok(mk.egat, DeclareEmergency(("BKK", "CEN")))
    mk.rejects(mk.pea, ClearEmergency(("BKK",)), errors.Unauthorised, "UNAUTHORISED")
    mk.rejects(mk.mea, ClearEmergency(("BKK", "CEN")), errors.Unauthorised, "UNAUTHORISED")
    mk.rejects(mk.nepo, ClearEmergency(("CEN",)), errors.Unauthorised, "UNAUTHORISED")
    mk.rejects(mk.egat, ClearEmergency(("CEN", "NTH")), errors.ZoneNotHalted, "ZONE_NOT_HALTED")
    mk.ok(mk.egat, ClearEmergency(("BKK", "CEN")))


# --- priority ------------------------------------------------------------------------------
def test_emergency_transactions_are_reaped_first() -> None:
    egat, alice, bob = (PrivateKey.from_dev_label(f"test/grid/{n}") for n in ("egat", "a", "b"))
    nonces = {egat.address: 0, alice.address: 0, bob.address: 0}
    pool = Mempool("gridtokenx-test", max_txs=20, max_per_sender=5)
    try:
        transfer = tx.Transfer(tx.Asset.THB, bob.address, 1)

        def add(key: PrivateKey, nonce: int, body: tx.Body) -> bytes:
            raw = tx.make(key, "gridtokenx-test", nonce, body).encode()
            assert pool.add(raw, nonces.get, 0).accepted
            return raw

        a0, a1 = add(alice, 0, transfer), add(alice, 1, transfer)
        b0 = add(bob, 0, tx.Transfer(tx.Asset.THB, alice.address, 1))
        e0 = add(egat, 0, tx.TransmissionStatus(1, NORMAL))
        e1 = add(egat, 1, DeclareEmergency(("BKK",)))
        e2 = add(egat, 2, transfer)
        assert tx.is_emergency(DeclareEmergency(("BKK",))) and not tx.is_emergency(transfer)
        # EGAT's run up to its emergency leads (nonce order kept), then the usual interleave.
        assert pool.reap(nonces.get, 20, 1 << 20) == [e0, e1, a0, b0, e2, a1]
        assert pool.reap(nonces.get, 2, 1 << 20) == [e0, e1]
    finally:
        pool.close()


def test_grid_status_reports_are_reaped_first_too() -> None:
    """A status report is the grid's state the market must trade against (a cut capacity
    curtails trades): it leads the block like an emergency, ahead of earlier trading."""
    egat, alice = (PrivateKey.from_dev_label(f"test/grid/{n}") for n in ("egat", "a"))
    nonces = {egat.address: 0, alice.address: 0}
    pool = Mempool("gridtokenx-test", max_txs=20, max_per_sender=5)
    try:
        transfer = tx.Transfer(tx.Asset.THB, egat.address, 1)
        raws = [tx.make(alice, "gridtokenx-test", n, transfer).encode() for n in range(3)]
        report = tx.make(egat, "gridtokenx-test", 0, tx.TransmissionStatus(1, NORMAL)).encode()
        for raw in [*raws, report]:  # the report arrives last
            assert pool.add(raw, nonces.get, 0).accepted
        assert tx.is_priority(tx.decode(report).tx.body)
        assert pool.reap(nonces.get, 20, 1 << 20) == [report, *raws]
    finally:
        pool.close()


def test_escrow_and_flows_stay_consistent_through_a_cut(mk: Market) -> None:
    """A cut and a second, deeper one: every step passes the invariants (Net.ok checks)."""
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 2_000, 250, zone="CEN")
    mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 2_000, 400))
    status(mk, LinkStatus("BKK", "CEN", 4, 0))
    status(mk, LinkStatus("BKK", "CEN", 0, 0), at=mk.sb.time + 1)
    assert [t.quantity_wh for t in mk.trades()] == [0]
    assert mk.thb(accounts.ESCROW_ADDRESS) == 0


# --- the cached zone graph -----------------------------------------------------------------
def test_a_link_change_is_seen_by_the_next_order_of_the_same_block(mk: Market) -> None:
    """The zone graph is cached between path searches: a capacity report earlier in the
    block must reach the very next order's search (a stale graph would miss the restored
    link; a stale cut one is masked by the room check, which reads the capacity itself)."""
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 3_000, 250, zone="CEN")

    def loss_of_next_buy(who: PrivateKey) -> int:
        [trade] = trade_events(mk.ok(who, PlaceOrder(BUY, "BKK", mk.T, 500, 400)))
        return int(trade.attrs["loss_bp"])

    height = mk.sb.height
    status(mk, LinkStatus("BKK", "CEN", 0, 0))
    # CEN -> EST -> BKK (1 - 0.98 x 0.985): the first search, its graph without the cut link
    assert loss_of_next_buy(mk.office) == 347
    status(mk, LinkStatus("BKK", "CEN", 40, 0), at=mk.sb.time + 1)
    assert loss_of_next_buy(mk.buyer2) == 100  # the restored direct link
    status(mk, LinkStatus("BKK", "CEN", 0, 0), at=mk.sb.time + 2)
    assert loss_of_next_buy(mk.consumer) == 347
    assert mk.sb.height == height  # all in one block


def test_the_zone_graph_follows_uncommitted_committed_and_rolled_back_writes(
    mk: Market,
) -> None:
    state = mk.sb.state
    assert paths.find(state.overlay(), "CEN", "BKK") == paths.Path(("CEN", "BKK"), 100)
    view = state.overlay()
    view.put(
        registry.interconnector_key("BKK", "CEN"), registry.Interconnector("BKK", "CEN", 4, 50)
    )
    # The transaction's own write counts before it commits; other views see the old link.
    assert paths.find(view, "CEN", "BKK") == paths.Path(("CEN", "BKK"), 50)
    assert paths.find(state.overlay(), "CEN", "BKK") == paths.Path(("CEN", "BKK"), 100)
    state.begin()
    view.commit()
    assert paths.find(state.overlay(), "CEN", "BKK") == paths.Path(("CEN", "BKK"), 50)
    state.rollback()  # a trial undone (a proposal checked, then dropped)
    assert paths.find(state.overlay(), "CEN", "BKK") == paths.Path(("CEN", "BKK"), 100)


# --- the cached link room (capacities and flows) -------------------------------------------
def test_a_flow_reserved_in_a_block_is_seen_by_the_next_order_of_the_block(mk: Market) -> None:
    """The committed flows a plan reads are cached: a trade's reservation must reach the
    next order's room check in the same block (a stale flow would leave the full direct
    link open and the second buyer would pay its 1 % loss, not the 3.47 % around it)."""
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 3_000, 250, zone="CEN")
    status(mk, LinkStatus("BKK", "CEN", 2, 0))  # 2 kW: 500 Wh in the 15-minute interval
    height = mk.sb.height
    [first] = trade_events(mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 500, 400)))
    assert (first.attrs["loss_bp"], first.attrs["quantity_wh"]) == (100, 500)
    [second] = trade_events(mk.ok(mk.buyer2, PlaceOrder(BUY, "BKK", mk.T, 500, 400)))
    assert second.attrs["loss_bp"] == 347  # CEN -> EST -> BKK: the direct link is full
    assert mk.sb.height == height


def test_a_capacity_cut_in_a_block_is_seen_by_the_next_orders_room(mk: Market) -> None:
    licensed_factory(mk)
    mk.place(mk.factory, SELL, 3_000, 250, zone="CEN")
    height = mk.sb.height
    [first] = trade_events(mk.ok(mk.office, PlaceOrder(BUY, "BKK", mk.T, 500, 400)))
    assert first.attrs["loss_bp"] == 100  # its plan read the 800 MW capacity
    # 4 kW: 1,000 Wh an interval, 500 of it taken: the next 600 Wh no longer fit directly
    status(mk, LinkStatus("BKK", "CEN", 4, 0))
    [second] = trade_events(mk.ok(mk.buyer2, PlaceOrder(BUY, "BKK", mk.T, 600, 400)))
    assert (second.attrs["loss_bp"], second.attrs["quantity_wh"]) == (100, 500)
    assert mk.sb.height == height


def test_the_link_room_follows_uncommitted_committed_and_rolled_back_flows(
    mk: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = mk.sb.state

    def room(view: Overlay, a: str, b: str) -> int:
        _, rooms = paths.plan_grid(view, mk.T, mk.params.interval_seconds)
        return rooms[a, b]

    full = room(state.overlay(), "CEN", "BKK")
    assert full == 800_000 * 1000 // 4  # kW for a quarter of an hour
    view = state.overlay()
    view.put(records.flow_key(mk.T, "CEN", "BKK"), records.FlowUsed(1_000))
    # The transaction's own write counts before it commits; other views see the old flow.
    assert room(view, "CEN", "BKK") == full - 1_000
    assert room(state.overlay(), "CEN", "BKK") == full
    state.begin()
    view.commit()
    assert room(state.overlay(), "CEN", "BKK") == full - 1_000
    assert room(state.overlay(), "BKK", "CEN") == full + 1_000  # the counter-flow frees room
    state.rollback()  # a trial undone (a proposal checked, then dropped)
    assert room(state.overlay(), "CEN", "BKK") == full
    assert room(state.overlay(), "BKK", "CEN") == full
    # A cache that starts again at its limit still answers from the committed records.
    monkeypatch.setattr(paths, "FLOW_CACHE_LIMIT", 1)
    other = state.overlay()
    other.put(records.flow_key(mk.T, "BKK", "CEN"), records.FlowUsed(300))
    other.commit()
    assert room(state.overlay(), "CEN", "BKK") == full + 300
    assert room(state.overlay(), "BKK", "CEN") == full - 300


def test_a_kept_link_room_goes_when_the_flows_it_was_read_from_are_forgotten(
    mk: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committed rooms every plan shares (`LinkFlows.rooms`) start again with the flow
    cache: a flow it no longer holds is not one it is told of when written, so a room
    read from it and kept would stay as it was."""
    state = mk.sb.state
    monkeypatch.setattr(paths, "FLOW_CACHE_LIMIT", 3)

    def room(a: str, b: str) -> int:
        _, rooms = paths.plan_grid(state.overlay(), mk.T, mk.params.interval_seconds)
        return rooms[a, b]

    full = room("CEN", "BKK")  # two flows read and held
    room("EST", "BKK")  # two more: over the limit, the cache starts again
    view = state.overlay()
    view.put(records.flow_key(mk.T, "CEN", "BKK"), records.FlowUsed(1_000))
    view.commit()
    assert room("CEN", "BKK") == full - 1_000
