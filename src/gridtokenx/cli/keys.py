"""`gridtokenx keys new/show/import/list`, and reading a key file for the commands that sign
(`tx`) or make a node home from one (`init`).

Keys live in the encrypted keystore (argon2id + XSalsa20-Poly1305); an unencrypted dev key
is read only with the flag that says so, and a key file is never overwritten silently.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Final

import orjson
import typer
from rich.table import Table

from gridtokenx.cli import passphrase
from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.render import console, print_json
from gridtokenx.node import keystore
from gridtokenx.wire import crypto

DEFAULT_KEYS_DIR: Final = Path("~/.gridtokenx/keys")

keys_app = typer.Typer(help="Create and inspect keys in the encrypted keystore.")


def key_header(path: Path) -> dict[str, Any] | None:
    """The readable header of a keystore file, or None for anything that is not one."""
    try:
        document = orjson.loads(path.read_bytes()[:65_536])
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(document, dict) or document.get("version") != keystore.VERSION:
        return None
    return document if isinstance(document.get("address"), str) else None


def is_insecure(path: Path) -> bool:
    """Whether a key file is an unencrypted dev key (which needs no passphrase)."""
    return (key_header(path) or {}).get("insecure") is True


def load(
    path: Path, allow_insecure: bool, flag: str = "--allow-insecure"
) -> tuple[crypto.PrivateKey, str]:
    """The key of a key file named on the command line and the passphrase that opened it
    ("" for a dev key, accepted only with `flag`)."""
    if not path.exists():
        raise BadInput(f"{path} does not exist")
    header = key_header(path) if path.is_file() else None
    if header is None:
        raise BadInput(f"{path}: not a key file (create one with `gridtokenx keys new`)")
    if header.get("insecure") is True:
        if not allow_insecure:
            raise Refused("INSECURE_KEY", f"{path} is an unencrypted dev key: {flag}")
        return keystore.load_key(path, "", allow_insecure=True), ""
    secret = passphrase.read(confirm=False)
    return keystore.load_key(path, secret), secret


def _make_parent(path: Path) -> None:
    """A new key's folder is made for it (owner-only, as the keys in it are), so `keys
    new keys/alice.key` works in a fresh checkout and `keys list keys` then finds it."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot make {path.parent}: {exc.strerror or exc}") from None


def _refuse_existing(path: Path) -> None:
    if path.exists():
        raise Refused("KEY_EXISTS", f"{path} exists; choose a new file")


@keys_app.command("new")
def keys_new(
    path: Path,
    insecure_dev: Annotated[
        bool,
        typer.Option(
            "--insecure-dev",
            help="write the seed unencrypted (local devnets only; anyone reading the file has it)",
        ),
    ] = False,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Generate a key and save it encrypted with a passphrase (argon2id + XSalsa20-Poly1305)."""
    if not force:
        _refuse_existing(path)
    key = crypto.PrivateKey.generate()
    _make_parent(path)
    if insecure_dev:
        keystore.save_insecure_dev_key(path, key, overwrite=force)
    else:
        keystore.save_key(path, key, passphrase.read(confirm=True), overwrite=force)
    console.print(f"{crypto.address_to_text(key.address)}  saved to {path}")


@keys_app.command("show")
def keys_show(
    path: Path,
    allow_insecure: Annotated[
        bool, typer.Option("--allow-insecure", help="accept an unencrypted dev key file")
    ] = False,
) -> None:
    """Decrypt a key file and print its address and public key (never the secret)."""
    key, _ = load(path, allow_insecure)
    console.print(f"address     {crypto.address_to_text(key.address)}")
    console.print(f"public key  {key.public_key.hex()}")
    console.print(f"peer id     {key.address.hex()}")  # what `init --peer` takes


def seed_from_hex(text: str) -> bytes:
    """An Ed25519 private key as hex: the 32-byte seed, or libsodium's 64-byte secret key
    (seed then public key, checked to match)."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise BadInput("the private key is not hex") from None
    if len(raw) == 2 * crypto.SEED_SIZE:
        if crypto.PrivateKey(raw[: crypto.SEED_SIZE]).public_key != raw[crypto.SEED_SIZE :]:
            raise BadInput("the 64-byte key's second half is not the public key of its seed")
        raw = raw[: crypto.SEED_SIZE]
    if len(raw) != crypto.SEED_SIZE:
        raise BadInput(f"the private key must be {crypto.SEED_SIZE} bytes (64 hex digits)")
    return raw


def _seed_text(private_key_hex: str | None, from_file: Path | None) -> str:
    if (private_key_hex is None) == (from_file is None):
        raise BadInput("give exactly one of --private-key-hex and --from-file")
    if from_file is None:
        return private_key_hex or ""
    if str(from_file) == "-":
        return sys.stdin.read(4096)
    try:
        return from_file.read_text()[:4096]
    except OSError as exc:
        raise BadInput(f"cannot read {from_file}: {exc.strerror or exc}") from None


@keys_app.command("import")
def keys_import(
    path: Annotated[Path, typer.Argument(help="the new key file (never overwritten)")],
    private_key_hex: Annotated[
        str | None,
        typer.Option(help="the 32-byte seed in hex (visible in shell history: prefer a file)"),
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option(help="a file holding the hex seed; - reads standard input")
    ] = None,
) -> None:
    """Save an existing Ed25519 key encrypted under a passphrase (argon2id).

    Examples:

        gridtokenx keys import alice.key --from-file seed.hex

        echo $SEED | gridtokenx keys import alice.key --from-file -
    """
    key = crypto.PrivateKey(seed_from_hex(_seed_text(private_key_hex, from_file)))
    _refuse_existing(path)
    secret = passphrase.read(confirm=True)
    _make_parent(path)
    keystore.save_key(path, key, secret)
    console.print(f"{crypto.address_to_text(key.address)}  imported to {path}", soft_wrap=True)


@keys_app.command("list")
def keys_list(
    directory: Annotated[
        Path | None, typer.Argument(help="default ~/.gridtokenx/keys", show_default=False)
    ] = None,
    dir_option: Annotated[
        Path | None, typer.Option("--dir", help="the same as DIR", show_default=False)
    ] = None,
    decrypt: Annotated[
        bool, typer.Option(help="decrypt encrypted files (passphrase) to show public keys")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Address, public key and insecure flag of every key file in a directory.

    An encrypted file keeps its public key inside the ciphertext, so its public key shows
    only with --decrypt; a file that does not open is listed with why.

    Example:  gridtokenx keys list ./keys --decrypt
    """
    if directory is not None and dir_option is not None:
        raise BadInput("give DIR or --dir, not both")
    folder = (directory or dir_option or DEFAULT_KEYS_DIR).expanduser()
    if not folder.exists():  # nothing made yet: an empty list, and where keys would go
        if json_out:
            print_json([])
        else:
            console.print(f"no key files: {folder} does not exist yet (`gridtokenx keys new "
                          f"{folder}/NAME.key` makes it)", soft_wrap=True)  # fmt: skip
        return
    if not folder.is_dir():
        raise BadInput(f"{folder} is not a directory")
    secret = passphrase.read(confirm=False) if decrypt else ""
    rows = [
        _key_row(path, header, decrypt, secret)
        for path in sorted(folder.iterdir())
        if path.is_file() and (header := key_header(path)) is not None
    ]
    if json_out:
        print_json(rows)
        return
    table = Table(title=f"keys in {folder}")
    for column in ("file", "address", "public key", "insecure"):
        table.add_column(column, overflow="fold")
    for row in rows:
        shown = row["public_key"] or row.get("note", "")
        table.add_row(row["file"], row["address"], shown, "yes" if row["insecure"] else "no")
    console.print(table)


def _key_row(path: Path, header: dict[str, Any], decrypt: bool, secret: str) -> dict[str, Any]:
    insecure = header.get("insecure") is True
    row: dict[str, Any] = {
        "file": path.name,
        "address": header["address"],
        "public_key": None,
        "insecure": insecure,
    }
    if insecure or decrypt:
        try:
            key = keystore.load_key(path, secret, allow_insecure=True)
            row["public_key"] = key.public_key.hex()
        except keystore.KeystoreError as exc:
            row["note"] = str(exc)
    else:
        row["note"] = "(encrypted: --decrypt shows it)"
    return row
