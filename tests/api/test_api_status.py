"""`GET /api/v1/status` and the SDK's typed `status()`, the admin checkpoint endpoint and
its guards, HTTPS with a certificate made in the test, and 429 with Retry-After. A real
one-validator node serves each (tests.api.test_api_harness); everything binds 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from gridtokenx import __version__
from gridtokenx.api import ApiSettings
from gridtokenx.api.limits import TokenBuckets
from gridtokenx.api.routes.admin import TOKEN_HEADER, _loopback
from gridtokenx.api.server import check_tls
from gridtokenx.cli.main import app
from gridtokenx.client import AsyncClient, Client, NodeStatus
from gridtokenx.node.home import ADMIN_COOKIE, Config, write_config
from gridtokenx.storage.store import Store
from gridtokenx.wire import crypto
from tests.api.test_api_harness import CHAIN, EGAT, LocalNode
from tests.devnet.test_devnet_processes import _wait


@pytest.fixture
def node(tmp_path: Path) -> Iterator[LocalNode]:
    """A node whose API knows its home (tmp_path), so its admin endpoints are on."""
    settings = ApiSettings(rate_per_second=10_000, rate_burst=10_000, home=tmp_path,
                           moniker="egat-1", genesis_hash="ab" * 32)  # fmt: skip
    with LocalNode(tmp_path / "data", settings) as running:
        assert _wait(lambda: running.on_loop(lambda: running.node.app.height) >= 2, 20)  # type: ignore[union-attr]
        yield running


def test_status_says_who_the_node_is_and_how_far_it_got(node: LocalNode) -> None:
    with node.client() as api:
        status = api.status()
        latest = api.block("latest")
    assert isinstance(status, NodeStatus)
    assert (status.version, status.chain_id, status.moniker) == (__version__, CHAIN, "egat-1")
    assert status.node_id == EGAT.address.hex()
    assert status.validator_address == crypto.address_to_text(EGAT.address)
    assert status.voting_power > 0  # the single validator
    assert status.latest_height >= 2 and status.latest_height <= latest["height"]
    if status.latest_height == latest["height"]:
        assert status.latest_hash == latest["hash"]
        assert status.latest_time == latest["header"]["time"]
    assert status.genesis_hash == "ab" * 32
    root = node.on_loop(lambda: node.node.app.store.genesis_root())  # type: ignore[union-attr]
    assert root is not None and status.genesis_root == root.hex()
    assert (status.catching_up, status.peer_height) == (False, 0)  # no peer has shown more
    assert (status.peers_inbound, status.peers_outbound, status.mempool_txs) == (0, 0, 0)
    assert 0 < status.uptime_s < 60


def test_async_client_status_and_the_openapi_schema(node: LocalNode) -> None:
    async def ask() -> NodeStatus:
        async with AsyncClient(node.url) as api:
            return await api.status()

    status = asyncio.run(ask())
    assert status.chain_id == CHAIN and status.node_id == EGAT.address.hex()
    spec = httpx.get(node.url + "/api/v1/openapi.json").json()
    ref = spec["paths"]["/api/v1/status"]["get"]["responses"]["200"]["content"]
    assert ref["application/json"]["schema"]["$ref"].endswith("/NodeStatus")
    documented = spec["components"]["schemas"]["NodeStatus"]["properties"]
    assert {"catching_up", "latest_height", "voting_power", "peers", "version"} <= set(documented)


# --- the admin checkpoint and its guards ---------------------------------------------------
def _checkpoint(node: LocalNode, name: str, token: str | None, **headers: str) -> httpx.Response:
    if token is not None:
        headers[TOKEN_HEADER] = token
    return httpx.post(node.url + "/api/v1/admin/checkpoint", json={"name": name},
                      headers=headers, timeout=30)  # fmt: skip


def test_a_checkpoint_through_the_api_is_the_store_at_one_height(
    node: LocalNode, tmp_path: Path
) -> None:
    token = (tmp_path / ADMIN_COOKIE).read_text()
    assert (tmp_path / ADMIN_COOKIE).stat().st_mode & 0o777 == 0o600
    made = _checkpoint(node, "first", token)
    assert made.status_code == 201, made.text
    answer = made.json()
    assert answer["path"] == str((tmp_path / "checkpoints" / "first").resolve())
    with Store(Path(answer["path"])) as copy:  # the node kept running meanwhile
        assert copy.height() == answer["height"] >= 2
        assert copy.load_state().root().hex() == answer["state_root"]
    again = _checkpoint(node, "first", token)
    assert again.status_code == 409 and again.json()["error"]["code"] == "EXISTS"


@pytest.mark.parametrize(
    ("name", "token", "headers", "status", "says"),
    [
        ("x", "", {}, 403, TOKEN_HEADER),
        ("x", "00" * 32, {}, 403, TOKEN_HEADER),
        ("x", None, {}, 403, TOKEN_HEADER),
        # uvicorn takes X-Forwarded-For from a loopback proxy as the client's address
        ("x", "cookie", {"x-forwarded-for": "203.0.113.9"}, 403, "loopback clients only"),
        ("x", "cookie", {"x-real-ip": "203.0.113.9"}, 403, "proxied"),
        ("x", "cookie", {"forwarded": "for=203.0.113.9"}, 403, "proxied"),
        ("../outside", "cookie", {}, 422, "name"),
        ("a/b", "cookie", {}, 422, "name"),
        (".hidden", "cookie", {}, 422, "name"),
    ],
)
def test_the_admin_endpoint_refuses_and_writes_nothing(
    node: LocalNode,
    tmp_path: Path,
    name: str,
    token: str | None,
    headers: dict[str, str],
    status: int,
    says: str,
) -> None:
    cookie = (tmp_path / ADMIN_COOKIE).read_text()
    answer = _checkpoint(node, name, cookie if token == "cookie" else token, **headers)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]["message"]
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "outside").exists()


def test_admin_endpoints_are_off_without_a_home_and_the_cookie_goes_with_the_server(
    tmp_path: Path,
) -> None:
    with LocalNode(tmp_path / "data") as bare:
        answer = _checkpoint(bare, "x", "anything")
        assert answer.status_code == 403 and "no home" in answer.json()["error"]["message"]
    settings = ApiSettings(home=tmp_path)
    with LocalNode(tmp_path / "data", settings):
        assert (tmp_path / ADMIN_COOKIE).is_file()
    assert not (tmp_path / ADMIN_COOKIE).exists()  # removed when the API stopped


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("10.0.0.5", False), ("::ffff:10.0.0.5", False), ("2001:db8::1", False),
     ("testclient", False)],
)  # fmt: skip
def test_only_loopback_clients_count_as_local(host: str, loopback: bool) -> None:
    assert _loopback(host) is loopback


# --- HTTPS ---------------------------------------------------------------------------------
def _self_signed(directory: Path, name_in_it: str = "") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (or only for the DNS name given) signed by its own key,
    valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gridtokenx test node")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name_in_it)]
                if name_in_it
                else [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, private = directory / "node.crt", directory / "node.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, private


def test_the_api_over_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, private = _self_signed(tmp_path)
    settings = ApiSettings(tls_cert=str(cert), tls_key=str(private))
    with LocalNode(tmp_path / "data", settings) as served:
        assert served.api is not None
        url = f"https://127.0.0.1:{served.api.port}"
        trusted = ssl.create_default_context(cafile=str(cert))
        with Client(url, verify=trusted) as api:
            assert api.status().chain_id == CHAIN
        with Client(url) as api, pytest.raises(httpx.ConnectError):  # not a public CA's
            api.status()
        with pytest.raises(httpx.HTTPError):  # plain HTTP gets no answer it can read
            httpx.get(f"http://127.0.0.1:{served.api.port}/api/v1/status", timeout=5)


def test_status_of_a_home_with_tls_trusts_that_homes_own_certificate(tmp_path: Path) -> None:
    """`gridtokenx status --home` dials the address its config names, so it pins the
    home's certificate and checks no host name: one issued for the node's public name
    works on loopback, where a default client refuses it."""
    cert, private = _self_signed(tmp_path, name_in_it="node1.egat.example")
    settings = ApiSettings(tls_cert=str(cert), tls_key=str(private))
    with LocalNode(tmp_path / "data", settings) as served:
        assert served.api is not None
        config = Config(1, (), api_port=served.api.port, api_tls_cert=str(cert),
                        api_tls_key=str(private))  # fmt: skip
        write_config(tmp_path, config)
        result = CliRunner().invoke(app, ["status", "--home", str(tmp_path), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["chain_id"] == CHAIN
        trusted = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{served.api.port}"
        with Client(url, verify=trusted) as api, pytest.raises(httpx.ConnectError, match="match"):
            api.status()  # the name is not 127.0.0.1


def test_tls_settings_that_cannot_work_are_refused_naming_the_setting(tmp_path: Path) -> None:
    cert, private = _self_signed(tmp_path)
    with pytest.raises(ValueError, match="set both or neither"):
        ApiSettings(tls_cert=str(cert))
    with pytest.raises(ValueError, match=r"api_tls_key .*missing\.key"):
        check_tls(ApiSettings(tls_cert=str(cert), tls_key=str(tmp_path / "missing.key")))
    with pytest.raises(ValueError, match=r"api_tls_cert .*not a PEM certificate"):
        check_tls(ApiSettings(tls_cert=str(private), tls_key=str(private)))
    (tmp_path / "other").mkdir()
    other, _ = _self_signed(tmp_path / "other")  # a certificate of another key
    with pytest.raises(ValueError, match="not a PEM certificate and its private key"):
        check_tls(ApiSettings(tls_cert=str(other), tls_key=str(private)))


# --- 429 with Retry-After ------------------------------------------------------------------
def test_token_buckets_say_how_long_until_a_token() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=0.5, burst=1, clock=lambda: now[0])
    assert buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(2.0)  # one token every 2 s
    now[0] = 1.5
    assert buckets.take("a") == pytest.approx(0.5)  # refused: nothing is spent
    now[0] = 2.0
    assert buckets.take("a") == 0


def test_a_rate_limited_request_gets_429_with_retry_after(tmp_path: Path) -> None:
    settings = ApiSettings(rate_per_second=0.25, rate_burst=2)
    with LocalNode(tmp_path / "data", settings) as limited, httpx.Client(timeout=10) as http:
        answers = [http.get(limited.url + "/api/v1/status") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.headers["retry-after"] in ("4", "3")  # 4 s a token, less what elapsed
    assert refused.headers["content-type"] == "application/json"
    error = refused.json()["error"]
    assert error["code"] == "RATE_LIMITED"
    assert f"retry after {refused.headers['retry-after']} s" in error["message"]


def test_the_status_genesis_hash_is_the_one_operators_compare(tmp_path: Path) -> None:
    """`GET /status` reports the hash `gridtokenx genesis hash` prints and `init
    --genesis-hash` checks (the tagged hash of the genesis content), not the file's bytes."""
    from gridtokenx.api.server import settings_of
    from gridtokenx.devnet.homes import init_devnet
    from gridtokenx.node.home import load_genesis, read_config

    (home,) = init_devnet(tmp_path, "gridtokenx-status-hash", 0, 20_000, validators=("EGAT",))
    settings = settings_of(read_config(home), home)
    assert settings.genesis_hash == load_genesis(home / "genesis.json").hash().hex()
    assert settings.genesis_hash != hashlib.sha256((home / "genesis.json").read_bytes()).hexdigest()
