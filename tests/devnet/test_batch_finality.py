"""Batch submission on a devnet of processes: transactions sent through `POST /txs/batch`
finalise about as fast as ones sent one by one through `POST /txs`.

The batch route once admitted transactions by a path of its own that never woke the
proposer, so when the API's node was the next proposer a batch waited for the empty-block
timer (`block_ms`). Each sample here goes to the API of the next height's proposer, just
after the previous block, with a long `block_ms`: a batch that sleeps through the timer
takes seconds, where one that wakes the proposer takes what a single transaction takes.
Single and batch samples alternate in the same run, so load slows both alike."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gridtokenx.client import Client
from gridtokenx.devnet.homes import devnet_genesis, init_devnet
from gridtokenx.ledger import genesis, validator_set
from gridtokenx.node.home import read_config
from gridtokenx.wire import tx
from gridtokenx.wire.crypto import PrivateKey
from tests.client.test_client_devnet import _start, _stop, _wait_ready
from tests.conftest import free_base_port

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]
CHAIN = "gridtokenx-batch-test"
VALIDATORS = ("EGAT", "MEA")
KEYS = genesis.dev_keys()
BLOCK_MS = 4_000  # the empty-block timer a sleeping proposer would wait for
ROUNDS = 5  # samples of each kind
BATCH = 4  # transactions in a batch sample

Send = Callable[[Client, list[bytes]], list[str]]


def _single(api: Client, raws: list[bytes]) -> list[str]:
    return [api.submit(raw) for raw in raws]


def _batch(api: Client, raws: list[bytes]) -> list[str]:
    results = api.submit_batch(raws)
    assert all(r["accepted"] for r in results), results
    return [str(r["hash"]) for r in results]


def _registrations(nonce: int, count: int) -> list[bytes]:
    """MEA registers households from `nonce` on (signed here: keys stay in the test)."""
    mea = KEYS["MEA"]
    out = []
    for i in range(count):
        who = PrivateKey.from_dev_label(f"batch-test/home/{nonce + i}")
        body = tx.RegisterParticipant(who.address, "BKK", tx.ParticipantKind.HOUSEHOLD, "h")
        out.append(tx.make(mea, CHAIN, nonce + i, body).encode())
    return out


def test_batch_submitted_transactions_finalise_as_fast_as_single_ones(tmp_path: Path) -> None:
    genesis_time = int(time.time())
    homes = init_devnet(
        tmp_path, CHAIN, genesis_time, free_base_port(len(VALIDATORS)), block_ms=BLOCK_MS,
        validators=VALIDATORS,
    )  # fmt: skip
    schedule = validator_set.for_height(
        genesis.build_state(devnet_genesis(CHAIN, genesis_time, VALIDATORS)), 1
    )
    procs = [_start(h) for h in homes]
    try:
        with (
            Client(f"http://127.0.0.1:{read_config(homes[0]).api_port}") as egat,
            Client(f"http://127.0.0.1:{read_config(homes[1]).api_port}") as mea,
        ):
            apis = {KEYS["EGAT"].address: egat, KEYS["MEA"].address: mea}
            _wait_ready(egat)
            _wait_ready(mea)
            nonce = mea.balance(KEYS["MEA"]).nonce

            def finality(send: Send, raws: list[bytes]) -> float:
                """Seconds from submission to the last commit, through the API of the
                next height's proposer (blocks come only when a sample sends some)."""
                height = max(api.health()["height"] for api in apis.values())
                api = apis[schedule.proposer(height + 1, 0)]
                start = time.monotonic()
                for tx_hash in send(api, raws):
                    api.wait(tx_hash, timeout=30, poll=0.02)
                return time.monotonic() - start

            single: list[float] = []
            batch: list[float] = []
            for _ in range(ROUNDS):
                single.append(finality(_single, _registrations(nonce, 1)))
                batch.append(finality(_batch, _registrations(nonce + 1, BATCH)))
                nonce += 1 + BATCH
            single_p50, batch_p50 = statistics.median(single), statistics.median(batch)
            print(f"finality p50: single {single_p50:.3f} s, batch {batch_p50:.3f} s")
            # A sleeping proposer makes a batch wait up to BLOCK_MS (4 s): far above this.
            assert batch_p50 < 2 * single_p50 + 0.5, (single, batch)
    finally:
        _stop(procs)
