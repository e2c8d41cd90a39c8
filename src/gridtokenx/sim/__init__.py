"""Simulators: the deterministic consensus network simulator (and, later, the Thai market day)."""
