"""What checking every answer against its response model costs the API.

Since every route declares a typed `response_model`, FastAPI validates each answer against
its pydantic model and serializes it through the model (`fastapi.routing.serialize_response`,
then `JSONResponse`'s `json.dumps`). This times that step alone, on the node's event loop's
budget, for the largest answers the API gives: a page of 500 trades, 500 orders and 500
block summaries (limit 500 is the cap), against what FastAPI does with no response model
(`jsonable_encoder`, then `json.dumps`). Writes bench/results/api_models.json.

    python bench/api_models_bench.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from fastapi.encoders import jsonable_encoder
from pydantic import TypeAdapter

import benchkit
from gridtokenx.api import models
from gridtokenx.wire import crypto

RESULTS = Path(__file__).parent / "results" / "api_models.json"
ADDRESS = crypto.address_to_text(bytes(range(20)))
HASH = "ab" * 32


def trade(n: int) -> dict[str, Any]:
    return {"id": n, "interval_start": 900 * n, "buy_order": n, "sell_order": n + 1,
            "buyer": ADDRESS, "seller": ADDRESS, "buyer_zone": "BKK", "seller_zone": "CEN",
            "quantity_wh": 1_000, "price": 300, "loss_bp": 200, "path": ["CEN", "BKK"],
            "escrow_satang": 310, "height": n, "time": n, "delivered_wh": 0,
            "settled": False}  # fmt: skip


def order(n: int) -> dict[str, Any]:
    return {"id": n, "owner": ADDRESS, "side": "BUY", "zone": "BKK", "interval_start": 900,
            "quantity_wh": 1_000, "remaining_wh": 1_000, "price": 300, "kind": "LIMIT",
            "tif": "GOOD_TILL_GATE", "renewable_only": False, "renewable": False, "priority": n,
            "escrow_satang": 300, "status": "OPEN", "placed_at": n}  # fmt: skip


def block(n: int) -> dict[str, Any]:
    header = {"chain_id": "c", "height": n, "time": n, "prev_hash": HASH, "proposer": ADDRESS,
              "tx_root": HASH, "state_root": HASH, "validators_hash": HASH,
              "evidence_hash": HASH}  # fmt: skip
    return {"height": n, "hash": HASH, "header": header, "tx_count": 3, "evidence_count": 0}


def per_call(run: Any, repeats: int) -> float:
    """Median seconds of `repeats` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    pages: dict[str, tuple[Any, list[dict[str, Any]]]] = {
        "trades": (models.Page[models.Trade], [trade(n) for n in range(500)]),
        "orders": (models.Page[models.Order], [order(n) for n in range(500)]),
        "blocks": (models.Page[models.BlockSummary], [block(n) for n in range(500)]),
    }
    figures: dict[str, Any] = {}
    for name, (model, items) in pages.items():
        answer = {"items": items, "next": "1"}
        adapter: TypeAdapter[Any] = TypeAdapter(model)

        def checked(adapter: TypeAdapter[Any] = adapter, answer: Any = answer) -> str:
            return json.dumps(adapter.dump_python(adapter.validate_python(answer), mode="json"))

        def unchecked(answer: Any = answer) -> str:
            return json.dumps(jsonable_encoder(answer))

        assert json.loads(checked()) == json.loads(unchecked())
        with_model, without = per_call(checked, args.repeats), per_call(unchecked, args.repeats)
        figures[name] = {"items": 500, "with_model_ms": round(with_model * 1e3, 3),
                         "without_model_ms": round(without * 1e3, 3)}  # fmt: skip
        print(f"{name:7} 500 items: {with_model * 1e3:7.2f} ms through the model, "
              f"{without * 1e3:7.2f} ms without one")  # fmt: skip
    load = os.getloadavg()[0]
    print(f"load average {load:.1f}")
    result = {"machine": platform.machine(), "load_average": load, "repeats": args.repeats,
              "pages": figures}  # fmt: skip
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main()
