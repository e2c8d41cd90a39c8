"""Prefunded participants on a local devnet, as anvil and hardhat give a developer funded
accounts: `gridtokenx devnet --fund N`.

The chain's rules need a bootstrap before anyone can trade (docs/first-trade.md walks
through it by hand): a custodian registered by the zone's distributor and licensed by ERC
issues THB; a participant registered by the distributor gets a meter, and the meter's
signed readings mint GRID. This module runs that order through a validator's API for N
participants in one zone, with deterministic dev keys (anyone can derive them: devnets
only), writes the key files and `accounts.json` in the devnet's folder, and leaves every
participant with THB to buy with and GRID already minted.

The one wait in the bootstrap is the meter's: a reading is accepted only for an interval
that has ended (less the ledger's clock-skew allowance), and a meter can report no earlier
than the interval it was registered in. `fund_clock` therefore starts the devnet's chain
clock so that setup ends just inside the last minute of an interval: the first reading is
accepted as soon as the registrations commit, instead of up to 15 minutes later.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from gridtokenx.client import Client
from gridtokenx.ledger import genesis
from gridtokenx.ledger.params import Params
from gridtokenx.node import keystore
from gridtokenx.wire import crypto, tx
from gridtokenx.wire.crypto import PrivateKey

ZONE: Final = "BKK"  # MEA's zone: one distributor registers everyone, all trade in one book
DISTRIBUTOR: Final = "MEA"
REGULATOR: Final = "ERC"
METER_CAPACITY_W: Final = 10_000  # at the small-prosumer threshold: sells without a licence
THB_EACH_SATANG: Final = 1_000_000  # 10,000 THB
LICENCE_YEARS: Final = 10
SETUP_WALL_SECONDS: Final = 20.0
"""About how long the processes take to start and the setup's registrations to commit on
a busy two-core machine: the chain clock is placed so that they land in the last minute of
an interval (see the module docstring)."""
ACCOUNTS_FILE: Final = "accounts.json"
MAX_FUNDED: Final = 200


def next_local_time(now: float, minute_of_day: int, params: Params | None = None) -> int:
    """The first moment at or after `now` when the chain's local (Bangkok) clock reads
    `minute_of_day`: a devnet that starts there shows a chosen hour of the market day (the
    auction gate at 12:00, solar noon, the evening peak) without waiting for it."""
    if not 0 <= minute_of_day < 1440:
        raise ValueError(f"minute of the day {minute_of_day}: expected 0 to 1439")
    p = params or Params()
    day = 86_400
    local = int(now) + p.tariffs.utc_offset_seconds
    at = local - local % day + minute_of_day * 60
    return (at if at >= local else at + day) - p.tariffs.utc_offset_seconds


def fund_clock(
    now: float, speed: float, params: Params | None = None, start: int | None = None
) -> tuple[int, int]:
    """(genesis time, clock origin) for a devnet whose setup should end half the reading
    clock-skew allowance before an interval ends. The chain's time never starts behind the
    wall clock (it may start up to one interval ahead of it, or of `start`, a chain time at
    or after `now` for the chain to begin near)."""
    p = params or Params()
    origin = int(now)
    base = origin if start is None else max(origin, start)
    at_setup_end = base + SETUP_WALL_SECONDS * speed + p.reading_clock_skew_seconds / 2
    boundary = -(-int(at_setup_end) // p.interval_seconds) * p.interval_seconds
    genesis_time = boundary - p.reading_clock_skew_seconds // 2 - int(SETUP_WALL_SECONDS * speed)
    return genesis_time, origin


@dataclass(frozen=True)
class FundedAccount:
    """One prefunded participant as written to accounts.json (paths relative to the cwd)."""

    name: str
    address: str
    key_file: str
    meter_address: str
    meter_key_file: str
    zone: str
    thb_satang: int = 0
    grid_wh: int = 0


def participant_key(i: int) -> PrivateKey:
    return PrivateKey.from_dev_label(f"gridtokenx/devnet/participant/{i}")


def meter_key(i: int) -> PrivateKey:
    return PrivateKey.from_dev_label(f"gridtokenx/devnet/meter/{i}")


def custodian_key() -> PrivateKey:
    return PrivateKey.from_dev_label("gridtokenx/devnet/custodian")


class Funding:
    """The bootstrap of `count` participants through the API at `api_url`; `run` returns
    them funded. Every step waits for its transactions to commit, so a failure names the
    step and the ledger's code."""

    def __init__(self, directory: Path, api_url: str, count: int, timeout: float = 120.0):
        if not 1 <= count <= MAX_FUNDED:
            raise ValueError(f"--fund takes 1 to {MAX_FUNDED} participants, not {count}")
        self.directory, self.api_url, self.count = directory, api_url, count
        self.deadline = time.monotonic() + timeout
        self.authorities = genesis.dev_keys()
        self.custodian = custodian_key()
        self.people = [participant_key(i) for i in range(1, count + 1)]
        self.meters = [meter_key(i) for i in range(1, count + 1)]

    def run(self) -> list[FundedAccount]:
        with Client(self.api_url, timeout=10.0) as api:
            mea, erc = self.authorities[DISTRIBUTOR], self.authorities[REGULATOR]
            registrations: list[tuple[PrivateKey, tx.Body]] = [
                (mea, tx.RegisterParticipant(self.custodian.address, ZONE,
                                             tx.ParticipantKind.CUSTODIAN, "Devnet custodian"))
            ]  # fmt: skip
            for i, (person, meter) in enumerate(zip(self.people, self.meters, strict=True), 1):
                registrations += [
                    (mea, tx.RegisterParticipant(person.address, ZONE,
                                                 tx.ParticipantKind.HOUSEHOLD, f"dev-{i}")),
                    (mea, tx.RegisterMeter(meter.public_key, person.address, ZONE,
                                           tx.MeterKind.SOLAR, METER_CAPACITY_W, 0, 0)),
                ]  # fmt: skip
            self._commit(api, "register the custodian, participants and meters", registrations)
            expires = self._clock(api)[0] + LICENCE_YEARS * 365 * 86_400
            licence = tx.GrantLicence(self.custodian.address, tx.LicenceKind.CUSTODIAN, expires)
            self._commit(api, "license the custodian", [(erc, licence)])
            issues: list[tuple[PrivateKey, tx.Body]] = [
                (self.custodian, tx.IssueThb(p.address, THB_EACH_SATANG)) for p in self.people
            ]
            self._commit(api, "issue THB", issues + self._readings(api))
            return self._accounts(api)

    def _readings(self, api: Client) -> list[tuple[PrivateKey, tx.Body]]:
        """Each meter's first reading, at full output for the interval it was registered
        in, once the chain's clock has come within the skew allowance of its end."""
        first = max(int(api.get(f"/meters/{_text(m)}")["first_interval"]) for m in self.meters)
        while True:
            now, p = self._clock(api)
            ready = first + p["interval_seconds"] - p["reading_clock_skew_seconds"]
            if now >= ready:
                break
            self._check_deadline("wait for the meters' first interval to end")
            time.sleep(0.2)
        full = METER_CAPACITY_W * p["interval_seconds"] // 3600
        readings: list[tuple[PrivateKey, tx.Body]] = []
        for meter in self.meters:
            start = int(api.get(f"/meters/{_text(meter)}")["first_interval"])
            readings.append((meter, tx.MeterReading(start, 0, full)))
        return readings

    def _clock(self, api: Client) -> tuple[int, dict[str, Any]]:
        chain = api.get("/chain")
        return int(chain["clock"]), chain["params"]

    def _commit(self, api: Client, step: str, items: list[tuple[PrivateKey, tx.Body]]) -> None:
        """Sign (nonces tracked per signer), submit in one batch, wait for every one."""
        signed = [api.sign(key, body) for key, body in items]
        hashes = []
        for result in api.submit_batch(signed):
            if not result["accepted"]:
                raise RuntimeError(f"{step}: refused {result['code']}: {result['message']}")
            hashes.append(result["hash"])
        for tx_hash in hashes:
            receipt = api.wait(tx_hash, max(1.0, self.deadline - time.monotonic()))
            if receipt.status != "committed":
                raise RuntimeError(f"{step}: transaction {tx_hash} is {receipt.status}")

    def _check_deadline(self, step: str) -> None:
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"{step}: the devnet did not get there in time")

    def _accounts(self, api: Client) -> list[FundedAccount]:
        keys = self.directory / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        keystore.save_insecure_dev_key(keys / "custodian.key", self.custodian, overwrite=True)
        funded = []
        for i, (person, meter) in enumerate(zip(self.people, self.meters, strict=True), 1):
            key_file, meter_file = keys / f"dev-{i}.key", keys / f"dev-{i}-meter.key"
            keystore.save_insecure_dev_key(key_file, person, overwrite=True)
            keystore.save_insecure_dev_key(meter_file, meter, overwrite=True)
            balance = api.balance(person)
            funded.append(FundedAccount(f"dev-{i}", _text(person), str(key_file), _text(meter),
                                        str(meter_file), ZONE, balance.thb_satang,
                                        balance.grid_wh))  # fmt: skip
        write_accounts(self.directory, funded, _text(self.custodian), str(keys / "custodian.key"))
        return funded


def write_accounts(
    directory: Path, funded: list[FundedAccount], custodian: str, custodian_file: str
) -> Path:
    """accounts.json, written whole (a reader never sees half of it): it appears only once
    every participant is funded, so a script can wait for it."""
    document = {
        "participants": [asdict(a) for a in funded],
        "custodian": {"address": custodian, "key_file": custodian_file},
        "authorities": {
            code: str(authority_key_file(directory, code)) for code in (DISTRIBUTOR, REGULATOR)
        },
    }
    path = directory / ACCOUNTS_FILE
    partial = path.with_suffix(".json.tmp")
    partial.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    partial.replace(path)
    return path


def authority_key_file(directory: Path, code: str) -> Path:
    """Where a devnet keeps an authority's dev key: its validator's home, or keys/ for an
    authority that does not validate (devnet.homes.init_devnet)."""
    home = directory / code.lower() / "node_key.json"
    return home if home.exists() else directory / "keys" / f"{code.lower()}.key"


def _text(key: PrivateKey) -> str:
    return crypto.address_to_text(key.address)
