"""What a detector raises: an alert with its evidence, placed on the chain.

An alert names the detector, the delivery interval (and zone when the pattern is zonal),
the accounts, a score and the evidence: each order, cancellation, trade, transfer or
reading by its id, the hash of the transaction that carried it and its height, so the ERC
(or the accused) can look every piece up in any node's explorer. Its id is a hash of all of
that, so two nodes following the same chain with the same settings raise the same ids."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Final

import msgspec

from gridtokenx.surveillance.tape import OrderLife, Ref, TradeFact, Transfer
from gridtokenx.wire import crypto

SCORE_MAX: Final = 10_000
"""Scores are basis points: 10,000 is as strong as the detector's evidence gets."""


class Detector(StrEnum):
    WASH = "wash_trading"
    SPOOFING = "spoofing"
    MARKING = "marking_the_gate"
    WITHHOLDING = "capacity_withholding"
    MARKET_POWER = "market_power"


class Evidence(msgspec.Struct, frozen=True, array_like=True):
    kind: str  # order, cancel, trade, transfer, reading
    id: int  # order or trade id; 0 where the kind has none
    tx_hash: str  # hex; "" for an end-of-block event
    height: int


class Alert(msgspec.Struct, frozen=True):
    id: str
    detector: Detector
    interval: int
    zone: str  # "" when the pattern spans zones
    accounts: tuple[str, ...]  # gtx... addresses, the accused first
    score: int  # basis points, 0..10,000
    summary: str
    evidence: tuple[Evidence, ...]
    height: int  # the height whose block raised it


def clamp(score: int) -> int:
    return max(0, min(SCORE_MAX, score))


def order_evidence(order: OrderLife) -> list[Evidence]:
    out = [_at("order", order.id, order.placed)]
    if order.closed == "cancelled" and order.closed_at is not None:
        out.append(_at("cancel", order.id, order.closed_at))
    return out


def trade_evidence(trade: TradeFact) -> Evidence:
    return _at("trade", trade.id, trade.at)


def transfer_evidence(transfer: Transfer) -> Evidence:
    return _at("transfer", 0, transfer.at)


def _at(kind: str, id_: int, ref: Ref) -> Evidence:
    return Evidence(kind, id_, "" if ref.tx_hash is None else ref.tx_hash.hex(), ref.height)


def make(
    detector: Detector,
    interval: int,
    zone: str,
    accounts: list[bytes],
    score: int,
    summary: str,
    evidence: list[Evidence],
    height: int,
) -> Alert:
    """An alert with its content-derived id; evidence in chain order, without repeats."""
    ordered = tuple(sorted(set(evidence), key=lambda e: (e.height, e.tx_hash, e.kind, e.id)))
    names = tuple(crypto.address_to_text(a) for a in dict.fromkeys(accounts))
    digest = hashlib.sha256(
        msgspec.msgpack.encode((str(detector), interval, zone, names, ordered))
    ).hexdigest()
    return Alert(digest[:32], detector, interval, zone, names, clamp(score), summary, ordered,
                 height)  # fmt: skip
