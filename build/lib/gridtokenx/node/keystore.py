"""Passphrase-encrypted key files for the CLI and node operators.

A stolen laptop or a leaked backup should not be a stolen validator or prosumer key, so the
32-byte Ed25519 seed is stored only encrypted: Argon2id (memory-hard, so GPU guessing of
weak passphrases is expensive) derives a key for XSalsa20-Poly1305 (libsodium's SecretBox,
authenticated, so a wrong passphrase or a flipped bit is detected rather than yielding a
different key that would sign with the wrong identity).

File format, version 1 (JSON)::

    {"version": 1, "address": "gtx...", "kdf": "argon2id",
     "kdfparams": {"opslimit": 3, "memlimit": 268435456, "salt": "<16 bytes hex>"},
     "cipher": "xsalsa20-poly1305", "nonce": "<24 bytes hex>", "ciphertext": "<hex>"}

The plaintext is ``seed || header_digest`` where the digest covers every header field, so
the readable header is authenticated too: editing the address (to make a wallet show the
wrong account) or any parameter is caught after decryption. The KDF parameters are read
from the file and bounded, so a hostile file cannot make `load_key` allocate unbounded
memory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret
import nacl.utils
import orjson

from gridtokenx.wire.crypto import SEED_SIZE, PrivateKey, address_to_text, tagged_hash

VERSION = 1
KDF = "argon2id"
CIPHER = "xsalsa20-poly1305"

DEFAULT_OPSLIMIT: int = argon2id.OPSLIMIT_MODERATE
DEFAULT_MEMLIMIT: int = argon2id.MEMLIMIT_MODERATE
MIN_OPSLIMIT: int = argon2id.OPSLIMIT_MIN
MIN_MEMLIMIT: int = argon2id.MEMLIMIT_MIN
# Upper bounds on what a file may ask for; libsodium's SENSITIVE level is 4 ops / 1 GiB.
MAX_OPSLIMIT = 16
MAX_MEMLIMIT: int = argon2id.MEMLIMIT_SENSITIVE

_SALT_SIZE: int = argon2id.SALTBYTES
_KEY_SIZE: int = nacl.secret.SecretBox.KEY_SIZE
_NONCE_SIZE: int = nacl.secret.SecretBox.NONCE_SIZE
_MAC_SIZE: int = nacl.secret.SecretBox.MACBYTES
_DIGEST_SIZE = 32
_CIPHERTEXT_SIZE = SEED_SIZE + _DIGEST_SIZE + _MAC_SIZE
_HEADER_TAG = b"GridTokenX/keystore-v1-header"


class KeystoreError(Exception):
    """The key file cannot be written or read: malformed, unsupported, or inconsistent."""


class WrongPassphrase(KeystoreError):
    """Decryption failed authentication.

    Poly1305 cannot tell a wrong passphrase from a corrupted salt, nonce or ciphertext, so
    this also covers a damaged file; the message says both.
    """


def save_key(
    path: str | os.PathLike[str],
    key: PrivateKey,
    passphrase: str,
    *,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
    overwrite: bool = False,
) -> None:
    """Encrypt `key` under `passphrase` and write it atomically with mode 0o600.

    An empty passphrase is refused: it would produce a file that looks protected but is not.
    An existing file is kept unless `overwrite` is set, because overwriting a key file by
    mistake can destroy the only copy of an account's key.
    """
    if not passphrase:
        raise KeystoreError("refusing to encrypt a key with an empty passphrase")
    _check_limits(opslimit, memlimit)
    address = address_to_text(key.address)
    salt = nacl.utils.random(_SALT_SIZE)
    nonce = nacl.utils.random(_NONCE_SIZE)
    header: dict[str, Any] = {
        "version": VERSION,
        "address": address,
        "kdf": KDF,
        "kdfparams": {"opslimit": opslimit, "memlimit": memlimit, "salt": salt.hex()},
        "cipher": CIPHER,
    }
    box = nacl.secret.SecretBox(_derive_key(passphrase, salt, opslimit, memlimit))
    plaintext = key.seed + _header_digest(address, opslimit, memlimit, salt)
    ciphertext = box.encrypt(plaintext, nonce).ciphertext
    document = {**header, "nonce": nonce.hex(), "ciphertext": ciphertext.hex()}
    _write_private(Path(path), orjson.dumps(document, option=orjson.OPT_INDENT_2), overwrite)


def save_insecure_dev_key(
    path: str | os.PathLike[str], key: PrivateKey, *, overwrite: bool = False
) -> None:
    """Write the seed UNENCRYPTED, for throwaway devnet and test keys only.

    Anyone who can read the file has the key. It exists so scripted local networks can start
    validators without a passphrase prompt; never use it for a key that holds real value.
    `load_key` refuses such a file unless called with ``allow_insecure=True``.
    """
    document = {
        "version": VERSION,
        "insecure": True,
        "address": address_to_text(key.address),
        "seed": key.seed.hex(),
    }
    _write_private(Path(path), orjson.dumps(document, option=orjson.OPT_INDENT_2), overwrite)


def load_key(
    path: str | os.PathLike[str], passphrase: str, *, allow_insecure: bool = False
) -> PrivateKey:
    """Read a key file; every failure is a `KeystoreError` with a message for the operator.

    `passphrase` is ignored for an insecure dev key file, which is accepted only with
    `allow_insecure` so that a production node never silently runs on an unencrypted key.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeystoreError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise KeystoreError(f"{path} is not a key file (invalid JSON)") from None
    if not isinstance(document, dict):
        raise KeystoreError(f"{path} is not a key file (expected a JSON object)")
    version = document.get("version")
    if type(version) is not int or version != VERSION:
        raise KeystoreError(
            f"{path}: unsupported key file version {version!r} (this software reads {VERSION})"
        )
    insecure = document.get("insecure", False)
    if type(insecure) is not bool:
        raise KeystoreError(f"{path}: field 'insecure' must be true or false")
    if insecure:
        if not allow_insecure:
            raise KeystoreError(
                f"{path} is an unencrypted dev key (insecure); it is accepted only on devnets "
                "with allow_insecure=True"
            )
        key = _to_key(_hex_field(document, "seed", SEED_SIZE, path), path)
    else:
        key = _decrypt(document, passphrase, path)
    if address_to_text(key.address) != _str_field(document, "address", path):
        raise KeystoreError(f"{path}: address field does not match the key in the file")
    return key


