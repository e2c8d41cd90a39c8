"""The mesh gossip core's rules, one at a time, driven by hand (no sockets, no clock)."""

from __future__ import annotations

import random

import pytest

from gridtokenx.p2p.mesh import (
    CONTROL_PRIORITY,
    Degree,
    Frame,
    Graft,
    IDontWant,
    IHave,
    IWant,
    Mesh,
    Params,
    Prune,
    Publish,
    Subscribe,
    Topic,
    Validation,
    frame_size,
    priority,
)

ALL = frozenset(Topic)
FULL = frozenset({Topic.TRANSACTIONS, Topic.BLOCKS, Topic.GRID})
BIG = bytes(150_000)
SMALL = bytes(300)


def node(peers: int = 0, topics: frozenset[Topic] = ALL, outbound: bool = True,
         params: Params | None = None, seed: int = 1) -> Mesh[int]:  # fmt: skip
    """A node connected to peers 1..`peers`, each taking `topics`."""
    mesh: Mesh[int] = Mesh(ALL, random.Random(seed), params)
    for peer in range(1, peers + 1):
        mesh.connect(peer, 0.0, outbound)
        mesh.receive(peer, Subscribe(topics), 0.0)
    return mesh


def frames_to(sends: list[tuple[int, Frame]], kind: type) -> dict[int, list[Frame]]:
    out: dict[int, list[Frame]] = {}
    for peer, frame in sends:
        if isinstance(frame, kind):
            out.setdefault(peer, []).append(frame)
    return out


def grafted(mesh: Mesh[int], topic: Topic, members: list[int], now: float = 0.0) -> None:
    for peer in members:
        mesh.receive(peer, Graft(topic), now)
    assert mesh.mesh[topic] >= set(members)


def test_connect_announces_our_topics_and_a_short_mesh_takes_a_new_peer_at_once() -> None:
    mesh: Mesh[int] = Mesh(FULL, random.Random(1))
    sends = mesh.connect(7, 0.0, True)
    # Its subscription is not here yet: it counts as taking everything, so a message
    # published now reaches it, and every short mesh grafts it without a heartbeat.
    assert sends[0] == (7, Subscribe(FULL))
    assert sorted(f.topic for _, f in sends[1:] if isinstance(f, Graft)) == sorted(FULL)
    assert {p for p, _ in mesh.publish(Topic.BLOCKS, b"early", SMALL, 0.0)} == {7}
    mesh.receive(7, Subscribe(frozenset({Topic.GRID})), 0.0)
    assert mesh.peers[7].topics == {Topic.GRID}
    assert mesh.mesh[Topic.GRID] == {7}
    assert mesh.mesh[Topic.BLOCKS] == set()  # it does not take blocks: out of that mesh


def test_a_short_mesh_takes_a_peer_when_its_subscription_arrives() -> None:
    mesh: Mesh[int] = Mesh(FULL, random.Random(1))
    mesh.connect(7, 0.0, True)
    mesh.receive(7, Subscribe(frozenset()), 0.0)  # it takes nothing yet
    assert all(not members for members in mesh.mesh.values())
    step = mesh.receive(7, Subscribe(frozenset({Topic.GRID})), 0.0)
    assert step.sends == [(7, Graft(Topic.GRID))]  # no waiting for the heartbeat
    assert mesh.mesh[Topic.GRID] == {7}


def test_subscribing_to_a_topic_later_grafts_it_and_tells_every_peer() -> None:
    mesh: Mesh[int] = Mesh(FULL - {Topic.CONSENSUS}, random.Random(1))
    for peer in (1, 2, 3):
        mesh.connect(peer, 0.0, True)
        mesh.receive(peer, Subscribe(ALL), 0.0)
    assert Topic.CONSENSUS not in mesh.mesh
    sends = mesh.subscribe(ALL, 1.0)  # voted in as a validator
    assert mesh.mesh[Topic.CONSENSUS] == {1, 2, 3}
    assert frames_to(sends, Subscribe) == {p: [Subscribe(ALL)] for p in (1, 2, 3)}
    assert mesh.subscribe(ALL, 1.0) == []  # unchanged: nothing to say
    mesh.subscribe(ALL - {Topic.CONSENSUS}, 2.0)  # voted out
    assert Topic.CONSENSUS not in mesh.mesh and mesh.members(Topic.CONSENSUS) == frozenset()


