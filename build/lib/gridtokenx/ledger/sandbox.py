"""A single-process ledger for scripts, tests and the demo: genesis, clock and nonces in one.

It is not a node: there are no blocks or consensus here, just `transition.apply` with a block
context that the caller advances. Keys are the insecure devnet keys.
"""

from __future__ import annotations

from gridtokenx.ledger import accounts, genesis, transition, validator_set
from gridtokenx.ledger.context import BlockContext, Event
from gridtokenx.ledger.state import State
from gridtokenx.wire import crypto, tx
from gridtokenx.wire.validators import ValidatorSet
from gridtokenx.wire.votes import Evidence

DEFAULT_GENESIS_TIME = 1_767_225_600  # 2026-01-01 00:00 UTC (07:00 in Bangkok)


class Sandbox:
    def __init__(
        self,
        chain_id: str = "gridtokenx-sandbox",
        genesis_time: int = DEFAULT_GENESIS_TIME,
        spec: genesis.Genesis | None = None,
    ) -> None:
        self.authority_keys = genesis.dev_keys()
        self.genesis = spec or genesis.devnet(chain_id, genesis_time, self.authority_keys)
        self.state: State = genesis.build_state(self.genesis)
        self.chain_id = self.genesis.chain_id
        self.height = 1
        self.time = self.genesis.genesis_time

    @property
    def context(self) -> BlockContext:
        return BlockContext(self.height, self.time)

    def advance(self, seconds: int) -> list[Event]:
        """End the current block (expiries, settlement) and start one `seconds` later."""
        events = transition.end_block(self.state, self.context)
        self.time += seconds
        self.height += 1
        return events

    def authority(self, code: str) -> crypto.PrivateKey:
        return self.authority_keys[code]

    def next_nonce(self, key: crypto.PrivateKey) -> int:
        account = self.state.get(accounts.account_key(key.address), accounts.Account)
        return 0 if account is None else account.nonce

    def sign(self, key: crypto.PrivateKey, body: tx.Body, fee: int = 0) -> tx.SignedTransaction:
        return tx.make(key, self.chain_id, self.next_nonce(key), body, fee)

    def submit(self, key: crypto.PrivateKey, body: tx.Body, fee: int = 0) -> list[Event]:
        """Sign with the next nonce and apply; raises the Rejection if the ledger refuses."""
        return transition.apply(self.state, self.sign(key, body, fee), self.context)

    def balance(self, address: bytes) -> tuple[int, int]:
        account = self.state.get(accounts.account_key(address), accounts.Account)
        return (0, 0) if account is None else (account.grid_wh, account.thb_satang)

    def validators(self, height: int | None = None) -> ValidatorSet:
        """The set that signs `height` (default: the current block's)."""
        return validator_set.for_height(self.state, self.height if height is None else height)

    def punish(self, evidence: Evidence) -> list[Event]:
        """Apply equivocation evidence in the current block, as a block carrying it would
        (before its transactions); raises `validator_set.InvalidEvidence` and changes nothing
        if it does not hold."""
        view = self.state.overlay()
        events = validator_set.apply_evidence(view, self.context, evidence)
        view.commit()
        return events
