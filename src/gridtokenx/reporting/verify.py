"""Re-checking an export against the chain it claims to come from.

For every row of every file: its block hash is the stored block's at that height, its
transaction is in that block, and each field equals what re-reading the stored receipt
gives. Then completeness: every event of the exported kinds in the manifest's height range
appears exactly once. Findings name the file and the row (1-based, not counting a CSV's
header line), so an auditor can go straight to it."""

from __future__ import annotations

import functools
from pathlib import Path

from gridtokenx.reporting import balances, export, schema
from gridtokenx.reporting.extract import ReportError, Row, block_at, extract
from gridtokenx.reporting.findings import Finding
from gridtokenx.storage.store import Store
from gridtokenx.wire import tx

__all__ = ["Finding", "verify"]

Key = tuple[object, object, object]


def _key(r: Row) -> Key:
    return (r.get("height"), r.get("tx_hash"), r.get("event_index"))


class _Blocks:
    """Stored block hashes and transaction ids by height, read once per height."""

    def __init__(self, store: Store, first: int, last: int) -> None:
        self.store, self.first, self.last = store, first, last
        self._seen: dict[int, tuple[str, set[str]]] = {}

    def at(self, height: int) -> tuple[str, set[str]]:
        if height not in self._seen:
            block = block_at(self.store, height)
            self._seen[height] = (block.hash.hex(), {tx.hash_of(r).hex() for r in block.txs})
        return self._seen[height]


def _check_row(r: Row, blocks: _Blocks, expected: dict[Key, Row]) -> list[str]:
    height = r.get("height")
    if not isinstance(height, int) or not blocks.first <= height <= blocks.last:
        return [f"height {height!r} is outside the export's range {blocks.first}..{blocks.last}"]
    block_hash, txs = blocks.at(height)
    problems = []
    if r.get("block_hash") != block_hash:
        problems.append(
            f"block_hash {r.get('block_hash')} is not the block at height {height} ({block_hash})"
        )
    tx_hash = r.get("tx_hash")
    if tx_hash and tx_hash not in txs:
        problems.append(f"tx {tx_hash} is not in the block at height {height}")
    want = expected.get(_key(r))
    if want is None:
        if not problems:
            problems.append(f"the chain has no such event (height {height}, tx {tx_hash!r}, "
                            f"event_index {r.get('event_index')!r})")  # fmt: skip
        return problems
    for name, value in want.items():
        if name not in ("block_hash", "tx_hash") and r.get(name) != value:
            problems.append(f"{name} is {r.get(name)!r}, the chain says {value!r}")
    return problems


def _read_files(
    manifest: dict[str, object], directory: Path
) -> tuple[dict[str, list[Row]], list[Finding]]:
    """Every kind's rows whose file is listed and has the schema's columns."""
    format = manifest["format"]
    assert format in export.FORMATS
    kinds = manifest.get("kinds")
    files: dict[str, list[Row]] = {}
    findings: list[Finding] = []
    for kind in schema.KINDS:
        name = export.file_name(kind, format)
        if not isinstance(kinds, dict) or kind not in kinds:
            findings.append(Finding(name, None, "missing from the manifest"))
            continue
        header, rows = export.read(directory, kind, format)
        columns = [c for c, _ in schema.columns(kind)]
        if header != columns:
            findings.append(Finding(name, None, f"columns are {header}, expected {columns}"))
            continue
        files[kind] = rows
    return files, findings


def _against_chain(
    store: Store,
    manifest: dict[str, object],
    files: dict[str, list[Row]],
    truth: dict[str, list[Row]],
) -> list[Finding]:
    first, last, format = manifest["from_height"], manifest["to_height"], manifest["format"]
    assert isinstance(first, int) and isinstance(last, int) and format in export.FORMATS
    findings: list[Finding] = []
    blocks = _Blocks(store, first, last)
    for kind, rows in files.items():
        name = export.file_name(kind, format)
        expected = {_key(r): r for r in truth[kind]}
        seen: set[object] = set()
        for number, r in enumerate(rows, start=1):
            if _key(r) in seen:
                findings.append(Finding(name, number, "duplicates an earlier row"))
                continue
            seen.add(_key(r))
            findings += [Finding(name, number, p) for p in _check_row(r, blocks, expected)]
        for key, want in expected.items():
            if key not in seen:
                findings.append(Finding(name, None, f"missing {want['event']} event at height "
                                        f"{want['height']} tx {want['tx_hash'] or '(end of block)'}"
                                        f" event_index {want['event_index']}"))  # fmt: skip
    return findings


def verify(store: Store | None, directory: Path) -> list[Finding]:
    """Every discrepancy in the export in `directory`: against the chain in `store` (when
    given: the export is exactly the chain's events of its kinds in its range), and in its
    own balances (always: the export alone must account for every Wh and satang)."""
    manifest = export.read_manifest(directory)
    first, last = manifest.get("from_height"), manifest.get("to_height")
    if not isinstance(first, int) or not isinstance(last, int):
        raise ReportError("the manifest has no integer from_height/to_height")
    findings: list[Finding] = []
    if store is not None:
        chain_id = block_at(store, first).header.chain_id
        if manifest.get("chain_id") != chain_id:
            findings.append(Finding(export.MANIFEST, None, f"chain_id is "
                                    f"{manifest.get('chain_id')!r}, the store's chain is "
                                    f"{chain_id!r}"))  # fmt: skip
    files, unreadable = _read_files(manifest, directory)
    findings += unreadable
    if store is not None:
        truth = extract(store, first, last)
        findings += _against_chain(store, manifest, files, truth)
        findings += _manifest_accounts(manifest, truth)
    name_of = functools.partial(_file_name, manifest["format"])
    return findings + balances.check(manifest, balances.located(files, name_of))


def _manifest_accounts(manifest: dict[str, object], truth: dict[str, list[Row]]) -> list[Finding]:
    """The manifest's escrow account and account balances are what the chain's rows give."""
    findings = []
    if manifest.get("escrow_account") != export.ESCROW_ACCOUNT:
        findings.append(Finding(export.MANIFEST, None, f"escrow_account is "
                                f"{manifest.get('escrow_account')!r}, the ledger's is "
                                f"{export.ESCROW_ACCOUNT}"))  # fmt: skip
    ends = export.accounts_at_ends(truth)
    stated = manifest.get("accounts")
    if not isinstance(stated, dict):
        return findings  # the balance check names the missing accounts
    for account in sorted(set(ends) | set(stated)):
        if stated.get(account) != ends.get(account):
            findings.append(Finding(export.MANIFEST, None, f"account {account} balances are "
                                    f"{stated.get(account)}, the chain's rows give "
                                    f"{ends.get(account)}"))  # fmt: skip
    return findings


def _file_name(format: export.Format, kind: str) -> str:
    return export.file_name(kind, format)
