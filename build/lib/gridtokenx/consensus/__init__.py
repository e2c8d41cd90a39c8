"""BFT Proof-of-Authority consensus: the Tendermint algorithm as a sans-I/O state machine.

See docs/consensus.md for the protocol, its safety argument and how the node drives it.
"""
