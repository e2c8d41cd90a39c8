"""The replicated application a validator runs under consensus: a mempool, the ledger state
and the RocksDB store, with the three questions consensus asks of it.

- `build_block`: the proposer's block from the mempool (transactions that apply, in order).
- `check_block`: is a proposed block valid? Header checks, then trial execution to its
  state root (always rolled back).
- `commit`: execute a decided block for real, write the height to the store in one atomic
  batch with its commit certificate, and drop the included transactions from the mempool.

The mempool here is the minimal one the chain needs to run (admission by decoding,
signature and nonce); the full mempool (thread-pool signature checks, per-sender ordering,
limits, eviction, recheck reports) builds on this interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gridtokenx import accounts, blocks, codec, crypto, errors, genesis, tx
from gridtokenx.consensus.messages import Vote
from gridtokenx.state import State
from gridtokenx.store import Store

ZERO_HASH = b"\x00" * 32


class Rejected(ValueError):
    """The mempool refused a transaction; `code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Application:
    chain_id: str
    state: State
    store: Store
    validators_hash: bytes
    last_hash: bytes = ZERO_HASH
    last_time: int = 0
    mempool: dict[bytes, bytes] = field(default_factory=dict)  # tx hash -> encoded tx

    @classmethod
    def open(cls, spec: genesis.Genesis, path: Path, validators_hash: bytes) -> Application:
        """Open (or create) the node's store at `path`, starting from genesis if it is new."""
        store = Store(path)
        if not store.has_genesis():
            state = genesis.build_state(spec)
            store.save_genesis_state(state)
            return cls(spec.chain_id, state, store, validators_hash, last_time=spec.genesis_time)
        state = store.load_state()
        app = cls(spec.chain_id, state, store, validators_hash, last_time=spec.genesis_time)
        height = store.height()
        if height:
            stored = store.block(height)
            assert stored is not None
            last = blocks.decode(stored[0])
            app.last_hash, app.last_time = last.hash, last.header.time
        return app

    @property
    def height(self) -> int:
        return self.store.height()

    # --- mempool ---------------------------------------------------------------------------
    def submit(self, raw: bytes) -> bytes:
        """Admit a signed transaction to the mempool; returns its hash."""
        try:
            stx = tx.decode(raw)
        except codec.DecodeError as exc:
            raise Rejected(exc.code, str(exc)) from None
        if stx.tx.chain_id != self.chain_id:
            raise Rejected(errors.WrongChainId.code, "transaction is for another chain")
        if not stx.signature_valid():
            raise Rejected(errors.InvalidSignature.code, "signature does not verify")
        account = self.state.get(
            accounts.account_key(crypto.address_of(stx.tx.sender)), accounts.Account
        )
        if account is not None and stx.tx.nonce < account.nonce:
            raise Rejected(errors.NonceReplayed.code, "nonce already used")
        self.mempool.setdefault(stx.hash, raw)
        return stx.hash

    # --- what consensus asks ---------------------------------------------------------------
    def next_time(self, proposed: int) -> int:
        """Block time: the proposer's clock, but always after the previous block."""
        return max(proposed, self.last_time + 1)

    def build_block(self, height: int, time: int, proposer: bytes) -> bytes:
        block = blocks.propose(
            self.state,
            self.chain_id,
            height,
            self.next_time(time),
            self.last_hash,
            proposer,
            self.validators_hash,
            list(self.mempool.values()),
        )
        return block.encode()

    def check_block(self, height: int, raw: bytes) -> bool:
        try:
            block = blocks.decode(raw)
            blocks.check_header(block, self.chain_id, height, self.last_hash, self.last_time)
            if block.header.validators_hash != self.validators_hash:
                raise blocks.InvalidBlock("validator set hash differs")
            blocks.validate(self.state, block)
        except (blocks.InvalidBlock, ValueError):
            return False
        return True

    def commit(
        self, height: int, raw: bytes, certificate: tuple[Vote, ...]
    ) -> list[blocks.Receipt]:
        block = blocks.decode(raw)
        receipts, _ = blocks.commit(self.state, block)
        hashes = [r.tx_hash for r in receipts]
        self.store.commit_height(
            height, raw, codec.encode(certificate), hashes, self.state.take_changes()
        )
        self.last_hash, self.last_time = block.hash, block.header.time
        for tx_hash in hashes:
            self.mempool.pop(tx_hash, None)
        self._recheck()
        return receipts

    def _recheck(self) -> None:
        """Drop what can no longer apply because its nonce was used by a committed block."""
        for tx_hash, raw in list(self.mempool.items()):
            stx = tx.decode(raw)
            account = self.state.get(
                accounts.account_key(crypto.address_of(stx.tx.sender)), accounts.Account
            )
            if account is not None and stx.tx.nonce < account.nonce:
                del self.mempool[tx_hash]
