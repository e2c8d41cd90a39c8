"""The canonical encoding: one byte string per value, and every other byte string refused.

Validators sign and hash bytes, so any second spelling of a transaction would give it a
second id (and a replay path past duplicate suppression). These tests feed the decoder the
alternative spellings MessagePack allows and check each is refused with its typed error.
"""

from __future__ import annotations

import gc

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.wire import codec, crypto, tx

U64_MAX = 2**63 - 1

addresses = st.binary(min_size=20, max_size=20)
public_keys = st.binary(min_size=32, max_size=32)
u64 = st.integers(min_value=0, max_value=U64_MAX)
zones = st.from_regex(r"\A[A-Z]{2,8}\Z")
names = st.text(min_size=1, max_size=128)

steps = st.lists(st.builds(tx.CurveStep, u64, u64), min_size=1, max_size=4).map(tuple)
rationals = st.builds(tx.Rational, st.integers(-U64_MAX, U64_MAX), st.integers(1, U64_MAX))
auction_bodies = (
    st.builds(tx.PlaceAuctionCurve, st.sampled_from(tx.Side), zones, u64, steps),
    st.builds(tx.AmendAuctionCurve, u64, steps),
    st.builds(tx.CancelAuctionCurve, u64),
    st.builds(
        tx.SubmitAuctionClearing,
        u64,
        st.lists(
            st.builds(tx.ZoneClearing, zones, rationals, rationals, rationals, rationals),
            max_size=3,
        ).map(tuple),
        st.lists(st.builds(tx.LinkFlow, zones, zones, rationals), max_size=3).map(tuple),
    ),
)
bodies: st.SearchStrategy[tx.Body] = st.one_of(
    st.builds(tx.Transfer, st.sampled_from(tx.Asset), addresses, u64),
    st.builds(tx.RegisterParticipant, addresses, zones, st.sampled_from(tx.ParticipantKind), names),
    st.builds(
        tx.RegisterMeter,
        public_keys,
        addresses,
        zones,
        st.sampled_from(tx.MeterKind),
        u64,
        u64,
        u64,
    ),
    st.builds(tx.GrantLicence, addresses, st.sampled_from(tx.LicenceKind), u64),
    st.builds(tx.RevokeLicence, addresses, st.sampled_from(tx.LicenceKind)),
    st.builds(tx.MeterReading, u64, u64, u64),
    st.builds(tx.IssueThb, addresses, u64),
    st.builds(tx.RedeemThb, u64),
    st.builds(
        tx.PlaceOrder,
        st.sampled_from(tx.Side),
        zones,
        u64,
        u64,
        u64,
        st.sampled_from(tx.OrderKind),
        st.sampled_from(tx.TimeInForce),
        st.booleans(),
    ),
    st.builds(tx.CancelOrder, u64),
    st.builds(tx.AmendOrder, u64, u64, u64),
    st.builds(tx.SetZoneHalt, zones, st.booleans(), st.text(max_size=128)),
    st.builds(
        tx.TransmissionStatus,
        u64,
        u64,
        st.lists(
            st.builds(tx.LinkStatus, zones, zones, u64, st.integers(-U64_MAX, U64_MAX)),
            max_size=3,
        ).map(tuple),
        st.lists(st.builds(tx.ZoneBalance, zones, u64, u64), max_size=3).map(tuple),
    ),
    st.builds(tx.DistributionStatus, u64, zones, u64, u64),
    st.builds(
        tx.DeclareEmergency,
        st.lists(zones, min_size=1, max_size=3).map(tuple),
        st.text(max_size=128),
    ),
    st.builds(
        tx.ClearEmergency, st.lists(zones, min_size=1, max_size=3).map(tuple), st.text(max_size=128)
    ),
    st.builds(tx.TransferCertificate, u64, addresses),
    st.builds(tx.RetireCertificate, u64, st.text(max_size=tx.BENEFICIARY_MAX_CHARS)),
    st.builds(
        tx.SubmitProposal,
        st.sampled_from(tx.ProposalKind),
        st.lists(
            st.one_of(
                st.builds(
                    tx.ParamChange,
                    st.text(min_size=1, max_size=64),
                    st.one_of(
                        st.integers(-(2**63), U64_MAX),
                        st.lists(st.integers(-(2**63), U64_MAX), max_size=8).map(tuple),
                    ),
                ),
                st.builds(tx.ValidatorChange, public_keys, st.integers(0, tx.MAX_TOTAL_POWER)),
                st.builds(tx.ValidatorUnjail, addresses),
                st.builds(
                    tx.WeightChange,
                    st.text(min_size=1, max_size=16),
                    st.integers(0, tx.MAX_GOVERNANCE_WEIGHT),
                ),
                st.builds(
                    tx.InterconnectorChange,
                    zones,
                    zones,
                    st.integers(0, U64_MAX),
                    st.integers(0, 9_999),
                ),
            ),
            min_size=1,
            max_size=4,
        ).map(tuple),
        st.text(max_size=256),
    ),
    st.builds(tx.CastVote, u64, st.sampled_from(tx.VoteChoice)),
    st.builds(tx.WithdrawProposal, u64),
    st.builds(tx.DelegateVote, st.text(max_size=16)),
    *auction_bodies,
)

