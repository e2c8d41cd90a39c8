"""What every node must agree on byte for byte: the canonical codec, keys and hashes, Merkle
roots, transactions, consensus votes and validator sets, and the table of rejection codes.

The bottom layer: pure, imports nothing else of GridTokenX and no I/O.
"""