def test_a_relayed_message_goes_to_the_mesh_only_once() -> None:
    mesh = node(20)
    mesh.heartbeat(1.0)
    members = mesh.members(Topic.TRANSACTIONS)
    sends = mesh.relay(Topic.TRANSACTIONS, b"batch", SMALL, 1.5)
    assert {p for p, _ in sends} == members and len(members) < 20
    assert mesh.relay(Topic.TRANSACTIONS, b"batch", SMALL, 1.6) == []


def test_subscriptions_fill_a_mesh_up_to_d_lo_only() -> None:
    mesh = node(10)
    assert all(len(members) == mesh.params.degree(t).d_lo for t, members in mesh.mesh.items())


def test_heartbeat_grafts_up_to_d_when_below_d_lo() -> None:
    mesh = node(20)
    gone = sorted(mesh.mesh[Topic.TRANSACTIONS])[:3]
    for peer in gone:
        mesh.receive(peer, Prune(Topic.TRANSACTIONS, 60.0), 0.5)
    assert len(mesh.mesh[Topic.TRANSACTIONS]) == mesh.params.d_lo - 3
    sends = mesh.heartbeat(1.0)
    assert len(mesh.mesh[Topic.TRANSACTIONS]) == mesh.params.d
    grafts = {p for p, f in sends if isinstance(f, Graft) and f.topic is Topic.TRANSACTIONS}
    assert len(grafts) == mesh.params.d - (mesh.params.d_lo - 3)
    assert not grafts & set(gone)  # backed off
    blocks = mesh.params.degree(Topic.BLOCKS)
    assert len(mesh.mesh[Topic.BLOCKS]) == blocks.d_lo < mesh.params.d_lo  # untouched


def test_grid_updates_and_votes_have_smaller_meshes_of_their_own() -> None:
    mesh = node(20)
    grid, consensus = mesh.params.degree(Topic.GRID), mesh.params.degree(Topic.CONSENSUS)
    assert grid.d < mesh.params.d and consensus.d < mesh.params.d
    assert len(mesh.mesh[Topic.GRID]) == grid.d_lo
    assert len(mesh.mesh[Topic.CONSENSUS]) == consensus.d_lo
    mesh.mesh[Topic.GRID] |= set(range(1, 16))  # far above its d_hi
    mesh.heartbeat(1.0)
    assert grid.d <= len(mesh.mesh[Topic.GRID]) <= grid.d_hi


def test_a_mesh_never_takes_a_peer_outside_the_topic() -> None:
    mesh = node(10, topics=FULL)
    mesh.heartbeat(1.0)
    assert mesh.mesh[Topic.CONSENSUS] == set()
    assert len(mesh.mesh[Topic.TRANSACTIONS]) == mesh.params.d_lo


def test_heartbeat_trims_an_oversized_mesh_to_d_keeping_outbound_peers() -> None:
    params = Params()
    mesh = node(20, outbound=False, params=params)
    for peer in (21, 22):  # the only outbound peers
        mesh.connect(peer, 0.0, True)
        mesh.receive(peer, Subscribe(ALL), 0.0)
    mesh.mesh[Topic.TRANSACTIONS] = set(range(1, 15))  # 14 inbound members, above d_hi = 12
    sends = mesh.heartbeat(1.0)
    members = mesh.mesh[Topic.TRANSACTIONS]
    assert len(members) == params.d + params.d_out  # d kept, then the outbound quota grafted
    assert {21, 22} <= members
    pruned = {p for p, f in sends if isinstance(f, Prune) and f.topic is Topic.TRANSACTIONS}
    assert len(pruned) == 14 - params.d
    for peer in pruned:  # told to back off: its GRAFT is refused, and costs it
        step = mesh.receive(peer, Graft(Topic.TRANSACTIONS), 2.0)
        assert frames_to(step.sends, Prune) and peer not in members
        assert mesh.peers[peer].behaviour == 1


def test_graft_is_taken_below_d_hi_and_refused_at_it_for_inbound_peers() -> None:
    mesh = node(14, outbound=False)
    grafted(mesh, Topic.TRANSACTIONS, list(range(1, 13)))
    step = mesh.receive(13, Graft(Topic.TRANSACTIONS), 0.5)
    assert 13 not in mesh.mesh[Topic.TRANSACTIONS]
    assert step.sends == [(13, Prune(Topic.TRANSACTIONS, mesh.params.prune_backoff_s))]


