"""The batch route's decoding of its transactions' text, a batch at a time."""

from __future__ import annotations

import base64

import pytest

from gridtokenx.api.errors import ApiError
from gridtokenx.api.routes.txs import decode_text, decode_texts


def test_a_batch_decodes_as_each_of_its_transactions_did() -> None:
    raws = [bytes([n]) * (n + 1) for n in range(5)]
    hexes = [r.hex() for r in raws]
    assert decode_texts(hexes, "hex") == raws == [decode_text(t, "hex") for t in hexes]
    assert decode_texts(hexes, None) == raws
    b64 = [base64.b64encode(r).decode() for r in raws]
    assert decode_texts(b64, "base64") == raws


@pytest.mark.parametrize("bad", ["zz", "abc", "not hex!"])
def test_a_bad_transaction_in_a_hex_batch_is_refused_as_alone(bad: str) -> None:
    with pytest.raises(ApiError) as alone:
        decode_text(bad, "hex")
    with pytest.raises(ApiError) as batched:
        decode_texts(["00ff", bad, "0102"], "hex")
    assert (batched.value.status, batched.value.code, str(batched.value)) == (
        alone.value.status, alone.value.code, str(alone.value))  # fmt: skip
