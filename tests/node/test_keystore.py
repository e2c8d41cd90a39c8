"""Encrypted key files: round trip, refusal cases and tamper detection."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import nacl.pwhash.argon2id as argon2id
import orjson
import pytest

from gridtokenx.node.keystore import (
    KeystoreError,
    WrongPassphrase,
    load_key,
    save_insecure_dev_key,
    save_key,
)
from gridtokenx.wire.crypto import PrivateKey, address_to_text, verify

OPS, MEM = argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN  # keep tests fast
PASS = "correct horse battery staple"


@pytest.fixture
def key() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture
def key_file(tmp_path: Path, key: PrivateKey) -> Path:
    path = tmp_path / "key.json"
    save_key(path, key, PASS, opslimit=OPS, memlimit=MEM)
    return path


def read_json(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(path.read_bytes())
    return document


def write_json(path: Path, document: object) -> None:
    path.write_bytes(orjson.dumps(document))


def test_round_trip(key_file: Path, key: PrivateKey) -> None:
    loaded = load_key(key_file, PASS)
    assert loaded.address == key.address
    assert loaded.seed == key.seed
    message = b"settle interval 2025-01-01T00:15"
    assert verify(key.public_key, message, loaded.sign(message))


def test_file_format(key_file: Path, key: PrivateKey) -> None:
    document = read_json(key_file)
    assert document["version"] == 1
    assert document["address"] == address_to_text(key.address)
    assert document["kdf"] == "argon2id"
    assert document["cipher"] == "xsalsa20-poly1305"
    assert document["kdfparams"]["opslimit"] == argon2id.OPSLIMIT_MIN
    assert document["kdfparams"]["memlimit"] == argon2id.MEMLIMIT_MIN
    assert len(bytes.fromhex(document["kdfparams"]["salt"])) == argon2id.SALTBYTES
    assert len(bytes.fromhex(document["nonce"])) == 24
    assert "insecure" not in document


def test_seed_not_in_file_in_plain(key_file: Path, key: PrivateKey) -> None:
    text = key_file.read_text()
    assert key.seed.hex() not in text
    assert key.seed.hex().upper() not in text
    assert key.seed not in key_file.read_bytes()


def test_salt_and_nonce_are_fresh_per_save(tmp_path: Path, key: PrivateKey) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    save_key(first, key, PASS, opslimit=OPS, memlimit=MEM)
    save_key(second, key, PASS, opslimit=OPS, memlimit=MEM)
    a, b = read_json(first), read_json(second)
    assert a["kdfparams"]["salt"] != b["kdfparams"]["salt"]
    assert a["nonce"] != b["nonce"]
    assert a["ciphertext"] != b["ciphertext"]


def test_wrong_passphrase(key_file: Path) -> None:
    with pytest.raises(WrongPassphrase):
        load_key(key_file, PASS + "!")
    with pytest.raises(KeystoreError):
        load_key(key_file, "")


def test_unicode_passphrase_is_normalised(tmp_path: Path, key: PrivateKey) -> None:
    path = tmp_path / "k.json"
    composed = "caf\u00e9 \u0e44\u0e1f\u0e1f\u0e49\u0e32"
    decomposed = "cafe\u0301 \u0e44\u0e1f\u0e1f\u0e49\u0e32"
    save_key(path, key, composed, opslimit=OPS, memlimit=MEM)
    loaded = load_key(path, decomposed)
    assert loaded.seed == key.seed


def test_empty_passphrase_refused(tmp_path: Path, key: PrivateKey) -> None:
    path = tmp_path / "k.json"
    with pytest.raises(KeystoreError, match="empty passphrase"):
        save_key(path, key, "", opslimit=OPS, memlimit=MEM)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "salt"])
def test_tampered_encrypted_fields_fail(key_file: Path, field: str) -> None:
    document = read_json(key_file)
    holder = document["kdfparams"] if field == "salt" else document
    raw = bytearray.fromhex(holder[field])
    raw[len(raw) // 2] ^= 0x01
    holder[field] = raw.hex()
    write_json(key_file, document)
    with pytest.raises(WrongPassphrase):
        load_key(key_file, PASS)


def test_tampered_kdf_params_fail(key_file: Path) -> None:
    document = read_json(key_file)
    document["kdfparams"]["opslimit"] += 1
    write_json(key_file, document)
    with pytest.raises(KeystoreError):
        load_key(key_file, PASS)


def test_truncated_ciphertext_rejected(key_file: Path) -> None:
    document = read_json(key_file)
    document["ciphertext"] = document["ciphertext"][:-2]
    write_json(key_file, document)
    with pytest.raises(KeystoreError, match="ciphertext"):
        load_key(key_file, PASS)


def test_address_field_is_authenticated(key_file: Path) -> None:
    document = read_json(key_file)
    document["address"] = address_to_text(PrivateKey.generate().address)
    write_json(key_file, document)
    with pytest.raises(KeystoreError) as info:
        load_key(key_file, PASS)
    assert not isinstance(info.value, WrongPassphrase)


def test_hostile_memlimit_refused_before_derivation(key_file: Path) -> None:
    document = read_json(key_file)
    document["kdfparams"]["memlimit"] = 1 << 42
    write_json(key_file, document)
    with pytest.raises(KeystoreError, match="memlimit"):
        load_key(key_file, PASS)


def test_save_refuses_out_of_range_limits(tmp_path: Path, key: PrivateKey) -> None:
    with pytest.raises(KeystoreError):
        save_key(tmp_path / "k.json", key, PASS, opslimit=0, memlimit=argon2id.MEMLIMIT_MIN)
    with pytest.raises(KeystoreError):
        save_key(tmp_path / "k.json", key, PASS, opslimit=1, memlimit=1 << 42)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_file_mode_is_owner_only(key_file: Path, tmp_path: Path, key: PrivateKey) -> None:
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    dev = tmp_path / "dev.json"
    save_insecure_dev_key(dev, key)
    assert stat.S_IMODE(dev.stat().st_mode) == 0o600


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_file_mode_is_owner_only_despite_permissive_umask(tmp_path: Path, key: PrivateKey) -> None:
    old = os.umask(0)
    try:
        save_key(tmp_path / "k.json", key, PASS, opslimit=OPS, memlimit=MEM)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k.json").stat().st_mode) == 0o600


def test_no_overwrite_by_default(key_file: Path) -> None:
    before = key_file.read_bytes()
    other = PrivateKey.generate()
    with pytest.raises(KeystoreError, match="already exists"):
        save_key(key_file, other, PASS, opslimit=OPS, memlimit=MEM)
    assert key_file.read_bytes() == before
    with pytest.raises(KeystoreError, match="already exists"):
        save_insecure_dev_key(key_file, other)
    assert key_file.read_bytes() == before
    assert sorted(p.name for p in key_file.parent.iterdir()) == [key_file.name]


def test_overwrite_when_asked(key_file: Path) -> None:
    other = PrivateKey.generate()
    save_key(key_file, other, "new passphrase", overwrite=True, opslimit=OPS, memlimit=MEM)
    assert load_key(key_file, "new passphrase").address == other.address
    assert sorted(p.name for p in key_file.parent.iterdir()) == [key_file.name]


def test_insecure_dev_key(tmp_path: Path) -> None:
    key = PrivateKey.from_dev_label("validator-1")
    path = tmp_path / "dev.json"
    save_insecure_dev_key(path, key)
    document = read_json(path)
    assert document["insecure"] is True
    assert document["seed"] == key.seed.hex()
    with pytest.raises(KeystoreError, match="unencrypted dev key"):
        load_key(path, PASS)
    loaded = load_key(path, "", allow_insecure=True)
    assert loaded.seed == key.seed


def test_insecure_dev_key_address_checked(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    save_insecure_dev_key(path, PrivateKey.from_dev_label("a"))
    document = read_json(path)
    document["address"] = address_to_text(PrivateKey.from_dev_label("b").address)
    write_json(path, document)
    with pytest.raises(KeystoreError, match="address"):
        load_key(path, "", allow_insecure=True)


def test_encrypted_file_loads_with_allow_insecure_too(key_file: Path, key: PrivateKey) -> None:
    assert load_key(key_file, PASS, allow_insecure=True).seed == key.seed


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"{",
        b"[]",
        b"null",
        b'"string"',
        b"{}",
        b'{"version": 2}',
        b'{"version": "1"}',
        b'{"version": true}',
        b'{"version": 1}',
        b'{"version": 1, "insecure": "yes"}',
        b'{"version": 1, "insecure": true, "address": "gtx", "seed": "zz"}',
        b'{"version": 1, "insecure": true, "seed": "00"}',
    ],
)
def test_malformed_files_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(KeystoreError):
        load_key(path, PASS, allow_insecure=True)


def test_unknown_version_message(key_file: Path) -> None:
    document = read_json(key_file)
    document["version"] = 2
    write_json(key_file, document)
    with pytest.raises(KeystoreError, match="unsupported key file version 2"):
        load_key(key_file, PASS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kdf", "scrypt"),
        ("cipher", "aes-256-gcm"),
        ("kdfparams", None),
        ("kdfparams", {"opslimit": 1}),
        ("nonce", "xyz"),
        ("nonce", 5),
        ("address", None),
    ],
)
def test_malformed_header_fields_rejected(key_file: Path, field: str, value: object) -> None:
    document = read_json(key_file)
    document[field] = value
    write_json(key_file, document)
    with pytest.raises(KeystoreError) as info:
        load_key(key_file, PASS)
    assert not isinstance(info.value, WrongPassphrase)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="cannot read"):
        load_key(tmp_path / "absent.json", PASS)


def test_missing_directory_on_save(tmp_path: Path, key: PrivateKey) -> None:
    with pytest.raises(KeystoreError):
        save_key(tmp_path / "no" / "such" / "k.json", key, PASS, opslimit=OPS, memlimit=MEM)


def test_repr_does_not_leak_seed(key: PrivateKey) -> None:
    assert key.seed.hex() not in repr(key)
