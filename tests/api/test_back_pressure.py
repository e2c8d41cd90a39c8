"""Back-pressure at the API: a node with about two blocks of work waiting refuses clients'
transactions with MEMPOOL_FULL (one result per transaction in a batch), and a grid
emergency is still admitted. A real node with its RocksDB store; the limit is lowered so
that a handful of transactions reach it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridtokenx.client import ApiError
from gridtokenx.ledger import genesis
from gridtokenx.wire import tx
from tests.api.test_api_harness import running_cast


def test_a_saturated_node_turns_clients_away_but_not_grid_operations(tmp_path: Path) -> None:
    with running_cast(tmp_path) as (node, api, cast):
        pool = node.on_loop(lambda: node.node.app.mempool)  # type: ignore[union-attr]

        def saturate() -> None:  # on the node's loop: no block can slip in between
            pool.min_backlog = 2
            pool._recent_blocks.clear()

        node.on_loop(saturate)
        pay = [api.sign(cast.office, tx.Transfer(tx.Asset.THB, cast.home.address, n + 1))
               for n in range(3)]  # fmt: skip
        alarm = api.sign(genesis.dev_keys()["EGAT"], tx.DeclareEmergency(("NTH",), "test"))
        results = api.submit_batch([*pay, alarm])
        assert [(r["accepted"], r["code"]) for r in results] == [
            (True, ""), (True, ""), (False, "MEMPOOL_FULL"), (True, ""),
        ]  # fmt: skip
        assert "send it again shortly" in results[2]["message"]
        refused = tx.decode(pay[2]).hash.hex()
        with pytest.raises(ApiError) as unknown:  # nothing kept of it
            api.get(f"/txs/{refused}")
        assert unknown.value.code == "NOT_FOUND"
        for r in (results[0], results[1], results[3]):
            assert api.wait(r["hash"]).status == "committed"
