"""Genesis: the devnet file, validation of every field, and a deterministic initial state."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from gridtokenx.ledger import chain_info, genesis, invariants, registry
from gridtokenx.node.home import load_genesis
from gridtokenx.wire import crypto


def devnet() -> genesis.Genesis:
    return genesis.devnet("gridtokenx-test", 1_767_225_600, genesis.dev_keys())


def test_devnet_genesis_is_valid_and_has_the_thai_market() -> None:
    spec = devnet()
    assert spec.validate() == []
    assert [a.code for a in spec.authorities] == ["EGAT", "MEA", "PEA", "ERC", "NEPO"]
    assert {z.code for z in spec.zones} == {"BKK", "CEN", "NTH", "NEA", "EST", "WST", "STH"}
    assert {z.code: z.distribution_authority for z in spec.zones}["BKK"] == "MEA"
    assert all(z.distribution_authority == "PEA" for z in spec.zones if z.code != "BKK")
    p = spec.params
    assert p.interval_seconds == 900
    assert p.tariffs.tou_peak_msat_per_kwh == 579_820
    assert p.tariffs.buyback_msat_per_kwh == 220_000
    assert p.emission_factor_g_per_kwh == 475
    assert (p.frequency_min_mhz, p.frequency_max_mhz) == (49_500, 50_500)


def test_file_round_trip_and_state_is_deterministic(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_bytes(devnet().encode())
    loaded = load_genesis(path)
    assert loaded == devnet()
    first, second = genesis.build_state(loaded), genesis.build_state(devnet())
    assert first.root() == second.root() == first.recompute_root()
    invariants.check_all(first)


def test_build_state_holds_authorities_zones_links_and_params() -> None:
    spec = devnet()
    state = genesis.build_state(spec)
    view = state.overlay()
    mea_key = bytes.fromhex(spec.authorities[1].public_key)
    mea = registry.authority_of(view, crypto.address_of(mea_key))
    assert mea is not None and mea.code == "MEA" and mea.zones == ("BKK",)
    assert registry.require_zone(view, "NEA").distribution_authority == "PEA"
    link = view.get(registry.interconnector_key("CEN", "BKK"), registry.Interconnector)
    assert link is not None and link.capacity_kw == 800_000
    assert chain_info.params(state) == spec.params
    assert chain_info.chain_info(state).chain_id == "gridtokenx-test"


def test_chain_id_changes_the_root() -> None:
    a = genesis.build_state(devnet()).root()
    other = genesis.devnet("gridtokenx-other", 1_767_225_600, genesis.dev_keys())
    assert genesis.build_state(other).root() != a


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda g: msgspec.structs.replace(g, chain_id=""), "chain_id"),
        (
            lambda g: msgspec.structs.replace(g, authorities=g.authorities + g.authorities[:1]),
            "authority codes must be unique",
        ),
        (
            lambda g: msgspec.structs.replace(
                g,
                authorities=(
                    msgspec.structs.replace(g.authorities[0], public_key="zz"),
                    *g.authorities[1:],
                ),
            ),
            "public_key",
        ),
        (
            lambda g: msgspec.structs.replace(
                g,
                authorities=(
                    msgspec.structs.replace(g.authorities[0], roles=("king",)),
                    *g.authorities[1:],
                ),
            ),
            "unknown roles",
        ),
        (lambda g: msgspec.structs.replace(g, zones=g.zones + g.zones[:1]), "zone codes"),
        (
            lambda g: msgspec.structs.replace(
                g, zones=(genesis.ZoneSpec("BKK", "Bangkok", "ERC"), *g.zones[1:])
            ),
            "not a distributor",
        ),
        (
            lambda g: msgspec.structs.replace(
                g,
                interconnectors=(genesis.InterconnectorSpec("BKK", "MARS", 1, 100),),
            ),
            "two different known zones",
        ),
        (
            lambda g: msgspec.structs.replace(
                g,
                interconnectors=(genesis.InterconnectorSpec("BKK", "CEN", 1, 10_000),),
            ),
            "loss",
        ),
        (lambda g: msgspec.structs.replace(g, fee_collector="NOBODY"), "fee_collector"),
        (
            lambda g: msgspec.structs.replace(
                g, params=msgspec.structs.replace(g.params, interval_seconds=7)
            ),
            "interval_seconds",
        ),
        (
            lambda g: msgspec.structs.replace(
                g, params=msgspec.structs.replace(g.params, frequency_min_mhz=51_000)
            ),
            "frequency band",
        ),
    ],
)
def test_validation_names_each_problem(change: object, problem: str) -> None:
    bad = change(devnet())  # type: ignore[operator]
    problems = bad.validate()
    assert any(problem in p for p in problems), problems
    with pytest.raises(genesis.GenesisError):
        genesis.build_state(bad)


def test_load_rejects_unknown_fields_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_bytes(devnet().encode().replace(b'"chain_id"', b'"chian_id"'))
    with pytest.raises(genesis.GenesisError):
        load_genesis(path)
    path.write_bytes(b"{not json")
    with pytest.raises(genesis.GenesisError):
        load_genesis(path)


def test_the_documented_genesis_root_vector_holds() -> None:
    """docs/protocol.md §8 gives the devnet genesis root as a test vector for independent
    implementations; any change to genesis records (a new governed parameter, say) must
    update it, or the vector silently lies."""
    text = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    documented = re.search(r"Test vector: `genesis\.build_state.*?`([0-9a-f]{64})`", text, re.S)
    assert documented is not None
    spec = genesis.devnet("gridtokenx-devnet", 1_767_225_600, genesis.dev_keys())
    assert genesis.build_state(spec).root().hex() == documented.group(1)