signed_txs = st.builds(
    tx.SignedTransaction,
    st.builds(
        tx.Transaction,
        st.text(min_size=1, max_size=64),
        u64,
        public_keys,
        u64,
        bodies,
    ),
    st.binary(min_size=64, max_size=64),
)

KEY = crypto.PrivateKey.from_dev_label("test/codec")
SAMPLE = tx.make(
    KEY, "gridtokenx-devnet", 7, tx.Transfer(tx.Asset.THB, bytes(range(20)), 1000), fee=5
)


def test_every_body_type_is_covered_by_the_strategy() -> None:
    """If a new body type is added, the round-trip property must be extended to cover it."""
    assert {t.__name__ for t in tx.BODY_TYPES} == {
        "Transfer",
        "RegisterParticipant",
        "RegisterMeter",
        "GrantLicence",
        "RevokeLicence",
        "MeterReading",
        "IssueThb",
        "RedeemThb",
        "PlaceOrder",
        "CancelOrder",
        "AmendOrder",
        "SetZoneHalt",
        "TransmissionStatus",
        "DistributionStatus",
        "DeclareEmergency",
        "ClearEmergency",
        "TransferCertificate",
        "RetireCertificate",
        "SubmitProposal",
        "CastVote",
        "WithdrawProposal",
        "DelegateVote",
        "PlaceAuctionCurve",
        "AmendAuctionCurve",
        "CancelAuctionCurve",
        "SubmitAuctionClearing",
    }


@settings(max_examples=300)
@given(signed_txs)
def test_round_trip_is_identity_and_bytes_are_stable(stx: tx.SignedTransaction) -> None:
    data = stx.encode()
    decoded = tx.decode(data)
    assert decoded == stx
    assert decoded.encode() == data
    assert decoded.hash == stx.hash


def _structs(value: object) -> list[msgspec.Struct]:
    """Every Struct in a decoded value: itself, its fields and what tuples hold."""
    if isinstance(value, tuple):
        return [s for item in value for s in _structs(item)]
    if not isinstance(value, msgspec.Struct):
        return []
    fields = (getattr(value, name) for name in value.__struct_fields__)
    return [value, *(s for field in fields for s in _structs(field))]


@settings(max_examples=200)
@given(signed_txs)
def test_decoded_transactions_are_not_tracked_by_the_collector(
    stx: tx.SignedTransaction,
) -> None:
    """A validator's mempool holds thousands of decoded transactions for seconds: tracked,
    each young collection walked every one of them (docs/adr/0007). Values of bytes,
    numbers, enums and tuples cannot form a cycle, so none needs the collector."""
    structs = _structs(tx.decode(stx.encode()))
    assert len(structs) >= 3  # the signed transaction, the transaction and its body
    assert not any(gc.is_tracked(s) for s in structs)


@settings(max_examples=200)
@given(signed_txs, st.data())
def test_every_strict_prefix_is_refused(stx: tx.SignedTransaction, data: st.DataObject) -> None:
    encoded = stx.encode()
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(codec.DecodeError) as info:
        tx.decode(encoded[:cut])
    # The empty string and mid-value cuts are truncations; a prefix can never decode.
    assert info.value.code in {"TRUNCATED", "MALFORMED"}


