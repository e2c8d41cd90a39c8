"""The genesis ceremony: each authority's signed public-key document, and the genesis a
coordinator builds from them.

No private key leaves its machine. Each authority makes its validator key where the
validator will run and exports an *authority document*: its role (which of the five Thai
authorities it is), public key, address, genesis voting power and a moniker, signed by
that key together with the chain id (the idea of Cosmos's gentx). The coordinator checks
every signature, so a document edited after signing, made up by someone without the key,
or made for another chain is refused, and builds the genesis from the public keys alone;
everything else is the Thai genesis that `genesis create` writes (`genesis.thai`).

A document's power is the authority's agreement to it: it must equal the standard power
of its role, or the figure the coordinator was given for that role (`build`'s `powers`),
so neither side can change the other's voting power unnoticed. All five authorities must
take part: MEA and PEA distribute the zones, ERC collects the fees and licenses the
custodian, EGAT reports transmission, NEPO sets policy, and each has governance weight.

Refusals carry a stable code (the command line's), one per kind of problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

from gridtokenx.ledger import genesis
from gridtokenx.wire import codec, crypto
from gridtokenx.wire.tx import MAX_TOTAL_POWER

VERSION: Final = 1
DOMAIN: Final = b"GridTokenX/genesis-authority"
ROLES: Final = tuple(code for code, *_ in genesis.AUTHORITIES)
MAX_MONIKER: Final = 64

INVALID_AUTHORITY: Final = "INVALID_AUTHORITY"  # not an authority document, or malformed
BAD_SIGNATURE: Final = "BAD_SIGNATURE"  # the signature does not verify: edited or forged
WRONG_CHAIN: Final = "WRONG_CHAIN"  # signed for another chain id
UNKNOWN_ROLE: Final = "UNKNOWN_ROLE"  # not one of the five authorities
DUPLICATE_ROLE: Final = "DUPLICATE_ROLE"  # two documents for one authority
DUPLICATE_KEY: Final = "DUPLICATE_KEY"  # one key for two authorities
MISSING_AUTHORITY: Final = "MISSING_AUTHORITY"  # an authority without a document
POWER_MISMATCH: Final = "POWER_MISMATCH"  # a power other than the one agreed
CODES: Final = (
    INVALID_AUTHORITY,
    BAD_SIGNATURE,
    WRONG_CHAIN,
    UNKNOWN_ROLE,
    DUPLICATE_ROLE,
    DUPLICATE_KEY,
    MISSING_AUTHORITY,
    POWER_MISMATCH,
)


class CeremonyError(ValueError):
    """A refused document or set of documents: `code` is stable, `problems` name each."""

    def __init__(self, code: str, *problems: str) -> None:
        super().__init__(f"{code}: " + "; ".join(problems))
        self.code = code
        self.problems = problems


class AuthorityDocument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What an authority hands the coordinator: public, and signed by the key it names."""

    version: int
    chain_id: str
    role: str
    public_key: str  # hex
    address: str  # gtx..., derived from the public key (checked)
    voting_power: int
    moniker: str
    signature: str  # hex, Ed25519 over `signing_bytes`

    def signing_bytes(self) -> bytes:
        """The domain tag, then the canonical encoding of every field but the address
        (derived from the key) and the signature, the chain id among them: a signature
        for one chain or one role is no signature for another."""
        claim = (
            self.version,
            self.chain_id,
            self.role,
            self.public_key,
            self.voting_power,
            self.moniker,
        )
        return DOMAIN + b"\x00" + codec.encode(claim)

    def encode(self) -> bytes:
        return msgspec.json.format(msgspec.json.encode(self), indent=2) + b"\n"

    def key(self) -> bytes:
        return bytes.fromhex(self.public_key)


def claim_problems(chain_id: str, role: str, voting_power: int, moniker: str) -> list[str]:
    """What is wrong with the claim a document makes, before or after it is signed."""
    problems = []
    if not 1 <= len(chain_id) <= 64:
        problems.append(f"chain id {chain_id!r} must be 1-64 characters")
    if role not in ROLES:
        problems.append(f"role {role!r} is not an authority of the genesis ({', '.join(ROLES)})")
    if not 0 <= voting_power <= MAX_TOTAL_POWER:
        problems.append(f"voting power {voting_power} must be 0-{MAX_TOTAL_POWER}")
    if len(moniker) > MAX_MONIKER or not moniker.isprintable():
        problems.append(f"moniker {moniker!r} must be at most {MAX_MONIKER} printable characters")
    return problems


def sign(
    key: crypto.PrivateKey, chain_id: str, role: str, voting_power: int, moniker: str
) -> AuthorityDocument:
    """The authority document of `key` (on the authority's own machine)."""
    if problems := claim_problems(chain_id, role, voting_power, moniker):
        raise CeremonyError(UNKNOWN_ROLE if role not in ROLES else INVALID_AUTHORITY, *problems)
    public = key.public_key
    unsigned = AuthorityDocument(
        VERSION,
        chain_id,
        role,
        public.hex(),
        crypto.address_to_text(crypto.address_of(public)),
        voting_power,
        moniker,
        "",
    )
    signature = key.sign(unsigned.signing_bytes()).hex()
    return msgspec.structs.replace(unsigned, signature=signature)


