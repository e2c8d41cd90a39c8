"""A node's config.toml (node.config_file, node.home): every setting written with its
comment and default and read back exactly; unknown keys, wrong types and refused values
named by their dotted key and file; GRIDTOKENX_<SECTION>_<KEY> overrides and their errors;
`gridtokenx config show/check/migrate`; homes that still have a config.json. The process
tests start `node start` on 127.0.0.1 with bounded waits and always stop it."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gridtokenx.cli.main import app
from gridtokenx.devnet.homes import init_devnet
from gridtokenx.node.config_file import ConfigError, Layout, Setting
from gridtokenx.node.config_values import PEER_LIST, bare, parse_peer
from gridtokenx.node.home import (
    LAYOUT,
    Config,
    HomeError,
    load_home,
    read_config,
    read_status,
    without_overrides,
    write_config,
)
from gridtokenx.p2p import transport
from gridtokenx.p2p.connection import FRAME_OVERHEAD, PeerSettings
from tests.cli.test_errors import error_lines
from tests.conftest import free_base_port
from tests.devnet.test_devnet_processes import _height, _start, _stop, _wait

runner = CliRunner()
PEER_ID = "ab" * 20


def _config(**changes: Any) -> Config:
    return msgspec.structs.replace(Config(26656, (("10.0.0.2", 26656, PEER_ID),)), **changes)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A one-validator devnet home, as `gridtokenx devnet` writes it (config.toml)."""
    (made,) = init_devnet(tmp_path, "gridtokenx-config", 0, free_base_port(1),
                          validators=("EGAT",))  # fmt: skip
    return made


# --- the file: every setting, its comment, its section ---------------------------------------
def test_every_setting_has_a_comment_and_appears_once_with_its_default() -> None:
    """The guard for fields added later: one without a description fails here."""
    text = LAYOUT.render(_config())
    assert text.startswith("# GridTokenX node configuration")
    section, seen = "", []
    for block in text.split("\n\n"):
        *comments, last = block.strip("\n").splitlines()
        if last.startswith("["):
            section = last.strip("[]")
        elif not last.startswith("#"):
            s = LAYOUT.by_name[f"{section}.{last.split(' = ')[0]}".strip(".")]
            seen.append(s.name)
            assert s.description, f"{s.path} has no description (msgspec.Meta)"
            if s.default is not msgspec.NODEFAULT:
                said = comments.pop().removeprefix("# default: ")
                assert msgspec.convert(tomllib.loads(f"v = {said}")["v"], s.type) == s.default
            assert " ".join(c.removeprefix("# ") for c in comments) == s.description
    assert seen == [s.name for s in LAYOUT.settings]
    doc = tomllib.loads(text)
    keys = [f"{k}.{kk}" if isinstance(v, dict) else k for k, v in doc.items()
            for kk in (v if isinstance(v, dict) else [k])]  # fmt: skip
    assert keys == [s.name for s in LAYOUT.settings]  # every field, once, in section order


def test_sections_read_naturally() -> None:
    doc = tomllib.loads(LAYOUT.render(_config()))
    assert next(iter(doc)) == "moniker" and "log_format" in doc and "log_level" in doc
    sections = [name for name in doc if isinstance(doc[name], dict)]
    assert sections == ["p2p", "consensus", "api", "metrics", "storage", "clock"]
    assert {"listen_port", "listen_host", "external_host", "peers", "max_peers",
            "max_per_ip", "write_timeout_s"} <= doc["p2p"].keys()  # fmt: skip
    assert doc["consensus"].keys() == {"propose_ms", "prevote_ms", "precommit_ms", "block_ms",
                                       "min_block_ms", "build_budget_ms"}  # fmt: skip
    assert doc["api"]["port"] == 0 and doc["api"]["host"] == "127.0.0.1"
    assert doc["metrics"] == {"port": 0, "host": "127.0.0.1"}
    assert doc["storage"] == {"keep_blocks": 0, "snapshot_interval": 1000, "snapshot_keep": 2,
                              "state_sync": False, "state_sync_behind": 3600,
                              "cache_mb": 512, "mmap_reads": True,
                              "read_threads": 16}  # fmt: skip
    assert doc["clock"] == {"origin": 0, "speed": 1.0}
    assert doc["p2p"]["peers"] == [f"10.0.0.2:26656:{PEER_ID}"]  # as `init --peer` takes it