def test_graft_during_backoff_is_refused_and_penalised() -> None:
    mesh = node(14)
    mesh.mesh[Topic.TRANSACTIONS] = set(range(1, 15))  # above d_hi
    trimmed = {p for p, f in mesh.heartbeat(1.0) if isinstance(f, Prune)}
    peer = min(trimmed)
    step = mesh.receive(peer, Graft(Topic.TRANSACTIONS), 10.0)
    assert peer not in mesh.mesh[Topic.TRANSACTIONS]
    assert frames_to(step.sends, Prune) == {peer: [Prune(Topic.TRANSACTIONS, 60.0)]}
    assert mesh.peers[peer].behaviour == 1
    assert mesh.score(peer, 10.0) < 0


def test_a_peer_that_pruned_us_may_graft_again_and_owes_deliveries_at_once() -> None:
    # The backoff binds the pruned side: a peer that left may come back (it may be short
    # of peers now), but its delivery duty does not start afresh.
    mesh = node(3)
    assert 1 in mesh.mesh[Topic.BLOCKS]
    mesh.receive(1, Prune(Topic.BLOCKS, 60.0), 0.0)
    assert not mesh._eligible(Topic.BLOCKS, 1, 10.0)  # we do not graft it back
    step = mesh.receive(1, Graft(Topic.BLOCKS), 10.0)
    assert step.sends == [] and 1 in mesh.mesh[Topic.BLOCKS]
    assert mesh.peers[1].behaviour == 0
    mesh.traffic[Topic.BLOCKS] = 5.0  # blocks flowed, none from peer 1
    assert mesh.score(1, 10.5) < 0  # a fresh member would owe nothing for 5 s


def test_a_node_dropped_by_every_member_it_kept_grafts_the_peers_it_trimmed() -> None:
    # Found at 10,000 nodes in the simulator: a validator accepted GRAFTs from all 20
    # sentries as they connected, trimmed its grid mesh to d, and the members it kept
    # then pruned it as their own meshes overflowed. With a backoff binding both sides
    # every peer was out of reach for a minute and grid updates came only by IHAVE, 1.3 s
    # late. Our own trim does not stop us from grafting those peers again.
    mesh = node(20)
    grafted(mesh, Topic.GRID, list(range(1, 21)))
    trimmed = {p for p, f in mesh.heartbeat(0.2) if isinstance(f, Prune) and f.topic is Topic.GRID}
    kept = set(mesh.mesh[Topic.GRID])
    assert len(kept) == mesh.params.degree(Topic.GRID).d and len(trimmed) == 20 - len(kept)
    for peer in kept:
        mesh.receive(peer, Prune(Topic.GRID, 60.0), 0.5)
    assert not mesh.mesh[Topic.GRID]
    sends = mesh.heartbeat(1.2)
    regrafted = {p for p, f in sends if isinstance(f, Graft) and f.topic is Topic.GRID}
    assert len(mesh.mesh[Topic.GRID]) == mesh.params.degree(Topic.GRID).d
    assert regrafted == mesh.mesh[Topic.GRID] and regrafted <= trimmed
    # and a trimmed peer takes the GRAFT: it was told to wait, not us
    peer: Mesh[int] = node(0)
    peer.connect(0, 0.0, False)
    peer.receive(0, Subscribe(ALL), 0.0)
    peer.receive(0, Prune(Topic.GRID, 60.0), 0.2)
    assert peer.receive(0, Graft(Topic.GRID), 1.2).sends == [] and 0 in peer.mesh[Topic.GRID]


def test_a_pruned_peer_is_not_grafted_again_until_its_backoff_ends() -> None:
    mesh = node(1)
    grafted(mesh, Topic.GRID, [1])
    mesh.receive(1, Prune(Topic.GRID, 30.0), 0.0)
    assert 1 not in mesh.mesh[Topic.GRID]
    mesh.heartbeat(1.0)
    assert 1 not in mesh.mesh[Topic.GRID]
    mesh.heartbeat(31.0)
    assert 1 in mesh.mesh[Topic.GRID]


def test_our_own_message_is_flood_published_to_every_subscribed_peer() -> None:
    mesh = node(10)
    mesh.connect(99, 0.0, True)
    mesh.receive(99, Subscribe(frozenset({Topic.GRID})), 0.0)
    mesh.heartbeat(1.0)  # a mesh of 8 of the 11
    sends = mesh.publish(Topic.BLOCKS, b"b1", BIG, 1.5)
    assert {p for p, _ in sends} == set(range(1, 11))  # all that take blocks, not 99
    assert mesh.publish(Topic.BLOCKS, b"b1", BIG, 1.6) == []  # once


