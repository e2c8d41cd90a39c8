"""The genesis ceremony as five authorities and a coordinator run it: each authority makes
its key and exports a signed public document on its own "machine" (a directory of its
own), the coordinator builds the genesis from the documents alone, and every operator
inits with the genesis hash and gets the same genesis. The network it makes commits with
those keys as its validators (processes on 127.0.0.1, always stopped). Every refusal has
its code and writes nothing. No private key byte reaches the coordinator."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner, Result

from gridtokenx.cli.main import app
from gridtokenx.ledger import ceremony, genesis, validator_set
from gridtokenx.node import keystore
from gridtokenx.node.home import load_genesis, read_config, read_status
from gridtokenx.storage.store import open_application
from gridtokenx.wire import crypto
from tests.cli.test_errors import error_lines
from tests.conftest import free_base_port
from tests.devnet.test_devnet_processes import _height, _report, _start, _stop, _wait

runner = CliRunner()
CHAIN = "gridtokenx-ceremony-1"
GENESIS_TIME = 1_796_083_200  # 2026-12-01T00:00:00Z: past, or its validators would wait for it
ROLES = ceremony.ROLES
VALIDATING = ("EGAT", "MEA", "PEA", "ERC")  # NEPO joins at power 0, as on a devnet of four


def out(result: Result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def _passphrase(role: str) -> dict[str, str]:
    return {"GRIDTOKENX_PASSPHRASE": f"{role.lower()} operator's own passphrase"}


def _invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), env=env or {"GRIDTOKENX_PASSPHRASE": ""})


@dataclass
class Ceremony:
    machines: dict[str, Path]  # each authority's own directory: its key, its document, its home
    coordinator: Path  # what the coordinator received and wrote
    secrets: dict[str, bytes]  # each key's seed, read back on its machine only
    built: Result
    genesis_hash: str
    base_port: int


def _export(machine: Path, role: str, *extra: str) -> Result:
    made = _invoke("keys", "new", str(machine / "validator.key"), env=_passphrase(role))
    assert made.exit_code == 0, out(made)
    return _invoke("genesis", "authority", "--key", str(machine / "validator.key"), "--role",
                   role, "--chain-id", CHAIN, "--moniker", f"{role.lower()}-1", "--out",
                   str(machine / f"{role.lower()}.authority.json"), *extra,
                   env=_passphrase(role))  # fmt: skip


def _peers(ports: dict[str, int], documents: dict[str, Path], role: str) -> list[str]:
    peers = []
    for other, document in documents.items():
        if other != role and other in ports:
            key = ceremony.decode(document.read_bytes()).key()
            peers += ["--peer", f"127.0.0.1:{ports[other]}:{crypto.address_of(key).hex()}"]
    return peers


@pytest.fixture(scope="module")
def ceremony_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ceremony]:
    """The whole ceremony through the command line, once for the module's tests."""
    root = tmp_path_factory.mktemp("ceremony")
    machines = {role: root / f"host-{role.lower()}" for role in ROLES}
    secrets = {}
    for role, machine in machines.items():
        machine.mkdir()
        exported = _export(machine, role, *(("--power", "0") if role == "NEPO" else ()))
        assert exported.exit_code == 0, out(exported)
        key = keystore.load_key(
            machine / "validator.key", _passphrase(role)["GRIDTOKENX_PASSPHRASE"]
        )
        secrets[role] = key.seed
    coordinator = root / "coordinator"
    coordinator.mkdir()
    documents = []
    for role, machine in machines.items():  # only the public documents travel
        name = f"{role.lower()}.authority.json"
        shutil.copy(machine / name, coordinator / name)
        documents += ["--authority", str(coordinator / name)]
    built = _invoke("genesis", "build", "--chain-id", CHAIN, "--genesis-time",
                    "2026-12-01T00:00:00Z", *documents, "--power", "NEPO=0", "--out",
                    str(coordinator / "genesis.json"))  # fmt: skip
    assert built.exit_code == 0, out(built)
    hashed = _invoke("genesis", "hash", str(coordinator / "genesis.json"))
    assert hashed.exit_code == 0, out(hashed)
    base = free_base_port(len(VALIDATING))
    ports = {role: base + i for i, role in enumerate(VALIDATING)}
    paths = {role: coordinator / f"{role.lower()}.authority.json" for role in ROLES}
    for role, machine in machines.items():  # each operator, on its own machine
        shutil.copy(coordinator / "genesis.json", machine / "genesis.json")
        home = _init_validator(machine, role, hashed.stdout.strip(), ports, paths)
        assert home.exit_code == 0, out(home)
    yield Ceremony(machines, coordinator, secrets, built, hashed.stdout.strip(), base)


