"""GridTokenX: peer-to-peer electricity trading on a Proof-of-Authority chain."""

__version__ = "0.1.0"
