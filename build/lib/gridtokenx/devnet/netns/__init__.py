"""Nodes on separate hosts: each node in its own Linux network namespace with its own
address on a bridge, driven from the root namespace (docs/netns.md)."""

from gridtokenx.devnet.netns.hosts import Host, Hosts, NetnsError, available, remove_stale

__all__ = ["Host", "Hosts", "NetnsError", "available", "remove_stale"]
