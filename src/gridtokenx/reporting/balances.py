"""Conservation checked from an export alone: an auditor needs no node, no store, no code
of the ledger's, only the files and the manifest.

Two kinds of check (docs/reporting.md, "Balances"):

- **Supply.** Every mint, THB issue, THB redemption and GRID burn carries the chain's
  running total after it, so each row must take its series' total from the previous row's
  (or the manifest's opening supply) to its own; the last must end at the manifest's
  closing supply. Hence GRID minted - burned and THB issued - redeemed over the range equal
  the change in supply, and a changed, added or deleted row is named where it breaks the
  chain of totals.
- **Settlement.** Each payment and burn of a settlement matches the record it settles
  (`trade_settled`, `seller_settled`, `import_billed`); each zone report equals the sum of
  its interval's records in that zone; and the ledger's identities hold per zone
  (export = delivered + sold to the utility) and per interval (delivered = received +
  losses; buyers paid = sellers + fees + wheeling: a cross-zone trade's buyer pays in one
  zone and its seller is paid, and its losses counted, in another).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gridtokenx.reporting import schema
from gridtokenx.reporting.extract import Row
from gridtokenx.reporting.findings import Finding

SUPPLY_SERIES: Final[dict[str, tuple[str, str]]] = {
    "grid_minted_wh": ("mints", "minted"),
    "grid_burned_wh": ("burns", "burned"),
    "thb_issued_satang": ("thb", "thb_issued"),
    "thb_redeemed_satang": ("thb", "thb_redeemed"),
}
"""Supply field -> (report kind, event) of the rows that move it."""

TRADE_PAYMENTS: Final = {
    "trade_value": "value_satang",
    "platform_fee": "fee_satang",
    "wheeling": "wheeling_satang",
    "refund": "refund_satang",
}
"""A trade's payments out of escrow -> the `trade_settled` column each must equal."""


@dataclass(frozen=True)
class Located:
    """A row with the file and 1-based row number a finding names."""

    file: str
    number: int
    row: Row

    def __str__(self) -> str:
        return f"{self.file} row {self.number}"

    def int(self, column: str) -> int:
        """The cell as an integer; an empty or malformed cell counts as 0 (the mismatch it
        causes is reported where the cell is compared)."""
        value = self.row.get(column)
        return value if isinstance(value, int) else 0

    def text(self, column: str) -> str:
        value = self.row.get(column)
        return "" if value is None else str(value)

    def finding(self, message: str) -> Finding:
        return Finding(self.file, self.number, message)


Files = Mapping[str, list[Located]]


def located(
    rows: Mapping[str, list[Row]], name_of: Callable[[str], str]
) -> dict[str, list[Located]]:
    return {
        kind: [Located(name_of(kind), n, r) for n, r in enumerate(items, start=1)]
        for kind, items in rows.items()
    }


def _chain_order(found: Located) -> tuple[int, int, int]:
    tx_index = found.row.get("tx_index")
    return (
        found.int("height"),
        tx_index if isinstance(tx_index, int) else 2**62,  # end-of-block events come last
        found.int("event_index"),
    )


def _events(files: Files, kind: str, *events: str) -> list[Located]:
    return [f for f in files.get(kind, []) if f.row.get("event") in events]


# --- supply ----------------------------------------------------------------------------------
def supply_ends(rows: Mapping[str, list[Row]]) -> dict[str, tuple[int | None, int | None]]:
    """Each supply field's total before the first and after the last of its rows (None:
    no row in the range): what the exporter states as opening and closing supply when the
    range holds rows."""
    files = located(rows, lambda kind: kind)
    ends: dict[str, tuple[int | None, int | None]] = {}
    for field, (kind, event) in SUPPLY_SERIES.items():
        series = sorted(_events(files, kind, event), key=_chain_order)
        if not series:
            ends[field] = (None, None)
        else:
            first, last = series[0], series[-1]
            ends[field] = (first.int("total") - first.int("amount"), last.int("total"))
    return ends


