"""Genesis: the file every validator starts from, and the state it builds.

The genesis is JSON so operators can read and diff it. It carries the chain id, the five
authorities with their keys, roles and voting power, the seven grid zones and who distributes
in each, illustrative interconnectors, and every governed parameter (see params.py).
`validate` lists every problem at once, so an operator fixes a file in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from gridtokenx.ledger import accounts, governance, registry, validator_set
from gridtokenx.ledger.chain_info import CHAIN_KEY, PARAMS_KEY, ChainInfo
from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import State
from gridtokenx.wire import codec, crypto
from gridtokenx.wire.tx import MAX_GOVERNANCE_WEIGHT

GENESIS_HASH_TAG: Final = b"GridTokenX/genesis"


class GenesisError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid genesis: " + "; ".join(problems))
        self.problems = problems


class AuthoritySpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: str
    name: str
    roles: tuple[str, ...]
    public_key: str  # hex
    voting_power: int
    zones: tuple[str, ...] = ()
    governance_weight: int | None = None  # None: the same as voting_power

    @property
    def weight(self) -> int:
        """Governance weight; separate from consensus power, which can change on its own."""
        return self.voting_power if self.governance_weight is None else self.governance_weight


class ZoneSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: str
    name: str
    distribution_authority: str


class InterconnectorSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    zone_a: str
    zone_b: str
    capacity_kw: int
    loss_basis_points: int


class Genesis(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    chain_id: str
    genesis_time: int
    authorities: tuple[AuthoritySpec, ...]
    zones: tuple[ZoneSpec, ...]
    interconnectors: tuple[InterconnectorSpec, ...]
    fee_collector: str = "ERC"  # authority code
    params: Params = msgspec.field(default_factory=Params)

    def validate(self) -> list[str]:
        problems = list(self.params.validate())
        if not 1 <= len(self.chain_id) <= 64:
            problems.append("chain_id must be 1-64 characters")
        if self.genesis_time < 0:
            problems.append("genesis_time must be non-negative")
        codes = [a.code for a in self.authorities]
        if len(set(codes)) != len(codes):
            problems.append("authority codes must be unique")
        keys = set()
        for a in self.authorities:
            try:
                key = bytes.fromhex(a.public_key)
            except ValueError:
                key = b""
            if len(key) != crypto.PUBLIC_KEY_SIZE:
                problems.append(f"authority {a.code}: public_key must be 32 bytes of hex")
            keys.add(key)
            if unknown := set(a.roles) - set(registry.ROLES):
                problems.append(f"authority {a.code}: unknown roles {sorted(unknown)}")
            if a.voting_power < 0:
                problems.append(f"authority {a.code}: voting_power must be non-negative")
            if not 0 <= a.weight <= MAX_GOVERNANCE_WEIGHT:
                problems.append(
                    f"authority {a.code}: governance weight must be 0-{MAX_GOVERNANCE_WEIGHT}"
                )
        if len(keys) != len(self.authorities):
            problems.append("authority public keys must be distinct")
        by_code = {a.code: a for a in self.authorities}
        zone_codes = [z.code for z in self.zones]
        if len(set(zone_codes)) != len(zone_codes):
            problems.append("zone codes must be unique")
        for z in self.zones:
            if not (2 <= len(z.code) <= 8 and z.code.isascii() and z.code.isupper()):
                problems.append(f"zone {z.code!r}: code must be 2-8 uppercase letters")
            d = by_code.get(z.distribution_authority)
            if d is None or registry.ROLE_DISTRIBUTION not in d.roles:
                problems.append(f"zone {z.code}: {z.distribution_authority} is not a distributor")
            elif z.code not in d.zones:
                problems.append(f"zone {z.code}: {d.code} does not list it among its zones")
        links = set()
        for link in self.interconnectors:
            pair = tuple(sorted((link.zone_a, link.zone_b)))
            if not set(pair) <= set(zone_codes) or pair[0] == pair[1]:
                problems.append(f"interconnector {pair}: must join two different known zones")
            if pair in links:
                problems.append(f"interconnector {pair}: listed twice")
            links.add(pair)
            if link.capacity_kw < 0 or not 0 <= link.loss_basis_points < 10_000:
                problems.append(f"interconnector {pair}: capacity >= 0, loss in [0, 10000) bp")
        if self.fee_collector not in by_code:
            problems.append(f"fee_collector {self.fee_collector!r} is not an authority")
        return problems

    def encode(self) -> bytes:
        return msgspec.json.format(msgspec.json.encode(self), indent=2) + b"\n"

    def hash(self) -> bytes:
        """The genesis hash operators compare before they start: a tagged SHA-256 of the
        canonical MessagePack of the decoded genesis (every field, defaults included, in
        declared order), so it names the genesis itself, whatever the JSON's spacing, key
        order or line endings, and every node computes the same from the same content."""
        return crypto.tagged_hash(GENESIS_HASH_TAG, codec.encode(self))


def decode(data: bytes) -> Genesis:
    """A genesis file's bytes, decoded and validated (reading the file is the node's job:
    the ledger does no I/O)."""
    try:
        genesis = msgspec.json.decode(data, type=Genesis)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise GenesisError([str(exc)]) from None
    if problems := genesis.validate():
        raise GenesisError(problems)
    return genesis


AUTHORITIES = (
    ("EGAT", "Electricity Generating Authority of Thailand", ("transmission",), 10_000, ()),
    ("MEA", "Metropolitan Electricity Authority", ("distribution",), 8_000, ("BKK",)),
    (
        "PEA",
        "Provincial Electricity Authority",
        ("distribution",),
        8_000,
        ("CEN", "NTH", "NEA", "EST", "WST", "STH"),
    ),
    ("ERC", "Energy Regulatory Commission", ("regulator",), 7_000, ()),
    ("NEPO", "National Energy Policy Office", ("policy",), 6_000, ()),
)
ZONES = (
    ("BKK", "Bangkok", "MEA"),
    ("CEN", "Central", "PEA"),
    ("NTH", "North", "PEA"),
    ("NEA", "Northeast", "PEA"),
    ("EST", "East", "PEA"),
    ("WST", "West", "PEA"),
    ("STH", "South", "PEA"),
)
# Illustrative: capacities and losses per line are not published (thai-market.md).
INTERCONNECTORS = (
    ("BKK", "CEN", 800_000, 100),
    ("BKK", "EST", 400_000, 150),
    ("CEN", "NTH", 400_000, 300),
    ("CEN", "NEA", 400_000, 300),
    ("CEN", "EST", 500_000, 200),
    ("CEN", "WST", 300_000, 200),
    ("NTH", "NEA", 200_000, 300),
    ("EST", "NEA", 200_000, 300),
    ("WST", "STH", 300_000, 400),
)


STANDARD_POWER: Final = {code: power for code, _, _, power, _ in AUTHORITIES}
"""Each authority's voting power (and governance weight) in the Thai genesis."""