def _init_validator(
    machine: Path, role: str, genesis_hash: str, ports: dict[str, int], paths: dict[str, Path]
) -> Result:
    port = ports.get(role, max(ports.values()) + 1)
    return _invoke("init", "--home", str(machine / "home"), "--genesis",
                   str(machine / "genesis.json"), "--genesis-hash", genesis_hash, "--key",
                   str(machine / "validator.key"), "--listen-port", str(port),
                   *_peers(ports, paths, role), env=_passphrase(role))  # fmt: skip


def _public_keys(run: Ceremony) -> dict[str, bytes]:
    return {role: crypto.PrivateKey(seed).public_key for role, seed in run.secrets.items()}


def test_every_operator_inits_with_the_hash_and_holds_the_same_genesis(
    ceremony_run: Ceremony,
) -> None:
    run = ceremony_run
    written = (run.coordinator / "genesis.json").read_bytes()
    assert f"genesis hash {run.genesis_hash}" in out(run.built)
    assert run.genesis_hash == load_genesis(run.coordinator / "genesis.json").hash().hex()
    for role, machine in run.machines.items():
        home = machine / "home"
        assert (home / "genesis.json").read_bytes() == written
        key = keystore.load_key(home / "node_key.json", _passphrase(role)["GRIDTOKENX_PASSPHRASE"])
        assert key.seed == run.secrets[role]  # the validator runs with the key made there
        assert read_config(home).dial_all is (role == "NEPO")  # no power: a full node for now


def test_the_genesis_is_create_s_genesis_with_the_exported_keys(ceremony_run: Ceremony) -> None:
    """Everything but the keys (and the power agreed for NEPO) is what `genesis create`
    writes, so zones, parameters and the market work unchanged."""
    built = load_genesis(ceremony_run.coordinator / "genesis.json")
    created_file = ceremony_run.coordinator.parent / "created.json"
    created = _invoke("genesis", "create", "--insecure-dev-keys", "--chain-id", CHAIN,
                      "--genesis-time", str(GENESIS_TIME), "--out", str(created_file))  # fmt: skip
    assert created.exit_code == 0, out(created)
    keys = _public_keys(ceremony_run)
    expected = load_genesis(created_file)
    expected = msgspec.structs.replace(expected, authorities=tuple(
        msgspec.structs.replace(a, public_key=keys[a.code].hex(),
                                voting_power=0 if a.code == "NEPO" else a.voting_power)
        for a in expected.authorities))  # fmt: skip
    assert built == expected
    assert [a.weight for a in built.authorities] == [10_000, 8_000, 8_000, 7_000, 6_000]


def test_the_application_opens_on_it_with_the_exported_keys_as_validators(
    ceremony_run: Ceremony, tmp_path: Path
) -> None:
    spec = load_genesis(ceremony_run.coordinator / "genesis.json")
    app_ = open_application(spec, tmp_path / "data")
    try:
        validators = validator_set.for_height(app_.state, 1)
        assert app_.height == 0
    finally:
        app_.close()
    keys = _public_keys(ceremony_run)
    powers = genesis.STANDARD_POWER
    assert {v.public_key: v.power for v in validators.validators} == {
        keys[role]: powers[role] for role in VALIDATING
    }


def _leaks(data: bytes, seed: bytes) -> bool:
    secret = seed + crypto.PrivateKey(seed).public_key  # libsodium's 64-byte secret key
    forms = [seed, seed.hex().encode(), seed.hex().upper().encode(), base64.b64encode(seed),
             secret.hex().encode(), base64.b64encode(secret)]  # fmt: skip
    return any(form in data for form in forms)


def test_no_private_key_reaches_the_coordinator(ceremony_run: Ceremony) -> None:
    received = sorted(p.name for p in ceremony_run.coordinator.iterdir())
    assert received == sorted([*(f"{r.lower()}.authority.json" for r in ROLES), "genesis.json"])
    everything = b"".join(p.read_bytes() for p in ceremony_run.coordinator.iterdir())
    everything += ceremony_run.built.output.encode()
    for role, seed in ceremony_run.secrets.items():
        assert not _leaks(everything, seed), role
        assert crypto.PrivateKey(seed).public_key.hex().encode() in everything  # the control