def check_supply(manifest: Mapping[str, Any], files: Files) -> list[Finding]:
    supply = manifest.get("supply")
    if not isinstance(supply, dict) or not all(
        isinstance(supply.get(end), dict) for end in ("opening", "closing")
    ):
        return [Finding("manifest.json", None, "has no opening and closing supply")]
    opening, closing = supply["opening"], supply["closing"]
    findings: list[Finding] = []
    moved: dict[str, int] = {}
    for field, (kind, event) in SUPPLY_SERIES.items():
        total, start = opening.get(field), opening.get(field)
        if not isinstance(total, int) or not isinstance(closing.get(field), int):
            findings.append(Finding("manifest.json", None, f"supply {field} is not an integer"))
            continue
        for found in sorted(_events(files, kind, event), key=_chain_order):
            amount, after = found.int("amount"), found.int("total")
            if amount <= 0 or after != total + amount:
                findings.append(found.finding(
                    f"{event} of {found.row.get('amount')!r} does not take {field} from "
                    f"{total} to the row's total {found.row.get('total')!r}"
                ))  # fmt: skip
            total = after
        if total != closing[field]:
            findings.append(Finding("manifest.json", None, f"closing {field} is "
                                    f"{closing[field]}, the rows end at {total}"))  # fmt: skip
        moved[field] = total - start
    if len(moved) == len(SUPPLY_SERIES):
        for asset, up, down in (("GRID", "grid_minted_wh", "grid_burned_wh"),
                                ("THB", "thb_issued_satang", "thb_redeemed_satang")):  # fmt: skip
            change = (closing[up] - closing[down]) - (opening[up] - opening[down])
            rows_move = moved[up] - moved[down]
            if rows_move != change:
                message = f"{asset} supply changed by {change}, the rows move {rows_move}"
                findings.append(Finding("manifest.json", None, message))
    return findings


# --- settlement ------------------------------------------------------------------------------
Key = tuple[object, ...]


class _Matches:
    """Rows that settle one record (payments, debts, burns), by the record's key; each
    record claims its own, and rows no record claims are reported as unexplained."""

    def __init__(self) -> None:
        self._by_key: dict[Key, list[Located]] = defaultdict(list)
        self._claimed: set[tuple[str, int]] = set()

    def add(self, key: Key, found: Located) -> None:
        self._by_key[key].append(found)

    def claim(self, key: Key) -> list[Located]:
        rows = self._by_key.get(key, [])
        self._claimed.update((f.file, f.number) for f in rows)
        return rows

    def unclaimed(self) -> Iterable[Located]:
        for rows in self._by_key.values():
            yield from (f for f in rows if (f.file, f.number) not in self._claimed)


def _compare(
    record: Located, rows: list[Located], want: int, what: str, column: str = "amount"
) -> list[Finding]:
    """`rows` (the payments, debts or burns for one purpose of `record`) must add up to
    `want`; a single row that does not is named, otherwise the record."""
    got = sum(f.int(column) for f in rows)
    if got == want:
        return []
    if len(rows) == 1:
        return [rows[0].finding(f"{what} is {got}; {record} says {want}")]
    listed = ", ".join(str(f) for f in rows) or "no row"
    return [record.finding(f"says {what} is {want}; {listed} add up to {got}")]


