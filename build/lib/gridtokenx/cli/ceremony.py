"""`gridtokenx genesis authority`, `build` and `hash`: the genesis ceremony.

Each authority runs `genesis authority` on its own machine, with its own key, and sends
the coordinator only the signed public document it writes; the coordinator runs
`genesis build` on those documents (it never sees, and this command never takes, a
private key); every operator compares `genesis hash` (or passes it to `init
--genesis-hash`) before starting. The rules are in `ledger.ceremony`; docs/operations.md
walks through it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from gridtokenx.cli import genesis, keys, units
from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.render import console, plain
from gridtokenx.wire import crypto

if TYPE_CHECKING:
    from gridtokenx.ledger.ceremony import AuthorityDocument

ROLE_HELP = "the authority this key validates for: EGAT, MEA, PEA, ERC or NEPO"


def _refuse_existing(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise Refused("EXISTS", f"{out} exists (use --force to overwrite)")


def authority(
    key_file: Annotated[Path, typer.Option("--key", help="this authority's validator key file")],
    role: Annotated[str, typer.Option(help=ROLE_HELP)],
    chain_id: Annotated[str, typer.Option(help="the chain id the coordinator announced")],
    power: Annotated[
        int | None, typer.Option(help="genesis voting power; default: the role's standard one")
    ] = None,
    moniker: Annotated[str, typer.Option(help="a name for this validator")] = "",
    out: Annotated[
        Path | None, typer.Option(help="where to write it; default ROLE.authority.json")
    ] = None,
    allow_insecure: Annotated[
        bool, typer.Option("--allow-insecure", help="accept an unencrypted dev key file")
    ] = False,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Export this authority's signed public document for the coordinator.

    The document names the role, public key, address and voting power, signed by the key
    with the chain id; it holds no private key: send it by any channel.

    Example:  gridtokenx genesis authority --key egat.key --role EGAT
              --chain-id gridtokenx-1 --moniker egat-bkk-1
    """
    from gridtokenx.ledger import ceremony
    from gridtokenx.ledger import genesis as ledger_genesis

    role = role.upper()
    chosen = ledger_genesis.STANDARD_POWER.get(role, 0) if power is None else power
    if problems := ceremony.claim_problems(chain_id, role, chosen, moniker):
        raise BadInput("; ".join(problems))
    target = out or Path(f"{role.lower()}.authority.json")
    _refuse_existing(target, force)
    key, _ = keys.load(key_file, allow_insecure)
    document = ceremony.sign(key, chain_id, role, chosen, moniker)
    try:
        target.write_bytes(document.encode())
    except OSError as exc:
        raise BadInput(f"cannot write {target}: {exc.strerror or exc}") from None
    plain.print(f"wrote {target}: {role} for chain {chain_id}, voting power {chosen}")
    plain.print(f"  address  {document.address}")
    plain.print(f"  peer id  {key.address.hex()}")
    plain.print("send it to the coordinator: it holds the public key only")


def _power_override(text: str) -> tuple[str, int]:
    """ROLE=N, the coordinator's agreed power for a role."""
    from gridtokenx.ledger import ceremony
    from gridtokenx.wire.tx import MAX_TOTAL_POWER

    role, _, number = text.partition("=")
    role = role.strip().upper()
    if role not in ceremony.ROLES or not number.strip().isdigit():
        raise BadInput(f"--power {text!r}: expected ROLE=N with ROLE one of "
                       f"{', '.join(ceremony.ROLES)}")  # fmt: skip
    if (value := int(number)) > MAX_TOTAL_POWER:
        raise BadInput(f"--power {text!r}: at most {MAX_TOTAL_POWER}")
    return role, value


def _genesis_time(text: str) -> int:
    return int(time.time()) if text == "now" else units.unix_time(text)


def _read_documents(paths: list[Path]) -> list[tuple[str, AuthorityDocument]]:
    """Each document named on the command line: a missing or unreadable file is bad input,
    one that is not a document a refusal naming the file."""
    from gridtokenx.ledger import ceremony

    read = []
    for path in paths:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BadInput(f"{path} does not exist") from None
        except OSError as exc:
            raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            read.append((str(path), ceremony.decode(data)))
        except ceremony.CeremonyError as exc:
            raise Refused(exc.code, *(f"{path}: {p}" for p in exc.problems)) from None
    return read


def build(
    chain_id: Annotated[str, typer.Option(help="the new chain's id")],
    authority_files: Annotated[
        list[Path] | None,
        typer.Option("--authority", help="an authority's document; one for each of the five"),
    ] = None,
    genesis_time: Annotated[
        str, typer.Option(help="unix seconds, ISO 8601 with an offset, or now")
    ] = "now",
    power: Annotated[
        list[str] | None,
        typer.Option(help="ROLE=N: a voting power agreed other than the standard one"),
    ] = None,
    out: Annotated[Path, typer.Option(help="where to write the genesis")] = Path("genesis.json"),
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Build the genesis from the authorities' documents alone; print its hash.

    Each document's signature, chain id, role and power are checked first, and any
    duplicate or missing authority refused; no private key is taken or needed.

    Example:  gridtokenx genesis build --chain-id gridtokenx-1 --genesis-time now
              --authority egat.authority.json --authority mea.authority.json ...
    """
    from gridtokenx.ledger import ceremony

    if not 1 <= len(chain_id) <= 64:
        raise BadInput(f"--chain-id {chain_id!r} must be 1-64 characters")
    when = _genesis_time(genesis_time)
    powers = dict(_power_override(p) for p in power or [])
    documents = _read_documents(authority_files or [])
    _refuse_existing(out, force)
    try:
        spec = ceremony.build(chain_id, when, documents, powers)
    except ceremony.CeremonyError as exc:
        raise Refused(exc.code, *exc.problems) from None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(spec.encode())
    except OSError as exc:
        raise BadInput(f"cannot write {out}: {exc.strerror or exc}") from None
    table = Table(title=f"{out}: chain {chain_id}, genesis time {when}")
    for column in ("role", "voting power", "moniker", "address", "peer id"):
        table.add_column(column, overflow="fold")
    for _, document in sorted(documents, key=lambda d: ceremony.ROLES.index(d[1].role)):
        peer_id = crypto.address_of(document.key()).hex()  # what `init --peer` takes
        table.add_row(document.role, str(document.voting_power), document.moniker,
                      document.address, peer_id)  # fmt: skip
    console.print(table)
    plain.print(f"genesis hash {spec.hash().hex()}")
    plain.print("send the file to every operator with this hash: each checks it before starting")


def hash_(path: Path) -> None:
    """Print a genesis file's hash, to compare with the coordinator's.

    It is a tagged SHA-256 of the genesis's canonical encoding (docs/operations.md), so
    it depends on the content, not on the JSON's spacing; `init --genesis-hash` checks it.
    """
    print(genesis.read(path).hash().hex())


def parse_hash(text: str) -> bytes:
    """A genesis hash from the command line: 64 hex digits."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise BadInput(f"--genesis-hash {text!r}: expected 64 hex digits (`genesis hash FILE`)")
    return raw
