"""What `gridtokenx tx` works out from the chain before it signs: relative intervals
(INTERVAL `next`), a meter's next reading (`tx reading --now`), and a readable account
of why the ledger would refuse a transaction, from the simulation that found it.

Times come from the node's clock (`GET /chain`), never this machine's: on an accelerated
devnet the chain's time runs many times faster than the wall clock.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from gridtokenx.cli import units
from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.wire import crypto, tx

if TYPE_CHECKING:
    from gridtokenx.client import Client, Simulation

BANGKOK: Final = datetime.timezone(datetime.timedelta(hours=7))
RELATIVE: Final = re.compile(r"next(?:\+(\d{1,3}))?")
MARGIN_SECONDS: Final = 60
"""How far before its gate closes an interval still counts as `next`: room for the order to
reach a block (a few chain seconds at speed 1, more on an accelerated devnet)."""


def local(unix: int) -> str:
    """A chain time as Bangkok local time, the way the command line accepts it back."""
    return datetime.datetime.fromtimestamp(unix, BANGKOK).isoformat(timespec="minutes")


@dataclass(frozen=True)
class ChainClock:
    """The node's clock and the market's timing parameters."""

    now: int
    interval: int
    gate: int
    skew: int

    @classmethod
    def read(cls, api: Client) -> ChainClock:
        chain = api.get("/chain")
        p = chain["params"]
        return cls(int(chain["clock"]), p["interval_seconds"], p["gate_closure_seconds"],
                   p["reading_clock_skew_seconds"])  # fmt: skip

    def next_open(self, later: int = 0) -> int:
        """The first interval whose gate is at least MARGIN_SECONDS away, plus `later`
        intervals."""
        first = self.now + self.gate + MARGIN_SECONDS
        start = -(-first // self.interval) * self.interval
        return start + later * self.interval


def is_relative(text: str) -> bool:
    return RELATIVE.fullmatch(text.lower()) is not None


def relative_interval(api: Client, text: str) -> int:
    """`next` (the first interval still open for orders) or `next+N` (N intervals later)."""
    match = RELATIVE.fullmatch(text.lower())
    if match is None:
        raise BadInput(f"interval {text!r}: expected unix seconds, ISO time, next or next+N")
    return ChainClock.read(api).next_open(int(match.group(1) or 0))


def reading_now(api: Client, meter: bytes, imported: int | None, exported: int | None) -> tx.Body:
    """The reading for the latest interval the ledger accepts one for (its end at most the
    clock-skew allowance ahead of the chain's time), the meter's registers from the chain
    plus `imported` and `exported` (default: half the meter's rated output over the
    interval exported by a producing meter, 1 kWh imported by a consumption meter)."""
    from gridtokenx.client import ApiError

    who = crypto.address_to_text(meter)
    try:
        record = api.get(f"/meters/{who}")
    except ApiError as exc:
        if exc.code != "NOT_FOUND":
            raise
        raise Refused("UNKNOWN_METER", f"{who} (the --key) is not a registered meter") from None
    clock = ChainClock.read(api)
    start = (clock.now + clock.skew) // clock.interval * clock.interval - clock.interval
    last = int(record["last_interval"])
    if start < int(record["first_interval"]) or start <= last:
        after = max(last + clock.interval, int(record["first_interval"]))
        ready = after + clock.interval - clock.skew
        raise Refused(
            "NO_INTERVAL_TO_READ",
            f"the meter has no finished interval to report yet: the next is {local(after)}, "
            f"accepted from {local(ready)} (the chain's time is {local(clock.now)})",
        )
    producing = record["kind"] != tx.MeterKind.CONSUMPTION.name
    half = int(record["rated_capacity_w"]) * clock.interval // 3600 // 2
    imported = (0 if producing else 1000) if imported is None else imported
    exported = (half if producing else 0) if exported is None else exported
    return tx.MeterReading(
        start,
        int(record["import_register_wh"]) + imported,
        int(record["export_register_wh"]) + exported,
    )


def explain(api: Client, signer: bytes, body: tx.Body, verdict: Simulation) -> str:
    """The ledger's message, with what the signer needs to put it right where the usual
    causes are known: a closed gate, a misaligned interval, a short balance."""
    message = f"{verdict.message} (nothing was sent)"
    interval = getattr(body, "interval_start", None)
    try:
        if verdict.code == "GATE_CLOSED" and isinstance(interval, int):
            clock = ChainClock.read(api)
            return (
                f"the gate for the interval from {local(interval)} closed at "
                f"{local(interval - clock.gate)}; the chain's time is {local(verdict.time)}. "
                f"The next open interval is {local(clock.next_open())}: give the interval as "
                "next (nothing was sent)"
            )
        if verdict.code == "MISALIGNED_INTERVAL" and isinstance(interval, int):
            step = ChainClock.read(api).interval
            below = interval // step * step
            return (
                f"{local(interval)} is not the start of a {step // 60}-minute interval: "
                f"try {local(below)} or {local(below + step)}, or next (nothing was sent)"
            )
        if verdict.code == "INSUFFICIENT_BALANCE":
            return f"{message}; the signer holds {_holdings(api, signer)}"
    except Exception:  # the explanation is a courtesy: the ledger's own message stands
        return message
    return message


def _holdings(api: Client, signer: bytes) -> str:
    balance = api.balance(signer)
    return f"{units.thb(balance.thb_satang)} THB and {units.kwh(balance.grid_wh)} kWh"