@pytest.mark.process
def test_the_ceremony_s_network_commits_with_its_validators(ceremony_run: Ceremony) -> None:
    homes = [ceremony_run.machines[role] / "home" for role in VALIDATING]
    procs = {
        home: _start(home, **_passphrase(role))
        for home, role in zip(homes, VALIDATING, strict=True)
    }
    try:
        # 33,000 of power among the four: a height needs three of the exported keys.
        assert _wait(lambda: all(_height(h) >= 3 for h in homes), 60), _report(homes, procs)
        for home in homes:
            status = read_status(home)
            assert status is not None
            assert (status["chain_id"], status["genesis_hash"]) == (
                CHAIN,
                ceremony_run.genesis_hash,
            )
    finally:
        _stop(procs)


# --- refusals: each with its code, and nothing written ---------------------------------------


@pytest.fixture
def keys() -> dict[str, crypto.PrivateKey]:
    return {role: crypto.PrivateKey.generate() for role in ROLES}


def _document(key: crypto.PrivateKey, role: str, chain: str = CHAIN, **changes: object) -> bytes:
    """A document signed in-process (the command's own path is tested above), with
    `changes` made after signing."""
    power = genesis.STANDARD_POWER.get(role, 1)
    signed = ceremony.sign(key, chain, role, power, role.lower()) if role in ROLES else (
        _signed_unknown(key, chain, role, power))  # fmt: skip
    return msgspec.structs.replace(signed, **changes).encode()


def _signed_unknown(
    key: crypto.PrivateKey, chain: str, role: str, power: int
) -> ceremony.AuthorityDocument:
    """What `genesis authority` refuses to write: a validly signed document for a role the
    genesis does not have (hand-made by someone with the key)."""
    address = crypto.address_to_text(key.address)
    unsigned = ceremony.AuthorityDocument(
        1, chain, role, key.public_key.hex(), address, power, "", ""
    )
    return msgspec.structs.replace(unsigned, signature=key.sign(unsigned.signing_bytes()).hex())


def _build(folder: Path, documents: dict[str, bytes], *extra: str) -> Result:
    args = []
    for name, data in documents.items():
        (folder / name).write_bytes(data)
        args += ["--authority", str(folder / name)]
    return _invoke("genesis", "build", "--chain-id", CHAIN, "--genesis-time", str(GENESIS_TIME),
                   *args, "--out", str(folder / "genesis.json"), *extra)  # fmt: skip


def _standard(keys: dict[str, crypto.PrivateKey]) -> dict[str, bytes]:
    return {f"{role.lower()}.json": _document(keys[role], role) for role in ROLES}


def test_standard_powers_build_create_s_genesis(
    tmp_path: Path, keys: dict[str, crypto.PrivateKey]
) -> None:
    result = _build(tmp_path, _standard(keys))
    assert result.exit_code == 0, out(result)
    built = load_genesis(tmp_path / "genesis.json")
    assert built == genesis.thai(CHAIN, GENESIS_TIME, {r: k.public_key for r, k in keys.items()})
    devnet = genesis.devnet(CHAIN, GENESIS_TIME, genesis.dev_keys())
    assert msgspec.structs.replace(built, authorities=devnet.authorities) == devnet
    assert [a.voting_power for a in built.authorities] == [10_000, 8_000, 8_000, 7_000, 6_000]


def _other_key_signature(keys: dict[str, crypto.PrivateKey]) -> str:
    document = ceremony.AuthorityDocument(1, CHAIN, "EGAT", keys["EGAT"].public_key.hex(),
                                          crypto.address_to_text(keys["EGAT"].address),
                                          10_000, "egat", "")  # fmt: skip
    return keys["MEA"].sign(document.signing_bytes()).hex()


Keys = dict[str, crypto.PrivateKey]
Change = Callable[[Keys], dict[str, bytes | None]]


def _egat(chain: str = CHAIN, **changes: object) -> Change:
    """EGAT's document signed for `chain`, then changed."""
    return lambda k: {"egat.json": _document(k["EGAT"], "EGAT", chain, **changes)}


def _forged(k: Keys) -> dict[str, bytes | None]:
    return {"egat.json": _document(k["EGAT"], "EGAT", signature=_other_key_signature(k))}


def _mea_address(k: Keys) -> dict[str, bytes | None]:
    wrong = crypto.address_to_text(k["MEA"].address)
    return {"egat.json": _document(k["EGAT"], "EGAT", address=wrong)}