def test_cut_inside_a_value_is_truncated() -> None:
    encoded = SAMPLE.encode()
    with pytest.raises(codec.Truncated):
        tx.decode(encoded[:-1])
    with pytest.raises(codec.Truncated):
        tx.decode(encoded[: len(encoded) // 2])


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    try:
        decoded = tx.decode(data)
    except codec.DecodeError as exc:
        assert exc.code in {
            "MALFORMED",
            "TRUNCATED",
            "NON_CANONICAL",
            "OVERSIZED",
            "UNKNOWN_TX_TYPE",
        }
    else:  # random bytes that happen to decode must be the canonical spelling
        assert decoded.encode() == data


@settings(max_examples=300)
@given(signed_txs, st.data())
def test_single_byte_corruption_never_yields_a_different_canonical_spelling(
    stx: tx.SignedTransaction, data: st.DataObject
) -> None:
    encoded = bytearray(stx.encode())
    position = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    try:
        decoded = tx.decode(bytes(encoded))
    except codec.DecodeError:
        return
    assert decoded.encode() == bytes(encoded)
    assert decoded != stx


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(codec.Malformed):
        tx.decode(SAMPLE.encode() + b"\x00")


def _raw(stx: tx.SignedTransaction) -> list[object]:
    """The signed transaction as plain nested lists, to re-spell parts of it by hand."""
    return msgspec.msgpack.decode(stx.encode())  # type: ignore[no-any-return]


def test_wide_integer_is_non_canonical() -> None:
    # nonce 7 is a positive fixint (0x07); spell it as uint64 (0xcf + 8 bytes) instead.
    canonical = SAMPLE.encode()
    chain = b"\xb1gridtokenx-devnet"
    assert chain + b"\x07" in canonical
    wide = canonical.replace(chain + b"\x07", chain + b"\xcf" + (7).to_bytes(8), 1)
    assert msgspec.msgpack.decode(wide) == _raw(SAMPLE)  # same value, different bytes
    with pytest.raises(codec.NonCanonical):
        tx.decode(wide)


def test_str8_where_fixstr_fits_is_non_canonical() -> None:
    canonical = SAMPLE.encode()
    fixstr = b"\xb1gridtokenx-devnet"  # 0xa0 | 17
    str8 = b"\xd9\x11gridtokenx-devnet"
    wide = canonical.replace(fixstr, str8, 1)
    assert msgspec.msgpack.decode(wide) == _raw(SAMPLE)
    with pytest.raises(codec.NonCanonical):
        tx.decode(wide)


def test_array16_where_fixarray_fits_is_non_canonical() -> None:
    canonical = SAMPLE.encode()
    assert canonical[0] == 0x92  # fixarray of 2: [tx, signature]
    wide = b"\xdc\x00\x02" + canonical[1:]
    assert msgspec.msgpack.decode(wide) == _raw(SAMPLE)
    with pytest.raises(codec.NonCanonical):
        tx.decode(wide)


def test_extra_elements_are_refused() -> None:
    raw = _raw(SAMPLE)
    raw.append(b"extra")
    with pytest.raises(codec.DecodeError) as info:
        tx.decode(msgspec.msgpack.encode(raw))
    assert info.value.code in {"MALFORMED", "NON_CANONICAL"}
    body_extra = _raw(SAMPLE)
    inner = body_extra[0]
    assert isinstance(inner, list)
    inner[4].append(1)
    with pytest.raises(codec.DecodeError):
        tx.decode(msgspec.msgpack.encode(body_extra))


def test_missing_elements_are_malformed() -> None:
    raw = _raw(SAMPLE)
    inner = raw[0]
    assert isinstance(inner, list)
    inner.pop()  # drop the body
    with pytest.raises(codec.Malformed):
        tx.decode(msgspec.msgpack.encode(raw))


@pytest.mark.parametrize(
    ("position", "replacement"),
    [
        ((0, 2), b"\x01" * 31),  # sender key one byte short
        ((1,), b"\x01" * 63),  # signature one byte short
        ((0, 4, 2), b"\x01" * 21),  # recipient address one byte long
        ((0, 1), -1),  # negative nonce
        ((0, 3), 2**63),  # fee beyond the signed 64-bit range
        ((0, 0), ""),  # empty chain id
        ((0, 4, 1), 3),  # no asset 3
        ((0, 1), "7"),  # nonce as a string
    ],
)
def test_field_constraints_are_enforced(position: tuple[int, ...], replacement: object) -> None:
    raw: object = _raw(SAMPLE)
    node = raw
    for index in position[:-1]:
        assert isinstance(node, list)
        node = node[index]
    assert isinstance(node, list)
    node[position[-1]] = replacement
    with pytest.raises(codec.Malformed):
        tx.decode(msgspec.msgpack.encode(raw))


VALIDATOR = tx.ProposalKind.VALIDATOR


@pytest.mark.parametrize(
    ("action", "replacement"),
    [
        (tx.ValidatorChange(bytes(32), 1), [2, b"\x01" * 31, 1]),  # key one byte short
        (tx.ValidatorChange(bytes(32), 1), [2, bytes(32), -1]),  # negative power
        (tx.ValidatorChange(bytes(32), 1), [2, bytes(32), tx.MAX_TOTAL_POWER + 1]),  # above cap
        (tx.ValidatorUnjail(bytes(20)), [3, bytes(19)]),  # address one byte short
    ],
)
def test_validator_action_constraints_are_enforced(action: tx.Action, replacement: object) -> None:
    stx = tx.make(KEY, "gridtokenx-devnet", 0, tx.SubmitProposal(VALIDATOR, (action,)))
    assert tx.decode(stx.encode()) == stx
    raw = _raw(stx)
    inner = raw[0]
    assert isinstance(inner, list)
    inner[4][2] = [replacement]  # the proposal's only action
    with pytest.raises(codec.Malformed):
        tx.decode(msgspec.msgpack.encode(raw))


def _signed_raw(key: crypto.PrivateKey, body: list[object]) -> bytes:
    """A transaction with `body` spelled by hand, signed as the ledger would check it."""
    unsigned = ["gridtokenx-devnet", 0, key.public_key, 0, body]
    message = tx.TX_SIGNING_DOMAIN + b"\x00" + msgspec.msgpack.encode(unsigned)
    return msgspec.msgpack.encode([unsigned, key.sign(message)])


@pytest.mark.parametrize(
    "body",
    [
        [13, crypto.PrivateKey.from_dev_label("test/codec/validator").public_key, 6_000],
        [13, bytes(32), 0],
        [14, bytes(20)],
    ],
    ids=["SetValidator", "SetValidator-removal", "UnjailValidator"],
)
def test_the_retired_validator_tags_are_unknown_types(body: list[object]) -> None:
    """Tags 13 and 14 were the ERC's direct validator changes: a well-formed, correctly
    signed one of those is now an unknown type, never anything else."""
    with pytest.raises(codec.UnknownType) as info:
        tx.decode(_signed_raw(KEY, body))
    assert info.value.code == "UNKNOWN_TX_TYPE"


def test_no_body_type_reuses_a_retired_tag() -> None:
    used = {t.__struct_config__.tag for t in tx.BODY_TYPES}
    assert {13, 14} == tx.RETIRED_TAGS and not used & tx.RETIRED_TAGS


def test_unknown_body_tag_is_its_own_error() -> None:
    raw = _raw(SAMPLE)
    inner = raw[0]
    assert isinstance(inner, list)
    assert inner[4][0] == 1  # Transfer
    first_free = max(t.__struct_config__.tag for t in tx.BODY_TYPES) + 1  # type: ignore[type-var]
    for tag in (99, first_free):
        inner[4][0] = tag
        with pytest.raises(codec.UnknownType) as info:
            tx.decode(msgspec.msgpack.encode(raw))
        assert info.value.code == "UNKNOWN_TX_TYPE"


def test_oversized_input_is_refused_before_decoding() -> None:
    with pytest.raises(codec.Oversized):
        tx.decode(b"\x92" + b"\x00" * codec.MAX_TX_SIZE)
    # The largest legal body still fits with room to spare.
    biggest = tx.make(
        KEY, "x" * 64, U64_MAX, tx.RegisterParticipant(bytes(20), "ABCDEFGH", 1, "ญ" * 128)
    )
    assert len(biggest.encode()) < codec.MAX_TX_SIZE
    assert tx.decode(biggest.encode()) == biggest


def test_not_an_array_is_malformed() -> None:
    for data in (b"\xc0", b"\x01", msgspec.msgpack.encode({"tx": 1})):
        with pytest.raises(codec.Malformed):
            tx.decode(data)


def test_golden_vector() -> None:
    """Bytes pinned so that an accidental change to the encoding fails loudly: every signed
    transaction on a running chain depends on them."""
    unsigned = tx.Transaction(
        "gridtokenx-devnet",
        7,
        bytes(32),
        5,
        tx.Transfer(tx.Asset.THB, bytes(range(20)), 1000),
    )
    assert (
        codec.encode(unsigned).hex()
        == (
            "95"  # fixarray(5): chain_id, nonce, sender, fee, body
            "b1"
            + b"gridtokenx-devnet".hex()  # fixstr(17)
            + "07"  # nonce
            "c420"
            + "00"
            * 32  # bin8(32) sender
            + "05"  # fee
            "94"  # fixarray(4): tag, asset, to, amount
            "01"  # tag 1 = Transfer
            "02"  # asset THB
            "c414"
            + bytes(range(20)).hex()  # bin8(20) recipient
            + "cd03e8"  # uint16 1000
        )
    )
    assert unsigned.signing_bytes() == b"GridTokenX/tx/v1\x00" + codec.encode(unsigned)


def test_signature_is_domain_separated() -> None:
    """The key signs the domain-tagged bytes, never the bare encoding."""
    bare = codec.encode(SAMPLE.tx)
    assert not crypto.verify(KEY.public_key, bare, SAMPLE.signature)
    assert crypto.verify(KEY.public_key, SAMPLE.tx.signing_bytes(), SAMPLE.signature)


def test_transaction_id_covers_the_signature() -> None:
    other = tx.SignedTransaction(SAMPLE.tx, bytes(64))
    assert other.hash != SAMPLE.hash
    assert len(SAMPLE.hash) == 32


# --- addresses --------------------------------------------------------------------------


def test_address_text_round_trip() -> None:
    text = crypto.address_to_text(KEY.address)
    assert text.startswith("gtx") and len(text) == 43
    assert crypto.address_from_text(text) == KEY.address


@settings(max_examples=200)
@given(addresses, st.data())
def test_any_single_character_typo_is_caught(address: bytes, data: st.DataObject) -> None:
    text = crypto.address_to_text(address)
    position = data.draw(st.integers(min_value=3, max_value=len(text) - 1))
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    replacement = data.draw(st.sampled_from([c for c in alphabet if c != text[position]]))
    typo = text[:position] + replacement + text[position + 1 :]
    with pytest.raises(crypto.InvalidAddress):
        crypto.address_from_text(typo)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.upper(),  # upper case body
        lambda t: "gtz" + t[3:],  # wrong prefix
        lambda t: t[:-1],  # too short
        lambda t: t + "a",  # too long
        lambda t: t[:10] + "1" + t[11:],  # '1' is not base32
        lambda t: t[:3] + t[4] + t[3] + t[5:],  # transposed characters
    ],
)
def test_malformed_address_text_is_refused(mangle: object) -> None:
    text = crypto.address_to_text(KEY.address)
    assert callable(mangle)
    mangled = mangle(text)
    assert mangled != text
    with pytest.raises(crypto.InvalidAddress):
        crypto.address_from_text(mangled)


