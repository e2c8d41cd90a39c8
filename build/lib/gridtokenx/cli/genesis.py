"""`gridtokenx genesis create/validate`, and reading the genesis file a command names (the
ceremony's `authority`, `build` and `hash` are in cli.ceremony)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.render import console
from gridtokenx.wire import crypto

if TYPE_CHECKING:
    from gridtokenx.ledger.genesis import Genesis

genesis_app = typer.Typer(help="Create, validate and hash genesis files; the genesis ceremony.")


def read(path: Path) -> Genesis:
    """The genesis file named on the command line, validated: a missing or unreadable file
    is bad input, a file with problems INVALID_GENESIS with one line per problem."""
    from gridtokenx.ledger import genesis
    from gridtokenx.node.home import load_genesis

    try:
        return load_genesis(path)
    except FileNotFoundError:
        raise BadInput(f"{path} does not exist") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    except genesis.GenesisError as exc:
        problems = [f"{path}: {problem}" for problem in exc.problems] or [f"{path}: {exc}"]
        raise Refused("INVALID_GENESIS", *problems) from None


@genesis_app.command("create")
def genesis_create(
    out: Annotated[Path, typer.Option(help="where to write the genesis JSON")] = Path(
        "devnet/genesis.json"
    ),
    chain_id: Annotated[str, typer.Option(help="chain id")] = "gridtokenx-devnet-1",
    genesis_time: Annotated[int, typer.Option(help="unix seconds; default now")] = -1,
    insecure_dev_keys: Annotated[
        bool,
        typer.Option(
            "--insecure-dev-keys",
            help="use the publicly derivable devnet authority keys (never for a real network)",
        ),
    ] = False,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a devnet genesis with the five authorities, seven zones and Thai defaults."""
    from gridtokenx.ledger import genesis

    if not insecure_dev_keys:
        raise BadInput(
            "real authority keys come from their operators; for a local devnet pass "
            "--insecure-dev-keys"
        )
    if out.exists() and not force:
        raise Refused("EXISTS", f"{out} exists (use --force to overwrite)")
    when = int(time.time()) if genesis_time < 0 else genesis_time
    spec = genesis.devnet(chain_id, when, genesis.dev_keys())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(spec.encode())
    console.print(f"wrote {out}: chain {chain_id}, {len(spec.authorities)} authorities")
    console.print(f"genesis hash {spec.hash().hex()}")
    for a in spec.authorities:
        address = crypto.address_of(bytes.fromhex(a.public_key))
        console.print(f"  {a.code:5} {crypto.address_to_text(address)}")


@genesis_app.command("validate")
def genesis_validate(path: Path) -> None:
    """Check a genesis file; print every problem and exit 1 if there are any."""
    from gridtokenx.ledger import genesis

    spec = read(path)
    root = genesis.build_state(spec).root()
    console.print(f"{path}: valid; chain {spec.chain_id}; genesis state root {root.hex()}")
    console.print(f"genesis hash {spec.hash().hex()}")
