"""ERC regulatory reporting: audit exports read offline from a node's RocksDB store (a
stopped node's data directory or a `gridtokenx db backup` checkpoint), and their
verification against the same chain. Blocks and stored receipts are the only source:
agents' bookkeeping can be wrong, the committed chain cannot. See docs/reporting.md."""

from gridtokenx.reporting.extract import ReportError

__all__ = ["ReportError"]
