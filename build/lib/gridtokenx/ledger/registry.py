"""Registry: authorities, zones, participants, meters and ERC licences.

Who may do what is decided here. Participants are registered by the distribution authority of
their zone (MEA for Bangkok, PEA elsewhere), meters likewise for the meter's zone, and
licences by the ERC. Everyone else gets `Unauthorised`, never a silent no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import msgspec

from gridtokenx.ledger import accounts
from gridtokenx.ledger.context import BlockContext, Event
from gridtokenx.ledger.state import Overlay, State, records_under
from gridtokenx.wire import errors
from gridtokenx.wire.crypto import address_of
from gridtokenx.wire.tx import (
    GrantLicence,
    LicenceKind,
    MeterKind,
    ParticipantKind,
    RegisterMeter,
    RegisterParticipant,
    RevokeLicence,
)

ROLE_TRANSMISSION: Final = "transmission"  # EGAT
ROLE_DISTRIBUTION: Final = "distribution"  # MEA, PEA
ROLE_POLICY: Final = "policy"  # NEPO
ROLE_REGULATOR: Final = "regulator"  # ERC
ROLES: Final = (ROLE_TRANSMISSION, ROLE_DISTRIBUTION, ROLE_POLICY, ROLE_REGULATOR)


class Authority(msgspec.Struct, frozen=True, array_like=True):
    code: str
    name: str
    roles: tuple[str, ...]
    zones: tuple[str, ...]  # zones it distributes to (distribution role only)
    voting_power: int
    public_key: bytes


class AuthorityRef(msgspec.Struct, frozen=True, array_like=True):
    address: bytes


class Zone(msgspec.Struct, frozen=True, array_like=True):
    code: str
    name: str
    distribution_authority: str  # authority code


class Interconnector(msgspec.Struct, frozen=True, array_like=True):
    """A transmission path between two zones; EGAT's grid-status updates will change it."""

    zone_a: str
    zone_b: str
    capacity_kw: int
    loss_basis_points: int


class Participant(msgspec.Struct, frozen=True, array_like=True):
    zone: str
    kind: ParticipantKind
    name: str
    registered_by: str  # authority code
    registered_at: int


class Meter(msgspec.Struct, frozen=True, array_like=True):
    owner: bytes
    zone: str
    kind: MeterKind
    rated_capacity_w: int
    public_key: bytes
    registered_at: int
    first_interval: int  # start of the interval registration happened in
    last_interval: int  # start of the last applied reading's interval, -1 before the first
    import_register_wh: int
    export_register_wh: int
    baseline_export_wh: int  # export register at registration: never minted


class Licence(msgspec.Struct, frozen=True, array_like=True):
    granted_at: int
    expires_at: int
    revoked_at: int  # 0 while not revoked

    def valid_at(self, time: int) -> bool:
        return self.revoked_at == 0 and time < self.expires_at


class ZoneIndex(msgspec.Struct, frozen=True, array_like=True):
    """All zone codes and interconnector pairs, so path finding needs no scan of the state."""

    zones: tuple[str, ...]
    links: tuple[tuple[str, str], ...]  # each pair sorted


ZONE_INDEX_KEY: Final = b"zones"


def zone_index(view: Overlay) -> ZoneIndex:
    return view.get(ZONE_INDEX_KEY, ZoneIndex) or ZoneIndex((), ())


def authority_key(address: bytes) -> bytes:
    return b"auth/" + address


def authority_code_key(code: str) -> bytes:
    return b"authc/" + code.encode()


def zone_key(code: str) -> bytes:
    return b"zone/" + code.encode()


def interconnector_key(zone_a: str, zone_b: str) -> bytes:
    a, b = sorted((zone_a, zone_b))
    return b"link/" + a.encode() + b"/" + b.encode()


def set_interconnector(
    view: Overlay, zone_a: str, zone_b: str, capacity_kw: int, loss_basis_points: int
) -> bool:
    """Re-rate the interconnector joining two zones, or build it; True when it is new. A
    rerated link keeps its zone order (flows are signed by it), and a new one joins the zone
    index, in sorted pair order, so that path finding sees it."""
    if zone_a == zone_b:
        raise errors.InvalidGridUpdate("an interconnector joins two different zones")
    require_zone(view, zone_a)
    require_zone(view, zone_b)
    key = interconnector_key(zone_a, zone_b)
    link = view.get(key, Interconnector)
    if link is not None:
        if (link.capacity_kw, link.loss_basis_points) == (capacity_kw, loss_basis_points):
            raise errors.InvalidProposal(f"interconnector {zone_a}-{zone_b} is already so rated")
        view.put(key, msgspec.structs.replace(link, capacity_kw=capacity_kw,
                                              loss_basis_points=loss_basis_points))  # fmt: skip
        return False
    view.put(key, Interconnector(zone_a, zone_b, capacity_kw, loss_basis_points))
    index = zone_index(view)
    pair = (min(zone_a, zone_b), max(zone_a, zone_b))
    view.put(ZONE_INDEX_KEY, ZoneIndex(index.zones, tuple(sorted((*index.links, pair)))))
    return True


