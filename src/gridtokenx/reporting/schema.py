"""The export schema: which events each report kind holds and its columns.

Every row starts with the columns that tie it to the chain (`COMMON`), then one column per
attribute the kind's events carry. An attribute a kind does not list (one added to the
ledger after this schema) is not dropped: it lands in `other` as canonical JSON, so an
export is always complete and a new attribute shows up as a visible schema gap."""

from __future__ import annotations

from typing import Final, Literal

ColumnType = Literal["int", "str"]

COMMON: Final[tuple[tuple[str, ColumnType], ...]] = (
    ("height", "int"),
    ("time", "int"),
    ("block_hash", "str"),
    ("row_kind", "str"),  # "tx" (a transaction's receipt) or "end_block" (end-of-block event)
    ("tx_hash", "str"),  # empty for end_block rows
    ("tx_index", "int"),  # empty for end_block rows
    ("sender", "str"),  # the transaction's signer; empty for end_block rows
    ("event_index", "int"),  # position among the transaction's (or block end's) events
    ("event", "str"),
)
OTHER: Final = "other"
ROW_TX: Final = "tx"
ROW_END_BLOCK: Final = "end_block"


BALANCES: Final[tuple[tuple[str, ColumnType], ...]] = (
    ("from_balance", "int"),  # the debited account's balance after the movement
    ("to_balance", "int"),  # the credited account's
)
"""Every event that moves value carries both accounts' balances after it (a mint has no
debited account, a burn no credited one), so an export chains every account row by row."""