def test_invalid_utf8_in_a_string_is_malformed() -> None:
    canonical = SAMPLE.encode()
    broken = canonical.replace(b"\xb1gridtokenx-devnet", b"\xb1gridtokenx-devn\xff\xfe", 1)
    assert broken != canonical
    with pytest.raises(codec.Malformed):
        tx.decode(broken)
    # ...also when the body tag is unknown, which makes the decoder look inside the bytes.
    raw = _raw(SAMPLE)
    inner = raw[0]
    assert isinstance(inner, list)
    inner[4][0] = 99
    unknown = msgspec.msgpack.encode(raw).replace(b"gridtokenx-devnet", b"gridtokenx-devn\xff\xfe")
    with pytest.raises(codec.DecodeError):
        tx.decode(unknown)


@pytest.mark.parametrize("zone", ["BKK\n", "bkk", "B", "ABCDEFGHI", "BK K"])
def test_zone_code_must_be_two_to_eight_capitals(zone: str) -> None:
    body = tx.RegisterParticipant(bytes(20), zone, tx.ParticipantKind.HOUSEHOLD, "x")
    with pytest.raises(codec.Malformed):
        tx.decode(tx.make(KEY, "gridtokenx-devnet", 0, body).encode())


# --- tag 21: DelegateVote ----------------------------------------------------------------
def _delegate_body(stx: tx.SignedTransaction, replacement: object) -> bytes:
    raw = _raw(stx)
    inner = raw[0]
    assert isinstance(inner, list)
    inner[4] = replacement
    return msgspec.msgpack.encode(raw)