def participant_key(address: bytes) -> bytes:
    return b"part/" + address


def meter_key(address: bytes) -> bytes:
    return b"meter/" + address


_LICENCE_PREFIX: Final = b"lic/"


def licence_key(holder: bytes, kind: LicenceKind) -> bytes:
    return _LICENCE_PREFIX + holder + bytes([kind])


def authority_of(view: Overlay, address: bytes) -> Authority | None:
    return view.get(authority_key(address), Authority)


def require_role(view: Overlay, address: bytes, role: str) -> Authority:
    authority = authority_of(view, address)
    if authority is None or role not in authority.roles:
        raise errors.Unauthorised(f"signer is not an authority with the {role!r} role")
    return authority


def require_zone(view: Overlay, code: str) -> Zone:
    zone = view.get(zone_key(code), Zone)
    if zone is None:
        raise errors.UnknownZone(f"zone {code!r} does not exist")
    return zone


def require_distributor_of(view: Overlay, address: bytes, zone_code: str) -> Authority:
    """The signer must be the distribution authority that the zone names (MEA/PEA)."""
    zone = require_zone(view, zone_code)
    authority = require_role(view, address, ROLE_DISTRIBUTION)
    if authority.code != zone.distribution_authority:
        raise errors.Unauthorised(
            f"zone {zone_code} is registered by {zone.distribution_authority}, not {authority.code}"
        )
    return authority


def has_valid_licence(view: Overlay, holder: bytes, kind: LicenceKind, time: int) -> bool:
    licence = view.get(licence_key(holder, kind), Licence)
    return licence is not None and licence.valid_at(time)


def generating_capacity_w(view: Overlay, owner: bytes) -> int:
    """Total rated export capacity of the owner's producing meters."""
    index = view.get(owner_meters_key(owner), OwnerMeters)
    if index is None:
        return 0
    return index.generating_capacity_w


class OwnerMeters(msgspec.Struct, frozen=True, array_like=True):
    """Per-owner index, kept so the licence gate is O(1) instead of a scan over all meters."""

    meters: tuple[bytes, ...]
    generating_capacity_w: int


def owner_meters_key(owner: bytes) -> bytes:
    return b"ownm/" + owner


def require_may_sell(view: Overlay, seller: bytes, time: int, threshold_w: int) -> None:
    """Small prosumers sell freely; above the governed threshold an ERC seller licence is needed."""
    if generating_capacity_w(view, seller) <= threshold_w:
        return
    if not has_valid_licence(view, seller, LicenceKind.SELLER, time):
        raise errors.UnlicensedSeller(
            f"generating capacity above {threshold_w} W requires a valid ERC seller licence"
        )


# --- queries: the read side (API, command line, reports) ---------------------------------
LicenceId = tuple[bytes, LicenceKind]
"""A licence's place in the listing: (holder address, kind)."""


def get_participant(view: State | Overlay, address: bytes) -> Participant | None:
    return view.get(participant_key(address), Participant)


def get_meter(view: State | Overlay, address: bytes) -> Meter | None:
    return view.get(meter_key(address), Meter)


def get_zone(view: State | Overlay, code: str) -> Zone | None:
    return view.get(zone_key(code), Zone)


def get_interconnector(view: State | Overlay, zone_a: str, zone_b: str) -> Interconnector | None:
    return view.get(interconnector_key(zone_a, zone_b), Interconnector)


def participants(state: State, after: bytes | None = None) -> Iterator[tuple[bytes, Participant]]:
    """Every (address, participant) in address order, after the address `after`."""
    return records_under(state, participant_key(b""), Participant, after)


def authorities(state: State) -> Iterator[tuple[bytes, Authority]]:
    """Every (address, authority) in address order (a handful)."""
    return records_under(state, authority_key(b""), Authority)


def meters(
    state: State, after: bytes | None = None, owner: bytes | None = None
) -> Iterator[tuple[bytes, Meter]]:
    """Every (address, meter) in address order after the address `after`, or only those of
    `owner`, read through the owner's index rather than a scan of every meter."""
    if owner is None:
        yield from records_under(state, meter_key(b""), Meter, after)
        return
    index = state.get(owner_meters_key(owner), OwnerMeters)
    for address in sorted(index.meters) if index is not None else []:
        meter = get_meter(state, address)
        if meter is not None and (after is None or address > after):
            yield address, meter


