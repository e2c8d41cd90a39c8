"""One vocabulary of failure for the SDK. Whether a transaction is refused at submission
(`ApiError`), dropped after admission (`TxDropped`), a subscription is refused
(`StreamError`) or a node answers what the SDK cannot read (`ApiError`, BAD_RESPONSE),
the error is a `GridTokenXError` whose `code` is the string the ledger, the mempool or the
API uses (`GATE_CLOSED`, `NONCE_GAP`, `RATE_LIMITED`, ...), so one `except` and one branch
on `code` serve every path, and `message` says it for people."""

from __future__ import annotations

from typing import Final

from gridtokenx.wire import errors

BAD_RESPONSE: Final = "BAD_RESPONSE"
_MEMPOOL_DROPS: Final = {
    "EVICTED": "a full mempool evicted it for transactions paying a higher fee",
    "SUPERSEDED": "another transaction with its sender's nonce was committed",
    "PRECEDING_DROPPED": "an earlier transaction of its sender (a lower nonce) was dropped",
}


def describe(code: str) -> str:
    """What a ledger or mempool code means, for people (the first sentence of the ledger's
    own description of the rejection); "" for a code this SDK does not know."""
    if code in _MEMPOOL_DROPS:
        return _MEMPOOL_DROPS[code]
    pending = list(errors.Rejection.__subclasses__())
    while pending:
        kind = pending.pop()
        if kind.code == code and kind.__doc__:
            return " ".join(kind.__doc__.split()).split(". ")[0].rstrip(".")
        pending += kind.__subclasses__()
    return ""


class GridTokenXError(Exception):
    """A refusal with a stable `code` (branch on it) and a `message` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class ApiError(GridTokenXError):
    """The API refused a request (HTTP `status`). A 429 or 503 says in `retry_after`
    how many seconds to wait before asking again (None: it did not say)."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(code, message)
        self.status, self.retry_after = status, retry_after


class TxDropped(GridTokenXError):
    """A submitted transaction left the mempool without being committed; `code` is the
    ledger's (or mempool's) code, as `ApiError.code` would be had it been refused at once."""

    def __init__(self, tx_hash: str, code: str, message: str = "") -> None:
        message = message or describe(code) or code.lower().replace("_", " ")
        super().__init__(code, f"transaction {tx_hash} was dropped: {message}")
        self.tx_hash = tx_hash

    @property
    def reason(self) -> str:
        """The code under its earlier name (kept so older callers go on working)."""
        return self.code


class TxFailed(TxDropped):
    """A submitted transaction was committed in a block but failed there as it executed
    (validators vote on blocks before executing them): its nonce is used, its fee paid
    when its sender could, and nothing else happened. `code` is the ledger's. It is a
    `TxDropped` for callers that only ask whether it took effect."""

    def __init__(self, tx_hash: str, code: str, height: int) -> None:
        message = describe(code) or code.lower().replace("_", " ")
        GridTokenXError.__init__(self, code, f"transaction {tx_hash} failed in block {height}: "
                                 f"{message}")  # fmt: skip
        self.tx_hash, self.height = tx_hash, height


class StreamError(GridTokenXError):
    """The node refused a subscription (`code` as the API's), or ended the stream because
    the subscriber fell behind (`code` LAGGED)."""