def check_settlements(files: Files) -> list[Finding]:
    matches = _Matches()
    for found in _events(files, "payments", "payment", "debt"):
        why, trade = found.text("for"), found.row.get("trade")
        payer = found.text("from") or found.text("debtor")
        payee = found.text("to") or found.text("creditor")
        where = (found.row.get("interval"), found.text("zone"))
        if why in TRADE_PAYMENTS:
            matches.add(("trade", trade, why), found)
        elif why in ("buyback",):
            matches.add((why, *where, payee), found)
        elif why in ("imbalance", "tou_tariff"):
            matches.add((why, *where, payer), found)
    for found in _events(files, "burns", "burned"):
        why = found.text("for")
        if why == "losses":
            matches.add(("burn", "losses", found.row.get("trade")), found)
        else:
            key = (found.row.get("interval"), found.text("zone"), found.text("owner"))
            matches.add(("burn", why, *key), found)

    findings: list[Finding] = []
    totals: dict[tuple[object, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def count(interval: object, zone: str, **amounts: int) -> None:
        for name, value in amounts.items():
            totals[(interval, zone)][name] += value

    for found in _events(files, "settlements", "trade_settled"):
        trade, interval = found.row.get("trade"), found.row.get("interval")
        delivered, received, losses = (
            found.int(c) for c in ("delivered_wh", "received_wh", "losses_wh")
        )
        if delivered != received + losses:
            findings.append(found.finding(f"delivered_wh {delivered} != received_wh "
                                          f"{received} + losses_wh {losses}"))  # fmt: skip
        for why, column in TRADE_PAYMENTS.items():
            rows = matches.claim(("trade", trade, why))
            findings += _compare(found, rows, found.int(column), f"{why} of trade {trade}")
        rows = matches.claim(("burn", "losses", trade))
        findings += _compare(found, rows, losses, f"losses burnt for trade {trade}")
        value, fee = found.int("value_satang"), found.int("fee_satang")
        wheeling = found.int("wheeling_satang")
        count(interval, found.text("seller_zone"), losses_wh=losses, paid_to_sellers_satang=value)
        count(
            interval, found.text("buyer_zone"), received_wh=received,
            paid_by_buyers_satang=value + fee + wheeling, platform_fees_satang=fee,
            wheeling_satang=wheeling, refunded_satang=found.int("refund_satang"),
        )  # fmt: skip

    for found in _events(files, "settlements", "seller_settled"):
        interval, zone, owner = found.row.get("interval"), found.text("zone"), found.text("owner")
        amounts = {c: found.int(c) for c in (
            "sold_wh", "export_wh", "delivered_wh", "sold_to_utility_wh", "shortfall_wh",
            "buyback_satang", "imbalance_satang",
        )}  # fmt: skip
        if amounts["export_wh"] != amounts["delivered_wh"] + amounts["sold_to_utility_wh"]:
            findings.append(found.finding("export_wh != delivered_wh + sold_to_utility_wh"))
        if amounts["sold_wh"] != amounts["delivered_wh"] + amounts["shortfall_wh"]:
            findings.append(found.finding("sold_wh != delivered_wh + shortfall_wh"))
        burnt = matches.claim(("burn", "buyback", interval, zone, owner))
        findings += _compare(found, burnt, amounts["sold_to_utility_wh"], "energy bought back")
        for why in ("buyback", "imbalance"):
            rows = matches.claim((why, interval, zone, owner))
            findings += _compare(found, rows, amounts[f"{why}_satang"], f"{why} paid or owed")
        del amounts["sold_wh"]
        count(interval, zone, **amounts)

    for found in _events(files, "settlements", "import_billed"):
        interval, zone, owner = found.row.get("interval"), found.text("zone"), found.text("owner")
        imported, covered = found.int("import_wh"), found.int("import_covered_wh")
        if covered > imported:
            findings.append(found.finding("import_covered_wh exceeds import_wh"))
        burnt = matches.claim(("burn", "import_covered", interval, zone, owner))
        findings += _compare(found, burnt, covered, "import covered by GRID burnt")
        billed = matches.claim(("tou_tariff", interval, zone, owner))
        findings += _compare(found, billed, found.int("bill_satang"), "tariff paid or owed")
        count(interval, zone, import_wh=imported, import_covered_wh=covered,
              utility_bills_satang=found.int("bill_satang"))  # fmt: skip

    for found in matches.unclaimed():
        what = f"{found.row.get('event')} for {found.text('for')!r}"
        findings.append(found.finding(f"{what} that no settlement record in the export explains"))
    return findings + _check_zone_reports(files, totals)


def _check_zone_reports(
    files: Files, totals: Mapping[tuple[object, str], Mapping[str, int]]
) -> list[Finding]:
    findings: list[Finding] = []
    reported: set[tuple[object, str]] = set()
    key: tuple[object, str]
    by_interval: dict[object, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for found in _events(files, "zone_reports", "zone_report"):
        key = (found.row.get("interval"), found.text("zone"))
        reported.add(key)
        sums = totals.get(key, {})
        for column in ZONE_FIELDS:
            value = found.int(column)
            by_interval[key[0]][column] += value
            if value != sums.get(column, 0):
                findings.append(found.finding(f"{column} is {value}; the interval's settlement "
                                              f"records in zone {key[1]} add up to "
                                              f"{sums.get(column, 0)}"))  # fmt: skip
        if found.int("export_wh") != found.int("delivered_wh") + found.int("sold_to_utility_wh"):
            findings.append(found.finding("export_wh != delivered_wh + sold_to_utility_wh"))
    for key in sorted(set(totals) - reported, key=str):
        findings.append(Finding("zone_reports", None, f"no zone report for interval {key[0]} "
                                f"zone {key[1]}, which has settlement records"))  # fmt: skip
    for interval, t in sorted(by_interval.items(), key=lambda item: str(item[0])):
        if t["delivered_wh"] != t["received_wh"] + t["losses_wh"]:
            findings.append(Finding("zone_reports", None, f"interval {interval}: delivered "
                                    f"{t['delivered_wh']} Wh != received {t['received_wh']} + "
                                    f"losses {t['losses_wh']}"))  # fmt: skip
        paid_out = t["paid_to_sellers_satang"] + t["platform_fees_satang"] + t["wheeling_satang"]
        if t["paid_by_buyers_satang"] != paid_out:
            findings.append(Finding("zone_reports", None, f"interval {interval}: buyers paid "
                                    f"{t['paid_by_buyers_satang']} != sellers + fees + wheeling "
                                    f"{paid_out}"))  # fmt: skip
    return findings


ZONE_FIELDS: Final = tuple(
    name for name, _ in schema.KINDS["zone_reports"][1] if name not in ("interval", "zone")
)
"""The amounts of a zone report, each the sum of its interval's records in the zone."""


# --- accounts --------------------------------------------------------------------------------
ESCROW: Final = "@escrow"
"""Stands for the market escrow's address (the manifest's `escrow_account`) in `MOVEMENTS`."""

ASSET_UNITS: Final = {"GRID": "grid_wh", "THB": "thb_satang"}

MOVEMENTS: Final[dict[str, tuple[str, str, str | None, str | None, str]]] = {
    # event: (file, asset ("=column": read from the row), debited, credited, amount column)
    "transfer": ("transfers", "=asset", "from", "to", "amount"),
    "fee_paid": ("payments", "THB", "from", "to", "amount"),
    "payment": ("payments", "THB", "from", "to", "amount"),
    "minted": ("mints", "GRID", None, "to", "amount"),
    "burned": ("burns", "GRID", "from", None, "amount"),
    "thb_issued": ("thb", "THB", None, "to", "amount"),
    "thb_redeemed": ("thb", "THB", "custodian", None, "amount"),
    "export_locked": ("settlements", "GRID", "owner", ESCROW, "amount"),
    "order_accepted": ("escrow", "THB", "owner", ESCROW, "escrow_satang"),
    "order_filled": ("escrow", "THB", ESCROW, "owner", "refund_satang"),
    "order_cancelled": ("escrow", "THB", ESCROW, "owner", "refund_satang"),
    "order_expired": ("escrow", "THB", ESCROW, "owner", "refund_satang"),
    "order_killed": ("escrow", "THB", ESCROW, "owner", "refund_satang"),
    "trade_curtailed": ("grid", "THB", ESCROW, "buyer", "refund_satang"),
    "escrow": ("escrow", "=asset", "from", "to", "amount"),
}  # fmt: skip
"""Every event that moves value between accounts or in or out of supply, and how to read the
movement off its row: every satang and Wh an account gains or loses is one of these rows."""


@dataclass(frozen=True)
class Movement:
    found: Located
    asset: str  # the balance it moves: "grid_wh" or "thb_satang"
    debited: str | None  # account address text; None for a mint
    credited: str | None  # None for a burn
    amount: int


def movements(files: Files, escrow: str) -> list[Movement]:
    """Every movement of value in the export, in chain order."""
    out: list[Movement] = []
    for event, (kind, asset, debited, credited, amount) in MOVEMENTS.items():
        for found in _events(files, kind, event):
            if found.int(amount) == 0:
                continue  # an order without escrow, a payment the payer could not make
            name = found.text(asset[1:]) if asset.startswith("=") else asset

            def account(column: str | None, found: Located = found) -> str | None:
                return None if column is None else escrow if column == ESCROW else found.text(
                    column)  # fmt: skip

            out.append(Movement(found, ASSET_UNITS.get(name, name), account(debited),
                                account(credited), found.int(amount)))  # fmt: skip
    return sorted(out, key=lambda m: _chain_order(m.found))


AccountEnds = dict[str, dict[str, list[int]]]
"""Account -> balance ("grid_wh", "thb_satang") -> [opening, closing], for every account
and asset the range moves."""


def account_ends(
    files: Files, escrow: str, stated: Mapping[str, Any] | None = None
) -> tuple[AccountEnds, list[Finding]]:
    """Each account's balances before and after the range, from the balances its movement
    rows carry (opening: the first row's balance undone; closing: the last row's), and
    every row whose balance does not follow from the account's previous row (the first: from
    the `stated` opening balance, when given) by its amount: a changed amount or balance is
    named at its row, a deleted row at the account's next."""
    ends: AccountEnds = {}
    findings: list[Finding] = []
    for m in movements(files, escrow):
        for side, account, column in (("debited", m.debited, "from_balance"),
                                      ("credited", m.credited, "to_balance")):  # fmt: skip
            if account is None:
                continue
            after = m.found.row.get(column)
            if not isinstance(after, int):
                findings.append(m.found.finding(f"moves {m.amount} {m.asset} but has no {column}"))
                continue
            change = 0 if m.debited == m.credited else -m.amount if side == "debited" else m.amount
            balances = ends.setdefault(account, {})
            if m.asset not in balances:
                balances[m.asset] = [after - change, after]
                before = _opening(stated, account, m.asset)
                if before is None:
                    continue
            else:
                before = balances[m.asset][1]
            if before + change != after:
                findings.append(m.found.finding(
                    f"{m.found.row.get('event')} of {m.amount} {m.asset} {side} {account} takes "
                    f"its balance from {before} to {before + change}, the row says {after}"
                ))  # fmt: skip
            balances[m.asset][1] = after
    return ends, findings


def _opening(stated: Mapping[str, Any] | None, account: str, asset: str) -> int | None:
    entry = (stated or {}).get(account)
    pair = entry.get(asset) if isinstance(entry, dict) else None
    return pair[0] if isinstance(pair, list) and pair and isinstance(pair[0], int) else None


def check_accounts(manifest: Mapping[str, Any], files: Files) -> list[Finding]:
    """For every account: opening + every movement in the export = closing, in Wh and in
    satang, against the manifest's opening and closing balances."""
    escrow, stated = manifest.get("escrow_account"), manifest.get("accounts")
    if not isinstance(escrow, str) or not isinstance(stated, dict):
        return [Finding("manifest.json", None, "has no escrow_account and accounts")]
    ends, findings = account_ends(files, escrow, stated)
    net: dict[tuple[str, str], int] = defaultdict(int)
    for m in movements(files, escrow):
        if m.debited is not None:
            net[(m.debited, m.asset)] -= m.amount
        if m.credited is not None:
            net[(m.credited, m.asset)] += m.amount
    for account in sorted(set(ends) | set(stated) | {account for account, _ in net}):
        have, says = ends.get(account, {}), stated.get(account, {})
        for asset in sorted(set(have) | set(says)):
            pair = says.get(asset) if isinstance(says, dict) else None
            if not (isinstance(pair, list) and len(pair) == 2 and all(
                    isinstance(v, int) for v in pair)):  # fmt: skip
                findings.append(Finding("manifest.json", None, f"account {account} {asset}: "
                                        f"no opening and closing balance, the rows move "
                                        f"{net[(account, asset)]}"))  # fmt: skip
                continue
            opening, closing = pair
            moved = net[(account, asset)]
            if opening + moved != closing:
                findings.append(Finding("manifest.json", None, f"account {account} {asset}: "
                                        f"opening {opening} + movements {moved} != closing "
                                        f"{closing}"))  # fmt: skip
            elif asset in have and have[asset] != [opening, closing]:
                rows = have[asset]
                findings.append(Finding("manifest.json", None, f"account {account} {asset}: "
                                        f"opening and closing {opening}..{closing}, the rows' "
                                        f"balances go {rows[0]}..{rows[1]}"))  # fmt: skip
    return findings


def check(manifest: Mapping[str, Any], files: Files) -> list[Finding]:
    """Every way the export fails to balance (empty: it balances)."""
    return check_supply(manifest, files) + check_settlements(files) + check_accounts(
        manifest, files)  # fmt: skip
