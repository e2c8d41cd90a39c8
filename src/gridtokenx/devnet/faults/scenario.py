"""A fault scenario, declared: the devnet (validators, full nodes, block time), the load and
a schedule of perturbations, as msgspec structs that load from TOML or JSON or are built
in Python.

Times are seconds after the load starts. Every fault is undone `duration` seconds after it
began (a killed node restarts, a paused one resumes, a partition heals, a slowed link is
restored, rogue peers leave, a clock is set right), so a scenario always ends with every
node running and connected, and the checker can ask each of them what became of the
transactions it acknowledged. Node names are the validators' authority codes in lower case
(`egat`, `mea`, `pea`, `erc`, `nepo`) and `full1`, `full2`, ... for full nodes.
"""

from __future__ import annotations

import random
import tomllib
from pathlib import Path
from typing import Final, Literal

import msgspec

from gridtokenx.devnet.homes import devnet_validators

FaultKind = Literal["kill", "restart", "pause", "partition", "slow", "rogue", "clock"]
FAULT_KINDS: Final[tuple[FaultKind, ...]] = (
    "kill", "restart", "pause", "partition", "slow", "rogue", "clock",
)  # fmt: skip
LoadKind = Literal["orders", "transfers", "mixed"]


class Fault(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One perturbation, from `at` for `duration` seconds.

    - `kill`: SIGKILL the `nodes`, start them again at the end.
    - `restart`: stop the `nodes` cleanly (SIGTERM), start them again at the end.
    - `pause`: SIGSTOP the `nodes`, SIGCONT at the end.
    - `partition`: cut every link between `groups` (nodes in no group form one more group);
      `mode` "cut" closes the links and holds new ones unanswered, "blackhole" stops
      forwarding on them (senders fill their buffers, as behind a dropped route).
    - `slow`: every link of the `nodes` carries at most `bytes_per_s` (0: no cap) with
      `delay_ms` more latency per chunk.
    - `rogue`: `connections` peers at each of the `nodes` that complete the handshake and
      never read; with `requests_per_s` they also ask for blocks (never reading them).
    - `clock`: the `nodes`' wall clocks run `offset_ms` ahead (negative: behind).
    """

    kind: FaultKind
    at: float
    duration: float = 5.0
    nodes: tuple[str, ...] = ()
    groups: tuple[tuple[str, ...], ...] = ()
    mode: Literal["cut", "blackhole"] = "cut"
    bytes_per_s: int = 0
    delay_ms: int = 0
    connections: int = 1
    requests_per_s: int = 0
    offset_ms: int = 0

    @property
    def end(self) -> float:
        return self.at + self.duration

    def label(self) -> str:
        what = " | ".join(",".join(g) for g in self.groups) if self.groups else ",".join(self.nodes)
        extra = {
            "slow": f" {self.bytes_per_s} B/s +{self.delay_ms} ms",
            "clock": f" {self.offset_ms:+d} ms",
            "rogue": f" x{self.connections}"
            + (f" asking {self.requests_per_s}/s" if self.requests_per_s else ""),
            "partition": f" ({self.mode})",
        }.get(self.kind, "")
        return f"{self.kind} {what}{extra} at {self.at:g}s for {self.duration:g}s"


class Load(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Pre-signed load sent through the nodes' APIs: market orders of the simulator's
    market day (`simulator.loadgen`), THB transfers between funded accounts, or both
    (`transfer_share` of the stream are transfers)."""

    kind: LoadKind = "mixed"
    rate: float = 20.0  # transactions per second
    seconds: float = 20.0
    participants: int = 60  # market-day members; as many transfer accounts
    transfer_share: float = 0.25  # of a mixed load
    batch_ms: int = 100  # one API batch this often
    seed: int = 1
    redundancy: int = 1  # nodes each batch goes to at once (2: as a client wanting 3 s)


class Scenario(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    validators: int = 4
    full_nodes: int = 0
    block_ms: int = 1000
    load: Load = Load()
    faults: tuple[Fault, ...] = ()
    settle_seconds: float = 30.0  # after the end, for acknowledged transactions to commit
    finality_target_s: float = 3.0

    def node_names(self) -> list[str]:
        return [*self.validator_names(), *(f"full{k + 1}" for k in range(self.full_nodes))]

    def validator_names(self) -> list[str]:
        return [code.lower() for code in devnet_validators(self.validators)]

    @property
    def seconds(self) -> float:
        """From the load's start until the load and every fault have ended."""
        return max([self.load.seconds, *(f.end for f in self.faults)])

    def problems(self) -> list[str]:
        """Everything wrong with the scenario, in one list (empty: it can run)."""
        found: list[str] = []
        try:
            names = set(self.node_names())
        except ValueError as exc:
            return [str(exc)]
        if self.full_nodes < 0 or self.block_ms <= 0:
            found.append("full_nodes must be >= 0 and block_ms > 0")
        if self.load.rate <= 0 or self.load.seconds <= 0 or self.load.batch_ms <= 0:
            found.append("load rate, seconds and batch_ms must be positive")
        if not 0 <= self.load.transfer_share <= 1:
            found.append("load transfer_share must be within 0..1")
        for i, fault in enumerate(self.faults):
            found += [f"fault {i} ({fault.kind}): {p}" for p in _fault_problems(fault, names)]
        return found


def _fault_problems(fault: Fault, names: set[str]) -> list[str]:
    found = []
    if fault.at < 0 or fault.duration < 0:
        found.append("at and duration must be >= 0")
    listed = [n for g in fault.groups for n in g] if fault.kind == "partition" else fault.nodes
    if unknown := sorted(set(listed) - names):
        found.append(f"unknown nodes {unknown} (the scenario has {sorted(names)})")
    if fault.kind == "partition":
        if not fault.groups or len(listed) != len(set(listed)):
            found.append("a partition needs groups, each node in one at most")
    elif not fault.nodes:
        found.append("needs nodes")
    if fault.kind == "slow" and fault.bytes_per_s <= 0 and fault.delay_ms <= 0:
        found.append("a slow link needs bytes_per_s or delay_ms")
    if fault.kind == "clock" and fault.offset_ms == 0:
        found.append("a clock fault needs offset_ms")
    if fault.kind == "rogue" and fault.connections < 1:
        found.append("a rogue fault needs connections >= 1")
    return found


class ScenarioError(ValueError):
    """A scenario file that does not decode or describes something impossible."""


def parse(data: bytes, suffix: str = ".toml") -> Scenario:
    """A scenario from TOML (`suffix` .toml) or JSON text; raises `ScenarioError`."""
    try:
        if suffix == ".toml":
            scenario = msgspec.convert(tomllib.loads(data.decode()), Scenario)
        else:
            scenario = msgspec.json.decode(data, type=Scenario)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, msgspec.DecodeError) as exc:
        raise ScenarioError(str(exc)) from None
    except msgspec.ValidationError as exc:
        raise ScenarioError(str(exc)) from None
    if problems := scenario.problems():
        raise ScenarioError("; ".join(problems))
    return scenario


def load_file(path: Path) -> Scenario:
    return parse(path.read_bytes(), path.suffix)


def faulty_validators(faults: tuple[Fault, ...], validators: list[str], at: float) -> set[str]:
    """Validators that a fault active at `at` affects (a rogue peer is a peer's fault, not
    its target's; a partition affects the validators outside the largest group)."""
    hit: set[str] = set()
    for fault in faults:
        if not fault.at <= at < fault.end or fault.kind == "rogue":
            continue
        if fault.kind == "partition":
            groups = [set(g) for g in fault.groups]
            groups.append(set(validators) - set().union(*groups))
            largest = max(groups, key=lambda g: len(g & set(validators)))
            hit |= set(validators) - largest
        else:
            hit |= set(fault.nodes) & set(validators)
    return hit


def soak_schedule(
    seed: int,
    seconds: float,
    validators: list[str],
    full_nodes: list[str],
    gap: tuple[float, float] = (30.0, 60.0),
    first_at: float = 15.0,
) -> tuple[Fault, ...]:
    """A seeded random schedule for an availability soak: a perturbation every `gap`
    seconds, each over before the next begins and aimed at one node, so never more than
    one validator is faulty at once; the kinds in turn from a shuffled deck, so a short
    soak still sees most of them."""
    rng = random.Random(seed)
    nodes = [*validators, *full_nodes]
    faults: list[Fault] = []
    deck: list[FaultKind] = []
    at = first_at
    while at < seconds - 10:  # bounded: `at` grows by at least gap[0] > 0
        if not deck:
            deck = list(FAULT_KINDS)
            rng.shuffle(deck)
        kind = deck.pop()
        room = min(gap[0] - 5, seconds - at - 5)
        duration = round(rng.uniform(min(5.0, room), min(20.0, room)), 1)
        faults.append(_soak_fault(rng, kind, round(at, 1), duration, validators, nodes))
        at += rng.uniform(*gap)
    return tuple(faults)


def _soak_fault(
    rng: random.Random, kind: FaultKind, at: float, duration: float,
    validators: list[str], nodes: list[str],
) -> Fault:  # fmt: skip
    if kind == "rogue":  # a peer, not a validator, misbehaves: it goes at every node
        return Fault(kind, at, duration, nodes=tuple(nodes), requests_per_s=50)
    if kind == "partition":
        return Fault(kind, at, duration, groups=((rng.choice(nodes),),))
    if kind == "slow":
        return Fault(kind, at, duration, nodes=(rng.choice(nodes),), bytes_per_s=20_000,
                     delay_ms=rng.choice((50, 200)))  # fmt: skip
    if kind == "clock":
        offset = rng.choice((-1, 1)) * rng.choice((2_000, 8_000))
        return Fault(kind, at, duration, nodes=(rng.choice(validators),), offset_ms=offset)
    return Fault(kind, at, duration, nodes=(rng.choice(validators),))