class TlsSettings(msgspec.Struct, frozen=True):
    """TLS for the API."""

    cert_file: Annotated[str, msgspec.Meta(description="The certificate, PEM.")] = ""


class Grown(Config, frozen=True):
    """Config as other work may grow it: new fields land in a section without a template."""

    log_format: Annotated[str, msgspec.Meta(description="plain or json.")] = "plain"
    api_tls_key_file: Annotated[str, msgspec.Meta(description="The API's TLS key.")] = ""
    metrics_namespace: Annotated[str, msgspec.Meta(description="Series prefix.")] = "gtx"
    tls: Annotated[TlsSettings, msgspec.Meta(description="TLS.")] = TlsSettings()
    log_fields: Annotated[dict[str, str], msgspec.Meta(description="Extra fields.")] = (
        msgspec.field(default_factory=dict)
    )
    api_client_ca: Annotated[str | None, msgspec.Meta(description="A CA, or none.")] = None


def test_a_field_added_later_finds_its_section_and_round_trips() -> None:
    layout = Layout(Grown)
    names = {s.path: s.name for s in layout.settings}
    assert names["log_format"] == "log_format"  # top level, like CometBFT's log_format
    assert names["api_tls_key_file"] == "api.tls_key_file"
    assert names["metrics_namespace"] == "metrics.namespace"
    assert names["tls.cert_file"] == "tls.cert_file"
    assert layout.by_name["api.tls_key_file"].env == "GRIDTOKENX_API_TLS_KEY_FILE"
    grown = Grown(1, (), log_format="json", api_tls_key_file="/k", tls=TlsSettings("/c"),
                  log_fields={"site": "Mae Moh", "a b": "c"})  # fmt: skip
    text = layout.render(grown)
    assert "# TLS for the API.\n[tls]" in text and "# The API's TLS key." in text
    assert "\n# client_ca = (not set)\n" in text  # TOML has no null: the default stands
    assert layout.parse(text, "config.toml") == grown
    with_ca = msgspec.structs.replace(grown, api_client_ca="/ca.pem")
    assert layout.parse(layout.render(with_ca), "config.toml") == with_ca


def test_two_fields_on_one_key_are_refused_when_the_layout_is_made() -> None:
    class Clash(Config, frozen=True):
        p2p_max_peers: int = 0  # [p2p] max_peers, which PeerSettings has

    with pytest.raises(TypeError, match="two fields map onto one config key"):
        Layout(Clash)


# --- round trip -----------------------------------------------------------------------------
def _strategy(setting: Setting) -> st.SearchStrategy[Any]:
    """Any value the setting's type allows (PeerSettings' own checks are `assume`d)."""
    if bare(setting.type) == PEER_LIST:
        peer = st.tuples(st.text(min_size=1), st.integers(1, 65_535),
                         st.binary(min_size=20, max_size=20).map(bytes.hex))  # fmt: skip
        return st.lists(peer, max_size=3).map(tuple)
    if setting.parent == "p2p" and bare(setting.type) is int:  # a frame at least
        return st.integers(transport.MAX_FRAME + FRAME_OVERHEAD, 2**40)
    return _of(mi.type_info(setting.type))


def _of(info: mi.Type) -> st.SearchStrategy[Any]:
    if isinstance(info, mi.Metadata):
        return _of(info.type)
    if isinstance(info, mi.BoolType):
        return st.booleans()
    if isinstance(info, mi.IntType):
        low = info.ge if info.ge is not None else 0 if info.gt is None else info.gt + 1
        return st.integers(low, info.le if info.le is not None else 2**40)
    if isinstance(info, mi.FloatType):
        return st.floats(min_value=info.gt or 0.0, max_value=1e12, exclude_min=True)
    if isinstance(info, mi.StrType):
        return st.text()
    assert isinstance(info, mi.VarTupleType), info
    return st.lists(_of(info.item_type), max_size=3).map(tuple)