REFUSALS: dict[str, tuple[str, str, Change]] = {
    "tampered power": ("BAD_SIGNATURE", "changed after signing", _egat(voting_power=20_000)),
    "tampered chain": ("BAD_SIGNATURE", "changed after signing", _egat("x", chain_id=CHAIN)),
    "signed by another key": ("BAD_SIGNATURE", "not signed by its key", _forged),
    "garbled signature": ("BAD_SIGNATURE", "does not verify", _egat(signature="00" * 64)),
    "another chain": ("WRONG_CHAIN", "signed for chain 'other-1'", _egat("other-1")),
    "duplicate role": ("DUPLICATE_ROLE", "are both MEA",
                       lambda k: {"egat.json": _document(k["NEPO"], "MEA")}),
    "duplicate key": ("DUPLICATE_KEY", "have the same key",
                      lambda k: {"nepo.json": _document(k["MEA"], "NEPO")}),
    "unknown role": ("UNKNOWN_ROLE", "'PTT' is not an authority",
                     lambda k: {"ptt.json": _document(k["NEPO"], "PTT")}),
    "missing role": ("MISSING_AUTHORITY", "no document for NEPO", lambda k: {"nepo.json": None}),
    "power not agreed": ("POWER_MISMATCH", "ERC signed voting power 9000, the genesis gives 7000",
                         lambda k: {"erc.json": _signed_power(k["ERC"], "ERC", 9_000)}),
    "not a document": ("INVALID_AUTHORITY", "not an authority document",
                       lambda k: {"egat.json": b'{"hello": "world"}'}),
    "address not the key's": ("INVALID_AUTHORITY", "not the address of the public key",
                              _mea_address),
}  # fmt: skip


def _signed_power(key: crypto.PrivateKey, role: str, power: int) -> bytes:
    return ceremony.sign(key, CHAIN, role, power, "").encode()


@pytest.mark.parametrize("case", list(REFUSALS))
def test_build_refusals(tmp_path: Path, keys: dict[str, crypto.PrivateKey], case: str) -> None:
    code, message, change = REFUSALS[case]
    documents: dict[str, bytes | None] = {**_standard(keys), **change(keys)}
    given = {name: data for name, data in documents.items() if data is not None}
    result = _build(tmp_path, given)
    assert any(message in line for line in error_lines(result, code, 1)), result.stderr
    assert not (tmp_path / "genesis.json").exists()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == given  # nothing else changed


def test_a_power_the_coordinator_agreed_to_is_accepted(
    tmp_path: Path, keys: dict[str, crypto.PrivateKey]
) -> None:
    documents = {**_standard(keys), "erc.json": _signed_power(keys["ERC"], "ERC", 9_000)}
    result = _build(tmp_path, documents, "--power", "erc=9000")
    assert result.exit_code == 0, out(result)
    powers = {
        a.code: (a.voting_power, a.weight)
        for a in load_genesis(tmp_path / "genesis.json").authorities
    }
    assert powers["ERC"] == (9_000, 7_000)  # governance weight stays the standard one
    (tmp_path / "without").mkdir()
    without = _build(tmp_path / "without", documents)  # the coordinator did not agree to it
    error_lines(without, "POWER_MISMATCH", 1)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--power", "PTT=5"), "expected ROLE=N"),
        (("--power", "EGAT=lots"), "expected ROLE=N"),
        (("--power", "EGAT=100001"), "at most 100000"),
        (("--genesis-time", "tomorrow"), "expected unix seconds or ISO 8601"),
        (("--authority", "missing.json"), "does not exist"),
        (("--chain-id", "x" * 65), "must be 1-64 characters"),
    ],
)
def test_build_bad_input(
    tmp_path: Path, keys: dict[str, crypto.PrivateKey], extra: tuple[str, ...], message: str
) -> None:
    result = _build(tmp_path, _standard(keys), *extra)
    assert message in error_lines(result, "BAD_INPUT", 2)[0]
    assert not (tmp_path / "genesis.json").exists()


def test_build_never_writes_over_a_genesis(
    tmp_path: Path, keys: dict[str, crypto.PrivateKey]
) -> None:
    (tmp_path / "genesis.json").write_bytes(b"the coordinator's earlier file")
    result = _build(tmp_path, _standard(keys))
    assert "exists" in error_lines(result, "EXISTS", 1)[0]
    assert (tmp_path / "genesis.json").read_bytes() == b"the coordinator's earlier file"