@pytest.mark.parametrize(
    ("body", "hex_body"),
    [
        (tx.DelegateVote("EGAT"), "92 15 a4 45474154"),  # fixarray(2), tag 21, fixstr(4)
        (tx.DelegateVote(""), "92 15 a0"),  # an empty code clears the delegation
    ],
)
def test_delegate_vote_bytes_are_pinned_and_round_trip(
    body: tx.DelegateVote, hex_body: str
) -> None:
    assert codec.encode(body).hex() == hex_body.replace(" ", "")
    stx = tx.make(KEY, "gridtokenx-devnet", 3, body)
    assert tx.decode(stx.encode()) == stx


@pytest.mark.parametrize(
    ("replacement", "error"),
    [
        ([21, "EGAT"], None),  # the canonical spelling, for contrast
        ([21], codec.Malformed),  # the delegate is not optional on the wire
        ([21, "EGAT", "MEA"], codec.Malformed),
        ([21, "A" * 17], codec.Malformed),  # a code is at most 16 characters
        ([21, b"EGAT"], codec.Malformed),  # bytes where a str belongs
        ([21, None], codec.Malformed),
    ],
)
def test_delegate_vote_shape_is_enforced(
    replacement: list[object], error: type[codec.DecodeError] | None
) -> None:
    stx = tx.make(KEY, "gridtokenx-devnet", 3, tx.DelegateVote("EGAT"))
    data = _delegate_body(stx, replacement)
    if error is None:
        assert tx.decode(data) == stx
        return
    with pytest.raises(error):
        tx.decode(data)