@st.composite
def configs(draw: st.DrawFn) -> Config:
    values = {s: draw(_strategy(s)) for s in LAYOUT.settings}
    try:
        p2p = PeerSettings(**{s.field: v for s, v in values.items() if s.parent == "p2p"})
    except ValueError:
        assume(False)
    return Config(**{s.field: v for s, v in values.items() if not s.parent}, p2p=p2p)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_any_config_round_trips_through_the_file(config: Config) -> None:
    assert LAYOUT.parse(LAYOUT.render(config), "config.toml") == config


def test_write_then_read_gives_the_same_config_in_a_home(tmp_path: Path) -> None:
    """Every field away from its default, nested PeerSettings included."""
    changed = {}
    for s in LAYOUT.settings:
        if not s.parent:
            value = s.default if s.default is not msgspec.NODEFAULT else None
            changed[s.field] = _other_than(value)
    p2p = PeerSettings(**{
        s.field: (PEER_ID,) if s.field.endswith("_peer_ids") else _other_than(s.default)
        for s in LAYOUT.settings if s.parent
    })  # fmt: skip
    config = Config(**(changed | {"p2p": p2p, "listen_port": 26_000, "clock_speed": 3.5}))
    assert all(_value(config, s) != s.default for s in LAYOUT.settings)
    write_config(tmp_path, config)
    assert read_config(tmp_path) == config
    assert not list(tmp_path.glob(".*"))  # the staging file was renamed into place


def _other_than(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "x"
    return (("10.0.0.9", 26656, PEER_ID),) if value is None else ("https://a.example",)


def _value(config: Config, s: Setting) -> Any:
    return getattr(config.p2p if s.parent else config, s.field)


# --- strict reading -------------------------------------------------------------------------
def _problems(text: str, environ: dict[str, str] | None = None) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as refused:
        LAYOUT.parse(text, "config.toml", environ)
    return refused.value.problems


TEXT = LAYOUT.render(_config())


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("max_peers = 50", "max_peer = 50",
         "config.toml: unknown key p2p.max_peer (did you mean p2p.max_peers?)"),
        ("max_peers = 50", 'max_peers = "fifty"',
         'config.toml: p2p.max_peers must be an integer, not "fifty"'),
        ("[api]\n", "[apii]\n", "config.toml: unknown key apii.port (did you mean api.port?)"),
        ("moniker = \"\"", "monicker = \"\"",
         "config.toml: unknown key monicker (did you mean moniker?)"),
        ("port = 0", "port = 70000", "config.toml: api.port must be an integer from 0 to 65535,"
         " not 70000"),
        ("dial_all = false", "dial_all = 0", "config.toml: p2p.dial_all must be true or false,"
         " not 0"),
        ("cors_origins = []", "cors_origins = \"https://a\"",
         'config.toml: api.cors_origins must be an array of strings, not "https://a"'),
        ("max_connections = 512", "max_connections = 0",
         "config.toml: api.max_connections must be an integer of at least 1, not 0"),
        ("speed = 1.0", "speed = -2.0", "config.toml: clock.speed must be a number above 0,"
         " not -2.0"),
        (f'"10.0.0.2:26656:{PEER_ID}"', '"10.0.0.2:26656"',
         'config.toml: p2p.peers must be an array of "HOST:PORT:PEERID" strings (PEERID: 40 hex'
         ' digits), not ["10.0.0.2:26656"]'),
        ("tx_queue_bytes = 16777216", "tx_queue_bytes = 1",
         "config.toml: p2p.tx_queue_bytes = 1 refused: a send queue must hold one frame of"),
        ("listen_port = 26656\n", "", "config.toml: p2p.listen_port is missing"),
        ("block_ms = 1000", "block_ms = 1000\nblock_ms = 2",
         "config.toml: not valid TOML: Cannot overwrite a value"),
    ],
)  # fmt: skip
def test_a_bad_key_or_value_is_refused_with_its_dotted_name(
    old: str, new: str, problem: str
) -> None:
    assert old in TEXT
    found = _problems(TEXT.replace(old, new, 1))
    assert found[0].startswith(problem), found
    assert len(found) == 1 or old == "[api]\n"  # each key of [apii] is unknown


