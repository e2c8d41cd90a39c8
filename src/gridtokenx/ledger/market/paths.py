"""Interconnector paths between zones: which links a cross-zone trade uses, and its loss.

Energy sold from zone S to a buyer in zone B flows along the path with the fewest links
that all have room left in the interval, ties broken by the lower compounded loss and then
by the zone codes, so that every validator picks the same path. A link carries capacity kW x
interval length per interval against the net flow of the trades across it (counter-flows
relieve each other); a path has room for the least room left on any of its links.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import msgspec

from gridtokenx.ledger import registry
from gridtokenx.ledger.grid import records as grid
from gridtokenx.ledger.market import records
from gridtokenx.ledger.state import Overlay, State

BASIS = 10_000

Neighbours = dict[str, list[tuple[str, int]]]
"""Each zone's usable links: (the zone across, the link's loss in basis points), sorted."""

GRAPH_INDEX: Final = "zone-graph"
GRAPH_PREFIXES: Final = (registry.ZONE_INDEX_KEY, b"link/", b"glink/")
"""The records the zone graph is built from: the zone index, the interconnectors and
EGAT's link capacities (`registry.interconnector_key`, `grid.link_state_key`)."""


@dataclass(frozen=True)
class Path:
    zones: tuple[str, ...]  # from the seller's zone to the buyer's, both included
    loss_bp: int  # compounded loss in basis points, rounded so the buyer never gets more

    @property
    def hops(self) -> tuple[tuple[str, str], ...]:
        return tuple(zip(self.zones, self.zones[1:], strict=False))

    def received(self, sent_wh: int) -> int:
        return sent_wh * (BASIS - self.loss_bp) // BASIS


def compound_loss(losses_bp: list[int]) -> int:
    remaining = BASIS
    for loss in losses_bp:
        remaining = remaining * (BASIS - loss) // BASIS
    return BASIS - remaining


def find(
    view: Overlay, source: str, target: str, room: Callable[[str, str], int] | None = None
) -> Path | None:
    """Best path from `source` to `target`, or None when the zones are not connected.

    With `room` (energy a directed link can still carry), links without room are left out,
    so a full direct link gives way to a longer path that still has capacity."""
    if source == target:
        return Path((source,), 0)
    neighbours = zone_graph(view)
    # Breadth-first by hop count; within one hop count keep the best (loss, zones) per zone.
    frontier: dict[str, tuple[int, tuple[str, ...], list[int]]] = {source: (0, (source,), [])}
    seen = {source}
    while frontier:
        found = [v for z, v in frontier.items() if z == target]
        if found:
            _, zones, losses = found[0]
            return Path(zones, compound_loss(losses))
        nxt: dict[str, tuple[int, tuple[str, ...], list[int]]] = {}
        for zone in sorted(frontier):
            _, zones, losses = frontier[zone]
            for other, loss in neighbours.get(zone, ()):
                if other in seen or (room is not None and room(zone, other) <= 0):
                    continue
                candidate = (compound_loss([*losses, loss]), (*zones, other), [*losses, loss])
                best = nxt.get(other)
                if best is None or candidate[:2] < best[:2]:
                    nxt[other] = candidate
        seen.update(nxt)
        frontier = nxt
    return None


def _build_graph(view: Overlay) -> Neighbours:
    neighbours: Neighbours = {}
    for a, b in registry.zone_index(view).links:
        link = view.get(registry.interconnector_key(a, b), registry.Interconnector)
        capacity = grid.link_capacity_kw(view, a, b)
        if link is None or capacity is None or capacity <= 0:
            continue
        neighbours.setdefault(a, []).append((b, link.loss_basis_points))
        neighbours.setdefault(b, []).append((a, link.loss_basis_points))
    for links in neighbours.values():
        links.sort()  # the search visits neighbours in this order
    return neighbours


class ZoneGraph:
    """The committed state's zone graph, kept as a derived index of the state: built on
    first use after any committed write to the records it is made of, and reused by every
    path search until then (an order's plan searches about three times, each once reading
    some 150 records). It is a cache of a pure function of those records, so a node with
    it and one without pick the same paths."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._neighbours: Neighbours | None = None

    def on_write(self, key: bytes, record: msgspec.Struct | None) -> None:
        if self._neighbours is not None and key.startswith(GRAPH_PREFIXES):
            self._neighbours = None

    def neighbours(self) -> Neighbours:
        if self._neighbours is None:
            self._neighbours = _build_graph(self._state.overlay())
        return self._neighbours


def zone_graph(view: Overlay) -> Neighbours:
    """The zone graph `view` sees: the committed state's cached one unless `view` itself
    holds a write to a record the graph is made of (an interconnector re-rated or a
    capacity reported earlier in the same transaction), then built from `view`."""
    if view.touches(GRAPH_PREFIXES):
        return _build_graph(view)
    return view.base.index(GRAPH_INDEX, ZoneGraph).neighbours()


def link_capacity_wh(view: Overlay, a: str, b: str, interval_seconds: int) -> int:
    """Per interval, from EGAT's latest capacity (the genesis value until it reports)."""
    capacity = grid.link_capacity_kw(view, a, b)
    return 0 if capacity is None else capacity * 1000 * interval_seconds // 3600


def used_wh(view: Overlay, interval_start: int, a: str, b: str) -> int:
    used = view.get(records.flow_key(interval_start, a, b), records.FlowUsed)
    return 0 if used is None else used.wh


def link_room_wh(view: Overlay, interval_start: int, a: str, b: str, interval_seconds: int) -> int:
    """Energy link a->b can still carry in the interval. Flows are netted: energy already
    traded b->a is counter-flow, so it frees room a->b (the physical flow is the net)."""
    return (
        link_capacity_wh(view, a, b, interval_seconds)
        - used_wh(view, interval_start, a, b)
        + used_wh(view, interval_start, b, a)
    )


def reserve(view: Overlay, path: Path, interval_start: int, wh: int) -> None:
    """Take (or, negative, give back) `wh` on every link of the path and in the buyer
    zone's import total; a flow that drops to zero leaves no record."""
    for a, b in path.hops:
        used = used_wh(view, interval_start, a, b) + wh
        key = records.flow_key(interval_start, a, b)
        if used:
            view.put(key, records.FlowUsed(used))
        else:
            view.delete(key)
    grid.add_import(view, interval_start, path.zones[-1], wh)