def thai(
    chain_id: str,
    genesis_time: int,
    public_keys: Mapping[str, bytes],
    powers: Mapping[str, int] | None = None,
) -> Genesis:
    """The Thai genesis: the five authorities with `public_keys` (by authority code), the
    seven zones, the interconnectors and the default parameters. `powers` sets an
    authority's voting power at genesis instead of its standard one; its governance weight
    stays the standard one, since who votes on proposals is not who signs blocks. Both the
    devnet's dev keys and the ceremony's exported public keys go through here, so the two
    genesis files differ only in their keys and powers."""
    chosen = powers or {}
    return Genesis(
        chain_id=chain_id,
        genesis_time=genesis_time,
        authorities=tuple(
            AuthoritySpec(
                code, name, roles, public_keys[code].hex(), chosen.get(code, power), zones, power
            )
            for code, name, roles, power, zones in AUTHORITIES
        ),
        zones=tuple(ZoneSpec(*z) for z in ZONES),
        interconnectors=tuple(InterconnectorSpec(*i) for i in INTERCONNECTORS),
    )


def devnet(chain_id: str, genesis_time: int, keys: dict[str, crypto.PrivateKey]) -> Genesis:
    """The Thai-market devnet genesis; `keys` maps each authority code to its key."""
    return thai(chain_id, genesis_time, {code: key.public_key for code, key in keys.items()})


def dev_keys() -> dict[str, crypto.PrivateKey]:
    """Insecure, publicly derivable authority keys for local devnets and tests."""
    return {code: crypto.PrivateKey.from_dev_label(f"authority/{code}") for code, *_ in AUTHORITIES}


def build_state(genesis: Genesis) -> State:
    if problems := genesis.validate():
        raise GenesisError(problems)
    state = State()
    view = state.overlay()
    address_by_code = {}
    for a in genesis.authorities:
        key = bytes.fromhex(a.public_key)
        address = crypto.address_of(key)
        address_by_code[a.code] = address
        authority = registry.Authority(a.code, a.name, a.roles, a.zones, a.voting_power, key)
        view.put(registry.authority_key(address), authority)
        view.put(registry.authority_code_key(a.code), registry.AuthorityRef(address))
        accounts.open_account(view, address)
    for z in genesis.zones:
        view.put(registry.zone_key(z.code), registry.Zone(z.code, z.name, z.distribution_authority))
    for i in genesis.interconnectors:
        link = registry.Interconnector(i.zone_a, i.zone_b, i.capacity_kw, i.loss_basis_points)
        view.put(registry.interconnector_key(i.zone_a, i.zone_b), link)
    pairs = sorted(sorted((i.zone_a, i.zone_b)) for i in genesis.interconnectors)
    zone_codes = tuple(sorted(z.code for z in genesis.zones))
    links: tuple[tuple[str, str], ...] = tuple((a, b) for a, b in pairs)
    view.put(registry.ZONE_INDEX_KEY, registry.ZoneIndex(zone_codes, links))
    accounts.open_account(view, accounts.ESCROW_ADDRESS)
    validator_set.install(
        view, [(bytes.fromhex(a.public_key), a.voting_power) for a in genesis.authorities]
    )
    governance.install(view, [(a.code, a.weight) for a in genesis.authorities])
    view.put(PARAMS_KEY, genesis.params)
    view.put(
        CHAIN_KEY,
        ChainInfo(genesis.chain_id, genesis.genesis_time, address_by_code[genesis.fee_collector]),
    )
    view.put(accounts.SUPPLY_KEY, accounts.Supply())
    view.commit()
    return state
