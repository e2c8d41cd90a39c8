"""The grid's read side: the latest status each authority reported, for the API, the
simulator's summary and the dashboard, so that no module outside the grid reads its keys.
Each is None until the first report (the market then uses the genesis values)."""

from __future__ import annotations

from gridtokenx.ledger.grid import records
from gridtokenx.ledger.state import State


def transmission(state: State) -> records.TransmissionState | None:
    """EGAT's latest system measurement (frequency)."""
    return state.get(records.TRANSMISSION_KEY, records.TransmissionState)


def zone_balance(state: State, zone: str) -> records.ZoneBalanceState | None:
    """EGAT's latest generation and demand of one zone."""
    return state.get(records.zone_balance_key(zone), records.ZoneBalanceState)


def distribution(state: State, zone: str) -> records.DistributionState | None:
    """The zone's distributor's latest load and import headroom."""
    return state.get(records.distribution_key(zone), records.DistributionState)


def link_state(state: State, zone_a: str, zone_b: str) -> records.LinkState | None:
    """EGAT's latest measurement of the interconnector joining two zones."""
    return state.get(records.link_state_key(zone_a, zone_b), records.LinkState)
