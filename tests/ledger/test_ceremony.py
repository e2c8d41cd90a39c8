"""The ceremony's rules without the command line: a document's signature covers every field
it claims, so changing any one after signing is caught, and the genesis it builds is the
Thai genesis with the documents' keys, byte for byte the same whatever order they come in."""

from __future__ import annotations

import msgspec
import pytest

from gridtokenx.ledger import ceremony, genesis
from gridtokenx.wire import crypto

CHAIN = "gridtokenx-ceremony-test"


def _keys() -> dict[str, crypto.PrivateKey]:
    return {
        role: crypto.PrivateKey.from_dev_label(f"test/ceremony/{role}") for role in ceremony.ROLES
    }


def _documents(keys: dict[str, crypto.PrivateKey]) -> list[tuple[str, ceremony.AuthorityDocument]]:
    return [
        (role, ceremony.sign(key, CHAIN, role, genesis.STANDARD_POWER[role], role.lower()))
        for role, key in keys.items()
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", 2),
        ("chain_id", "gridtokenx-other"),
        ("role", "MEA"),
        ("public_key", crypto.PrivateKey.from_dev_label("test/other").public_key.hex()),
        ("voting_power", 10_001),
        ("moniker", "someone-else"),
    ],
)
def test_every_signed_field_is_covered(field: str, value: object) -> None:
    document = ceremony.sign(_keys()["EGAT"], CHAIN, "EGAT", 10_000, "egat")
    ceremony.check(document, CHAIN)
    changed = msgspec.structs.replace(document, **{field: value})
    with pytest.raises(ceremony.CeremonyError) as refused:
        ceremony.check(changed, CHAIN)
    assert refused.value.code == ceremony.BAD_SIGNATURE


def test_the_build_is_the_thai_genesis_and_independent_of_order() -> None:
    keys = _keys()
    documents = _documents(keys)
    built = ceremony.build(CHAIN, 1_800_000_000, documents)
    public = {role: key.public_key for role, key in keys.items()}
    assert built == genesis.thai(CHAIN, 1_800_000_000, public)
    assert ceremony.build(CHAIN, 1_800_000_000, documents[::-1]).encode() == built.encode()
    assert built.hash() != ceremony.build(CHAIN, 1_800_000_001, documents).hash()


def test_the_same_file_twice_is_a_duplicate_not_a_pass() -> None:
    documents = _documents(_keys())
    with pytest.raises(ceremony.CeremonyError) as refused:
        ceremony.build(CHAIN, 0, [*documents, documents[0]])
    assert refused.value.code == ceremony.DUPLICATE_ROLE


def test_signing_refuses_what_a_genesis_cannot_hold() -> None:
    key = _keys()["EGAT"]
    for role, power, moniker, code in [
        ("PTT", 1, "", ceremony.UNKNOWN_ROLE),
        ("EGAT", -1, "", ceremony.INVALID_AUTHORITY),
        ("EGAT", 100_001, "", ceremony.INVALID_AUTHORITY),
        ("EGAT", 1, "x" * 65, ceremony.INVALID_AUTHORITY),
        ("EGAT", 1, "line\nbreak", ceremony.INVALID_AUTHORITY),
    ]:
        with pytest.raises(ceremony.CeremonyError) as refused:
            ceremony.sign(key, CHAIN, role, power, moniker)
        assert refused.value.code == code, (role, power, moniker)


def test_a_total_power_of_zero_is_refused() -> None:
    keys = _keys()
    documents = [(role, ceremony.sign(key, CHAIN, role, 0, "")) for role, key in keys.items()]
    zero = dict.fromkeys(ceremony.ROLES, 0)
    with pytest.raises(ceremony.CeremonyError) as refused:
        ceremony.build(CHAIN, 0, documents, zero)
    assert refused.value.code == ceremony.POWER_MISMATCH
    assert "total voting power 0" in str(refused.value)
