"""Local devnets: the Thai devnet genesis for N validators and their homes on 127.0.0.1.

On a devnet, validator i listens at base port + i, serves Prometheus metrics at base port
+ 100 + i and the REST/WebSocket API at base port + 200 + i (`config.api_port`; 0 turns
it off); `processes.Processes` runs them and `observer.Observer` follows them in-process.

With `sentries=True` each validator hides behind a sentry, as operators run them on real
networks: a full node of its own (home `CODE-sentry`, the N + i'th node in the port layout,
so `free_base_port(2 * N)` covers both). The validator has peer exchange off and dials
only the sentries, its own and the others'; each sentry dials its validator and the other
sentries, keeps its validator's id private (never gossiped) and unconditional (never
refused for a cap). Full nodes join through the sentries: `init_full_node(home,
sentry_homes(validator_homes), port)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import msgspec

from gridtokenx.ledger import genesis
from gridtokenx.ledger.params import Governance
from gridtokenx.node import keystore
from gridtokenx.node.home import Config, chain_clock, read_config, write_home
from gridtokenx.p2p.connection import PeerSettings
from gridtokenx.wire.crypto import PrivateKey

AUTHORITY_ORDER = ("EGAT", "MEA", "PEA", "ERC", "NEPO")
"""The order in which a local devnet of N validators takes the authorities."""
DEVNET_VALIDATORS = AUTHORITY_ORDER[:4]
DEVNET_GOVERNANCE: Final = Governance(
    voting_period_heights=60,
    timelock_heights=10,
    emergency_voting_period_heights=20,
    emergency_timelock_heights=5,
)
"""Governance periods short enough to try a vote on a local devnet: at one block a second a
proposal is open for a minute and executes ten seconds after it passes (an emergency: 20 s
and 5 s). Quorums and approvals are the production ones; production's periods (params.py,
a day of voting and half a day of timelock) are untouched."""
DEVNET_GRID_STATUS_MAX_AGE_SECONDS: Final = 900
"""How old a grid measurement may be on a devnet: one interval, where production keeps 300 s
(params.py). An accelerated devnet (the demo runs 120 chain seconds per wall second) would
squeeze 300 chain seconds into 2.5 wall seconds, less than the 5 the demo's order gate
closure allows, so a SCADA report submitted at an interval boundary could go stale while
it waits for a block behind the interval's readings and orders; the demo's sink stops the
day on any dropped transaction. One interval (7.5 wall seconds at 120x) keeps a report
valid for as long as the interval it describes is the latest one; the clock-skew limit
(30 s ahead) and the strict ordering per subject are untouched."""


def devnet_validators(count: int) -> tuple[str, ...]:
    """The authorities validating on a local devnet of `count` validators."""
    if not 1 <= count <= len(AUTHORITY_ORDER):
        raise ValueError(
            f"a local devnet runs 1 to {len(AUTHORITY_ORDER)} validators "
            f"({', '.join(AUTHORITY_ORDER)}), not {count}"
        )
    return AUTHORITY_ORDER[:count]


def devnet_genesis(
    chain_id: str,
    genesis_time: int,
    validators: Sequence[str] = DEVNET_VALIDATORS,
    governance: Governance = DEVNET_GOVERNANCE,
    grid_status_max_age_seconds: int = DEVNET_GRID_STATUS_MAX_AGE_SECONDS,
) -> genesis.Genesis:
    """The Thai devnet genesis with `validators` validating at their genesis voting power;
    the other authorities keep their governance roles and weights but get voting power 0,
    since a validator with power that runs no process would only slow or stop the quorum.
    A vote can give them power later. `governance` sets the voting rules (short periods by
    default, so a vote can be tried on a local devnet) and `grid_status_max_age_seconds`
    how stale a grid measurement may be (one interval by default, for accelerated clocks:
    see DEVNET_GRID_STATUS_MAX_AGE_SECONDS)."""
    spec = genesis.devnet(chain_id, genesis_time, genesis.dev_keys())
    authorities = tuple(
        a if a.code in validators else msgspec.structs.replace(a, voting_power=0)
        for a in spec.authorities
    )
    params = msgspec.structs.replace(
        spec.params, governance=governance, grid_status_max_age_seconds=grid_status_max_age_seconds
    )
    return msgspec.structs.replace(spec, authorities=authorities, params=params)


def init_devnet(
    root: Path,
    chain_id: str,
    genesis_time: int,
    base_port: int,
    block_ms: int = 1000,
    validators: Sequence[str] = DEVNET_VALIDATORS,
    clock_origin: int = 0,
    clock_speed: float = 1.0,
    build_budget_ms: int = 250,
    min_block_ms: int = 100,
    api_rate_per_second: float = 100.0,
    propose_ms: int = 1000,
    log_format: str = "plain",
    log_level: str = "info",
    sentries: bool = False,
    governance: Governance = DEVNET_GOVERNANCE,
) -> list[Path]:
    """Homes for the devnet validators, fully meshed on 127.0.0.1, in `validators` order
    (or each behind a sentry: see the module docstring; the sentries' homes are
    `sentry_homes(homes)`). With `clock_speed` other than 1 their clocks run accelerated
    from `clock_origin`; their logs (node.log, through `processes.Processes`) in
    `log_format` from `log_level` up. The authorities that do not validate get their dev
    key in `root/keys/CODE.key`, to sign governance votes with or to start a node that a
    vote may make a validator. `governance` as in `devnet_genesis`; `min_block_ms` as the
    config's (how long a proposer waits after a commit for its block to fill)."""
    chain_clock(genesis_time, clock_origin, clock_speed)  # a bad speed fails before writing
    spec = devnet_genesis(chain_id, genesis_time, validators, governance)
    keys = genesis.dev_keys()
    sentry_keys = [sentry_key(code) for code in validators]
    n = len(validators)
    homes = []
    for i, code in enumerate(validators):
        peers = tuple(
            ("127.0.0.1", base_port + j, keys[other].address.hex())
            for j, other in enumerate(validators)
            if j != i
        )
        if sentries:  # its own sentry and the others', never a validator
            peers = tuple(("127.0.0.1", base_port + n + j, k.address.hex())
                          for j, k in enumerate(sentry_keys))  # fmt: skip
        config = Config(
            base_port + i,
            peers,
            dial_all=sentries,
            p2p=behind_sentry(PeerSettings()) if sentries else PeerSettings(),
            block_ms=block_ms,
            build_budget_ms=build_budget_ms,
            min_block_ms=min_block_ms,
            propose_ms=propose_ms,
            metrics_port=base_port + 100 + i,
            api_port=base_port + 200 + i,
            api_rate_per_second=api_rate_per_second,
            clock_origin=clock_origin,
            clock_speed=clock_speed,
            moniker=code,
            log_format=log_format,
            log_level=log_level,
        )
        homes.append(write_home(root / code.lower(), spec.encode(), keys[code], config))
        if sentries:
            _sentry(homes[-1], config, sentry_keys[i], keys[code].address.hex())
    for code in AUTHORITY_ORDER:
        if code not in validators:
            (root / "keys").mkdir(parents=True, exist_ok=True)
            path = root / "keys" / f"{code.lower()}.key"
            keystore.save_insecure_dev_key(path, keys[code], overwrite=True)
    return homes


