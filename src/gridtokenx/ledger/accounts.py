"""Balances, nonces and token supply: the bookkeeping every other context moves value through.

All value changes go through `credit`, `debit`, `mint` and `burn` so the supply record and
the balances can never disagree: that is the invariant `invariants.check_supply` verifies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import msgspec

from gridtokenx.ledger.context import EventValue
from gridtokenx.ledger.state import Overlay, Records, State, records_under
from gridtokenx.wire import errors
from gridtokenx.wire.crypto import tagged_hash
from gridtokenx.wire.tx import Asset

SUPPLY_KEY = b"supply"
MAX_AMOUNT = 2**63 - 1
"""Every balance and supply total must fit the wire's U64 range, or the state could not be
encoded (and no root computed). Supply totals bound every balance, so checking them suffices
for mint; credit checks too, for safety."""

ESCROW_ADDRESS = tagged_hash(b"GridTokenX/system-account", b"market-escrow")[:20]
"""The market's escrow: buyers' THB for open orders and unsettled trades, and sellers' metered
GRID until settlement. No key signs for it: key addresses are hashes under another tag."""


class Account(msgspec.Struct, frozen=True, array_like=True):
    grid_wh: int
    thb_satang: int
    nonce: int  # the nonce its next transaction must carry

    def balance(self, asset: Asset) -> int:
        return self.grid_wh if asset is Asset.GRID else self.thb_satang


class Supply(msgspec.Struct, frozen=True, array_like=True):
    grid_minted_wh: int = 0
    grid_burned_wh: int = 0
    thb_issued_satang: int = 0
    thb_redeemed_satang: int = 0

    def outstanding(self, asset: Asset) -> int:
        if asset is Asset.GRID:
            return self.grid_minted_wh - self.grid_burned_wh
        return self.thb_issued_satang - self.thb_redeemed_satang


def account_key(address: bytes) -> bytes:
    return b"acct/" + address


def get_account(view: State | Overlay, address: bytes) -> Account | None:
    return view.get(account_key(address), Account)


def all_accounts(state: State, after: bytes | None = None) -> Iterator[tuple[bytes, Account]]:
    """Every (address, account) in address order, after the address `after`: for totals
    over every holder (held balances, committed transactions)."""
    return records_under(state, account_key(b""), Account, after)


def open_account(view: Overlay, address: bytes) -> None:
    if get_account(view, address) is None:
        view.put(account_key(address), Account(0, 0, 0))


def _require(view: Overlay, key: bytes) -> Account:
    """The account at `key` (`account_key`: built once by a caller that writes it back)."""
    account = view.get(key, Account)
    if account is None:
        raise errors.UnknownRecipient("account does not exist")
    return account


def _with_balance(account: Account, asset: Asset, value: int) -> Account:
    if asset is Asset.GRID:
        return msgspec.structs.replace(account, grid_wh=value)
    return msgspec.structs.replace(account, thb_satang=value)


def credit(view: Overlay, address: bytes, asset: Asset, amount: int) -> int:
    """Returns the account's balance of `asset` after the credit."""
    key = account_key(address)
    account = _require(view, key)
    after = account.balance(asset) + amount
    if after > MAX_AMOUNT:
        raise errors.AmountOverflow(f"{asset.name} balance would exceed {MAX_AMOUNT}")
    view.put(key, _with_balance(account, asset, after))
    return after


def debit(view: Overlay, address: bytes, asset: Asset, amount: int) -> int:
    """Returns the account's balance of `asset` after the debit."""
    key = account_key(address)
    account = _require(view, key)
    have = account.balance(asset)
    if have < amount:
        raise errors.InsufficientBalance(f"{asset.name} balance {have} is below {amount}")
    view.put(key, _with_balance(account, asset, have - amount))
    return have - amount


def move(
    view: Overlay, source: bytes, target: bytes, asset: Asset, amount: int
) -> dict[str, EventValue]:
    """Value changing hands: the only way a balance moves without a mint or a burn. Returns
    both accounts' balances after it (`from_balance`, `to_balance`), which the movement's
    event carries: an audit export then chains every account's balance row by row, as it
    chains the supply totals (docs/reporting.md, "Accounts"). An account paying itself (the
    fee collector's own fee) ends where it started, and both balances say so."""
    from_balance = debit(view, source, asset, amount)
    to_balance = credit(view, target, asset, amount)
    return {"from_balance": to_balance if source == target else from_balance,
            "to_balance": to_balance}  # fmt: skip


def supply(view: Records) -> Supply:
    return view.get(SUPPLY_KEY, Supply) or Supply()


_SUPPLY_FIELDS = {
    Asset.GRID: ("grid_minted_wh", "grid_burned_wh"),
    Asset.THB: ("thb_issued_satang", "thb_redeemed_satang"),
}


def _count_supply(view: Overlay, field: str, amount: int) -> int:
    s = supply(view)
    total: int = getattr(s, field) + amount
    if total > MAX_AMOUNT:
        raise errors.AmountOverflow(f"{field} would exceed {MAX_AMOUNT}")
    view.put(SUPPLY_KEY, msgspec.structs.replace(s, **{field: total}))
    return total


def mint(view: Overlay, address: bytes, asset: Asset, amount: int) -> dict[str, EventValue]:
    """Returns the attributes its event carries: `total`, the asset's running total minted
    (GRID) or issued (THB) after this mint, and `to_balance`, the account's balance after
    it, so that an audit export checks supply and balances row by row (docs/reporting.md)."""
    to_balance = credit(view, address, asset, amount)
    return {
        "total": _count_supply(view, _SUPPLY_FIELDS[asset][0], amount),
        "to_balance": to_balance,
    }


def burn(view: Overlay, address: bytes, asset: Asset, amount: int) -> dict[str, EventValue]:
    """Returns `total`, the asset's running total burned (GRID) or redeemed (THB) after this
    burn, and `from_balance`, the account's balance after it."""
    from_balance = debit(view, address, asset, amount)
    return {
        "total": _count_supply(view, _SUPPLY_FIELDS[asset][1], amount),
        "from_balance": from_balance,
    }


RECORDS: Final[tuple[type[msgspec.Struct], ...]] = (
    Account,
    Supply,
)
"""The record types this context stores (`transition.RECORD_TYPES` gathers every context's)."""