def test_flood_publish_skips_peers_below_the_publish_threshold() -> None:
    mesh = node(3)
    mesh.peers[2].behaviour = 10  # -5 * 100 = -500
    mesh.heartbeat(1.0)
    assert {p for p, _ in mesh.publish(Topic.GRID, b"g", SMALL, 1.0)} == {1, 3}


def test_a_new_message_is_delivered_once_and_forwarded_to_the_mesh_once_valid() -> None:
    mesh = node(12)
    mesh.heartbeat(1.0)
    source = next(iter(mesh.mesh[Topic.GRID]))
    message = Publish(Topic.GRID, b"g1", SMALL)
    step = mesh.receive(source, message, 1.1)
    assert step.deliver == [message]
    assert step.sends == []  # small: no IDONTWANT; nothing forwarded before validation
    other = next(m for m in mesh.mesh[Topic.GRID] if m != source)
    assert mesh.receive(other, message, 1.12).deliver == []  # a duplicate
    forwarded = mesh.accept(b"g1", Validation.VALID, 1.2)
    assert {p for p, _ in forwarded} == mesh.mesh[Topic.GRID] - {source, other}
    assert all(f is message for _, f in forwarded)
    assert mesh.accept(b"g1", Validation.VALID, 1.3) == []


def test_a_copy_known_by_its_id_alone_is_taken_as_receive_takes_a_duplicate() -> None:
    """`again`, the driver's question before it builds a `Publish`: a copy of a message
    seen already is taken there (its sender is not forwarded to, a mesh member gets its
    delivery credit); an unseen one, or one of an unknown peer's, is left to `receive`."""
    mesh = node(12)
    mesh.heartbeat(1.0)
    source, other, third = list(mesh.mesh[Topic.GRID])[:3]
    message = Publish(Topic.GRID, b"g1", SMALL)
    assert not mesh.again(source, b"g1", 1.1)  # unseen: `receive` takes it
    assert mesh.receive(source, message, 1.1).deliver == [message]
    credit = mesh.peers[other].topic(Topic.GRID).mesh_deliveries
    assert mesh.again(other, b"g1", 1.12)  # a duplicate, taken by its id
    assert mesh.peers[other].topic(Topic.GRID).mesh_deliveries == credit + 1
    assert mesh.again(99, b"g2", 1.12)  # not a peer: nothing to do, nothing delivered
    forwarded = mesh.accept(b"g1", Validation.VALID, 1.2)
    assert {p for p, _ in forwarded} == mesh.mesh[Topic.GRID] - {source, other}
    assert third in {p for p, _ in forwarded}


def test_a_large_message_is_announced_with_idontwant_and_not_sent_to_who_declined() -> None:
    mesh = node(12)
    mesh.heartbeat(1.0)
    members = sorted(mesh.mesh[Topic.BLOCKS])
    source, declined = members[0], members[1]
    step = mesh.receive(source, Publish(Topic.BLOCKS, b"b1", BIG), 1.1)
    notices = frames_to(step.sends, IDontWant)
    assert set(notices) == set(members)  # the source too: it is its receipt
    mesh.receive(declined, IDontWant((b"b1",)), 1.12)
    assert not mesh.wanted(declined, b"b1")
    assert mesh.wanted(members[2], b"b1")
    forwarded = {p for p, _ in mesh.accept(b"b1", Validation.VALID, 1.2)}
    assert forwarded == set(members) - {source, declined}


def test_a_transaction_batch_is_declined_to_every_member_but_its_source() -> None:
    """Where mesh members owe no deliveries, the source gets no IDONTWANT: it has sent the
    message and sends it no more, so the notice would be a frame read for nothing."""
    mesh = node(12)
    mesh.heartbeat(1.0)
    members = sorted(mesh.mesh[Topic.TRANSACTIONS])
    step = mesh.receive(members[0], Publish(Topic.TRANSACTIONS, b"t1", BIG), 1.1)
    assert set(frames_to(step.sends, IDontWant)) == set(members) - {members[0]}


