"""The plan's path search kept per pair of zones (`paths.ZoneGraph.search`) against the
plain search (`paths.find`): the same path for every pair of zones, whichever links are
full, and after the graph changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.ledger.market import paths
from gridtokenx.ledger.state import State

ZONES = "ABCDEF"
zone = st.sampled_from(ZONES)
graphs = st.dictionaries(
    st.tuples(zone, zone).filter(lambda link: link[0] < link[1]), st.integers(0, 900), max_size=12
)
full_links = st.lists(st.frozensets(st.tuples(zone, zone), max_size=10), min_size=1, max_size=6)


def neighbours_of(links: dict[tuple[str, str], int]) -> paths.Neighbours:
    """As `paths._build_graph` lays the graph out: both directions, sorted."""
    neighbours: paths.Neighbours = {}
    for (a, b), loss in links.items():
        neighbours.setdefault(a, []).append((b, loss))
        neighbours.setdefault(b, []).append((a, loss))
    for found in neighbours.values():
        found.sort()
    return neighbours


@settings(max_examples=60, deadline=None)
@given(graphs, graphs, full_links)
def test_the_kept_search_finds_what_a_new_search_finds(
    first: dict[tuple[str, str], int],
    second: dict[tuple[str, str], int],
    fulls: list[frozenset[tuple[str, str]]],
) -> None:
    state = State()
    graph = paths.ZoneGraph(state)
    for links in (first, second):
        neighbours = neighbours_of(links)
        graph.neighbours = lambda neighbours=neighbours: neighbours  # type: ignore[method-assign]
        graph.on_write(b"link/", None)  # a committed change to the graph: searches go
        for full in fulls:

            def room(a: str, b: str, full: frozenset[tuple[str, str]] = full) -> int:
                return 0 if (a, b) in full else 1

            for source in ZONES:
                for target in ZONES:
                    expected = paths.find(state.overlay(), source, target, room, neighbours)
                    assert graph.search(source, target, paths.Rooms(room)) == expected


def test_a_zones_own_path_is_one_shared_value() -> None:
    """`paths.local` hands every trade within a zone the same immutable path: the one a
    search from the zone to itself finds, without a link or a loss."""
    state = State()
    found = paths.ZoneGraph(state).search("A", "A", paths.Rooms(lambda a, b: 0))
    assert found == paths.local("A") == paths.Path(("A",), 0)
    assert found is paths.local("A") and found.hops == () and found.received(1_000) == 1_000
