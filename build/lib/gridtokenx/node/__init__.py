"""The node process: its runtime (consensus, application and gossip on one event loop), its
home (config, genesis, key, status), key files, metrics, and `service.run_node`."""