# --- internals ----------------------------------------------------------------------------
def _decrypt(document: dict[str, Any], passphrase: str, path: Path) -> PrivateKey:
    if _str_field(document, "kdf", path) != KDF:
        raise KeystoreError(f"{path}: unsupported kdf {document['kdf']!r} (expected {KDF!r})")
    if _str_field(document, "cipher", path) != CIPHER:
        raise KeystoreError(
            f"{path}: unsupported cipher {document['cipher']!r} (expected {CIPHER!r})"
        )
    params = document.get("kdfparams")
    if not isinstance(params, dict):
        raise KeystoreError(f"{path}: missing or malformed 'kdfparams'")
    opslimit = _int_field(params, "opslimit", path)
    memlimit = _int_field(params, "memlimit", path)
    try:
        _check_limits(opslimit, memlimit)
    except KeystoreError as exc:
        raise KeystoreError(f"{path}: {exc}") from None
    salt = _hex_field(params, "salt", _SALT_SIZE, path)
    nonce = _hex_field(document, "nonce", _NONCE_SIZE, path)
    ciphertext = _hex_field(document, "ciphertext", _CIPHERTEXT_SIZE, path)
    address = _str_field(document, "address", path)

    box = nacl.secret.SecretBox(_derive_key(passphrase, salt, opslimit, memlimit))
    try:
        plaintext = box.decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase(f"{path}: wrong passphrase, or the file is corrupted") from None
    seed, digest = plaintext[:SEED_SIZE], plaintext[SEED_SIZE:]
    if digest != _header_digest(address, opslimit, memlimit, salt):
        raise KeystoreError(f"{path}: header fields were modified after encryption")
    return _to_key(seed, path)


def _header_digest(address: str, opslimit: int, memlimit: int, salt: bytes) -> bytes:
    """Commit to the header; nonce and ciphertext are already covered by the Poly1305 MAC."""
    fields = (
        str(VERSION).encode(),
        address.encode("utf-8"),
        KDF.encode(),
        str(opslimit).encode(),
        str(memlimit).encode(),
        salt,
        CIPHER.encode(),
    )
    # Length-prefix each field so no two different headers encode to the same bytes.
    return tagged_hash(_HEADER_TAG, *(len(f).to_bytes(4, "big") + f for f in fields))


def _derive_key(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    # NFC so the same passphrase typed on macOS (decomposed input) and elsewhere matches.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    try:
        key: bytes = argon2id.kdf(_KEY_SIZE, secret, salt, opslimit=opslimit, memlimit=memlimit)
    except (MemoryError, RuntimeError, nacl.exceptions.CryptoError) as exc:
        raise KeystoreError(f"key derivation failed: {exc}") from None
    return key


def _check_limits(opslimit: int, memlimit: int) -> None:
    if not MIN_OPSLIMIT <= opslimit <= MAX_OPSLIMIT:
        raise KeystoreError(f"argon2id opslimit must be in [{MIN_OPSLIMIT}, {MAX_OPSLIMIT}]")
    if not MIN_MEMLIMIT <= memlimit <= MAX_MEMLIMIT:
        raise KeystoreError(f"argon2id memlimit must be in [{MIN_MEMLIMIT}, {MAX_MEMLIMIT}]")


def _to_key(seed: bytes, path: Path) -> PrivateKey:
    try:
        return PrivateKey(seed)
    except ValueError as exc:
        raise KeystoreError(f"{path}: {exc}") from None


def _str_field(document: dict[str, Any], name: str, path: Path) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise KeystoreError(f"{path}: missing or malformed field {name!r}")
    return value


def _int_field(document: dict[str, Any], name: str, path: Path) -> int:
    value = document.get(name)
    if type(value) is not int:
        raise KeystoreError(f"{path}: missing or malformed integer field {name!r}")
    return value


def _hex_field(document: dict[str, Any], name: str, size: int, path: Path) -> bytes:
    text = _str_field(document, name, path)
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise KeystoreError(f"{path}: field {name!r} is not hex") from None
    if len(value) != size:
        raise KeystoreError(f"{path}: field {name!r} must be {size} bytes, got {len(value)}")
    return value


def _write_private(path: Path, data: bytes, overwrite: bool) -> None:
    """Write to a 0o600 temp file in the same directory, fsync, then move it into place.

    A crash leaves either the old file or the new one, never a truncated key. Without
    `overwrite` the final step is a hard link, which fails atomically if `path` exists, so
    two concurrent writers cannot both think they created the file.
    """
    directory = path.parent
    if not overwrite and path.exists():
        raise KeystoreError(f"{path} already exists; pass overwrite=True to replace it")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise KeystoreError(f"cannot write key file {path}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_exclusive(tmp, path)
        _fsync_directory(directory)
    except FileExistsError:
        raise KeystoreError(f"{path} already exists; pass overwrite=True to replace it") from None
    except OSError as exc:
        raise KeystoreError(f"cannot write key file {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _link_exclusive(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        # Filesystem without hard links: fall back to check-then-replace (small race window).
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(tmp, path)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; not possible (nor needed) on every platform."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
