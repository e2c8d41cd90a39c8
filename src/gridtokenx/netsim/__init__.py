"""A deterministic discrete-event network simulator for gossip at 10,000 nodes.

It drives the node's own sans-I/O gossip core (`p2p.mesh.Mesh`) over a simulated network of
validators, sentries and full nodes with Thai link latencies, per-node upload bandwidth,
never-reading peers and churn, next to a flood-gossip baseline (`flood.Flood`, what
`p2p/gossip.py` does) in the same harness. Time is simulated (a heap of events) and every
random choice comes from one seeded generator, so a run is replayable by its seed.
"""
