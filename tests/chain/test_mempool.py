"""The mempool: every admission check with its code, per-sender nonce runs in blocks,
limits with eviction by fee, and an outcome for every admitted transaction."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from gridtokenx.chain.mempool import Entry, Mempool
from gridtokenx.wire import crypto, tx
from gridtokenx.wire.crypto import PrivateKey

CHAIN = "gridtokenx-test"
ALICE, BOB, CAROL = (PrivateKey.from_dev_label(f"test/mempool/{n}") for n in ("a", "b", "c"))
NONCES = {ALICE.address: 0, BOB.address: 5, CAROL.address: 0}


def nonce_of(address: bytes) -> int | None:
    return NONCES.get(address)


def make(key: PrivateKey, nonce: int, fee: int = 0, amount: int = 1, chain: str = CHAIN) -> bytes:
    body = tx.Transfer(tx.Asset.THB, BOB.address, amount)
    return tx.make(key, chain, nonce, body, fee).encode()


@pytest.fixture
def pool() -> Iterator[Mempool]:
    mp = Mempool(CHAIN, max_txs=10, max_per_sender=5)
    yield mp
    mp.close()


def test_admits_and_reports_pending(pool: Mempool) -> None:
    result = pool.add(make(ALICE, 0), nonce_of, 0)
    assert result.accepted and result.tx_hash is not None
    assert pool.status(result.tx_hash) == "pending" and len(pool) == 1


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\x00garbage", "MALFORMED"),
        (make(ALICE, 0, chain="other-chain"), "WRONG_CHAIN_ID"),
        (make(PrivateKey.from_dev_label("test/mempool/stranger"), 0), "UNKNOWN_SENDER"),
        (make(BOB, 4), "NONCE_REPLAYED"),
        (make(ALICE, 5), "NONCE_TOO_FAR"),
        (make(ALICE, 0, fee=9), "FEE_TOO_LOW"),
    ],
)
def test_refusals_have_codes_and_change_nothing(pool: Mempool, raw: bytes, code: str) -> None:
    result = pool.add(raw, nonce_of, 10)
    assert not result.accepted and result.code == code
    assert len(pool) == 0 and pool.size_bytes == 0


def test_bad_signature_is_refused(pool: Mempool) -> None:
    stx = tx.decode(make(ALICE, 0))
    forged = tx.SignedTransaction(stx.tx, bytes(64)).encode()
    assert pool.add(forged, nonce_of, 0).code == "INVALID_SIGNATURE"


def test_duplicates_and_taken_nonces(pool: Mempool) -> None:
    raw = make(ALICE, 0)
    assert pool.add(raw, nonce_of, 0).accepted
    assert pool.add(raw, nonce_of, 0).code == "DUPLICATE"
    assert pool.add(make(ALICE, 0, amount=2), nonce_of, 0).code == "NONCE_TAKEN"


def test_batch_verification_sorts_good_from_bad() -> None:
    mp = Mempool(CHAIN, max_txs=1_000, max_per_sender=1_000)
    good = [make(ALICE, n) for n in range(150)]
    bad = [
        tx.SignedTransaction(tx.decode(make(CAROL, n)).tx, bytes(64)).encode() for n in range(50)
    ]
    results = mp.add_batch(good + bad, nonce_of, 0)
    mp.close()
    assert [r.accepted for r in results] == [True] * 150 + [False] * 50
    assert {r.code for r in results[150:]} == {"INVALID_SIGNATURE"}


def test_reap_takes_consecutive_nonces_per_sender_interleaved(pool: Mempool) -> None:
    a0, a1, a3 = make(ALICE, 0), make(ALICE, 1), make(ALICE, 3)  # a gap at 2
    b5, b6 = make(BOB, 5), make(BOB, 6)
    for raw in (a0, b5, a1, a3, b6):
        assert pool.add(raw, nonce_of, 0).accepted
    assert pool.reap(nonce_of, 100, 10**6) == [a0, b5, a1, b6]
    assert pool.reap(nonce_of, 3, 10**6) == [a0, b5, a1]
    assert pool.reap(nonce_of, 100, len(a0) + len(b5)) == [a0, b5]


def test_reap_tells_what_a_block_could_run_of_what_is_held(pool: Mempool) -> None:
    """`ready_at_reap`: each sender's run from its next nonce, whatever the block's bound
    took; a transaction behind a gap is held but not ready (the proposer's committed line
    tells both)."""
    for raw in (make(ALICE, 0), make(ALICE, 1), make(ALICE, 3), make(BOB, 6), make(CAROL, 0)):
        assert pool.add(raw, nonce_of, 0).accepted
    assert len(pool.reap(nonce_of, 2, 10**6)) == 2
    assert (pool.ready_at_reap, len(pool)) == (3, 5)  # ALICE 0-1 and CAROL 0


def test_update_marks_committed_and_drops_superseded(pool: Mempool) -> None:
    a0, a1 = make(ALICE, 0), make(ALICE, 1)
    for raw in (a0, a1):
        pool.add(raw, nonce_of, 0)
    other_a1 = make(ALICE, 1, amount=7)  # committed elsewhere, never in this pool
    NONCES[ALICE.address] = 2
    try:
        dropped = pool.update([tx.decode(a0).hash, tx.decode(other_a1).hash], nonce_of)
    finally:
        NONCES[ALICE.address] = 0
    assert pool.status(tx.decode(a0).hash) == "committed"
    assert pool.status(tx.decode(a1).hash) == "dropped:SUPERSEDED"
    assert dropped == [(tx.decode(a1).hash, "SUPERSEDED")]
    assert len(pool) == 0 and pool.size_bytes == 0
    assert pool.status(b"\x00" * 32) == "unknown"


def test_update_given_the_block_looks_only_at_its_senders_and_those_that_changed() -> None:
    """Given the block's transactions, `update` reads the nonces of the block's senders
    and of those whose queue changed since the last block, not of every sender, and ends
    with the same pool, drops and backlog as the walk over every sender."""
    keys = [PrivateKey.from_dev_label(f"test/mempool/many/{n}") for n in range(6)]
    nonces = {k.address: 0 for k in keys}
    read: list[bytes] = []

    def counted(address: bytes) -> int | None:
        read.append(address)
        return nonces.get(address)

    def make_for(key: PrivateKey, nonce: int) -> bytes:
        return tx.make(key, CHAIN, nonce, tx.Transfer(tx.Asset.THB, BOB.address, 1)).encode()

    given, walked = Mempool(CHAIN), Mempool(CHAIN)
    try:
        for mp in (given, walked):  # each sender: 0 and 1 ready, 3 behind a gap
            for key in keys:
                for n in (0, 1, 3):
                    assert mp.add(make_for(key, n), nonces.get, 0).accepted
            mp.update([], nonces.get)
        block = [make_for(keys[0], 0), make_for(keys[1], 0), make_for(keys[1], 1)]
        late = make_for(keys[2], 2)  # admitted after the last block: fills keys[2]'s gap
        for mp in (given, walked):
            assert mp.add(late, nonces.get, 0).accepted
        nonces[keys[0].address], nonces[keys[1].address] = 1, 2
        hashes = [tx.hash_of(raw) for raw in block]
        read.clear()
        dropped = given.update(hashes, counted, [tx.decode(raw) for raw in block])
        assert sorted(set(read)) == sorted(k.address for k in keys[:3])
        assert dropped == walked.update(hashes, nonces.get)
        assert (len(given), given.backlog) == (len(walked), walked.backlog) == (16, 11)
        assert given.reap(nonces.get, 100, 10**6) == walked.reap(nonces.get, 100, 10**6)
    finally:
        given.close()
        walked.close()


class ScanningMempool(Mempool):
    """The eviction choice as it was made before the heap of tails: a walk over every
    queue for the cheapest last-in-line transaction."""

    def _cheapest_tail(self) -> Entry | None:
        tails = [q[max(q)] for q in self._by_sender.values() if q]
        return min(tails, key=lambda e: (e.fee_per_byte, -e.seq)) if tails else None


def test_a_full_pool_evicts_as_the_walk_over_every_queue_did() -> None:
    """Random admissions (fees, nonces with gaps, several senders) into a small full pool,
    with blocks between them: the heap of tails evicts exactly what the walk evicted."""
    rnd = random.Random(7)
    keys = [PrivateKey.from_dev_label(f"test/mempool/evict/{n}") for n in range(5)]
    nonces = {k.address: 0 for k in keys}
    heap, walk = (
        Mempool(CHAIN, max_txs=12, max_per_sender=8),
        ScanningMempool(CHAIN, max_txs=12, max_per_sender=8),
    )
    try:
        evicted = 0
        for step in range(300):
            key = rnd.choice(keys)
            nonce = nonces[key.address] + rnd.randrange(6)
            body = tx.Transfer(
                tx.Asset.THB, BOB.address, rnd.randrange(1, 10 ** rnd.randrange(1, 9))
            )
            raw = tx.make(key, CHAIN, nonce, body, rnd.randrange(20)).encode()
            results = [mp.add(raw, nonces.get, 0) for mp in (heap, walk)]
            assert results[0] == results[1], step
            if step % 25 == 24:  # a block: each sender's ready run, as far as it goes
                block = heap.reap(nonces.get, 6, 10**6)
                assert block == walk.reap(nonces.get, 6, 10**6)
                for raw in block:
                    stx = tx.decode(raw)
                    nonces[stx.tx.sender_address] = stx.tx.nonce + 1
                hashes = [tx.hash_of(raw) for raw in block]
                assert heap.update(hashes, nonces.get) == walk.update(hashes, nonces.get)
            assert heap.waiting() == walk.waiting(), step
            evicted = heap.dropped["EVICTED"]
        assert evicted > 20 and heap.dropped == walk.dropped
    finally:
        heap.close()
        walk.close()


def test_full_pool_evicts_the_cheapest_tail_for_a_better_fee() -> None:
    mp = Mempool(CHAIN, max_txs=3, max_per_sender=10)
    cheap = [make(ALICE, n, fee=1) for n in range(3)]
    for raw in cheap:
        assert mp.add(raw, nonce_of, 0).accepted
    assert mp.add(make(CAROL, 0, fee=1), nonce_of, 0).code == "MEMPOOL_FULL"  # no better fee
    rich = make(CAROL, 0, fee=500)
    assert mp.add(rich, nonce_of, 0).accepted
    assert mp.status(tx.decode(cheap[2]).hash) == "dropped:EVICTED"  # the end of Alice's run
    assert mp.status(tx.decode(cheap[0]).hash) == "pending"
    assert len(mp) == 3
    mp.close()


def test_byte_limit_is_enforced() -> None:
    raw = make(ALICE, 0)
    mp = Mempool(CHAIN, max_bytes=len(raw) * 2)
    assert mp.add(raw, nonce_of, 0).accepted
    assert mp.add(make(ALICE, 1), nonce_of, 0).accepted
    assert mp.add(make(ALICE, 2), nonce_of, 0).code == "MEMPOOL_FULL"
    assert mp.size_bytes <= len(raw) * 2
    mp.close()


def test_clients_are_turned_away_beyond_two_blocks_of_work_but_grid_operations_are_not() -> None:
    """Back-pressure: from clients (`bounded`), transactions beyond the backlog limit are
    refused MEMPOOL_FULL and change nothing; a grid emergency is still admitted, and so is
    what a peer relays. The limit follows the blocks: two of the largest recent ones."""
    mp = Mempool(CHAIN, max_txs=100, max_per_sender=50, min_backlog=3)
    try:

        def client(raw: bytes) -> str:
            (result,) = mp.admit([raw], mp._checked([raw]), nonce_of, 0, bounded=True)
            return result.code or "accepted"

        assert [client(make(ALICE, n)) for n in range(3)] == ["accepted"] * 3
        refused = make(ALICE, 3)
        assert client(refused) == "MEMPOOL_FULL"
        assert len(mp) == 3 and mp.status(tx.decode(refused).hash) == "unknown"
        alarm = tx.make(CAROL, CHAIN, 0, tx.DeclareEmergency(("BKK",), "frequency 49.2 Hz"), 0)
        assert client(alarm.encode()) == "accepted"  # a grid operation jumps the backlog
        assert mp.add(make(ALICE, 3), nonce_of, 0).accepted  # the node's own: unbounded
        assert mp.backlog_limit == 3

        mp.update([tx.decode(make(BOB, 5 + n)).hash for n in range(4)], nonce_of)  # a block of 4
        assert mp.backlog_limit == 8
        assert [client(make(ALICE, n)) for n in range(4, 7)] == ["accepted"] * 3
        assert client(make(ALICE, 7)) == "MEMPOOL_FULL"
        assert mp.refused == {"MEMPOOL_FULL": 2}
        # A gap before the sender's waiting transactions is filled even when full: CAROL's
        # nonce 2 waits for 1, which would otherwise never run.
        assert mp.add(make(CAROL, 2), nonce_of, 0).accepted  # (unbounded)
        assert client(make(CAROL, 3)) == "MEMPOOL_FULL"
        assert client(make(CAROL, 1)) == "accepted"
    finally:
        mp.close()


def test_a_grid_operation_counts_as_ready_only_when_a_block_could_take_it(pool: Mempool) -> None:
    """`priority_ready` (a proposer stops waiting for more trading): a grid operation
    behind a gap in its sender's nonces waits but could not go into the next block; it
    is ready once the gap fills, and neither once it has left the pool."""
    alarm = tx.make(CAROL, CHAIN, 1, tx.DeclareEmergency(("BKK",), "frequency 49.2 Hz"), 0)
    assert pool.add(make(ALICE, 0), nonce_of, 0).accepted
    assert not pool.priority_waiting and not pool.priority_ready(nonce_of)
    assert pool.add(alarm.encode(), nonce_of, 0).accepted  # CAROL's next nonce is 0
    assert pool.priority_waiting and not pool.priority_ready(nonce_of)
    assert pool.add(make(CAROL, 0), nonce_of, 0).accepted  # the gap filled
    assert pool.priority_ready(nonce_of)
    pool.update([tx.decode(make(CAROL, 0)).hash, alarm.hash], nonce_of)
    assert not pool.priority_waiting and not pool.priority_ready(nonce_of)


@pytest.mark.parametrize("seed", range(8))
def test_update_drops_and_counts_gaps_as_a_walk_of_every_queue_would(seed: int) -> None:
    """`update` settles a sender's queue by its lowest and highest nonces when nothing is
    superseded and nothing waits behind a gap: over random queues (holes, nonces the chain
    passed, senders without an account) its drops and backlog are those of walking every
    waiting transaction."""
    rng = random.Random(seed)
    keys = [PrivateKey.from_dev_label(f"test/mempool/walk/{n}") for n in range(5)]
    nonces: dict[bytes, int] = {k.address: 0 for k in keys}
    mp = Mempool(CHAIN, max_txs=1_000, max_per_sender=40)
    try:
        for key in keys:
            for n in rng.sample(range(30), rng.randint(0, 25)):
                assert mp.add(make(key, n), nonces.get, 0).accepted
        waiting = {h: (e.sender, e.nonce) for h, e in mp._by_hash.items()}
        for key in keys:
            nonces[key.address] = rng.choice([0, 0, 3, 10, 31])
        del nonces[keys[-1].address]  # its account is gone: all of it is superseded
        dropped = {h for h, _ in mp.update([], nonces.get)}
    finally:
        mp.close()
    expected = {h for h, (s, n) in waiting.items() if s not in nonces or n < nonces[s]}
    assert dropped == expected
    left: dict[bytes, set[int]] = {}
    for h, (sender, n) in waiting.items():
        if h not in expected:
            left.setdefault(sender, set()).add(n)
    ready = 0
    for sender, held in left.items():
        n = nonces[sender]
        while n in held:
            ready, n = ready + 1, n + 1
    assert mp.backlog == ready


def test_transactions_behind_a_gap_are_not_work_so_a_full_pool_still_takes_ready_ones() -> None:
    """A pool whose waiting transactions all sit behind gaps in their senders' nonces holds
    nothing a block can take: after the next block they no longer count toward the
    backlog, so a client's transaction that can run at once is admitted instead of refused
    MEMPOOL_FULL (which left proposers with nothing ready, and the chain proposing empty
    blocks, under overload). Ready transactions still fill the backlog as before."""
    mp = Mempool(CHAIN, max_txs=100, max_per_sender=50, min_backlog=3)
    try:

        def client(raw: bytes) -> str:
            (result,) = mp.admit([raw], mp._checked([raw]), nonce_of, 0, bounded=True)
            return result.code or "accepted"

        # ALICE's next nonce is 0: her 1, 2 and 3 wait behind the gap at 0.
        assert [client(make(ALICE, n)) for n in (1, 2, 3)] == ["accepted"] * 3
        assert client(make(BOB, 5)) == "MEMPOOL_FULL"  # counted as work until a block tells
        mp.update([], nonce_of)  # an empty block: the three are behind a gap
        assert [client(make(BOB, n)) for n in (5, 6, 7)] == ["accepted"] * 3  # ready at once
        assert (len(mp), mp.backlog) == (6, 3)
        assert client(make(BOB, 8)) == "MEMPOOL_FULL"  # three ready: the backlog is full
        assert client(make(ALICE, 0)) == "accepted"  # fills ALICE's gap, as before
        mp.update([], nonce_of)  # now all seven are ready
        assert (len(mp), mp.backlog) == (7, 7)
        assert client(make(CAROL, 0)) == "MEMPOOL_FULL"
    finally:
        mp.close()


class CountedVerify:
    """crypto.verify, counted (the pool's threads call it): the real check still runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[bytes] = []
        self._real = crypto.verify
        monkeypatch.setattr(crypto, "verify", self)

    def __call__(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        self.calls.append(public_key)  # list.append is atomic under the GIL
        return self._real(public_key, message, signature)


def bounded(mp: Mempool, raws: list[bytes], relayed: bool = False) -> list[str]:
    """A client's (or with `relayed`, a peer's) batch through both steps, as `Node.admit`
    runs them."""
    promised = mp.reserve(len(raws), relayed)
    try:
        checked = [c for future in mp.precheck(raws, promised) for c in future.result()]
        admitted = mp.admit(raws, checked, nonce_of, 0, bounded=True, relayed=relayed)
    finally:
        mp.release(promised)
    return [r.code or "accepted" for r in admitted]


def test_a_full_backlog_refuses_before_verifying_the_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Overload must not buy CPU: once the backlog is full, a bounded transaction refused
    MEMPOOL_FULL costs no Ed25519 verify (even a forged one: it is refused for the backlog,
    and never looked at). A grid operation is still verified and admitted; a transaction
    that fills a gap is verified when admitted, and refused if its signature is forged."""
    mp = Mempool(CHAIN, max_txs=100, max_per_sender=50, min_backlog=3)
    try:
        verify = CountedVerify(monkeypatch)
        assert bounded(mp, [make(ALICE, 0), make(ALICE, 1), make(ALICE, 3)]) == ["accepted"] * 3
        assert len(verify.calls) == 3 and mp.backlog_full
        verify.calls.clear()

        later = [make(ALICE, n) for n in range(4, 10)]
        forged = tx.SignedTransaction(tx.decode(make(BOB, 5)).tx, bytes(64)).encode()
        assert bounded(mp, [*later, forged]) == ["MEMPOOL_FULL"] * 7
        assert verify.calls == []  # seven refusals, no verify
        assert len(mp) == 3 and all(mp.status(tx.hash_of(r)) == "unknown" for r in later)

        alarm = tx.make(CAROL, CHAIN, 0, tx.DeclareEmergency(("BKK",), "49.2 Hz"), 0).encode()
        assert bounded(mp, [alarm]) == ["accepted"]
        assert verify.calls == [CAROL.public_key]  # a grid operation: verified, admitted

        verify.calls.clear()
        gap = tx.decode(make(ALICE, 2))
        gap_forged = tx.SignedTransaction(gap.tx, bytes(64)).encode()
        assert bounded(mp, [gap_forged]) == ["INVALID_SIGNATURE"]  # verified once due
        assert bounded(mp, [gap.encode()]) == ["accepted"]
        assert len(verify.calls) == 2 and len(mp) == 5
    finally:
        mp.close()


def test_a_batch_is_verified_only_as_far_as_the_backlog_has_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bounded batch arriving with room for two of its five in the backlog has two
    verified, not five: the three refused MEMPOOL_FULL cost no verify (before, a batch
    arriving just under the limit was verified whole and mostly refused). Two batches
    checked at once share the room: the second, promised nothing, verifies only its grid
    operation. A deferred transaction admitted after all (the room came back) is
    verified when admitted, and its forgery refused."""
    verify = CountedVerify(monkeypatch)
    mp = Mempool(CHAIN, max_txs=100, max_per_sender=50, min_backlog=2)
    try:
        five = [make(ALICE, n) for n in range(5)]
        assert bounded(mp, five) == ["accepted"] * 2 + ["MEMPOOL_FULL"] * 3
        assert len(verify.calls) == 2 and mp.backlog_full
    finally:
        mp.close()
    verify.calls.clear()
    mp = Mempool(CHAIN, max_txs=100, max_per_sender=50, min_backlog=2)
    try:
        first, second = mp.reserve(3), mp.reserve(3)
        assert (first, second) == (2, 0)
        alarm = tx.make(CAROL, CHAIN, 0, tx.DeclareEmergency(("BKK",), "49.2 Hz"), 0).encode()
        later = [make(BOB, 5), alarm]
        checked = [c for f in mp.precheck(later, second) for c in f.result()]
        assert [ok for _, ok in checked] == [None, True]  # the order deferred, the alarm not
        assert verify.calls == [CAROL.public_key]
        mp.release(first)
        mp.release(second)
        assert mp.reserve(5) == 2  # the promises are given back
        verify.calls.clear()
        forged = tx.SignedTransaction(tx.decode(later[0]).tx, bytes(64)).encode()
        (refused,) = mp.admit([forged], [(tx.decode(forged), None)], nonce_of, 0, bounded=True)
        assert refused.code == "INVALID_SIGNATURE" and verify.calls == [BOB.public_key]
    finally:
        mp.close()


def test_a_full_pool_refuses_before_verifying_what_it_could_not_make_room_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pool at `max_txs` whose cheapest last-in-line transaction pays as much per byte
    refuses a bounded transaction MEMPOOL_FULL before its deferred verify (as the backlog
    does); one that outbids it is verified and evicts it."""
    mp = Mempool(CHAIN, max_txs=3, max_per_sender=10, min_backlog=1)
    try:
        for n in (1, 2, 3):  # behind ALICE's gap at 0: not work, so the backlog is not full
            assert mp.add(make(ALICE, n, fee=1), nonce_of, 0).accepted
        mp.update([], nonce_of)
        assert mp.backlog == 0
        verify = CountedVerify(monkeypatch)
        # Next in line, but what waits behind ALICE's gap was acknowledged here (not a
        # peer's relay, which `_gapped_tail` would evict): it evicts by fee alone.
        checked = [(c[0], None) for c in mp._checked([make(CAROL, 0, fee=1)])]  # deferred
        verify.calls.clear()
        (result,) = mp.admit([make(CAROL, 0, fee=1)], checked, nonce_of, 0, bounded=True)
        assert result.code == "MEMPOOL_FULL" and verify.calls == []
        rich = make(CAROL, 0, fee=500)
        checked = [(c[0], None) for c in mp._checked([rich])]
        verify.calls.clear()
        (result,) = mp.admit([rich], checked, nonce_of, 0, bounded=True)
        assert result.accepted and verify.calls == [CAROL.public_key] and len(mp) == 3
    finally:
        mp.close()


def test_a_pool_full_of_transactions_behind_gaps_takes_one_a_block_could_run() -> None:
    """At its hard limit with transactions that wait behind a gap, the pool takes a
    transaction a block could run (next in line, or filling a gap) without outbidding
    them: the last-in-line of a sender still behind its gap goes. Before, it had to pay
    more per byte, and a pool full of gapped transactions refused the very ones that let
    them run."""
    mp = Mempool(CHAIN, max_txs=3, max_per_sender=10)
    try:
        gapped = [make(ALICE, n, fee=5) for n in (1, 2, 3)]  # ALICE's next nonce is 0
        # A peer's relays: the peer acknowledged them.
        assert bounded(mp, gapped, relayed=True) == ["accepted"] * 3
        mp.update([], nonce_of)  # the block tells: all three wait behind ALICE's gap
        assert mp.backlog == 0
        # Gapped itself (CAROL's next is 0) and paying less: refused as before.
        assert mp.add(make(CAROL, 1, fee=1), nonce_of, 0).code == "MEMPOOL_FULL"
        ready = make(CAROL, 0, fee=1)  # next in line, paying less than the gapped ones
        assert mp.add(ready, nonce_of, 0).accepted
        assert mp.status(tx.decode(gapped[2]).hash) == "dropped:EVICTED"
        assert [mp.status(tx.decode(r).hash) for r in gapped[:2]] == ["pending", "pending"]
        # ALICE changed since the block (one evicted): not taken for gapped until the next.
        assert mp.add(make(BOB, 5, fee=1), nonce_of, 0).code == "MEMPOOL_FULL"
        mp.update([], nonce_of)
        assert mp.add(make(BOB, 5, fee=1), nonce_of, 0).accepted
        assert mp.status(tx.decode(gapped[1]).hash) == "dropped:EVICTED"
        # ALICE's own gap-filler is next in line, but her own waiting ones are what it
        # lets run: they are not evicted for it, and nothing else is gapped.
        mp.update([], nonce_of)
        assert mp.add(make(ALICE, 0, fee=1), nonce_of, 0).code == "MEMPOOL_FULL"
        assert len(mp) == 3
    finally:
        mp.close()


def test_a_full_pool_never_evicts_what_it_acknowledged_for_one_a_block_could_run() -> None:
    """What waits behind a gap is evicted for a transaction a block could run only when a
    peer relayed it (the node that acknowledged it holds it); what this node acknowledged
    (a client's, or its own) stays, and the newcomer is refused MEMPOOL_FULL unless it
    outbids the cheapest (the fee rule, as before; at twice saturation every node evicted
    the same senders' last transactions, and orders the client was told were accepted never
    committed)."""
    mp = Mempool(CHAIN, max_txs=3, max_per_sender=10)
    try:
        mine = [make(ALICE, n, fee=5) for n in (1, 2)]  # ALICE's next nonce is 0
        assert bounded(mp, mine) == ["accepted"] * 2  # a client's: acknowledged here
        carol = [make(CAROL, 2, fee=5)]  # a peer's relay; CAROL's next nonce is 0
        assert bounded(mp, carol, relayed=True) == ["accepted"]
        mp.update([], nonce_of)
        assert mp.backlog == 0 and len(mp) == 3
        # BOB's 5 is next in line: CAROL's relayed 2 goes, not ALICE's.
        assert mp.add(make(BOB, 5, fee=1), nonce_of, 0).accepted
        assert mp.status(tx.hash_of(make(CAROL, 2, fee=5))) == "dropped:EVICTED"
        mp.update([], nonce_of)
        # Only ALICE's acknowledged ones wait behind a gap now: BOB's 6 must outbid them.
        assert mp.add(make(BOB, 6, fee=1), nonce_of, 0).code == "MEMPOOL_FULL"
        assert [mp.status(tx.hash_of(r)) for r in mine] == ["pending", "pending"]
    finally:
        mp.close()


def test_the_last_fifth_of_a_pool_is_kept_for_what_fills_a_gap() -> None:
    """Once a pool holds four fifths of its hard limit, clients and peers are refused
    (MEMPOOL_FULL, whatever the fee) a transaction that would itself wait behind a gap,
    though the backlog (what a block could run) is empty; what a block could run is still
    admitted there, what fills a gap above all, and the node's own is judged by the hard
    limits alone. At twice saturation a pool filled to its hard limit with transactions
    behind gaps and refused their fillers."""
    mp = Mempool(CHAIN, max_txs=15, max_per_sender=20)
    try:
        behind = [make(ALICE, n) for n in range(2, 14)]  # ALICE's next nonce is 0
        assert bounded(mp, behind) == ["accepted"] * 12
        mp.update([], nonce_of)
        assert mp.backlog == 0 and not mp.backlog_full
        refused = mp.admit([make(CAROL, 1, fee=500)], mp.check([make(CAROL, 1, fee=500)]),
                           nonce_of, 0, bounded=True)  # fmt: skip
        assert refused[0].code == "MEMPOOL_FULL" and "behind a gap" in refused[0].message
        assert bounded(mp, [make(ALICE, 14)], relayed=True) == ["MEMPOOL_FULL"]
        assert len(mp) == 12
        # Next in line, and what fills ALICE's gap, from a client or a peer.
        assert bounded(mp, [make(CAROL, 0)]) == ["accepted"]
        assert bounded(mp, [make(ALICE, 0)]) == ["accepted"]
        assert bounded(mp, [make(ALICE, 1)], relayed=True) == ["accepted"]
        mp.update([], nonce_of)
        assert len(mp) == mp.backlog == 15  # ALICE's 0-13 and CAROL's 0: all can run
        assert mp.add(make(BOB, 5, fee=5), nonce_of, 0).accepted  # evicts for its fee
    finally:
        mp.close()


def test_a_newcomer_never_evicts_its_own_senders_last_transaction_before_it() -> None:
    """A full pool whose cheapest last-in-line transaction is the newcomer's own
    predecessor refuses the newcomer (MEMPOOL_FULL) however much more it pays: evicting
    it would leave the newcomer behind a gap of its own making. Another sender's
    transaction that outbids it still evicts it (the fee rule)."""
    mp = Mempool(CHAIN, max_txs=3, max_per_sender=10)
    try:
        cheap = [make(ALICE, 0, fee=1), make(ALICE, 1, fee=1)]  # ALICE's next nonce is 0
        assert [mp.add(r, nonce_of, 0).accepted for r in cheap] == [True, True]
        assert mp.add(make(CAROL, 0, fee=5), nonce_of, 0).accepted
        refused = mp.add(make(ALICE, 2, fee=500), nonce_of, 0)
        assert refused.code == "MEMPOOL_FULL"
        assert [mp.status(tx.hash_of(r)) for r in cheap] == ["pending", "pending"]
        assert bounded(mp, [make(ALICE, 2, fee=500)]) == ["MEMPOOL_FULL"]
        assert mp.add(make(BOB, 5, fee=500), nonce_of, 0).accepted  # BOB's next: outbids
        assert mp.status(tx.hash_of(cheap[1])) == "dropped:EVICTED"
    finally:
        mp.close()


def test_tails_are_pushed_once_a_sender_when_a_full_pool_looks() -> None:
    """Admission with room leaves the heap of tails alone (a push per transaction cost
    every admission about a microsecond, though only a full pool looks at the heap); the
    first look pushes each sender's current tail once, and evicts as before."""
    mp = Mempool(CHAIN, max_txs=12, max_per_sender=20)
    try:
        for n in range(8):
            assert mp.add(make(ALICE, n, fee=5), nonce_of, 0).accepted
        for n in range(4):
            assert mp.add(make(CAROL, n, fee=1), nonce_of, 0).accepted
        assert mp._tails == []
        rich = mp.add(make(BOB, 5, fee=500), nonce_of, 0)  # full: evicts Carol's last
        assert rich.accepted
        assert mp.status(tx.hash_of(make(CAROL, 3, fee=1))) == "dropped:EVICTED"
        assert sorted(e.sender for _, _, e in mp._tails) == sorted([ALICE.address,
                                                                   CAROL.address])  # fmt: skip
    finally:
        mp.close()


def test_a_refusal_is_still_logged_at_debug_level(caplog: pytest.LogCaptureFixture) -> None:
    """The refusal's debug line is built only when the level lets it out, and then as
    before: with the transaction, its code and the reason."""
    mp = Mempool(CHAIN)
    try:
        raw = make(ALICE, 0)
        assert mp.add(raw, nonce_of, 0).accepted
        with caplog.at_level("INFO", logger="gridtokenx.chain.mempool"):
            assert mp.add(raw, nonce_of, 0).code == "DUPLICATE"
        assert not [r for r in caplog.records if r.getMessage() == "transaction refused"]
        with caplog.at_level("DEBUG", logger="gridtokenx.chain.mempool"):
            assert mp.add(raw, nonce_of, 0).code == "DUPLICATE"
        (record,) = [r for r in caplog.records if r.getMessage() == "transaction refused"]
        assert record.__dict__["tx"] == tx.hash_of(raw).hex()
        assert record.__dict__["code"] == "DUPLICATE"
        assert record.__dict__["reason"] == "already in the mempool"
        assert mp.refused == {"DUPLICATE": 2}
    finally:
        mp.close()


def test_peers_relays_are_admitted_past_the_clients_bound_up_to_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pool full for clients still takes its peers' relays, up to RELAY_BACKLOG_BLOCKS
    blocks of work, so it holds what they will propose, verified on admission: refused at
    the clients' bound, at twice the saturation rate a quarter of every proposal's
    transactions were verified on its path (`chain.mempool`). Clients stay refused at
    theirs, and the relays' limit refuses before any verify, as the clients' does."""
    verify = CountedVerify(monkeypatch)
    mp = Mempool(CHAIN, max_txs=100, max_per_sender=50, min_backlog=2)
    try:
        assert mp.relay_backlog_limit == 2 * mp.backlog_limit == 4
        assert bounded(mp, [make(ALICE, 0), make(ALICE, 1), make(ALICE, 2)]) == [
            "accepted", "accepted", "MEMPOOL_FULL"]  # fmt: skip
        assert mp.backlog_full and len(verify.calls) == 2
        relays = [make(ALICE, n) for n in range(2, 6)]
        assert bounded(mp, relays, relayed=True) == ["accepted"] * 2 + ["MEMPOOL_FULL"] * 2
        assert len(verify.calls) == 4  # the two refused: no verify
        assert bounded(mp, [make(ALICE, 4)]) == ["MEMPOOL_FULL"]  # a client still is
        assert len(mp) == 4 and mp.backlog == mp.relay_backlog_limit
    finally:
        mp.close()
