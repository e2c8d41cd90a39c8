"""Signing with locally tracked nonces, so a whole day can be signed before any of it runs.

The simulator's agents decide without reading the ledger (forecasts are their own), so the
stream they produce is fixed by the seed and can be handed to any sink, pre-signed. Nonces
start from what the caller says the ledger holds (zero for accounts the day creates).
"""

from __future__ import annotations

from collections.abc import Callable

from gridtokenx.wire import crypto, tx


class Signer:
    def __init__(self, chain_id: str, next_nonce: Callable[[bytes], int] | None = None) -> None:
        self.chain_id = chain_id
        self._lookup = next_nonce or (lambda _address: 0)
        self._nonces: dict[bytes, int] = {}
        self.signed = 0  # transactions signed so far

    def sign(self, key: crypto.PrivateKey, body: tx.Body) -> bytes:
        nonce = self._nonces.get(key.address)
        if nonce is None:
            nonce = self._lookup(key.address)
        self._nonces[key.address] = nonce + 1
        self.signed += 1
        return tx.make(key, self.chain_id, nonce, body).encode()

    def resync(self, address: bytes, next_nonce: int) -> None:
        """Continue `address` from `next_nonce`: for an account that someone else also
        signs for (an authority whose validator node submits auction clearings)."""
        self._nonces[address] = next_nonce