KINDS: Final[dict[str, tuple[frozenset[str], tuple[tuple[str, ColumnType], ...]]]] = {
    "trades": (
        frozenset({"trade"}),
        (
            ("trade", "int"), ("interval", "int"), ("buy_order", "int"), ("sell_order", "int"),
            ("buyer", "str"), ("seller", "str"), ("buyer_zone", "str"), ("seller_zone", "str"),
            ("quantity_wh", "int"), ("price", "int"), ("loss_bp", "int"),
        ),
    ),
    "settlements": (
        frozenset({
            "seller_settled", "trade_settled", "import_billed", "interval_settled",
            "export_locked",
        }),
        (
            ("interval", "int"), ("trade", "int"), ("owner", "str"), ("zone", "str"),
            ("buyer_zone", "str"), ("seller_zone", "str"), ("sold_wh", "int"),
            ("export_wh", "int"), ("delivered_wh", "int"), ("sold_to_utility_wh", "int"),
            ("shortfall_wh", "int"), ("received_wh", "int"), ("losses_wh", "int"),
            ("import_wh", "int"), ("import_covered_wh", "int"), ("value_satang", "int"),
            ("fee_satang", "int"), ("wheeling_satang", "int"), ("refund_satang", "int"),
            ("buyback_satang", "int"), ("imbalance_satang", "int"), ("bill_satang", "int"),
            ("amount", "int"), ("trades", "int"), ("at_deadline", "int"),
            *BALANCES,
        ),
    ),
    "zone_reports": (
        frozenset({"zone_report"}),
        (
            ("interval", "int"), ("zone", "str"), ("export_wh", "int"), ("delivered_wh", "int"),
            ("sold_to_utility_wh", "int"), ("shortfall_wh", "int"), ("received_wh", "int"),
            ("losses_wh", "int"), ("import_wh", "int"), ("import_covered_wh", "int"),
            ("paid_by_buyers_satang", "int"), ("paid_to_sellers_satang", "int"),
            ("platform_fees_satang", "int"), ("wheeling_satang", "int"),
            ("refunded_satang", "int"), ("imbalance_satang", "int"),
            ("utility_bills_satang", "int"), ("buyback_satang", "int"),
        ),
    ),
    "payments": (
        frozenset({"payment", "debt", "fee_paid"}),
        (
            ("interval", "int"), ("zone", "str"), ("trade", "int"), ("from", "str"),
            ("to", "str"), ("debtor", "str"), ("creditor", "str"), ("amount", "int"),
            ("for", "str"), *BALANCES,
        ),
    ),
    "mints": (
        frozenset({"minted"}),
        (("to", "str"), ("meter", "str"), ("interval", "int"), ("amount", "int"),
         ("total", "int"), ("to_balance", "int")),
    ),
    "thb": (
        frozenset({"thb_issued", "thb_redeemed"}),
        (("custodian", "str"), ("to", "str"), ("amount", "int"), ("total", "int"), *BALANCES),
    ),
    "burns": (
        frozenset({"burned"}),
        (
            ("interval", "int"), ("zone", "str"), ("trade", "int"), ("from", "str"),
            ("owner", "str"), ("for", "str"), ("amount", "int"), ("total", "int"),
            ("from_balance", "int"),
        ),
    ),
    "transfers": (
        frozenset({"transfer"}),
        (("from", "str"), ("to", "str"), ("asset", "str"), ("amount", "int"), *BALANCES),
    ),
    "escrow": (
        frozenset({
            "escrow", "order_accepted", "order_filled", "order_cancelled", "order_expired",
            "order_killed",
        }),
        (
            ("order", "int"), ("curve", "int"), ("trade", "int"), ("interval", "int"),
            ("owner", "str"), ("side", "str"), ("zone", "str"), ("quantity_wh", "int"),
            ("price", "int"), ("unfilled_wh", "int"), ("reason", "str"), ("from", "str"),
            ("to", "str"), ("asset", "str"), ("amount", "int"), ("for", "str"),
            ("escrow_satang", "int"), ("refund_satang", "int"), *BALANCES,
        ),
    ),
    "licences": (
        frozenset({"licence_granted", "licence_revoked"}),
        (("holder", "str"), ("kind", "str"), ("expires_at", "int")),
    ),
    "certificates": (
        frozenset({"certificate_issued", "certificate_transferred", "certificate_retired"}),
        (
            ("id", "int"), ("owner", "str"), ("from", "str"), ("to", "str"), ("meter", "str"),
            ("wh", "int"), ("avoided_g", "int"), ("beneficiary", "str"),
        ),
    ),
    "grid": (
        frozenset({
            "transmission_status", "distribution_status", "link_capacity", "grid_emergency",
            "zone_halted", "zone_resumed", "trade_curtailed", "interconnector_added",
            "interconnector_rerated",
        }),
        (
            ("zone", "str"), ("zones", "str"), ("by", "str"), ("reason", "str"),
            ("measured_at", "int"), ("frequency_mhz", "int"), ("load_kw", "int"),
            ("headroom_kw", "int"), ("link", "str"), ("from_kw", "int"), ("to_kw", "int"),
            ("trade", "int"), ("interval", "int"), ("buyer", "str"), ("seller", "str"),
            ("curtailed_wh", "int"), ("remaining_wh", "int"), ("refund_satang", "int"),
            ("zone_a", "str"), ("zone_b", "str"), ("capacity_kw", "int"),
            ("loss_basis_points", "int"), *BALANCES,
        ),
    ),
    "governance": (
        frozenset({
            "proposal_submitted", "vote_cast", "proposal_withdrawn", "proposal_rejected",
            "proposal_passed", "proposal_failed", "proposal_executed", "params_changed",
            "governance_weight_changed", "validator_added", "validator_removed",
            "validator_power_changed", "validator_jailed", "validator_unjailed",
            "vote_delegated", "vote_delegation_cleared",
        }),
        (
            ("id", "int"), ("kind", "str"), ("proposer", "str"), ("voting_ends", "int"),
            ("voter", "str"), ("choice", "str"), ("weight", "int"), ("reason", "str"),
            ("execute_height", "int"), ("name", "str"), ("old", "str"), ("new", "str"),
            ("authority", "str"),
            ("validator", "str"), ("power", "int"), ("previous", "int"), ("from_height", "int"),
            ("delegated", "int"), ("on_behalf", "str"), ("overrides", "str"),
            ("delegator", "str"), ("delegate", "str"), ("previous_delegate", "str"),
        ),
    ),
    "auction": (
        frozenset({
            "auction_curve_placed", "auction_curve_amended", "auction_curve_cancelled",
            "auction_cleared", "auction_cancelled",
        }),
        (
            ("curve", "int"), ("owner", "str"), ("side", "str"), ("zone", "str"),
            ("interval", "int"), ("quantity_wh", "int"), ("escrow_satang", "int"),
            ("welfare_satang", "int"), ("prices", "str"), ("trades", "int"), ("by", "str"),
            ("curves", "int"),
        ),
    ),
}  # fmt: skip
"""Report kind -> (event kinds it holds, its attribute columns)."""

KIND_OF_EVENT: Final = {event: kind for kind, (events, _) in KINDS.items() for event in events}


def columns(kind: str) -> tuple[tuple[str, ColumnType], ...]:
    """Every column of a report kind, in file order."""
    return (*COMMON, *KINDS[kind][1], (OTHER, "str"))


def _check() -> None:
    common = {name for name, _ in COMMON}
    for kind, (_, attrs) in KINDS.items():
        names = [name for name, _ in attrs]
        assert len(set(names)) == len(names), kind
        assert not common & set(names) and OTHER not in names, kind


_check()
