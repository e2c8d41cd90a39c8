"""What the consensus driver tells an operator: log lines and metrics for commits, rounds,
timeouts, signatures per validator, evidence, halts and block sync.

The consensus core is pure (no clock, no logging), so the node's driver (`node.runtime`)
reports here what it saw the core do, with the loop's time. Nothing here decides
anything: a failure to log or count can never change what the node does.

Signatures per validator: the certificate a node commits holds the precommits it had when
the quorum formed, which on a healthy network of four is often three of them, the slowest
validator's arriving a moment later. Counting only the certificate would report a live
validator as missing every block, so a validator is "present" for a height when its
precommit for the committed block reached this node before the next height committed
(the certificate's, or a later one, checked like any vote), and "missed" otherwise. The
counts for height H are therefore final when H + 1 commits.

Block sync: a node that sees peers two or more heights ahead is catching up. It says so
once ("catching up" from H to H'), then every SYNC_REPORT_S how far it got, and once more
when it has caught up; the blocks it commits meanwhile are logged at debug level, so a
node syncing a million blocks writes a line every few seconds, not a million. "Behind" is
judged from the highest height a connected peer itself showed, taken again from the peers
still connected at each commit and each time the status is read: heights cannot be checked
before the node gets there, so a peer that claimed a height far ahead misleads it only
while it stays connected. The status API, the gauge and the log lines all read this one
judgement (`behind`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Final

from gridtokenx.node.metrics import Metrics
from gridtokenx.wire import crypto
from gridtokenx.wire.validators import ValidatorSet
from gridtokenx.wire.votes import Evidence, Vote, VoteType

SYNC_REPORT_S: Final = 5.0
BEHIND: Final = 2  # heights behind the best seen that make a node "catching up"
_log: Final = logging.getLogger("gridtokenx.node.consensus")

Verify = Callable[[bytes, bytes, bytes], bool]


@dataclass
class _Signed:
    """The precommits for one committed height that reached this node so far."""

    height: int
    block_id: bytes
    validators: ValidatorSet
    signers: set[bytes] = field(default_factory=set)


@dataclass(frozen=True)
class CommitInfo:
    """One committed height, as the driver saw it."""

    height: int
    round: int
    block_id: bytes
    block_bytes: int
    txs: int
    certificate: tuple[Vote, ...]
    validators: ValidatorSet  # the set that signed it
    synced: bool  # decided from a peer's certificate, not by this node's own rounds
    steps: dict[str, float] = field(default_factory=dict)  # `Node` step times, seconds
    screened: bool = True  # False: executed without this node's screen of the block


class Telemetry:
    """`names()` gives validator monikers by address (the authorities' codes); `chain_id`
    and `verify` check late precommits before they count; `peers()` the peers connected."""

    def __init__(
        self,
        metrics: Metrics,
        chain_id: str,
        verify: Verify,
        names: Callable[[], dict[bytes, str]],
        peers: Callable[[], Collection[bytes]] = frozenset,
    ) -> None:
        self.metrics = metrics
        self.chain_id = chain_id
        self.verify = verify
        self.names = names
        self.peers = peers
        self._shown: dict[bytes, int] = {}  # the highest height each peer itself showed
        self._monikers: dict[bytes, str] = {}
        self._label_cache: dict[bytes, tuple[str, str]] = {}  # `_labels`
        self._set: ValidatorSet | None = None
        self._round = (0, 0, 0.0)  # height, round, loop time it began
        self._last_commit: float | None = None
        self._signed: _Signed | None = None
        self.best_seen = 0  # the target: the highest height known, what to sync towards
        self.catching_up = False
        self._sync_from = (0, 0.0)  # height and time catching up began
        self._sync_reported = 0.0

    # --- rounds ----------------------------------------------------------------------------
    def round_at(self, height: int, round: int, now: float) -> None:
        """The core is at (height, round): a later round at the same height is a round
        change (logged, its predecessor's duration observed)."""
        at_height, at_round, began = self._round
        if height != at_height:
            self._round = (height, round, now)
        elif round > at_round:
            self.metrics.round_duration.observe(now - began)
            self.metrics.round_changes.inc()
            self._round = (height, round, now)
            _log.warning("round change", extra={"height": height, "round": round,
                         "previous": at_round, "after_s": round_s(now - began)})  # fmt: skip
        self.metrics.round.set(round)

    def timeout(self, height: int, round: int, step: str) -> None:
        """A timeout that moved the core on (one that fired too late to matter is not
        reported): no proposal in time, or votes split."""
        self.metrics.timeouts.labels(step).inc()
        _log.info("timeout", extra={"height": height, "round": round, "step": step})

    # --- commits ---------------------------------------------------------------------------
    def committed(self, info: CommitInfo, now: float) -> None:
        m = self.metrics
        interval = None if self._last_commit is None else now - self._last_commit
        if interval is not None:
            m.block_time.observe(interval)
        self._last_commit = now
        _, _, began = self._round
        if not info.synced:
            m.round_duration.observe(now - began)
        m.height.set(info.height)
        m.block_size.set(info.block_bytes)
        m.commit_txs.set(info.txs)
        m.txs.inc(info.txs)
        if info.synced:
            m.synced.inc()
        self._validator_set(info.validators)
        self._signatures(info)
        proposer = info.validators.proposer(info.height, info.round)
        fields: dict[str, object] = {
            "height": info.height, "round": info.round, "txs": info.txs,
            "bytes": info.block_bytes, "signatures": len(info.certificate),
            "proposer": self.moniker(proposer), "hash": info.block_id.hex()[:16],
        }  # fmt: skip
        if interval is not None:
            fields["interval_s"] = round_s(interval)
        fields.update((name, round_s(took)) for name, took in info.steps.items())
        if not info.screened:  # its transactions taken from the mempool, or decoded now
            fields["screened"] = False
        quiet = info.synced and self.catching_up
        _log.log(logging.DEBUG if quiet else logging.INFO, "committed", extra=fields)
        self._sync_progress(info.height, now)

    def moniker(self, address: bytes) -> str:
        """The validator's authority code, or its gtx address when it has none."""
        if not self._monikers:  # before the first commit (evidence at height 1)
            self._monikers = self.names()
        return self._monikers.get(address) or crypto.address_to_text(address)

    def _validator_set(self, validators: ValidatorSet) -> None:
        if validators == self._set:
            return
        self._set = validators
        self._monikers = self.names()
        self._label_cache.clear()
        m = self.metrics
        m.validator_power.clear()
        for v in validators.validators:
            m.validator_power.labels(*self._labels(v.address)).set(v.power)
        m.validators.set(len(validators.validators))
        m.validators_power.set(validators.total_power)

    def _labels(self, address: bytes) -> tuple[str, str]:
        """A validator's metric labels, kept until the set changes (`_validator_set`):
        spelling an address out hashes its checksum, for every validator at every height."""
        labels = self._label_cache.get(address)
        if labels is None:
            labels = crypto.address_to_text(address), self._monikers.get(address, "")
            self._label_cache[address] = labels
        return labels

    def _signatures(self, info: CommitInfo) -> None:
        """Settle the previous height's signatures and start counting this one's."""
        done, self._signed = self._signed, _Signed(info.height, info.block_id, info.validators)
        self._signed.signers.update(v.validator for v in info.certificate)
        if done is None or done.height != info.height - 1:
            return
        missing = 0
        for v in done.validators.validators:
            if v.address in done.signers:
                self.metrics.present.labels(*self._labels(v.address)).inc()
            else:
                missing += 1
                self.metrics.missed.labels(*self._labels(v.address)).inc()
        self.metrics.missing.set(missing)

    def late_precommit(self, vote: Vote) -> bool:
        """A precommit for the height just committed (the core ignores it): it shows its
        validator signed in time, once its signature checks out. True when it newly did."""
        signed = self._signed
        if (
            signed is None
            or vote.height != signed.height
            or vote.type is not VoteType.PRECOMMIT
            or vote.block_id != signed.block_id
            or vote.validator in signed.signers
        ):
            return False
        member = signed.validators.get(vote.validator)
        if member is not None and self.verify(
            member.public_key, vote.signing_bytes(self.chain_id), vote.signature
        ):
            signed.signers.add(vote.validator)
            return True
        return False

    # --- sync ------------------------------------------------------------------------------
    # One map and one rule for "behind", read by the logs, the metrics and the status API
    # alike (they once kept two and could disagree).
    def seen(self, peer: bytes, height: int, own: int, now: float, shown: bool = True) -> None:
        """A peer's message showed `height` while this node works on `own`. `shown`:
        the height is the peer's own (its proposal or vote), not one relayed or implied."""
        if shown and height > self._shown.get(peer, 0):
            self._shown[peer] = height
        if height > self.best_seen:
            self.best_seen = height
            self.metrics.sync_target.set(height)
        if not self.catching_up and height - own >= BEHIND:  # a claim can only start it:
            self._follow(own, now)  # it ends at a commit or a read, not on every vote

    def peer_height(self) -> int:
        """The highest height a connected peer has shown (0: none yet). A peer's heights
        go when it disconnects, so one that claimed a height and left does not hold the
        node "behind" for ever."""
        connected = self.peers()
        self._shown = {p: h for p, h in self._shown.items() if p in connected}
        return max(self._shown.values(), default=0)

    def peers_at(self, height: int) -> list[bytes]:
        """Connected peers that have shown `height` or later (block sync asks them)."""
        connected = self.peers()
        return [p for p, h in self._shown.items() if h >= height and p in connected]

    def behind(self, own: int, now: float) -> bool:
        """Whether the node deciding `own` is catching up, as of now (`catching_up`)."""
        self._follow(own, now)
        return self.catching_up

    def _follow(self, own: int, now: float) -> None:
        """Catching up while a connected peer shows a height BEHIND or more beyond `own`,
        the height this node decides: one ahead is the ordinary race at every commit (a
        peer that committed first already votes on the next height); two ahead is at
        least one whole block this node lacks, which block sync fetches. CometBFT's rule
        alike. The heights are peers' claims, unverified until the blocks arrive, so a
        lying peer can make this true while it stays connected. Logs and the gauge
        change only when the answer does."""
        best = self.peer_height()
        if not self.catching_up and best - own >= BEHIND:
            self.catching_up = True
            self.metrics.catching_up.set(1)
            self._sync_from = (own - 1, now)
            self._sync_reported = now
            _log.info("catching up", extra={"height": own - 1, "target": best})
        elif self.catching_up and best - own < BEHIND:
            self.catching_up = False
            self.metrics.catching_up.set(0)
            start, began = self._sync_from
            _log.info("caught up", extra={"height": own - 1, "blocks": own - 1 - start,
                                          "took_s": round_s(now - began)})  # fmt: skip

    def _sync_progress(self, height: int, now: float) -> None:
        self.best_seen = max(self.peer_height(), height)
        self.metrics.sync_target.set(self.best_seen)
        self._follow(height + 1, now)
        if self.catching_up and now - self._sync_reported >= SYNC_REPORT_S:
            start, began = self._sync_from
            rate = (height - start) / max(now - began, 1e-9)
            self._sync_reported = now
            _log.info("syncing", extra={"height": height, "target": self.best_seen,
                                        "blocks_per_s": round(rate, 1)})  # fmt: skip

    # --- faults ----------------------------------------------------------------------------
    def evidence(self, evidence: Evidence) -> None:
        vote = evidence.first
        self.metrics.evidence.inc()
        _log.error("double signing", extra={
            "validator": self.moniker(vote.validator), "height": vote.height,
            "round": vote.round, "type": vote.type.name.lower()})  # fmt: skip

    def halted(self, height: int, reason: str) -> None:
        _log.error("halted: state root diverged", extra={"height": height, "reason": reason})


def round_s(seconds: float) -> float:
    """Durations in logs to the millisecond: enough for a person, short on a line."""
    return round(seconds, 3)