def test_a_held_message_is_forwarded_later_to_whoever_neither_sent_nor_declined_it() -> None:
    mesh = node(12)
    mesh.heartbeat(1.0)
    members = sorted(mesh.mesh[Topic.TRANSACTIONS])
    source, later, declined = members[:3]
    message = Publish(Topic.TRANSACTIONS, b"t1", BIG)
    mesh.receive(source, message, 1.1)
    assert mesh.accept(b"t1", Validation.VALID, 1.2, forward=False) == []  # held
    assert mesh.receive(later, message, 1.3).deliver == []  # a copy after the verdict
    mesh.receive(declined, IDontWant((b"t1",)), 1.35)
    forwarded = mesh.forward(b"t1")
    assert forwarded is not None
    assert {p for p, _ in forwarded} == set(members) - {source, later, declined}
    assert all(f is message for _, f in forwarded)
    assert mesh.forward(b"t1") is None  # once
    assert mesh.forward(b"never") is None


def test_a_held_message_is_dropped_with_the_cache() -> None:
    mesh = node(4)
    mesh.receive(1, Publish(Topic.TRANSACTIONS, b"t1", SMALL), 0.1)
    mesh.accept(b"t1", Validation.VALID, 0.2, forward=False)
    for beat in range(mesh.params.mcache_windows):
        mesh.heartbeat(1.0 + beat)
    assert mesh.forward(b"t1") is None and b"t1" not in mesh.held


def test_ihave_asks_only_for_unseen_ids_and_iwant_is_served_from_the_cache() -> None:
    a, b = node(1), node(1)
    a.publish(Topic.GRID, b"old", SMALL, 0.0)
    b.publish(Topic.GRID, b"old", SMALL, 0.0)
    b.publish(Topic.GRID, b"new", SMALL, 0.0)
    step = a.receive(1, IHave(Topic.GRID, (b"old", b"new")), 0.5)
    assert step.sends == [(1, IWant((b"new",)))]
    assert a.receive(1, IHave(Topic.GRID, (b"new",)), 0.6).sends == []  # already promised
    served = b.receive(1, IWant((b"new", b"unknown")), 0.7).sends
    assert served == [(1, Publish(Topic.GRID, b"new", SMALL))]


def test_iwant_is_served_at_most_max_retransmissions_times() -> None:
    b = node(1)
    b.publish(Topic.BLOCKS, b"x", BIG, 0.0)
    copies = sum(len(b.receive(1, IWant((b"x",)), 0.1).sends) for _ in range(10))
    assert copies == b.params.max_retransmissions


def test_cached_messages_expire_after_the_mcache_windows() -> None:
    b = node(1)
    b.publish(Topic.GRID, b"x", SMALL, 0.0)
    for beat in range(1, b.params.mcache_windows + 1):
        b.heartbeat(float(beat))
    assert b.receive(1, IWant((b"x",)), 10.0).sends == []


def test_heartbeat_announces_recent_ids_to_peers_outside_the_mesh() -> None:
    mesh = node(40)
    mesh.heartbeat(1.0)
    mesh.publish(Topic.GRID, b"g", SMALL, 1.5)
    sends = mesh.heartbeat(2.0)
    told = {p for p, f in sends if isinstance(f, IHave) and f.topic is Topic.GRID}
    outside = 40 - len(mesh.mesh[Topic.GRID])
    assert len(told) == max(mesh.params.d_lazy, int(mesh.params.gossip_factor * outside)) == 9
    assert not told & mesh.mesh[Topic.GRID]
    assert all(f.ids == (b"g",) for p, f in sends if isinstance(f, IHave) and p in told)


def test_a_broken_iwant_promise_costs_the_peer_behaviour_score() -> None:
    mesh = node(1)
    mesh.receive(1, IHave(Topic.GRID, (b"never",)), 0.0)
    mesh.heartbeat(1.0)
    assert mesh.peers[1].behaviour == 0  # not yet due
    mesh.heartbeat(3.5)
    assert mesh.peers[1].behaviour == pytest.approx(0.9)  # one, decayed by the heartbeat
    assert mesh.score(1, 3.5) < 0


def test_a_kept_promise_costs_nothing() -> None:
    mesh = node(1)
    mesh.receive(1, IHave(Topic.GRID, (b"m",)), 0.0)
    mesh.receive(1, Publish(Topic.GRID, b"m", SMALL), 0.5)
    mesh.heartbeat(4.0)
    assert mesh.peers[1].behaviour == 0


