"""Peer-to-peer networking: the encrypted transport, and (next) gossip and block sync."""
