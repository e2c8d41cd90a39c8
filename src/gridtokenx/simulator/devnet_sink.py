"""A `Sink` that replays the day on a running devnet through the node API (the SDK).

Transactions go in batches to `POST /txs/batch`; `advance_to` waits for the chain's own
clock (the latest block time in `GET /health`), which on an accelerated devnet runs S
times faster than the wall clock; `wait_final` follows the committed blocks (`GET
/blocks/{height}` lists each block's transaction hashes) until every submitted hash is in
one. Following blocks costs one request per block, where polling each transaction's status
would cost one per transaction, and it gives each transaction's finality latency (from
its submission to the first sight of its block) for the summary.

A refusal stops the day with `SimulationRejected`'s sibling `DevnetRejected` and the
node's code: the model only builds transactions that must apply, and skipping one would
break every later nonce of its sender. The two refusals that only mean "not now" (the
mempool is full, or a sender is too many nonces ahead of the chain) are retried once the
transactions already submitted are final.

The storyline's reads (`ChainReader`) go to the same node: `certificates_of` pages through
`GET /certificates?owner=...&status=active` (the node's certificate index by holder) and
`find_proposal` through `GET /governance/proposals?status=active`. The day calls them only
after `wait_final`, so the node's state already holds what was submitted.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from gridtokenx.api.models import MAX_LIMIT
from gridtokenx.client import ApiError, Client
from gridtokenx.simulator.sink import Sign
from gridtokenx.wire import crypto, tx

MAX_BATCH: Final = 1000  # the API's limit per batch request
MAX_PAGES: Final = 1000  # bounds a read's paging (500 items a page)
RETRY_LATER: Final = frozenset({"MEMPOOL_FULL", "NONCE_TOO_FAR"})
DROP_CHECK_AFTER: Final = 2.0  # seconds pending before the sink asks whether it was dropped


class DevnetRejected(RuntimeError):
    """The node refused (or dropped) a transaction the simulator built."""

    def __init__(self, tx_hash: str, code: str, message: str, body: str = "") -> None:
        what = f" ({body})" if body else ""
        super().__init__(f"transaction {tx_hash or '?'}{what} refused: {code}: {message}")
        self.tx_hash, self.code = tx_hash, code


class DevnetTimeout(TimeoutError):
    """The chain did not get where the day needs it within the sink's timeout."""


@dataclass
class Finality:
    """Wall-clock seconds from submission to the first sight of the committing block."""

    latencies: list[float] = field(default_factory=list)

    @property
    def committed(self) -> int:
        return len(self.latencies)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.latencies) if self.latencies else 0.0


def _body_name(raw: bytes) -> str:
    try:
        return type(tx.decode(raw).tx.body).__name__
    except Exception:  # only a label for the error message
        return ""