def test_delegate_vote_wide_spellings_are_non_canonical() -> None:
    canonical = tx.make(KEY, "gridtokenx-devnet", 3, tx.DelegateVote("EGAT")).encode()
    for short, wide in (
        (b"\x92\x15\xa4EGAT", b"\x92\x15\xd9\x04EGAT"),  # str8 where fixstr fits
        (b"\x92\x15\xa4EGAT", b"\xdc\x00\x02\x15\xa4EGAT"),  # array16 body
        (b"\x92\x15\xa4EGAT", b"\x92\xcc\x15\xa4EGAT"),  # tag 21 as uint8
    ):
        assert canonical.count(short) == 1
        spelled = canonical.replace(short, wide)
        assert msgspec.msgpack.decode(spelled) == msgspec.msgpack.decode(canonical)
        with pytest.raises(codec.NonCanonical):
            tx.decode(spelled)


def test_a_private_key_derives_its_key_pair_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deriving the pair costs as much as a verify: a validator asked its address on every
    timeout and signed every vote with a key derived again."""
    import nacl.signing

    key = crypto.PrivateKey.from_dev_label("test/codec/derived-once")
    pair = nacl.signing.SigningKey(key.seed)
    made: list[bytes] = []
    real = nacl.signing.SigningKey
    monkeypatch.setattr(nacl.signing, "SigningKey", lambda seed: made.append(seed) or real(seed))
    assert key.public_key == bytes(pair.verify_key)
    assert key.address == crypto.address_of(bytes(pair.verify_key))
    assert key.sign(b"vote") == pair.sign(b"vote").signature
    assert made == []