def test_export_refusals_write_nothing(tmp_path: Path) -> None:
    key_file = tmp_path / "validator.key"
    keystore.save_key(key_file, crypto.PrivateKey.generate(), "right",
                      opslimit=keystore.MIN_OPSLIMIT, memlimit=keystore.MIN_MEMLIMIT)  # fmt: skip

    def export(*extra: str, passphrase: str = "right") -> Result:
        return _invoke("genesis", "authority", "--key", str(key_file), "--chain-id", CHAIN,
                       "--out", str(tmp_path / "doc.json"), *extra,
                       env={"GRIDTOKENX_PASSPHRASE": passphrase})  # fmt: skip

    unknown = export("--role", "PTT")
    assert "'PTT' is not an authority of the genesis (EGAT, MEA, PEA, ERC, NEPO)" in (
        error_lines(unknown, "BAD_INPUT", 2)[0])  # fmt: skip
    assert (
        "must be 0-100000"
        in error_lines(export("--role", "EGAT", "--power", "-1"), "BAD_INPUT", 2)[0]
    )
    assert (
        "wrong passphrase"
        in error_lines(export("--role", "EGAT", passphrase="wrong"), "KEYSTORE", 1)[0]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["validator.key"]
    made = export("--role", "mea")
    assert made.exit_code == 0, out(made)
    document = ceremony.decode((tmp_path / "doc.json").read_bytes())
    assert (document.role, document.voting_power) == ("MEA", 8_000)  # the standard power
    ceremony.check(document, CHAIN)
    again = export("--role", "MEA")
    assert "exists" in error_lines(again, "EXISTS", 1)[0]


# --- the genesis hash ------------------------------------------------------------------------


def test_the_hash_is_of_the_content_not_the_json_layout(tmp_path: Path) -> None:
    spec = genesis.devnet(CHAIN, GENESIS_TIME, genesis.dev_keys())
    (tmp_path / "pretty.json").write_bytes(spec.encode())
    document = json.loads(spec.encode())
    reordered = dict(reversed(list(document.items())))
    (tmp_path / "compact.json").write_text(json.dumps(reordered, separators=(",", ":")) + "\r\n")
    later = {**document, "genesis_time": GENESIS_TIME + 1}
    (tmp_path / "later.json").write_text(json.dumps(later))
    hashes = {}
    for name in ("pretty.json", "compact.json", "later.json"):
        result = _invoke("genesis", "hash", str(tmp_path / name))
        assert result.exit_code == 0, out(result)
        hashes[name] = result.stdout.strip()
    assert hashes["pretty.json"] == hashes["compact.json"] == spec.hash().hex()
    assert hashes["later.json"] != hashes["pretty.json"]
    assert len(bytes.fromhex(hashes["pretty.json"])) == 32
    assert spec.hash() == crypto.tagged_hash(b"GridTokenX/genesis", msgspec.msgpack.encode(spec))


def test_init_refuses_a_genesis_with_another_hash(tmp_path: Path) -> None:
    spec = genesis.devnet(CHAIN, GENESIS_TIME, genesis.dev_keys())
    (tmp_path / "genesis.json").write_bytes(spec.encode())
    other = msgspec.structs.replace(spec, genesis_time=GENESIS_TIME + 1).hash().hex()

    def init(genesis_hash: str) -> Result:
        return _invoke("init", "--home", str(tmp_path / "home"), "--genesis",
                       str(tmp_path / "genesis.json"), "--genesis-hash", genesis_hash,
                       env={"GRIDTOKENX_PASSPHRASE": "pw"})  # fmt: skip

    mismatch = init(other)
    (said,) = error_lines(mismatch, "GENESIS_HASH_MISMATCH", 1)
    assert f"has genesis hash {spec.hash().hex()}, not {other}" in said
    assert "64 hex digits" in error_lines(init("abc"), "BAD_INPUT", 2)[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["genesis.json"]  # no home
    made = init(spec.hash().hex().upper())
    assert made.exit_code == 0, out(made)
    assert f"genesis {spec.hash().hex()}" in out(made)


def test_create_and_validate_print_the_same_hash(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    created = _invoke("genesis", "create", "--insecure-dev-keys", "--out", str(path))
    validated = _invoke("genesis", "validate", str(path))
    hashed = _invoke("genesis", "hash", str(path))
    assert hashed.exit_code == 0, out(hashed)
    for result in (created, validated):
        assert result.exit_code == 0, out(result)
        assert f"genesis hash {hashed.stdout.strip()}" in out(result)
