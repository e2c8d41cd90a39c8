"""When the SDK asks again: a node that answers 429 (rate limited) or 503 (its mempool is
full, or too many connections) says when to come back in `Retry-After`,
and a client that honours it gets through once the node has room, where one that gives up
at once fails a whole batch run and one that retries at once makes the crowding worse.

Only what is safe to repeat is retried: reads, and submitting a signed transaction (the
node deduplicates it by hash, so a second copy is never a second transfer). Attempts are
bounded; a refusal that no wait mends (a halted node's 503 NODE_HALTED) is raised at once;
and a node asking for a longer wait than `max_wait` gets its error raised instead, with
the wait it asked for in `ApiError.retry_after`."""

from __future__ import annotations

import datetime
import email.utils
from dataclasses import dataclass, field


def retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delay-seconds or an HTTP date); None if absent
    or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


@dataclass(frozen=True)
class Retry:
    """The retry policy of a client (`Client(url, retry=Retry(attempts=6))`;
    `Retry(attempts=1)` never retries)."""

    attempts: int = 4  # tries in all, the first included
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 503}))
    max_wait: float = 10.0  # longest wait honoured between two tries, seconds
    backoff: float = 0.25  # wait when the node gives no Retry-After: backoff x 2^try
    # Refusals no wait mends, whatever their status: a halted node stays halted until an
    # operator restarts it, so asking it again only delays the error.
    final_codes: frozenset[str] = field(default_factory=lambda: frozenset({"NODE_HALTED"}))

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.max_wait < 0 or self.backoff < 0:
            raise ValueError("Retry needs attempts >= 1 and waits >= 0")

    def delay(
        self, status: int, header: str | None, attempt: int, code: str | None = None
    ) -> float | None:
        """Seconds to wait before try `attempt + 1` (0-based) after an answer with this
        status, Retry-After header and error code, or None: do not retry, raise the
        answer's error."""
        if status not in self.statuses or attempt + 1 >= self.attempts:
            return None
        if code in self.final_codes:
            return None
        wait = retry_after(header)
        if wait is None:
            wait = self.backoff * 2**attempt
        return wait if wait <= self.max_wait else None


NO_RETRY = Retry(attempts=1)
