"""The SDK checks before sending by default, as the CLI does: `send` and `send_and_wait`
try the transaction against the node's state first, so a closed gate, a misaligned
interval or a short balance is refused at once with the ledger's code and a sentence,
nothing submitted and the nonce kept; `check=False` sends untried (and the ledger drops
it a few blocks later with the same code). Against a real one-validator node
(tests/api/test_api_harness.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gridtokenx.client import AsyncClient, Client, TxDropped, TxFailed, WouldBeRefused
from gridtokenx.wire import tx
from tests.api.test_api_harness import INTERVAL, running_cast
from tests.cli.test_cli_client import Live

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with running_cast(tmp_path_factory.mktemp("checked-send")) as (node, api, cast):
        yield Live(node, api, cast, tmp_path_factory.mktemp("keys"))


def _state(live: Live, who: object) -> tuple[int, int, int]:
    """The signer's THB, nonce and the node's mempool size: a refusal changes none."""
    balance = live.api.balance(who)  # type: ignore[arg-type]
    return balance.thb_satang, balance.nonce, live.mempool()


def _closed(live: Live) -> tx.PlaceOrder:
    current = (live.node.time // INTERVAL) * INTERVAL  # its gate closed before it began
    return tx.PlaceOrder(tx.Side.BUY, "BKK", current, 1_000, 400)


def _misaligned(live: Live) -> tx.PlaceOrder:
    open_start = (live.node.time // INTERVAL + 3) * INTERVAL
    return tx.PlaceOrder(tx.Side.BUY, "BKK", open_start + 7 * 60, 1_000, 400)


def test_send_refuses_a_closed_gate_before_sending_by_default(live: Live) -> None:
    office = live.cast.office
    before = _state(live, office)
    with pytest.raises(WouldBeRefused) as refused:
        live.api.send(office, _closed(live))
    assert refused.value.code == "GATE_CLOSED" and refused.value.status == 422
    assert "Gate closure for the interval has passed" in refused.value.message
    assert "gate closed" in refused.value.message  # the ledger's own message
    assert refused.value.message.endswith("nothing was sent")
    assert _state(live, office) == before


def test_send_and_wait_refuses_a_misaligned_interval_and_a_short_balance(live: Live) -> None:
    office, home = live.cast.office, live.cast.home
    before = _state(live, office)
    with pytest.raises(WouldBeRefused) as misaligned:
        live.api.send_and_wait(office, _misaligned(live))
    assert misaligned.value.code == "MISALIGNED_INTERVAL"
    assert f"multiple of {INTERVAL} s" in misaligned.value.message
    too_much = tx.Transfer(tx.Asset.THB, home.address, before[0] + 1)
    with pytest.raises(WouldBeRefused) as short:
        live.api.send_and_wait(office, too_much)
    assert short.value.code == "INSUFFICIENT_BALANCE"
    assert f"balance {before[0]} is below {before[0] + 1}" in short.value.message
    assert _state(live, office) == before
    # The nonces the refusals took were given back: the next send takes the ledger's next.
    sent = live.api.send_and_wait(office, tx.Transfer(tx.Asset.THB, home.address, 1))
    assert sent.status == "committed" and live.api.balance(office).nonce == before[1] + 1


def test_the_async_client_checks_by_default_too(live: Live) -> None:
    office = live.cast.office
    before = _state(live, office)

    async def refusal() -> str:
        async with AsyncClient(live.node.url) as api:
            try:
                await api.send_and_wait(office, _closed(live))
            except WouldBeRefused as exc:
                return exc.code
            return "sent"

    assert asyncio.run(refusal()) == "GATE_CLOSED"
    assert _state(live, office) == before


def test_check_false_sends_and_the_ledger_fails_it_in_its_block_with_the_same_code(
    live: Live,
) -> None:
    """Validators vote before executing, so the order goes into a block and fails there:
    `wait` raises `TxFailed` (a `TxDropped`) with the code the check would have given;
    its nonce is used, nothing else applied."""
    home = live.cast.home
    before = _state(live, home)
    with Client(live.node.url) as api:
        tx_hash = api.send(home, _closed(live), check=False)
        assert len(tx_hash) == 64 and api.tx(tx_hash).status in {"pending", "failed"}
        with pytest.raises(TxFailed) as failed:
            api.wait(tx_hash, timeout=60)
        receipt = api.tx(tx_hash)
    assert failed.value.code == "GATE_CLOSED" and failed.value.tx_hash == tx_hash
    assert isinstance(failed.value, TxDropped) and failed.value.height == receipt.height
    assert (receipt.status, receipt.reason) == ("failed", "GATE_CLOSED")
    assert live.api.balance(home).nonce == before[1] + 1  # used, though nothing applied