def test_an_invalid_message_drops_its_sender_from_the_mesh_and_then_graylists_it() -> None:
    mesh = node(10)
    mesh.heartbeat(1.0)
    bad = next(iter(mesh.mesh[Topic.TRANSACTIONS]))
    mesh.receive(bad, Publish(Topic.TRANSACTIONS, b"t", SMALL), 1.1)
    assert mesh.accept(b"t", Validation.INVALID, 1.2) == []
    sends = mesh.heartbeat(2.0)
    assert bad not in mesh.mesh[Topic.TRANSACTIONS]
    assert (bad, Prune(Topic.TRANSACTIONS, mesh.params.prune_backoff_s)) in sends
    mesh.receive(bad, Publish(Topic.TRANSACTIONS, b"t2", SMALL), 2.1)
    mesh.accept(b"t2", Validation.INVALID, 2.2)
    mesh.heartbeat(3.0)  # two invalid: -50 * (~1.9)^2, below the graylist
    assert mesh.scores[bad] < mesh.params.graylist_threshold
    assert mesh.receive(bad, Publish(Topic.GRID, b"g", SMALL), 3.1).deliver == []


def test_an_ignored_message_is_looked_at_again_when_it_comes_back() -> None:
    mesh = node(2)
    message = Publish(Topic.CONSENSUS, b"v", SMALL)
    assert mesh.receive(1, message, 0.0).deliver == [message]
    assert mesh.accept(b"v", Validation.IGNORE, 0.1) == []
    assert mesh.receive(2, message, 0.2).deliver == [message]
    assert mesh.score(1, 0.2) >= 0


def test_the_seen_cache_forgets_after_its_window() -> None:
    mesh = node(1, params=Params(seen_ttl_s=5.0))
    message = Publish(Topic.GRID, b"g", SMALL)
    mesh.receive(1, message, 0.0)
    mesh.accept(b"g", Validation.VALID, 0.0)
    mesh.heartbeat(3.0)
    assert mesh.receive(1, message, 3.5).deliver == []
    mesh.heartbeat(6.0)
    assert mesh.receive(1, message, 6.5).deliver == [message]


def test_a_silent_mesh_member_is_pruned_for_its_block_delivery_deficit() -> None:
    mesh = node(9)
    mesh.heartbeat(0.0)
    members = sorted(mesh.mesh[Topic.BLOCKS])
    silent, live = members[0], members[1:]
    pruned_at = None
    for second in range(1, 12):
        now = float(second)
        mid = b"b%d" % second
        mesh.receive(live[0], Publish(Topic.BLOCKS, mid, BIG), now)
        mesh.accept(mid, Validation.VALID, now)
        for peer in live[1:]:
            mesh.receive(peer, IDontWant((mid,)), now + 0.05)  # their receipts
        sends = mesh.heartbeat(now + 0.5)
        if (silent, Prune(Topic.BLOCKS, mesh.params.prune_backoff_s)) in sends:
            pruned_at = now
            break
    assert pruned_at is not None and pruned_at >= mesh.params.mesh_activation_s
    assert set(live) <= mesh.mesh[Topic.BLOCKS]
    assert all(mesh.scores[p] >= 0 for p in live)


def test_the_grid_goes_first_and_control_before_anything_large() -> None:
    grid = priority(Publish(Topic.GRID, b"g", SMALL))
    control = priority(Graft(Topic.BLOCKS))
    blocks = priority(Publish(Topic.BLOCKS, b"b", BIG))
    txs = priority(Publish(Topic.TRANSACTIONS, b"t", BIG))
    assert grid < control == CONTROL_PRIORITY < blocks < txs
    assert frame_size(Publish(Topic.BLOCKS, b"b", BIG)) > len(BIG)
    assert frame_size(IHave(Topic.GRID, (b"a", b"b"))) < frame_size(IHave(Topic.GRID, (b"a",) * 3))


def test_disconnect_forgets_the_peer_everywhere() -> None:
    mesh = node(8)
    mesh.heartbeat(1.0)
    mesh.disconnect(3)
    assert all(3 not in members for members in mesh.mesh.values())
    assert mesh.receive(3, Publish(Topic.GRID, b"g", SMALL), 1.1).deliver == []


def test_the_same_seed_makes_the_same_choices() -> None:
    def run(seed: int) -> list[tuple[int, Frame]]:
        mesh = node(30, seed=seed)
        sends = mesh.heartbeat(1.0)
        mesh.publish(Topic.GRID, b"g", SMALL, 1.2)
        return sends + mesh.heartbeat(2.0)

    assert run(5) == run(5)
    assert run(5) != run(6)


