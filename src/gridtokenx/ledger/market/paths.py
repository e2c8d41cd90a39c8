"""Interconnector paths between zones: which links a cross-zone trade uses, and its loss.

Energy sold from zone S to a buyer in zone B flows along the path with the fewest links
that all have room left in the interval, ties broken by the lower compounded loss and then
by the zone codes, so that every validator picks the same path. A link carries capacity kW x
interval length per interval against the net flow of the trades across it (counter-flows
relieve each other); a path has room for the least room left on any of its links.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Final

import msgspec

from gridtokenx.ledger import registry
from gridtokenx.ledger.grid import records as grid
from gridtokenx.ledger.market import records
from gridtokenx.ledger.state import Overlay, State

BASIS = 10_000

Neighbours = dict[str, list[tuple[str, int]]]
"""Each zone's usable links: (the zone across, the link's loss in basis points), sorted."""
Capacities = dict[tuple[str, str], int]
"""Each interconnector's capacity in kW (EGAT's latest, else the genesis value), both ways."""
Room = Callable[[str, str], int]
"""Energy a directed link can still carry in an interval (Wh)."""
Search = Callable[[str, str], "Path | None"]
"""The best path from a zone to a zone with room (`find`), or None."""
Link = tuple[str, str]

GRAPH_INDEX: Final = "zone-graph"
GRAPH_PREFIXES: Final = (registry.ZONE_INDEX_KEY, b"link/", b"glink/")
"""The records the zone graph is built from: the zone index, the interconnectors and
EGAT's link capacities (`registry.interconnector_key`, `grid.link_state_key`)."""
FLOW_PREFIX: Final = b"flow/"  # `records.flow_key`
ROOM_PREFIXES: Final = (*GRAPH_PREFIXES, FLOW_PREFIX)
"""The records a link's room is computed from: its capacity's and the flows'."""
FLOW_CACHE_LIMIT: Final = 4_096
"""Committed flows `LinkFlows` keeps before it starts again (about 20 links per interval);
the link rooms computed from them start again with them."""


@dataclass(frozen=True)
class Path:
    zones: tuple[str, ...]  # from the seller's zone to the buyer's, both included
    loss_bp: int  # compounded loss in basis points, rounded so the buyer never gets more

    @cached_property
    def hops(self) -> tuple[Link, ...]:
        """The directed links on the path (kept: a cached search's path is asked again)."""
        return tuple(zip(self.zones, self.zones[1:], strict=False))

    def received(self, sent_wh: int) -> int:
        return sent_wh * (BASIS - self.loss_bp) // BASIS


@lru_cache(maxsize=256)
def local(zone: str) -> Path:
    """The path of a trade within one zone (no link, no loss): one shared value per zone
    (a `Path` is immutable), since every order that matches in its own zone needs one."""
    return Path((zone,), 0)


class Rooms(dict[Link, int]):
    """Link rooms by directed link, each computed by `read` (`link_room_wh`) when first
    asked: a plan's own over a view that wrote a flow or a link record itself, else the
    committed ones of its interval, which every plan shares (`LinkFlows.rooms`)."""

    __slots__ = ("_read", "interval_seconds")

    def __init__(self, read: Room, interval_seconds: int = 0) -> None:
        super().__init__()
        self._read = read
        self.interval_seconds = interval_seconds  # the interval length they were read for

    def __missing__(self, link: Link) -> int:
        room = self[link] = self._read(*link)
        return room


def compound_loss(losses_bp: list[int]) -> int:
    remaining = BASIS
    for loss in losses_bp:
        remaining = remaining * (BASIS - loss) // BASIS
    return BASIS - remaining


def find(
    view: Overlay,
    source: str,
    target: str,
    room: Room | None = None,
    neighbours: Neighbours | None = None,
) -> Path | None:
    """Best path from `source` to `target`, or None when the zones are not connected.

    With `room` (energy a directed link can still carry), links without room are left out,
    so a full direct link gives way to a longer path that still has capacity. `neighbours`:
    the zone graph `view` sees, when the caller has it already (`plan_grid`)."""
    if source == target:
        return Path((source,), 0)
    graph = zone_graph(view) if neighbours is None else neighbours
    return _search(graph, source, target, room)