def licences(
    state: State, after: LicenceId | None = None, holder: bytes | None = None
) -> Iterator[tuple[LicenceId, Licence]]:
    """Every ((holder, kind), licence) in that order after `after`, or only `holder`'s
    (at most one of each kind, so two reads)."""
    found: Iterator[tuple[LicenceId, Licence]]
    if holder is None:
        every = records_under(state, _LICENCE_PREFIX, Licence)
        found = (((at[:-1], LicenceKind(at[-1])), licence) for at, licence in every)
    else:
        found = (
            ((holder, kind), licence)
            for kind in LicenceKind
            if (licence := state.get(licence_key(holder, kind), Licence)) is not None
        )
    for at, licence in found:
        if after is None or at > after:
            yield at, licence


# --- transaction handlers -----------------------------------------------------------------
def register_participant(
    view: Overlay, ctx: BlockContext, sender: bytes, body: RegisterParticipant
) -> list[Event]:
    authority = require_distributor_of(view, sender, body.zone)
    if view.get(participant_key(body.account), Participant) is not None:
        raise errors.AlreadyRegistered("participant is already registered")
    if authority_of(view, body.account) is not None:
        raise errors.AlreadyRegistered("address belongs to an authority")
    if view.get(meter_key(body.account), Meter) is not None:
        raise errors.AlreadyRegistered("address belongs to a meter")
    participant = Participant(body.zone, body.kind, body.name, authority.code, ctx.time)
    view.put(participant_key(body.account), participant)
    accounts.open_account(view, body.account)
    return [Event("participant_registered", {"account": body.account, "zone": body.zone})]


def register_meter(
    view: Overlay, ctx: BlockContext, sender: bytes, body: RegisterMeter, interval_seconds: int
) -> list[Event]:
    require_distributor_of(view, sender, body.zone)
    owner = view.get(participant_key(body.owner), Participant)
    if owner is None:
        raise errors.UnknownParticipant("meter owner is not a registered participant")
    if body.rated_capacity_w == 0:
        raise errors.InvalidCapacity("rated capacity must be positive")
    address = address_of(body.meter_key)
    if view.get(meter_key(address), Meter) is not None:
        raise errors.MeterAlreadyRegistered("a meter with this key is already registered")
    if view.get(participant_key(address), Participant) or authority_of(view, address):
        raise errors.AlreadyRegistered("meter key belongs to a participant or authority")
    meter = Meter(
        owner=body.owner,
        zone=body.zone,
        kind=body.kind,
        rated_capacity_w=body.rated_capacity_w,
        public_key=body.meter_key,
        registered_at=ctx.time,
        first_interval=ctx.time - ctx.time % interval_seconds,
        last_interval=-1,
        import_register_wh=body.import_register_wh,
        export_register_wh=body.export_register_wh,
        baseline_export_wh=body.export_register_wh,
    )
    view.put(meter_key(address), meter)
    index = view.get(owner_meters_key(body.owner), OwnerMeters) or OwnerMeters((), 0)
    generating = body.rated_capacity_w if body.kind.produces else 0
    view.put(
        owner_meters_key(body.owner),
        OwnerMeters((*index.meters, address), index.generating_capacity_w + generating),
    )
    accounts.open_account(view, address)  # the meter signs its readings with its own nonce
    return [Event("meter_registered", {"meter": address, "owner": body.owner, "zone": body.zone})]


def grant_licence(
    view: Overlay, ctx: BlockContext, sender: bytes, body: GrantLicence
) -> list[Event]:
    require_role(view, sender, ROLE_REGULATOR)
    participant = view.get(participant_key(body.holder), Participant)
    if participant is None:
        raise errors.UnknownParticipant("licence holder is not a registered participant")
    if body.expires_at <= ctx.time:
        raise errors.InvalidExpiry("licence must expire after the current block time")
    if body.kind is LicenceKind.CUSTODIAN and participant.kind is not ParticipantKind.CUSTODIAN:
        raise errors.InvalidParticipantKind("only a custodian participant can hold THB issuance")
    view.put(licence_key(body.holder, body.kind), Licence(ctx.time, body.expires_at, 0))
    return [
        Event(
            "licence_granted",
            {"holder": body.holder, "kind": body.kind.name, "expires_at": body.expires_at},
        )
    ]


def revoke_licence(
    view: Overlay, ctx: BlockContext, sender: bytes, body: RevokeLicence
) -> list[Event]:
    require_role(view, sender, ROLE_REGULATOR)
    key = licence_key(body.holder, body.kind)
    licence = view.get(key, Licence)
    if licence is None or not licence.valid_at(ctx.time):
        raise errors.LicenceNotFound("no valid licence of this kind to revoke")
    view.put(key, msgspec.structs.replace(licence, revoked_at=ctx.time))
    return [Event("licence_revoked", {"holder": body.holder, "kind": body.kind.name})]


RECORDS: Final[tuple[type[msgspec.Struct], ...]] = (
    Authority,
    AuthorityRef,
    Zone,
    ZoneIndex,
    Interconnector,
    Participant,
    Meter,
    Licence,
    OwnerMeters,
)
"""The record types this context stores (`transition.RECORD_TYPES` gathers every context's)."""