def test_a_section_given_as_a_value_is_refused() -> None:
    assert _problems("clock = 5\n[p2p]\nlisten_port = 1\npeers = []\n") == (
        "config.toml: clock must be a table ([clock]), not a value",
    )


def test_every_problem_is_reported_at_once() -> None:
    text = TEXT.replace("max_peers = 50", "max_peer = 50")
    text = text.replace("block_ms = 1000", "block_ms = 1.5")
    assert _problems(text, {"GRIDTOKENX_API_PORT": "x"}) == (
        "config.toml: unknown key p2p.max_peer (did you mean p2p.max_peers?)",
        "config.toml: consensus.block_ms must be an integer, not 1.5",
        'GRIDTOKENX_API_PORT must be an integer from 0 to 65535, not "x"',
    )


def test_a_refused_config_stops_load_home_before_anything_opens(home: Path) -> None:
    text = (home / "config.toml").read_text()
    (home / "config.toml").write_text(text.replace("[p2p]", "[p2p]\nmax_peer = 1"))
    before = sorted(p.name for p in home.rglob("*"))
    with pytest.raises(HomeError, match=r"config\.toml: unknown key p2p\.max_peer \(did you"):
        load_home(home)
    assert sorted(p.name for p in home.rglob("*")) == before
    assert (home / "config.toml").read_text() == text.replace("[p2p]", "[p2p]\nmax_peer = 1")


# --- environment overrides ------------------------------------------------------------------
def test_environment_overrides_each_kind_of_setting() -> None:
    environ = {
        "GRIDTOKENX_P2P_LISTEN_HOST": "0.0.0.0",
        "GRIDTOKENX_API_PORT": "8080",
        "GRIDTOKENX_BASE_MONIKER": "123",  # a string stays a string
        "GRIDTOKENX_P2P_DIAL_ALL": "true",
        "GRIDTOKENX_CLOCK_SPEED": "2",  # an integer for a float
        "GRIDTOKENX_API_CORS_ORIGINS": "https://a.example, https://b.example",
        "GRIDTOKENX_P2P_PEERS": f"h1:1:{PEER_ID},[::1]:2:{'CD' * 20}",
        "GRIDTOKENX_P2P_MAX_PEERS": "1_000",
        "GRIDTOKENX_PASSPHRASE": "not a setting",
        "GRIDTOKENX_NODE": "http://127.0.0.1:26850",
        "GRIDTOKENX_KEY": "/k",
        "PATH": "/bin",
    }
    config = LAYOUT.parse(TEXT, "config.toml", environ)
    assert config == _config(
        listen_host="0.0.0.0", api_port=8080, moniker="123", dial_all=True, clock_speed=2.0,
        api_cors_origins=("https://a.example", "https://b.example"),
        peers=(("h1", 1, PEER_ID), ("[::1]", 2, "cd" * 20)), p2p=PeerSettings(max_peers=1000),
    )  # fmt: skip
    assert LAYOUT.parse(TEXT, "config.toml", {"GRIDTOKENX_API_CORS_ORIGINS": ""}) == _config()


def test_unset_variables_change_nothing(home: Path) -> None:
    assert read_config(home, {}) == read_config(home) == read_config(home, {"HOME": "/root"})


@pytest.mark.parametrize(
    ("var", "value", "problem"),
    [
        ("GRIDTOKENX_P2P_MAX_PEERS", "fifty",
         'GRIDTOKENX_P2P_MAX_PEERS must be an integer, not "fifty"'),
        ("GRIDTOKENX_API_PORT", "99999",
         "GRIDTOKENX_API_PORT must be an integer from 0 to 65535, not 99999"),
        ("GRIDTOKENX_P2P_DIAL_ALL", "yes",
         'GRIDTOKENX_P2P_DIAL_ALL must be true or false, not "yes"'),
        ("GRIDTOKENX_P2P_MAX_PER_IP", "0",
         "GRIDTOKENX_P2P_MAX_PER_IP = 0 refused: p2p limits and timeouts must be positive"),
        ("GRIDTOKENX_API_PROT", "1",
         "GRIDTOKENX_API_PROT: no such config setting (did you mean GRIDTOKENX_API_PORT?)"),
        ("GRIDTOKENX_BASE_MONIKERS", "x",
         "GRIDTOKENX_BASE_MONIKERS: no such config setting (did you mean"
         " GRIDTOKENX_BASE_MONIKER?)"),
        ("GRIDTOKENX_API_PORT", "1\nmoniker = 2", 'GRIDTOKENX_API_PORT must be an integer'),
    ],
)  # fmt: skip
def test_a_bad_variable_is_refused_by_name(var: str, value: str, problem: str) -> None:
    (found,) = _problems(TEXT, {var: value})
    assert found.startswith(problem), found