def _search(
    graph: Neighbours, source: str, target: str, room: Room | None, asked: list[Link] | None = None
) -> Path | None:
    """`find` over `graph`. `asked`, for a search without `room`, collects the links whose
    room the same search with a `room` would ask, in order (`ZoneGraph.search`)."""
    # Breadth-first by hop count; within one hop count keep the best (compounded loss,
    # zones) per zone. Zones tuples differ between paths, so the best is a strict minimum
    # whatever order the frontier is visited in.
    frontier: dict[str, tuple[int, tuple[str, ...]]] = {source: (0, (source,))}
    seen = {source}
    while frontier:
        found = frontier.get(target)
        if found is not None:
            return Path(found[1], found[0])
        nxt: dict[str, tuple[int, tuple[str, ...]]] = {}
        for zone, (lost, zones) in frontier.items():
            remaining = BASIS - lost  # compounded as `compound_loss` does, one link more
            for other, loss in graph.get(zone, ()):
                if other in seen:
                    continue
                if asked is not None:
                    asked.append((zone, other))
                elif room is not None and room(zone, other) <= 0:
                    continue
                candidate = (BASIS - remaining * (BASIS - loss) // BASIS, (*zones, other))
                best = nxt.get(other)
                if best is None or candidate < best:
                    nxt[other] = candidate
        seen.update(nxt)
        frontier = nxt
    return None


def _build_graph(view: Overlay) -> tuple[Neighbours, Capacities]:
    neighbours: Neighbours = {}
    capacities: Capacities = {}
    for a, b in registry.zone_index(view).links:
        link = view.get(registry.interconnector_key(a, b), registry.Interconnector)
        capacity = grid.link_capacity_kw(view, a, b)
        if link is None or capacity is None:
            continue
        capacities[a, b] = capacities[b, a] = capacity
        if capacity <= 0:
            continue
        neighbours.setdefault(a, []).append((b, link.loss_basis_points))
        neighbours.setdefault(b, []).append((a, link.loss_basis_points))
    for links in neighbours.values():
        links.sort()  # the search visits neighbours in this order
    return neighbours, capacities


class ZoneGraph:
    """The committed state's zone graph, kept as a derived index of the state: built on
    first use after any committed write to the records it is made of, and reused by every
    path search until then (an order's plan searches about three times, each once reading
    some 150 records). It is a cache of a pure function of those records, so a node with
    it and one without pick the same paths. The committed flows (`LinkFlows`) ride along:
    one index told of each write, not two."""

    prefixes = ROOM_PREFIXES

    def __init__(self, state: State) -> None:
        self._state = state
        self._graph: tuple[Neighbours, Capacities] | None = None
        self._searches: dict[Link, tuple[Path | None, tuple[Link, ...]]] = {}
        self.flows = LinkFlows(state)

    def on_write(self, key: bytes, record: msgspec.Struct | None) -> None:
        if key.startswith(FLOW_PREFIX):
            self.flows.forget(key)
        elif key.startswith(GRAPH_PREFIXES):
            self._graph = None
            self._searches = {}
            self.flows.forget_rooms()  # computed from the capacities the graph had

    def _built(self) -> tuple[Neighbours, Capacities]:
        if self._graph is None:
            self._graph = _build_graph(self._state.overlay())
        return self._graph

    def neighbours(self) -> Neighbours:
        return self._built()[0]

    def capacities(self) -> Capacities:
        """The capacity of every interconnector in the zone index, cut ones included."""
        return self._built()[1]

    def search(self, source: str, target: str, rooms: Mapping[Link, int]) -> Path | None:
        """`find` over this graph with the links' `rooms`. The search without room is kept
        per pair of zones with the links it went through: while each of them has room, the
        search with room takes the same steps and finds the same path, so only those links
        are asked (an order's plan searches about twice, most of them as some order before
        it)."""
        if source == target:
            return local(source)
        known = self._searches.get((source, target))
        if known is None:
            asked: list[Link] = []
            path = _search(self.neighbours(), source, target, None, asked)
            known = self._searches[source, target] = (path, tuple(asked))
        path, asked_links = known
        for link in asked_links:
            if rooms[link] <= 0:  # a link it went through is full: search around it
                return _search(self.neighbours(), source, target, lambda a, b: rooms[a, b])
        return path


def zone_graph(view: Overlay) -> Neighbours:
    """The zone graph `view` sees: the committed state's cached one unless `view` itself
    holds a write to a record the graph is made of (an interconnector re-rated or a
    capacity reported earlier in the same transaction), then built from `view`."""
    if view.touches(GRAPH_PREFIXES):
        return _build_graph(view)[0]
    return view.base.index(GRAPH_INDEX, ZoneGraph).neighbours()


class LinkFlows:
    """The committed flows the room checks have read, by (interval, from zone, to zone),
    kept with the `ZoneGraph` and told of writes through it. An entry goes on any
    committed write to its record (a trade's reservation, a trial rolled back or
    replayed), so what it holds is always the committed record; an order's plan checks
    the room of some ten links, each once reading two flow records through the overlay
    chain otherwise."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._wh: dict[tuple[int, str, str], int] = {}
        self._keys: dict[bytes, tuple[int, str, str]] = {}
        # The rooms computed from the flows above, by interval start: each one's two flows
        # are in `_wh` while it is kept, so a write to either drops it.
        self._rooms: dict[int, Rooms] = {}

    def forget(self, key: bytes) -> None:
        """The flow record at `key` was written: read it again when next asked, and the
        rooms of its link, both ways, in its interval."""
        if (flow := self._keys.pop(key, None)) is not None:
            del self._wh[flow]
            interval_start, a, b = flow
            rooms = self._rooms.get(interval_start)
            if rooms is not None:
                rooms.pop((a, b), None)
                rooms.pop((b, a), None)

    def forget_rooms(self) -> None:
        """The zone graph's capacities changed: compute every room again."""
        self._rooms.clear()

    def rooms(self, interval_start: int, interval_seconds: int, capacities: Capacities) -> Rooms:
        """The committed room of each directed link in the interval (`link_room_wh`), from
        the zone graph's `capacities` and the committed flows, kept across the plans of
        every order until a flow of the link or the graph changes: an order's plan asks
        the room of some ten links, most of them as the orders before it did."""
        found = self._rooms.get(interval_start)
        if found is not None and found.interval_seconds == interval_seconds:
            return found

        def read(a: str, b: str) -> int:
            capacity_kw = capacities.get((a, b))
            if capacity_kw is None:  # not in the zone index: read as `link_room_wh` does
                capacity_kw = grid.link_capacity_kw(self._state.overlay(), a, b) or 0
            if len(self._wh) + 2 > FLOW_CACHE_LIMIT:  # before, not between, the two reads
                self._clear()
            return (
                grid.energy_wh(capacity_kw, interval_seconds)
                - self.used_wh(interval_start, a, b)
                + self.used_wh(interval_start, b, a)
            )

        found = self._rooms[interval_start] = Rooms(read, interval_seconds)
        return found

    def _clear(self) -> None:
        self._wh.clear()
        self._keys.clear()
        self._rooms.clear()  # they would not be told of writes to the flows forgotten

    def used_wh(self, interval_start: int, a: str, b: str) -> int:
        flow = (interval_start, a, b)
        found = self._wh.get(flow)
        if found is None:
            if len(self._wh) >= FLOW_CACHE_LIMIT:
                self._clear()
            key = records.flow_key(interval_start, a, b)
            used = self._state.get(key, records.FlowUsed)
            found = self._wh[flow] = 0 if used is None else used.wh
            self._keys[key] = flow
        return found


def plan_grid(view: Overlay, interval_start: int, interval_seconds: int) -> tuple[Search, Rooms]:
    """The path search (`find`) and the links' rooms (`link_room_wh`, each computed once)
    for searches that do not write while they ask, as an order's plan. Both come from the
    committed state's cached `ZoneGraph` and its `LinkFlows` unless `view` itself holds a
    write to one of their records (a trade reserved earlier in the same transaction), then
    from `view`: the same paths and numbers either way, so the fills are unchanged."""
    search: Search
    if view.touches(ROOM_PREFIXES):
        neighbours = zone_graph(view)
        rooms = Rooms(lambda a, b: link_room_wh(view, interval_start, a, b, interval_seconds))

        def search(source: str, target: str) -> Path | None:
            return find(view, source, target, lambda a, b: rooms[a, b], neighbours)

    else:
        graph = view.base.index(GRAPH_INDEX, ZoneGraph)
        rooms = graph.flows.rooms(interval_start, interval_seconds, graph.capacities())

        def search(source: str, target: str) -> Path | None:
            return graph.search(source, target, rooms)

    return search, rooms


def link_capacity_wh(view: Overlay, a: str, b: str, interval_seconds: int) -> int:
    """Per interval, from EGAT's latest capacity (the genesis value until it reports)."""
    capacity = grid.link_capacity_kw(view, a, b)
    return 0 if capacity is None else grid.energy_wh(capacity, interval_seconds)


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
