"""DevnetSink against a real devnet: four validator processes on 127.0.0.1 (RocksDB in a
temporary folder), reached only through the node API, the way the demo drives them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridtokenx.client import Client
from gridtokenx.devnet.homes import init_devnet
from gridtokenx.devnet.processes import Processes
from gridtokenx.ledger import genesis
from gridtokenx.node.home import read_config
from gridtokenx.simulator.devnet_sink import DevnetRejected, DevnetSink, DevnetTimeout
from gridtokenx.wire import crypto, tx
from tests.conftest import free_base_port

pytestmark = pytest.mark.process

CHAIN = "gridtokenx-sink-test"
MEA = genesis.dev_keys()["MEA"]
ERC = genesis.dev_keys()["ERC"]


def _start(root: Path) -> tuple[Processes, str]:
    homes = init_devnet(root, CHAIN, int(time.time()), free_base_port(), block_ms=200)
    nodes = Processes(homes).start()
    url = f"http://127.0.0.1:{read_config(homes[0]).api_port}"
    deadline = time.monotonic() + 30
    with Client(url, timeout=2.0) as api:
        while True:
            try:
                if api.health()["height"] >= 1:
                    return nodes, url
            except Exception:
                pass
            if time.monotonic() > deadline or not nodes.alive():
                nodes.stop()
                raise RuntimeError("the devnet did not come up")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    nodes, url = _start(tmp_path_factory.mktemp("sink-devnet"))
    try:
        with Client(url, timeout=10.0) as client:
            yield client
    finally:
        nodes.stop()


def _registrations(sink: DevnetSink, count: int, zone: str = "BKK") -> list[bytes]:
    first = sink.next_nonce(MEA.address)
    return [
        tx.make(MEA, CHAIN, first + i, tx.RegisterParticipant(
            crypto.PrivateKey.generate().address, zone, tx.ParticipantKind.HOUSEHOLD, f"home {i}"
        )).encode()
        for i in range(count)
    ]  # fmt: skip


def _registered(api: Client, raw: bytes) -> bool:
    body = tx.decode(raw).tx.body
    assert isinstance(body, tx.RegisterParticipant)
    found = api.get(f"/participants/{crypto.address_to_text(body.account)}")
    return bool(found["zone"] == body.zone)


def test_submitted_transactions_are_final_after_wait_final(api: Client) -> None:
    sink = DevnetSink(api, timeout=20)
    txs = _registrations(sink, 5)
    sink.submit(txs)
    assert sink.submitted == 5 and len(sink.pending) == 5
    sink.wait_final()
    assert not sink.pending
    assert sink.finality.committed == 5
    assert all(latency > 0 for latency in sink.finality.latencies)
    assert 0 < sink.finality.percentile(0.5) <= sink.finality.percentile(1.0)
    assert all(_registered(api, raw) for raw in txs)
    assert sink.next_nonce(MEA.address) == tx.decode(txs[-1]).tx.nonce + 1


def test_next_nonce_of_an_unknown_account_is_zero(api: Client) -> None:
    assert DevnetSink(api).next_nonce(crypto.PrivateKey.generate().address) == 0


def test_advance_to_waits_for_the_chain_clock(api: Client) -> None:
    sink = DevnetSink(api, timeout=20)
    target = int(api.health()["latest_time"]) + 2
    seen: list[int] = []
    sink.on_block = seen.append
    sink.advance_to(target)
    assert sink.latest_time >= target
    assert int(api.health()["latest_time"]) >= target
    assert seen and seen[-1] >= target


def test_a_refusal_at_admission_stops_with_its_code_and_changes_nothing(api: Client) -> None:
    sink = DevnetSink(api, timeout=20)
    nonce = sink.next_nonce(MEA.address)
    body = tx.RegisterParticipant(crypto.PrivateKey.generate().address, "BKK",
                                  tx.ParticipantKind.HOUSEHOLD, "forged chain")  # fmt: skip
    wrong_chain = tx.make(MEA, "another-chain", nonce, body).encode()
    with pytest.raises(DevnetRejected) as caught:
        sink.submit([wrong_chain])
    assert caught.value.code == "WRONG_CHAIN_ID"
    assert "RegisterParticipant" in str(caught.value)
    assert not sink.pending and sink.submitted == 0
    assert sink.next_nonce(MEA.address) == nonce


def test_a_transaction_the_ledger_refuses_in_blocks_surfaces_with_the_ledger_code(
    api: Client,
) -> None:
    sink = DevnetSink(api, timeout=30)
    (bad,) = _registrations(sink, 1, zone="ZZZ")  # admitted (well signed), fails to apply
    nonce = sink.next_nonce(MEA.address)
    sink.submit([bad])
    with pytest.raises(DevnetRejected) as caught:
        sink.wait_final()
    assert caught.value.code == "UNKNOWN_ZONE"
    assert sink.next_nonce(MEA.address) == nonce + 1  # it failed in a block: nonce used


def test_without_quorum_it_times_out_and_a_busy_node_is_retried_once_blocks_resume(
    tmp_path: Path,
) -> None:
    nodes, url = _start(tmp_path)
    restarted = Processes(nodes.homes[2:])
    try:
        with Client(url, timeout=10.0) as client:
            sink = DevnetSink(client, timeout=3)
            for p in nodes.procs[2:]:  # PEA and ERC: EGAT and MEA hold less than two thirds
                p.terminate()
                p.wait(10)
            txs = _registrations(sink, 1_100)  # the mempool holds 1,000 per sender
            started = time.monotonic()
            waiting = r"no new block in 3 s while waiting for 1000 transactions to commit "
            with pytest.raises(DevnetTimeout, match=waiting + r"\(1000 RegisterParticipant\)"):
                sink.submit(txs)  # 1,000 admitted, the rest "too far ahead": waits, no block
            assert time.monotonic() - started < 20
            assert (sink.submitted, sink.busy_retries) == (1_000, 1)
            restarted.start()  # quorum again: the chain commits what waited
            sink.timeout = 30
            sink.submit(txs[1_000:])
            sink.wait_final()
            assert sink.submitted == sink.finality.committed == 1_100
            assert _registered(client, txs[0]) and _registered(client, txs[-1])
    finally:
        nodes.stop()
        restarted.stop()
    assert not nodes.alive() and not restarted.alive()


def test_find_proposal_reads_the_open_proposal_of_a_proposer_by_title(api: Client) -> None:
    sink = DevnetSink(api, timeout=30)
    title = "Halve the P2P platform fee (sink test)"
    change = tx.ParamChange("platform_fee_basis_points", 5)
    body = tx.SubmitProposal(tx.ProposalKind.MARKET_RULE, (change,), title)
    assert sink.find_proposal(ERC.address, title) is None
    sink.submit([tx.make(ERC, CHAIN, sink.next_nonce(ERC.address), body).encode()])
    sink.wait_final()
    found = sink.find_proposal(ERC.address, title)
    assert found is not None
    proposal = api.proposal(found)
    assert proposal["title"] == title and proposal["status"] == "VOTING"
    assert sink.find_proposal(MEA.address, title) is None  # another proposer's: none
    assert sink.find_proposal(ERC.address, title + "!") is None


def test_certificates_of_a_holder_of_none_is_empty(api: Client) -> None:
    assert DevnetSink(api).certificates_of(crypto.PrivateKey.generate().address) == []


def test_batch_size_is_checked(api: Client) -> None:
    with pytest.raises(ValueError, match="batch must be"):
        DevnetSink(api, batch=0)
