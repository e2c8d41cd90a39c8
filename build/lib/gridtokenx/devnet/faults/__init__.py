"""Fault scenarios over real node processes: a declared devnet, load and schedule of
perturbations (kill, restart, pause, partition, slow links, rogue peers, clock offsets),
run against `gridtokenx node start` processes whose links pass through the harness's
proxies, then checked from the nodes' stores (docs/faults.md)."""

from gridtokenx.devnet.faults.checker import Verdict, check
from gridtokenx.devnet.faults.runner import SetupFailed, run
from gridtokenx.devnet.faults.scenario import Fault, Load, Scenario, ScenarioError, load_file

__all__ = [
    "Fault",
    "Load",
    "Scenario",
    "ScenarioError",
    "SetupFailed",
    "Verdict",
    "check",
    "load_file",
    "run",
]