def decode(data: bytes) -> AuthorityDocument:
    """A document's bytes, decoded (not yet checked: see `check`)."""
    try:
        document = msgspec.json.decode(data, type=AuthorityDocument)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CeremonyError(INVALID_AUTHORITY, f"not an authority document: {exc}") from None
    if document.version != VERSION:
        raise CeremonyError(
            INVALID_AUTHORITY, f"document version {document.version} is not {VERSION}"
        )
    return document


def check(document: AuthorityDocument, chain_id: str) -> None:
    """Refuse a document that its key did not sign as it stands, that belongs to another
    chain, or whose claim is out of bounds: the signature first, since nothing an
    unsigned document says can be believed."""
    try:
        public = document.key()
        signature = bytes.fromhex(document.signature)
    except ValueError:
        raise CeremonyError(INVALID_AUTHORITY, "public key and signature must be hex") from None
    if len(public) != crypto.PUBLIC_KEY_SIZE:
        raise CeremonyError(
            INVALID_AUTHORITY, f"the public key is not {crypto.PUBLIC_KEY_SIZE} bytes"
        )
    if not crypto.verify(public, document.signing_bytes(), signature):
        raise CeremonyError(
            BAD_SIGNATURE,
            "the signature does not verify: the document was "
            "changed after signing, or not signed by its key",
        )
    if document.chain_id != chain_id:
        raise CeremonyError(
            WRONG_CHAIN, f"signed for chain {document.chain_id!r}, not {chain_id!r}"
        )
    if document.role not in ROLES:
        raise CeremonyError(
            UNKNOWN_ROLE,
            f"role {document.role!r} is not an authority of the genesis ({', '.join(ROLES)})",
        )
    if problems := claim_problems(
        document.chain_id, document.role, document.voting_power, document.moniker
    ):
        raise CeremonyError(INVALID_AUTHORITY, *problems)
    if document.address != crypto.address_to_text(crypto.address_of(public)):
        raise CeremonyError(
            INVALID_AUTHORITY, f"address {document.address} is not the address of the public key"
        )


def build(
    chain_id: str,
    genesis_time: int,
    documents: Sequence[tuple[str, AuthorityDocument]],
    powers: Mapping[str, int] | None = None,
) -> genesis.Genesis:
    """The genesis of `chain_id` from every authority's checked document (each with the
    name it came under, for the messages). `powers` is the coordinator's agreed voting
    power for a role, where it is not the standard one."""
    agreed = {**genesis.STANDARD_POWER, **(powers or {})}
    if unknown := sorted(set(agreed) - set(ROLES)):
        raise CeremonyError(UNKNOWN_ROLE, f"powers for unknown roles {unknown}")
    by_role: dict[str, str] = {}
    by_key: dict[str, str] = {}
    for name, document in documents:
        try:
            check(document, chain_id)
        except CeremonyError as exc:
            raise CeremonyError(exc.code, *(f"{name}: {p}" for p in exc.problems)) from None
        if (first := by_role.get(document.role)) is not None:
            raise CeremonyError(DUPLICATE_ROLE, f"{name} and {first} are both {document.role}")
        if (first := by_key.get(document.public_key)) is not None:
            raise CeremonyError(
                DUPLICATE_KEY, f"{name} and {first} have the same key: each authority needs its own"
            )
        by_role[document.role] = by_key[document.public_key] = name
    if missing := [role for role in ROLES if role not in by_role]:
        raise CeremonyError(
            MISSING_AUTHORITY,
            f"no document for {', '.join(missing)}: every "
            f"authority of the genesis takes part ({', '.join(ROLES)})",
        )
    _check_powers(documents, agreed)
    keys = {document.role: document.key() for _, document in documents}
    spec = genesis.thai(chain_id, genesis_time, keys, agreed)
    if problems := spec.validate():
        raise CeremonyError(INVALID_AUTHORITY, *problems)
    return spec


def _check_powers(
    documents: Sequence[tuple[str, AuthorityDocument]], agreed: Mapping[str, int]
) -> None:
    mismatched = [
        f"{name}: {d.role} signed voting power {d.voting_power}, the genesis gives "
        f"{agreed[d.role]} (a coordinator who agreed to another passes --power "
        f"{d.role}={d.voting_power})"
        for name, d in documents
        if d.voting_power != agreed[d.role]
    ]
    if mismatched:
        raise CeremonyError(POWER_MISMATCH, *mismatched)
    total = sum(agreed.values())
    if not 0 < total <= MAX_TOTAL_POWER:
        raise CeremonyError(
            POWER_MISMATCH, f"total voting power {total} must be 1-{MAX_TOTAL_POWER}"
        )
