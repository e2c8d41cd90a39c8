"""Peer-to-peer networking: the encrypted transport, gossip with per-peer rate limits, and
peer discovery through an address book."""
