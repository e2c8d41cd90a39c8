"""Chain-wide records every context may read: the chain's identity and the governed parameters."""

from __future__ import annotations

from typing import Final

import msgspec

from gridtokenx.ledger.params import Params
from gridtokenx.ledger.state import Overlay, Records, State

CHAIN_KEY = b"chain"
PARAMS_KEY = b"params"


class ChainInfo(msgspec.Struct, frozen=True, array_like=True):
    chain_id: str
    genesis_time: int
    fee_collector: bytes  # address that receives transaction fees


def chain_info(state: State | Overlay) -> ChainInfo:
    info = state.get(CHAIN_KEY, ChainInfo)
    if info is None:
        raise RuntimeError("state has no genesis")
    return info


def params(state: Records) -> Params:
    value = state.get(PARAMS_KEY, Params)
    if value is None:
        raise RuntimeError("state has no parameters")
    return value


RECORDS: Final[tuple[type[msgspec.Struct], ...]] = (
    ChainInfo,
    Params,
)
"""The record types this context stores (`transition.RECORD_TYPES` gathers every context's)."""