class DevnetSink:
    """Submits the day's signed transactions to one node of a devnet and waits on its
    chain. `timeout` bounds every wait (wall seconds without progress); `poll` is how
    often the node is asked. Transactions go `batch` at a time, `batch_pause` seconds
    apart: on an accelerated devnet a burst that keeps the validators' loops busy delays
    proposals past the clock drift they accept, which costs consensus rounds."""

    def __init__(
        self,
        client: Client,
        *,
        poll: float = 0.05,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        on_block: Callable[[int], None] | None = None,
        batch: int = MAX_BATCH,
        batch_pause: float = 0.0,
    ) -> None:
        self.client = client
        self.poll, self.timeout, self._sleep = poll, timeout, sleep
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"batch must be 1 to {MAX_BATCH}")
        self.batch, self.batch_pause = batch, batch_pause
        self.on_block = on_block  # told each new latest block time (a progress display)
        self.pending: dict[str, tuple[float, bytes]] = {}  # hash -> (submitted at, raw)
        self.finality = Finality()
        self.seen_height = int(client.health()["height"])
        self.submitted = 0
        self.last_commit_height = 0
        self.latest_time = 0
        self.busy_retries = 0  # times the node said "not now" and the rest waited
        self._checked_at = 0.0
        self._zone_codes: list[str] = []

    # --- Sink ------------------------------------------------------------------------------
    def submit(self, txs: list[bytes]) -> None:
        todo = list(txs)
        for _ in range(100):  # bounded: each round waits for the chain to take what it has
            todo = self._submit_until_busy(todo)
            if not todo:
                return
            self.busy_retries += 1
            self.wait_final()
        raise DevnetTimeout(f"the node kept refusing {len(todo)} transactions as busy")

    def advance_to(self, unix_time: int) -> None:
        """Return once a committed block carries a time at or after `unix_time`; blocks
        committed meanwhile are followed as in `wait_final`."""

        def reached() -> bool:
            self._follow_blocks()
            return self.latest_time >= unix_time

        self._wait(reached, f"the chain's clock to reach {unix_time}")

    def wait_final(self) -> None:
        """Return once every submitted transaction is in a committed block; a timeout
        names what did not commit, by kind."""
        self._wait(self._follow_blocks, "transactions to commit", self._pending_kinds)

    def _pending_kinds(self) -> str:
        kinds = Counter(_body_name(raw) or "?" for _, raw in self.pending.values())
        shown = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
        return f"{len(self.pending)} transactions to commit ({shown})"

    def next_block(self) -> None:
        """Return once a block after the latest one seen is committed."""
        self._follow_blocks()
        self.advance_to(self.latest_time + 1)

    def chain_time(self) -> int:
        self._follow_blocks()
        return self.latest_time

    # --- helpers ---------------------------------------------------------------------------
    def next_nonce(self, address: bytes) -> int:
        """The nonce the chain expects next from `address` (0 for an unknown account)."""
        try:
            return self.client.balance(crypto.address_to_text(address)).nonce
        except ApiError as exc:
            if exc.code == "NOT_FOUND":
                return 0
            raise

    def certificates_of(self, address: bytes) -> list[int]:
        """Active certificates `address` holds, ascending (the API lists newest first)."""
        ids: list[int] = []
        after: str | None = None
        for _ in range(MAX_PAGES):
            page = self.client.certificates(address, status="active", limit=MAX_LIMIT,
                                            after=after)  # fmt: skip
            ids += [int(item["id"]) for item in page["items"]]
            after = page["next"]
            if after is None:
                return sorted(ids)
        raise RuntimeError(f"more than {MAX_PAGES} pages of certificates")

    def find_proposal(self, proposer: bytes, title: str) -> int | None:
        """The newest open proposal by `proposer` with `title` (open ones come from the
        ledger's own list, newest first)."""
        who, after = crypto.address_to_text(proposer), None
        for _ in range(MAX_PAGES):
            page = self.client.proposals("active", limit=MAX_LIMIT, after=after)
            for item in page["items"]:
                if item["proposer"] == who and item["title"] == title:
                    return int(item["id"])
            after = page["next"]
            if after is None:
                return None
        raise RuntimeError(f"more than {MAX_PAGES} pages of proposals")

    # --- the day-ahead auction (simulator.sink.AuctionClearing) ---------------------------
    def clear_auction(self, interval_start: int, sign: Sign) -> None:
        """The validators clear auctions by themselves once the gate has passed
        (node/auction_clearer.py): wait until the result is committed. `sign` is not used;
        an auction still open past its clearing deadline is an error."""

        def cleared() -> bool:
            self._follow_blocks()
            try:
                self.client.auction_result(interval_start)
                return True
            except ApiError as exc:
                if exc.code != "NOT_FOUND":
                    raise
            book = self.client.auction_book(self._zones()[0], interval_start)
            if self.latest_time >= book.clearing_deadline:
                raise DevnetTimeout(f"the auction of {interval_start} was still {book.status} "
                                    "at its clearing deadline")  # fmt: skip
            return False

        self._wait(cleared, f"the auction of {interval_start} to clear")

    # --- what the manipulating agents read (simulator.manipulators.MarketReader) ----------
    def open_orders_of(self, address: bytes) -> list[int]:
        return [o.id for o in self.client.orders(address, limit=MAX_LIMIT)]

    def resting(self, interval: int) -> list[tuple[tx.Side, int, int]]:
        """The books' price levels (an aggregate per price, which is all the agents use)."""
        out: list[tuple[tx.Side, int, int]] = []
        for zone in self._zones():
            book = self.client.book(zone, interval)
            out += [(tx.Side.BUY, lv.price, lv.quantity_wh) for lv in book.bids]
            out += [(tx.Side.SELL, lv.price, lv.quantity_wh) for lv in book.asks]
        return out

    def traded(self, interval: int) -> list[tuple[int, int]]:
        """The interval's first `MAX_LIMIT` trades (the API's page)."""
        return [(t.quantity_wh, t.price) for t in self.client.trades(interval, limit=MAX_LIMIT)]

    def _zones(self) -> list[str]:
        if not self._zone_codes:
            self._zone_codes = sorted(z.code for z in self.client.grid().zones)
        return self._zone_codes

    def _submit_until_busy(self, txs: list[bytes]) -> list[bytes]:
        """Submit in batches; returns the transactions from the first busy refusal on."""
        for start in range(0, len(txs), self.batch):
            chunk = txs[start : start + self.batch]
            if start:
                self._sleep(self.batch_pause)
            sent_at = time.monotonic()
            results = self.client.submit_batch(chunk)
            for i, (raw, result) in enumerate(zip(chunk, results, strict=True)):
                if result["accepted"]:
                    self.pending[str(result["hash"])] = (sent_at, raw)
                    self.submitted += 1
                    continue
                code, message = str(result["code"]), str(result["message"])
                if code in RETRY_LATER:
                    return txs[start + i :]
                raise DevnetRejected(str(result["hash"] or ""), code, message, _body_name(raw))
        return []

    def _follow_blocks(self) -> bool:
        """Take note of the blocks committed since the last call; True once none is pending."""
        health = self.client.health()
        height, self.latest_time = int(health["height"]), int(health["latest_time"])
        while self.seen_height < height:
            block = self.client.block(self.seen_height + 1)
            now = time.monotonic()
            self.seen_height += 1
            failed = block.get("failed", {})
            for tx_hash in block.get("txs", []):
                found = self.pending.pop(tx_hash, None)
                if found is not None and tx_hash in failed:  # the ledger's code, as a drop's
                    raise DevnetRejected(tx_hash, failed[tx_hash], "it failed in block "
                                         f"{self.seen_height}", _body_name(found[1]))  # fmt: skip
                if found is not None:
                    self.finality.latencies.append(now - found[0])
                    self.last_commit_height = self.seen_height
            if self.on_block is not None:
                self.on_block(self.latest_time)
        if self.pending:
            self._check_dropped()
        return not self.pending

    def _check_dropped(self) -> None:
        """A transaction the node dropped will never commit: stop with its reason. Only
        the oldest pending one is asked about, at most once a second."""
        now = time.monotonic()
        tx_hash, (sent_at, raw) = next(iter(self.pending.items()))
        if now - sent_at < DROP_CHECK_AFTER or now - self._checked_at < 1.0:
            return
        self._checked_at = now
        try:
            receipt = self.client.tx(tx_hash)
        except ApiError as exc:  # the node forgot it: it can no longer commit
            raise DevnetRejected(tx_hash, exc.code, exc.message, _body_name(raw)) from exc
        if receipt.status == "dropped":  # the reason is the ledger's code
            raise DevnetRejected(tx_hash, receipt.reason, "dropped: it failed in the node's "
                                 "blocks", _body_name(raw))  # fmt: skip

    def _wait(
        self, done: Callable[[], bool], what: str, describe: Callable[[], str] | None = None
    ) -> None:
        """Poll `done` until it holds; give up after `timeout` seconds without a new block
        (the error says what was awaited: `describe()` if given, else `what`)."""
        height, deadline = self.seen_height, time.monotonic() + self.timeout
        while not done():
            if self.seen_height != height:
                height, deadline = self.seen_height, time.monotonic() + self.timeout
            if time.monotonic() > deadline:
                awaited = describe() if describe is not None else what
                raise DevnetTimeout(
                    f"no new block in {self.timeout:.0f} s while waiting for {awaited}"
                )
            self._sleep(self.poll)
