"""The market's read side: what the API, the command line, the simulator's summary and the
regulator's reports ask of the market's records, so that no module outside the market reads
its key layout."""

from __future__ import annotations

from collections.abc import Iterator

from gridtokenx.ledger.market import records
from gridtokenx.ledger.state import State


def zone_reports(state: State) -> Iterator[tuple[int, str, records.ZoneReport]]:
    """Every settled (interval start, zone, report), by interval, then zone."""
    skip = len(records.REPORT_PREFIX)
    for key, report in state.scan(records.REPORT_PREFIX):
        assert isinstance(report, records.ZoneReport)
        yield int.from_bytes(key[skip : skip + 8]), key[skip + 8 :].decode(), report
