"""The API's own documents: every operation in /api/v1/openapi.json has a typed success
schema (no bare "object"), addresses and hashes carry their patterns, and the browsable
/docs (Swagger UI) and /redoc pages load everything they reference from the node itself,
under the dashboard's Content-Security-Policy. The Chromium tests load both pages with
every request to anywhere but the node refused, as on a machine without internet, and
check that they render every operation. A real one-validator node serves each
(tests.api.test_api_harness); everything binds 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridtokenx.api.dashboard import HEADERS, STATIC
from gridtokenx.api.docs import CSP, REDOC_HEADERS
from gridtokenx.api.shapes import ADDRESS_PATTERN, HASH_PATTERN
from gridtokenx.wire import crypto
from tests.api.browser import CHROMIUM, chromium
from tests.api.test_api_harness import EGAT, LocalNode

ADDRESS_FIELDS = ("address", "owner", "buyer", "seller", "holder", "proposer", "issued_to")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNode]:
    with LocalNode(tmp_path_factory.mktemp("docs") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def spec(node: LocalNode) -> dict[str, Any]:
    return httpx.get(f"{node.url}/api/v1/openapi.json", timeout=10).json()  # type: ignore[no-any-return]


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_operation_has_a_typed_success_schema(spec: dict[str, Any]) -> None:
    untyped = []
    for method, path, operation in operations(spec):
        (success,) = [code for code in operation["responses"] if code.startswith("2")]
        content = operation["responses"][success].get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        model = resolve(spec, schema)
        if not model.get("properties") or model.get("additionalProperties") is True:
            untyped.append(f"{method} {path}")
    assert untyped == []
    assert len(list(operations(spec))) >= 37
    # One model per name: two models of one name would get mangled, unreadable names.
    assert [name for name in spec["components"]["schemas"] if "__" in name] == []


def test_addresses_and_hashes_carry_their_patterns(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for model in ("Trade", "Order", "Certificate", "Meter", "Participant", "Account"):
        for name, field in schemas[model]["properties"].items():
            if name in ADDRESS_FIELDS:
                assert field["pattern"] == ADDRESS_PATTERN, (model, name)
    header = schemas["Header"]["properties"]
    assert header["proposer"]["pattern"] == ADDRESS_PATTERN
    assert header["state_root"]["pattern"] == HASH_PATTERN
    assert schemas["Block"]["properties"]["txs"]["items"]["pattern"] == HASH_PATTERN
    assert schemas["TxStatus"]["properties"]["hash"]["pattern"] == HASH_PATTERN
    # Every address parameter says the form, not "string, 3-64".
    for method, path, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter["name"] in (*ADDRESS_FIELDS, "account", "after") and (
                "gtx" in parameter.get("description", "")
            ):
                assert parameter["schema"]["pattern"] == ADDRESS_PATTERN, (method, path)
    account = spec["paths"]["/api/v1/accounts/{address}"]["get"]["parameters"][0]
    assert account["schema"]["pattern"] == ADDRESS_PATTERN
    # The pattern is the codec's: a real address matches, and so does nothing else.
    assert re.match(ADDRESS_PATTERN, crypto.address_to_text(EGAT.address))
    assert not re.match(ADDRESS_PATTERN, crypto.address_to_text(EGAT.address).upper())


class References(HTMLParser):
    """The scripts, styles and other files a page refers to."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url", "data-spec-url") and value:
                self.found.append(value)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_everything_from_the_node(node: LocalNode, page: str) -> None:
    with httpx.Client(base_url=node.url, timeout=10) as http:
        answer = http.get(page)
        assert answer.status_code == 200
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "unsafe" not in policy
        assert policy == (REDOC_HEADERS if page == "/redoc" else HEADERS)[CSP]
        parser = References()
        parser.feed(answer.text)
        assert len(parser.found) >= 2 and "http" not in answer.text
        for reference in (found for found in parser.found if found != "data:,"):
            assert reference.startswith("/"), reference  # this node, never a CDN
            got = http.get(reference)
            assert got.status_code == 200 and len(got.content) > 100, reference


def test_every_vendored_file_has_its_licence_and_origin() -> None:
    vendor = STATIC / "vendor"
    notice = (vendor / "NOTICE").read_text()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        assert name in notice
    for licence in ("swagger-ui.LICENSE", "redoc.LICENSE"):
        assert (vendor / licence).stat().st_size > 500 and licence in notice


# --- in Chromium, with the internet unreachable ---------------------------------------------
def _browse(node: LocalNode, path: str, ready: str, count: str) -> tuple[int, list[str], list[str]]:
    """Load `path` in Chromium with every request outside the node refused; wait for the
    `ready` selector; return how many `count` elements render, the console errors and the
    refused URLs."""
    from playwright.sync_api import Route

    errors: list[str] = []
    refused: list[str] = []

    def route(route: Route) -> None:
        if route.request.url.startswith(node.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with chromium() as browser:
        page = browser.new_page()
        page.route("**/*", route)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(node.url + path)
        page.wait_for_selector(ready, timeout=30_000)
        shown = page.locator(count).count()
    return shown, errors, refused


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
def test_swagger_ui_renders_every_operation_offline(node: LocalNode, spec: dict[str, Any]) -> None:
    shown, errors, refused = _browse(node, "/docs", ".opblock", ".opblock")
    assert shown == len(list(operations(spec)))
    assert refused == [] and errors == []


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
def test_redoc_renders_every_operation_offline(node: LocalNode, spec: dict[str, Any]) -> None:
    """Redoc's sidebar shows the Redocly logo from its CDN: the page's policy blocks it (the
    one error in the console), so nothing leaves the machine."""
    shown, errors, refused = _browse(
        node, "/redoc", "[data-section-id^='operation/']", "[data-section-id^='operation/']"
    )
    assert shown == len(list(operations(spec)))
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert set(refused) <= {logo}
    assert [e for e in errors if not (logo in e and "Content Security Policy" in e)] == []