@pytest.mark.parametrize(
    "bad", [dict(d_lo=0), dict(d=5, d_lo=6), dict(d_hi=7), dict(d_out=7), dict(d_score=9)]
)
def test_inconsistent_degrees_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="need"):
        Params(**bad)
    with pytest.raises(ValueError, match="need"):
        Degree(**{"d": 8, "d_lo": 6, "d_hi": 12, "d_score": 4, "d_out": 2, **bad})


def test_a_direct_peer_keeps_a_score_of_zero_and_gets_every_consensus_message() -> None:
    mesh = node(12)  # every consensus mesh slot taken by others
    mesh.connect(50, 0.0, True, direct=True)
    mesh.receive(50, Subscribe(ALL), 0.0)
    mesh.mesh[Topic.CONSENSUS].discard(50)
    mesh.peers[50].topic(Topic.CONSENSUS).invalid = 10.0  # -5,000 for anyone else
    mesh.peers[1].topic(Topic.CONSENSUS).invalid = 10.0
    assert mesh.score(50, 1.0) == 0 and mesh.score(1, 1.0) < mesh.params.graylist_threshold
    mesh.heartbeat(1.0)
    assert mesh.receive(50, Publish(Topic.CONSENSUS, b"v0", SMALL), 1.1).deliver  # heard
    assert not mesh.receive(1, Publish(Topic.CONSENSUS, b"v1", SMALL), 1.1).deliver
    source = next(iter(mesh.mesh[Topic.CONSENSUS] - {1}))
    mesh.receive(source, Publish(Topic.CONSENSUS, b"vote", SMALL), 1.2)
    assert 50 in {p for p, _ in mesh.accept(b"vote", Validation.VALID, 1.2)}
    mesh.mesh[Topic.BLOCKS].discard(50)
    source = next(iter(mesh.mesh[Topic.BLOCKS]))
    mesh.receive(source, Publish(Topic.BLOCKS, b"block", BIG), 1.3)
    assert 50 in {p for p, _ in mesh.accept(b"block", Validation.VALID, 1.3)}
    mesh.mesh[Topic.TRANSACTIONS].discard(50)
    source = next(iter(mesh.mesh[Topic.TRANSACTIONS]))
    mesh.receive(source, Publish(Topic.TRANSACTIONS, b"batch", BIG), 1.4)
    assert 50 not in {p for p, _ in mesh.accept(b"batch", Validation.VALID, 1.4)}  # mesh only


def test_a_validator_its_hubs_all_trimmed_out_still_gets_blocks_and_grid_updates() -> None:
    # A validator behind sentries whose meshes overflow with full nodes' GRAFTs: each
    # sentry trims it out at a heartbeat, and the validator, pruned by every one of them
    # (so backed off from all for a minute), is left with empty meshes. Its sentries still
    # forward it every block and grid update as a direct peer, and a validator that got a
    # block first tells them with IDONTWANT so they skip their copies.
    validator = Mesh[int](frozenset(Topic), random.Random(7))
    sentries = list(range(1, 5))
    for s in sentries:
        validator.connect(s, 0.0, True, direct=True)
        validator.receive(s, Subscribe(ALL), 0.0)
        for topic in Topic:
            validator.receive(s, Prune(topic, 60.0), 0.1)
    validator.heartbeat(1.0)
    assert all(not validator.mesh[t] for t in Topic)  # every peer backed it off
    sentry = Mesh[int](frozenset(Topic), random.Random(8))
    sentry.connect(0, 0.0, False, direct=True)  # its validator, outside every mesh
    sentry.receive(0, Subscribe(ALL), 0.0)
    for f in range(100, 112):
        sentry.connect(f, 0.0, False)
        sentry.receive(f, Subscribe(ALL), 0.0)
        sentry.receive(f, Graft(Topic.BLOCKS), 0.0)
    for topic in Topic:
        sentry.mesh[topic].discard(0)
    for topic, data in ((Topic.BLOCKS, BIG), (Topic.GRID, SMALL)):
        mid = bytes([topic])
        sentry.receive(100, Publish(topic, mid, data), 1.5)
        assert 0 in {p for p, _ in sentry.accept(mid, Validation.VALID, 1.5)}, topic
    step = validator.receive(1, Publish(Topic.BLOCKS, b"b2", BIG), 2.0)
    assert {p for p, f in step.sends if isinstance(f, IDontWant)} == set(sentries)