def sentry_key(code: str) -> PrivateKey:
    """The dev key of the sentry of the authority `code` on a devnet (insecure: devnets)."""
    return PrivateKey.from_dev_label(f"gridtokenx/devnet/sentry/{code}")


def behind_sentry(p2p: PeerSettings) -> PeerSettings:
    """`p2p` for a validator behind sentries: peer exchange off (it dials only the peers
    it is given, and `dial_all` with them), so no address but its sentries' reaches it."""
    return msgspec.structs.replace(p2p, pex=False)


def shielding(p2p: PeerSettings, validator_id: str) -> PeerSettings:
    """`p2p` for the sentry of the validator of peer id `validator_id`: the validator
    private (never gossiped) and unconditional (never refused for a cap)."""
    return msgspec.structs.replace(
        p2p, private_peer_ids=(validator_id,), unconditional_peer_ids=(validator_id,)
    )


def sentry_homes(validator_homes: Sequence[Path]) -> list[Path]:
    """The homes of the sentries `init_devnet(..., sentries=True)` made, in order."""
    return [home.with_name(f"{home.name}-sentry") for home in validator_homes]


def _sentry(validator: Path, config: Config, key: PrivateKey, hidden: str) -> Path:
    """The sentry, under `key`, of the validator of home `validator`, `config` and peer id
    `hidden`: a full node dialling its validator and the other sentries (the validator's
    peers but itself), with its validator private and unconditional."""
    own = key.address.hex()
    port = next(port for _, port, peer in config.peers if peer == own)
    others = tuple(p for p in config.peers if p[2] != own)
    peers = (("127.0.0.1", config.listen_port, hidden), *others)
    sentry = msgspec.structs.replace(
        config,
        listen_port=port,
        peers=peers,
        dial_all=False,
        metrics_port=config.metrics_port and port + 100,
        api_port=config.api_port and port + 200,
        p2p=shielding(PeerSettings(), hidden),
    )
    home = sentry_homes([validator])[0]
    return write_home(home, (validator / "genesis.json").read_bytes(), key, sentry)


def read_key_id(home: Path) -> str:
    """The peer id (hex) of the dev key in `home`."""
    return keystore.load_key(home / "node_key.json", "", allow_insecure=True).address.hex()


def init_full_node(
    home: Path,
    validator_homes: list[Path],
    port: int,
    key: PrivateKey | None = None,
    api_port: int = 0,
) -> Path:
    """A node that follows the devnet of `validator_homes` from genesis: with a new key a
    full node; with the key of an authority without genesis power (NEPO on a devnet of
    four) a follower that signs from the first height a vote gives it power for."""
    peers = []
    for other in validator_homes:
        peers.append(("127.0.0.1", read_config(other).listen_port, read_key_id(other)))
    genesis_bytes = (validator_homes[0] / "genesis.json").read_bytes()
    first = read_config(validator_homes[0])
    config = Config(port, tuple(peers), dial_all=True, clock_origin=first.clock_origin,
                    clock_speed=first.clock_speed, block_ms=first.block_ms,
                    propose_ms=first.propose_ms, api_port=api_port)  # fmt: skip
    return write_home(home, genesis_bytes, key or PrivateKey.generate(), config)