def test_no_other_gridtokenx_variable_can_be_taken_for_a_setting() -> None:
    """The rule: GRIDTOKENX_ + a section name + _ is a config variable. Every other
    GRIDTOKENX_ name the code reads (the passphrase, the client's node and key) must not
    start so, or it would be refused as a misspelt setting."""
    src = Path(__file__).parents[2] / "src"
    names = set()
    for path in src.rglob("*.py"):
        names |= set(re.findall(r"GRIDTOKENX_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    others = names - LAYOUT.by_env.keys()  # the examples in docstrings are real settings
    assert {"GRIDTOKENX_PASSPHRASE", "GRIDTOKENX_NODE", "GRIDTOKENX_KEY"} <= others
    assert not {n for n in others if n.startswith(LAYOUT.env_prefixes)}


def test_devnet_processes_get_no_config_variables() -> None:
    environ = {"GRIDTOKENX_API_PORT": "8080", "GRIDTOKENX_PASSPHRASE": "p", "PATH": "/bin",
               "GRIDTOKENX_P2P_TYPO": "1"}  # fmt: skip
    assert without_overrides(environ) == {"GRIDTOKENX_PASSPHRASE": "p", "PATH": "/bin"}


# --- legacy config.json ---------------------------------------------------------------------
def _make_legacy(home: Path) -> Config:
    """The home as an older `gridtokenx init` wrote it: config.json, no config.toml."""
    config = read_config(home)
    (home / "config.json").write_bytes(msgspec.json.encode(config))
    (home / "config.toml").unlink()
    return config


def test_a_config_json_home_is_read_as_strictly(home: Path) -> None:
    config = _make_legacy(home)
    assert read_config(home) == config
    assert read_config(home, {"GRIDTOKENX_API_PORT": "8080"}).api_port == 8080
    doc = json.loads((home / "config.json").read_text())
    doc["p2p"]["max_peer"] = 1
    doc["api_port"] = "x"
    (home / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as refused:
        read_config(home)
    assert refused.value.problems == (
        f"{home / 'config.json'}: unknown key p2p.max_peer (did you mean p2p.max_peers?)",
        f'{home / "config.json"}: api_port must be an integer from 0 to 65535, not "x"',
    )


def test_a_home_with_both_files_is_refused(home: Path) -> None:
    (home / "config.json").write_bytes(msgspec.json.encode(read_config(home)))
    with pytest.raises(ConfigError, match=r"has both config\.toml and config\.json"):
        read_config(home)


def test_config_migrate_writes_toml_and_keeps_the_json(home: Path) -> None:
    config = _make_legacy(home)
    legacy = (home / "config.json").read_bytes()
    result = runner.invoke(app, ["config", "migrate", "--home", str(home)])
    assert result.exit_code == 0, result.stderr
    assert read_config(home) == config
    assert (home / "config.json.bak").read_bytes() == legacy
    assert not (home / "config.json").exists()
    again = runner.invoke(app, ["config", "migrate", "--home", str(home)])
    assert "config.toml exists" in error_lines(again, "EXISTS", 1)[0]


def test_config_migrate_leaves_a_bad_json_alone(home: Path) -> None:
    _make_legacy(home)
    (home / "config.json").write_text('{"listen_port": 1, "peers": [], "max_peers": 3}')
    result = runner.invoke(app, ["config", "migrate", "--home", str(home)])
    (message,) = error_lines(result, "INVALID_HOME", 1)
    assert "unknown key max_peers (did you mean p2p.max_peers?)" in message
    assert not (home / "config.toml").exists() and (home / "config.json").exists()


# --- config show / check --------------------------------------------------------------------
def test_config_show_prints_the_effective_config_which_parses_back(home: Path) -> None:
    env = {"GRIDTOKENX_API_PORT": "8080", "GRIDTOKENX_P2P_LISTEN_HOST": "0.0.0.0"}
    result = runner.invoke(app, ["config", "show", "--home", str(home)], env=env)
    assert result.exit_code == 0, result.stderr
    expected = msgspec.structs.replace(read_config(home), api_port=8080, listen_host="0.0.0.0")
    assert LAYOUT.parse(result.stdout, "shown") == expected
    assert "port = 8080  # from GRIDTOKENX_API_PORT" in result.stdout
    shown = runner.invoke(app, ["config", "show", "--home", str(home), "--json"], env=env)
    assert shown.exit_code == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["api"]["port"] == 8080 and doc["p2p"]["listen_host"] == "0.0.0.0"
    assert tomllib.loads(result.stdout) == doc


def test_config_check_lists_every_problem_and_exits_1(home: Path) -> None:
    ok = runner.invoke(app, ["config", "check", "--home", str(home)])
    assert ok.exit_code == 0 and "config.toml: ok" in ok.stdout
    text = (home / "config.toml").read_text().replace("max_peers = 50", "max_peer = 50")
    (home / "config.toml").write_text(text)
    bad = runner.invoke(app, ["config", "check", "--home", str(home)],
                        env={"GRIDTOKENX_API_PORT": "x"})  # fmt: skip
    messages = error_lines(bad, "INVALID_HOME", 1)
    assert len(messages) == 2 and "unknown key p2p.max_peer" in messages[0]
    assert messages[1].startswith("GRIDTOKENX_API_PORT must be an integer")
    missing = runner.invoke(app, ["config", "show", "--home", str(home / "nowhere")])
    assert "has no config.toml" in error_lines(missing, "BAD_INPUT", 2)[0]


# --- processes ------------------------------------------------------------------------------
def _port_free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.process
def test_a_config_json_home_still_starts_and_env_moves_its_metrics_port(home: Path) -> None:
    """An older home runs as it is, and an override reaches the running node."""
    _make_legacy(home)
    port = _port_free()
    procs = {home: _start(home, GRIDTOKENX_METRICS_PORT=str(port))}
    try:
        assert _wait(lambda: _height(home) >= 2, 60), (home / "node.log").read_text()[-800:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert b"gridtokenx" in answer.read()
    finally:
        _stop(procs)
    assert not (home / "config.toml").exists()  # starting does not rewrite the home


@pytest.mark.parametrize(
    ("text", "peer"),
    [
        (f"10.0.0.2:26656:{PEER_ID}", ("10.0.0.2", 26656, PEER_ID)),
        (f"fd00::5:26656:{PEER_ID.upper()}", ("fd00::5", 26656, PEER_ID)),
        (f"node1.egat.example:1:{PEER_ID}", ("node1.egat.example", 1, PEER_ID)),
        (f"10.0.0.2:0:{PEER_ID}", None),
        (f"10.0.0.2:65536:{PEER_ID}", None),
        (f"10.0.0.2:²:{PEER_ID}", None),
        (f":26656:{PEER_ID}", None),
        ("10.0.0.2:26656:abcd", None),
        ("10.0.0.2:26656", None),
    ],
)
def test_peer_addresses_parse_as_init_takes_them(text: str, peer: Any) -> None:
    assert parse_peer(text) == peer


@pytest.mark.process
def test_node_start_with_a_bad_variable_is_one_line_and_starts_nothing(home: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1", GRIDTOKENX_P2P_MAX_PEERS="fifty")
    failed = subprocess.run(
        [sys.executable, "-m", "gridtokenx", "node", "start", "--home", str(home)],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    (message,) = error_lines(failed, "INVALID_HOME", 1)
    assert message == f'{home}: GRIDTOKENX_P2P_MAX_PEERS must be an integer, not "fifty"'
    assert read_status(home) is None and not (home / "data").exists()  # nothing opened
