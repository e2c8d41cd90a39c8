"""One read side: outside `gridtokenx.ledger`, no module reads the ledger's key layout.

The API, the command line, the simulator's summary, the reports and the store's indexes
read ledger state through the owning context's queries (`registry.participants`,
`market.queries.depth`, `certificates.holds_certificate`, ...). This test reads every
source module with `ast` and refuses, outside the ledger package:

- a ledger `*_key(...)` function or `*_KEY` / `*_PREFIX` constant, imported or used;
- a `.scan(...)` call (a prefix walk of the state);
- `.get(key, Type)` with a ledger record type (a read by key);
- a bytes literal that is (or starts with) one of the ledger's key prefixes, b"part/" say.

With those gone a module outside the ledger has no ledger key in hand to slice. The
allowlist names each exception with its reason and follow-up; it should only shrink."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

import gridtokenx

SRC: Final = Path(gridtokenx.__file__).resolve().parent
LEDGER: Final = "gridtokenx.ledger"
KEY_NAME: Final = re.compile(r"_key$|_KEY$|_PREFIX$")

ALLOWED: Final = {
    # `store.CERT_PREFIX` stays as a name the store's tests scan a sandbox state with; the
    # store itself recognises certificates by type (storage/indexes.py).
    ("gridtokenx.storage.store", "certificate_key"),
}


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    what: str  # the ledger name, "scan", "get(..., Type)" or the bytes literal

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.what}"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> Iterator[tuple[str, str]]:
    for path in sorted(SRC.rglob("*.py")):
        yield module_name(path), path.read_text()


@cache
def ledger_prefixes() -> frozenset[bytes]:
    """The bytes literals the ledger builds keys from: those in its `*_key` functions and
    its module-level `*_KEY` / `*_PREFIX` constants (at least 3 bytes, so a separator such
    as b"/" is not taken for a prefix)."""
    found: set[bytes] = set()
    for name, text in sources():
        if not name.startswith(LEDGER):
            continue
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_key"):
                found |= {c.value for c in ast.walk(node) if _is_bytes(c)}
        for stmt in tree.body:
            targets = _assigned(stmt)
            value = getattr(stmt, "value", None)
            if any(KEY_NAME.search(t) for t in targets) and _is_bytes(value):
                assert isinstance(value, ast.Constant)
                found.add(value.value)
    return frozenset(p for p in found if len(p) >= 3)


def _is_bytes(node: object) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, bytes)


def _assigned(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, ast.Assign):
        return [t.id for t in stmt.targets if isinstance(t, ast.Name)]
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return [stmt.target.id]
    return []


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> the dotted ledger name it is bound to by an import."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith(LEDGER):
                    bound[a.asname or a.name.split(".")[0]] = a.name if a.asname else "gridtokenx"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(LEDGER):
            for a in node.names:
                bound[a.asname or a.name] = f"{node.module}.{a.name}"
    return bound


def _dotted(node: ast.expr, bound: dict[str, str]) -> str | None:
    """The dotted ledger name an expression refers to, if it is one."""
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, bound)
        return None if base is None else f"{base}.{node.attr}"
    return None


def violations(module: str, text: str) -> list[Violation]:
    """Every way `text` (the source of `module`) reads the ledger's key layout."""
    tree = ast.parse(text)
    bound = _aliases(tree)
    prefixes = ledger_prefixes()
    found: list[Violation] = []

    def add(node: ast.AST, what: str) -> None:
        found.append(Violation(module, getattr(node, "lineno", 0), what))

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(LEDGER):
            for a in node.names:
                if KEY_NAME.search(a.name):
                    add(node, a.name)
        elif isinstance(node, ast.Attribute):  # a bare name is flagged at its import
            dotted = _dotted(node, bound)
            if dotted is not None and dotted.startswith(LEDGER) and KEY_NAME.search(node.attr):
                add(node, node.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "scan":
                add(node, "scan")
            elif node.func.attr == "get" and len(node.args) == 2:
                typ = _dotted(node.args[1], bound)
                if typ is not None and typ.startswith(LEDGER):
                    add(node, f"get(..., {typ.rsplit('.', 1)[-1]})")
        if _is_bytes(node):
            assert isinstance(node, ast.Constant)
            value = node.value
            if any(value == p or (p.endswith(b"/") and value.startswith(p)) for p in prefixes):
                add(node, repr(value))
    return found


def test_no_module_outside_the_ledger_reads_its_key_layout() -> None:
    found = [
        v
        for module, text in sources()
        if not module.startswith(LEDGER)
        for v in violations(module, text)
        if (v.module, v.what) not in ALLOWED
    ]
    assert not found, "read these through the owning context's queries:\n" + "\n".join(
        map(str, found)
    )


def test_the_rule_catches_each_way_of_reading_keys() -> None:
    bad = """
import gridtokenx.ledger.registry
from gridtokenx.ledger import accounts, registry as reg
from gridtokenx.ledger.market import records
from gridtokenx.ledger.accounts import SUPPLY_KEY, Supply

def read(state, address):
    state.get(accounts.account_key(address), accounts.Account)
    state.get(SUPPLY_KEY, Supply)
    gridtokenx.ledger.registry.meter_key(address)
    records.REPORT_PREFIX
    for key, p in state.scan(b"part/"):
        yield key[len(b"part/"):], reg.participant_key(address)
"""
    what = sorted(v.what for v in violations("gridtokenx.api.example", bad))
    assert what == sorted(
        [
            "SUPPLY_KEY",
            "account_key",
            "get(..., Account)",
            "get(..., Supply)",
            "meter_key",
            "REPORT_PREFIX",
            "scan",
            "b'part/'",
            "b'part/'",
            "participant_key",
        ]
    )


def test_the_ledger_prefixes_are_found_and_queries_are_allowed() -> None:
    prefixes = ledger_prefixes()
    assert {b"part/", b"acct/", b"meter/", b"rep/", b"cert/", b"gov/v/"} <= prefixes
    good = """
from gridtokenx.ledger import registry
from gridtokenx.ledger.market import queries

def read(state, address, meter):
    registry.get_participant(state, address)
    list(registry.participants(state, after=address))
    queries.depth(state, "BKK", 900)
    meter.public_key
    {}.get("a", 1)
"""
    assert violations("gridtokenx.api.example", good) == []


def test_every_allowlisted_exception_names_a_module_that_exists() -> None:
    modules = {module for module, _ in sources()}
    assert {module for module, _ in ALLOWED} <= modules
