"""Blocks, the mempool, and the application consensus drives (build, check, commit a block).

Built on the ledger and the consensus core; storage is handed in, never imported.
"""
