"""The simulator as a load generator: the agents' orders for N intervals, pre-signed.

A benchmark runs against a chain whose clock is the wall clock, so it cannot wait for a
simulated interval to end: it gets the setup (registrations, licences, THB) and the orders
for the next N intervals, which a chain accepts at any time inside the trading horizon,
and sends them at the rate it is measuring (`pace`). Meter readings are left out because
their intervals have not ended yet. Signing happens here, ahead of time, so the rate a
benchmark reaches is the chain's, not the signer's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gridtokenx.ledger import genesis
from gridtokenx.simulator.clock import locate
from gridtokenx.simulator.day import DayConfig, MarketDay
from gridtokenx.wire import crypto

LEAD_SECONDS = 3600  # the first interval starts at least an hour after `now`


@dataclass(frozen=True)
class Load:
    setup: list[list[bytes]]  # phases: commit each before sending the next
    orders: list[bytes]  # in order; every one applies once the setup has committed
    first_interval: int


def market_load(
    spec: genesis.Genesis,
    authorities: dict[str, crypto.PrivateKey],
    now: int,
    intervals: int,
    participants: int = 300,
    seed: int | str = 1,
    next_nonce: Callable[[bytes], int] | None = None,
    key_prefix: str = "sim-load",
) -> Load:
    params = spec.params
    step = params.interval_seconds
    first = ((now + LEAD_SECONDS) // step + 1) * step
    if first + intervals * step - now > params.trading_horizon_seconds:
        raise ValueError(
            f"{intervals} intervals from {first} reach past the trading horizon "
            f"({params.trading_horizon_seconds} s from now)"
        )
    day, index = locate(first, params)
    config = DayConfig(
        seed=seed,
        participants=participants,
        date=day.date,
        start_minute=index * step // 60,
        intervals=intervals,
        key_prefix=key_prefix,
    )
    market = MarketDay(config, spec, authorities, next_nonce)
    setup = market.setup()
    orders = [raw for k in range(intervals) for raw in market.orders(k)]
    return Load(setup, orders, first)


def rolling_load(
    spec: genesis.Genesis,
    authorities: dict[str, crypto.PrivateKey],
    now: int,
    count: int,
    rate: float,
    participants: int = 300,
    seed: int | str = 1,
    key_prefix: str = "sim-load",
) -> Load:
    """`count` of the agents' orders, to be sent at `rate` a second from `now`, for any
    count. Where `market_load` would need more intervals than the trading horizon holds,
    this goes round the intervals inside the horizon again with another population (its own
    participants, meters and custodian, `key_prefix/round`): the same agents offering twice
    into one interval would exceed their meters' export capacity. The window rolls forward
    with the clock: orders sent s seconds after `now` are for the intervals from
    s // interval on, never further ahead than the horizon allows then, nor in an interval
    whose gate has closed. The setup keeps three phases, each with every round's part."""
    if count < 1 or rate <= 0:
        raise ValueError("count and rate must be positive")
    params = spec.params
    step = params.interval_seconds
    first = ((now + LEAD_SECONDS) // step + 1) * step
    window = (now + params.trading_horizon_seconds - first) // step
    if window < 1:
        raise ValueError("the trading horizon holds no interval an hour ahead")
    span = window + int(count / rate) // step + 1
    day, index = locate(first, params)
    rounds: list[MarketDay] = []
    sent: list[tuple[MarketDay, int]] = []
    total = 0
    while total < count:
        prefix = f"{key_prefix}/{len(rounds)}" if rounds else key_prefix
        config = DayConfig(seed=seed, participants=participants, date=day.date,
                           start_minute=index * step // 60, intervals=span,
                           key_prefix=prefix)  # fmt: skip
        market = MarketDay(config, spec, authorities)
        if rounds:
            market.signer = rounds[0].signer  # one nonce sequence per authority
        rounds.append(market)
        shift = int(total / rate) // step
        before = total
        draws = market.traders.draws()  # counting draws as sending will: put them back after
        for k in range(shift, shift + window):
            sent.append((market, k))
            total += len(market.traders.orders(k, market.start(k), params))
            if total >= count:
                break
        market.traders.rewind(draws)
        if total == before:
            raise ValueError("the agents place no orders in these intervals")
    phases = [market.setup() for market in rounds]
    setup = [[raw for part in parts for raw in part] for parts in zip(*phases, strict=True)]
    orders = [raw for market, k in sent for raw in market.orders(k)]
    return Load(setup, orders[:count], first)


def pace(
    txs: list[bytes], rate_per_second: float, batch: int = 100
) -> list[tuple[float, list[bytes]]]:
    """(offset in seconds, batch) pairs that send `txs` at `rate_per_second` in batches."""
    if rate_per_second <= 0 or batch <= 0:
        raise ValueError("rate and batch size must be positive")
    return [(i / rate_per_second, txs[i : i + batch]) for i in range(0, len(txs), batch)]
