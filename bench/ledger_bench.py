"""Ledger throughput next to the raw Ed25519 verification rate measured in the same run.

A shared 2-core machine is noisy, so an absolute transactions-per-second figure means little
on its own. Signature verification bounds what the ledger can do with signatures checked, so
this benchmark reports both and their ratio: a ratio near 1.0 means the ledger adds little on
top of the unavoidable cryptography.

The workload is a Thai morning in miniature: households with rooftop solar whose meters sign
one reading per 15-minute interval, and THB and GRID transfers between participants that fill
the rest of each interval. Every transaction is signed before timing starts.

    python bench/ledger_bench.py [--participants 200] [--intervals 10] [--transfers 400]

Prints a table and writes bench/results/ledger.json.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import benchkit
from gridtokenx.ledger import chain_info, transition
from gridtokenx.ledger.context import BlockContext
from gridtokenx.ledger.sandbox import Sandbox
from gridtokenx.ledger.state import State
from gridtokenx.wire import crypto, tx

INTERVAL = 900
RESULTS = Path(__file__).parent / "results" / "ledger.json"


@dataclass
class Block:
    """The transactions of one simulated interval and the context they are applied in."""

    context: BlockContext
    txs: list[tx.SignedTransaction]


@dataclass
class Workload:
    chain_id: str
    blocks: list[Block]

    @property
    def txs(self) -> list[tx.SignedTransaction]:
        return [stx for block in self.blocks for stx in block.txs]


def _key(label: str) -> crypto.PrivateKey:
    return crypto.PrivateKey.from_dev_label(f"bench/{label}")


def fresh_state(
    participants: int,
) -> tuple[Sandbox, list[crypto.PrivateKey], list[crypto.PrivateKey]]:
    """A devnet with `participants` households (each with a 10 kW solar meter) and a custodian
    that has funded every household with 1,000 THB."""
    sb = Sandbox(chain_id="gridtokenx-bench")
    mea, erc = sb.authority("MEA"), sb.authority("ERC")
    custodian = _key("custodian")
    sb.submit(
        mea,
        tx.RegisterParticipant(custodian.address, "BKK", tx.ParticipantKind.CUSTODIAN, "custodian"),
    )
    sb.submit(
        erc, tx.GrantLicence(custodian.address, tx.LicenceKind.CUSTODIAN, sb.time + 86_400 * 365)
    )
    homes = [_key(f"home/{i}") for i in range(participants)]
    meters = [_key(f"meter/{i}") for i in range(participants)]
    for i, (home, meter) in enumerate(zip(homes, meters, strict=True)):
        kind = tx.ParticipantKind.HOUSEHOLD
        sb.submit(mea, tx.RegisterParticipant(home.address, "BKK", kind, f"home-{i}"))
        sb.submit(
            mea, tx.RegisterMeter(meter.public_key, home.address, "BKK", tx.MeterKind.SOLAR, 10_000)
        )
        sb.submit(custodian, tx.IssueThb(home.address, 100_000))
    return sb, homes, meters


def build_workload(participants: int, intervals: int, transfers: int) -> Workload:
    sb, homes, meters = fresh_state(participants)
    nonces: dict[bytes, int] = {}

    def sign(key: crypto.PrivateKey, body: tx.Body) -> tx.SignedTransaction:
        nonce = nonces.get(key.address, sb.next_nonce(key))
        nonces[key.address] = nonce + 1
        return tx.make(key, sb.chain_id, nonce, body)

    first = (sb.time // INTERVAL + 1) * INTERVAL  # the first interval after registration
    blocks = []
    for n in range(intervals):
        start = first + n * INTERVAL
        context = BlockContext(sb.height + 1 + n, start + INTERVAL + 60)
        txs = [sign(m, tx.MeterReading(start, 0, 1_000 * (n + 1))) for m in meters]
        for j in range(transfers):
            sender = homes[(n * transfers + j) % participants]
            to = homes[(n * transfers + j + 1 + n) % participants]
            if j % 2 and n > 0:  # GRID from the previous interval's export
                body = tx.Transfer(tx.Asset.GRID, to.address, 1)
            else:
                body = tx.Transfer(tx.Asset.THB, to.address, 10)
            txs.append(sign(sender, body))
        blocks.append(Block(context, txs))
    return Workload(sb.chain_id, blocks)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def apply_rate(
    participants: int, workload: Workload, *, check_signature: bool
) -> tuple[float, list[float], bytes]:
    """Apply every block to a fresh state; returns tx/s, the root time per block and the root."""
    state: State = fresh_state(participants)[0].state
    root_times: list[float] = []
    spent = 0.0
    for block in workload.blocks:

        def run(block: Block = block) -> None:
            for stx in block.txs:
                transition.apply(state, stx, block.context, check_signature=check_signature)

        spent += timed(run)
        root_times.append(timed(state.root))
    return len(workload.txs) / spent, root_times, state.root()


def capped_reading_ms() -> tuple[float, int]:
    """Apply time of the costliest reading certificates allow: a 4 GW solar meter reporting
    after a gap, owing more certificates than `rec_max_per_reading`, so it issues exactly the
    cap (one state write each). Returns (milliseconds to apply it and hash the new root,
    certificates issued)."""
    sb = Sandbox(chain_id="gridtokenx-bench")
    mea, erc = sb.authority("MEA"), sb.authority("ERC")
    farm, meter = _key("giga-farm"), _key("giga-farm/meter")
    sb.submit(
        mea, tx.RegisterParticipant(farm.address, "BKK", tx.ParticipantKind.GENERATOR, "farm")
    )
    sb.submit(erc, tx.GrantLicence(farm.address, tx.LicenceKind.SELLER, sb.time + 86_400 * 365))
    sb.submit(
        mea, tx.RegisterMeter(meter.public_key, farm.address, "BKK", tx.MeterKind.SOLAR, 4 * 10**9)
    )
    cap = chain_info.params(sb.state).rec_max_per_reading
    size = chain_info.params(sb.state).rec_size_wh
    sb.advance(4 * INTERVAL)
    start = sb.time // INTERVAL * INTERVAL - INTERVAL
    stx = sb.sign(meter, tx.MeterReading(start, 0, (cap + 3) * size))
    events: list[object] = []
    sb.state.root()
    spent = timed(lambda: events.extend(transition.apply(sb.state, stx, sb.context)))
    spent += timed(sb.state.root)
    issued = sum(1 for e in events if getattr(e, "kind", "") == "certificate_issued")
    return spent * 1000, issued


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--intervals", type=int, default=10)
    parser.add_argument("--transfers", type=int, default=400, help="transfers per interval")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    workload = build_workload(args.participants, args.intervals, args.transfers)
    txs = workload.txs
    encoded = [stx.encode() for stx in txs]

    verify = benchkit.raw_verify_rate(txs)
    decode = len(encoded) / timed(lambda: [tx.decode(b) for b in encoded])
    with_sig, root_times, root_a = apply_rate(args.participants, workload, check_signature=True)
    without_sig, _, root_b = apply_rate(args.participants, workload, check_signature=False)
    if root_a != root_b:
        raise SystemExit("state roots differ between the two runs: the ledger is not deterministic")

    state = fresh_state(args.participants)[0].state
    for block in workload.blocks:
        for stx in block.txs:
            transition.apply(state, stx, block.context, check_signature=False)
    full_rehash = timed(state.recompute_root)
    per_block = len(txs) // len(workload.blocks)
    capped_ms, capped_issued = capped_reading_ms()

    result: dict[str, object] = {
        "benchmark": "ledger",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "transactions": len(txs),
        "blocks": len(workload.blocks),
        "state_records": len(state),
        "raw_ed25519_verify_per_s": round(verify),
        "decode_per_s": round(decode),
        "apply_with_signature_per_s": round(with_sig),
        "apply_without_signature_per_s": round(without_sig),
        "with_signature_vs_raw_verify": round(with_sig / verify, 3),
        "incremental_root_ms_per_block": round(statistics.median(root_times) * 1000, 3),
        "txs_per_block": per_block,
        "full_rehash_root_ms": round(full_rehash * 1000, 3),
        "state_root": root_a.hex(),
        "capped_reading_certificates": capped_issued,
        "capped_reading_ms": round(capped_ms, 3),
        "capped_reading_vs_mean_tx": round(capped_ms / 1000 * with_sig, 1),
    }
    rows = [
        ("raw Ed25519 verify (PyNaCl)", f"{verify:,.0f} /s"),
        ("decode signed tx", f"{decode:,.0f} /s"),
        ("transition.apply with signature", f"{with_sig:,.0f} tx/s"),
        ("transition.apply without signature", f"{without_sig:,.0f} tx/s"),
        ("with signature / raw verify", f"{with_sig / verify:.3f}"),
        (
            f"incremental root, {per_block} tx block",
            f"{statistics.median(root_times) * 1000:.2f} ms",
        ),
        (f"full rehash, {len(state):,} records", f"{full_rehash * 1000:.2f} ms"),
        (
            f"reading issuing {capped_issued:,} certificates (the cap), with root",
            f"{capped_ms:.2f} ms = {capped_ms / 1000 * with_sig:,.0f} tx",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print(
        f"GridTokenX ledger benchmark: {len(txs):,} transactions in {len(workload.blocks)} blocks"
    )
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>16}")
    benchkit.write(result, args.output)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
