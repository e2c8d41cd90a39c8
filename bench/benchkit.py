"""What every benchmark here shares: the Ed25519 baseline measured in the same run, and
writing the result as JSON next to a printed table."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

import nacl.signing

from gridtokenx.wire import tx


def raw_verify_rate(txs: Iterable[tx.SignedTransaction]) -> float:
    """Ed25519 verifications per second through PyNaCl alone, over the same signed bytes:
    the baseline that makes a figure mean something on a noisy shared machine."""
    items = [(nacl.signing.VerifyKey(s.tx.sender), s.tx.signing_bytes(), s.signature) for s in txs]
    started = time.perf_counter()
    for vk, message, signature in items:
        vk.verify(message, signature)
    return len(items) / (time.perf_counter() - started)


def print_figures(result: dict[str, object]) -> None:
    width = max(len(name) for name in result)
    for name, value in result.items():
        print(f"  {name:<{width}}  {value}")


def write(result: dict[str, object], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {output}")
