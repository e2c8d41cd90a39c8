"""The node's config file, `config.toml`: a commented TOML view of a settings struct.

Operators who run CometBFT or Ethereum nodes expect one file they can read and edit by
hand, with every setting present, its default, and a comment saying what it does. The
Python side keeps one flat struct (`node.home.Config`, with `p2p` a nested
`PeerSettings`), so the rest of the code is untouched; this module maps its fields onto
sections (`Layout`), renders the file, and reads it back strictly.

Where a field goes, so that a field added later lands somewhere sensible without editing
a template: a field named in `PLACES` goes to that section under its own name; a field
whose type is a struct is a section of its own (`p2p`), its fields its keys; a field
named `<section>_<rest>` for a known section goes to that section as `rest` (`api_port`
is `[api] port`); anything else is a top-level key (like CometBFT's `moniker` and
`log_level`). A field's comment is the `description` of its `msgspec.Meta`, so the
comment lives beside the field and nowhere else.

Reading is strict because a misspelt key that is silently ignored is a setting the
operator believes in and does not have: an unknown key, a wrong type or a value out of
range is refused with the key's dotted name and the file, and every problem is reported
at once (`ConfigError.problems`).

Environment overrides: `GRIDTOKENX_<SECTION>_<KEY>` (upper case) replaces the file's
value, the top-level keys being section BASE (CometBFT's "base config"):
`GRIDTOKENX_P2P_LISTEN_HOST=0.0.0.0`, `GRIDTOKENX_API_PORT=8080`,
`GRIDTOKENX_BASE_MONIKER=egat-1`. Strings are taken verbatim, arrays are comma-separated,
numbers and booleans are TOML values (`8080`, `2.5`, `true`). Only variables that start
with `GRIDTOKENX_` and a section name and `_` are config variables, and an unknown one
among them is refused like an unknown key; the other GRIDTOKENX_ variables
(`GRIDTOKENX_PASSPHRASE`, `GRIDTOKENX_NODE`, `GRIDTOKENX_KEY`) start with no section name
and are never read as config.
"""

from __future__ import annotations

import difflib
import textwrap
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from gridtokenx.node.config_values import bare, convert, from_env, shown, to_file, toml_value

ENV_PREFIX = "GRIDTOKENX_"
BASE = "base"
"""The section name of the top-level keys in variable names (`GRIDTOKENX_BASE_MONIKER`)."""

SECTIONS: dict[str, str] = {
    "": "The node itself.",
    "p2p": (
        "Peer-to-peer: where this node listens, which peers it dials, and the limits it"
        " puts on its peers' connections. Open the listen port in the firewall to the"
        " nodes that should reach this one (the other authorities, or this validator's"
        " sentries)."
    ),
    "consensus": (
        "Consensus timing, in milliseconds. Every validator of a network should use the"
        " same values; lengthen the timeouts on slow or distant links."
    ),
    "api": (
        "The REST and WebSocket API and the web dashboard. Keep it on 127.0.0.1 unless it"
        " sits behind a reverse proxy that terminates TLS."
    ),
    "metrics": "Prometheus metrics at http://HOST:PORT/metrics.",
    "storage": "The RocksDB store in the home's data/ directory.",
    "clock": (
        "The chain clock. Devnets and the demo run it faster than the wall clock;"
        " production nodes keep speed 1 and the origin 0."
    ),
}
"""The sections in file order, each with the comment above its header."""

PLACES: dict[str, str] = {
    "listen_port": "p2p",
    "listen_host": "p2p",
    "external_host": "p2p",
    "peers": "p2p",
    "dial_all": "p2p",
    "target_peers": "p2p",
    "propose_ms": "consensus",
    "prevote_ms": "consensus",
    "precommit_ms": "consensus",
    "block_ms": "consensus",
    "min_block_ms": "consensus",
    "build_budget_ms": "consensus",
    "keep_blocks": "storage",
    "snapshot_interval": "storage",
    "snapshot_keep": "storage",
    "state_sync": "storage",
    "state_sync_behind": "storage",
}
"""Fields whose names do not say their section, kept under their own names there."""

S = TypeVar("S", bound=msgspec.Struct)


class ConfigError(ValueError):
    """A config the node cannot start from; one line per problem, each naming the file
    and key, or the environment variable."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True, eq=False)  # one of each per layout: compared by identity
class Setting:
    """One key of the file: where it lives there and which struct field it sets."""

    field: str
    parent: str  # the nested struct field holding it ("p2p"), or "" for the struct itself
    section: str
    key: str
    type: Any  # the field's annotated type, constraints included
    default: Any  # msgspec.NODEFAULT: required
    description: str

    @property
    def name(self) -> str:
        """The dotted name errors and `config show` use: `p2p.max_peers`, `moniker`."""
        return f"{self.section}.{self.key}" if self.section else self.key

    @property
    def path(self) -> str:
        """The field's path in the struct (and in a legacy config.json)."""
        return f"{self.parent}.{self.field}" if self.parent else self.field

    @property
    def env(self) -> str:
        return f"{ENV_PREFIX}{(self.section or BASE).upper()}_{self.key.upper()}"


@dataclass(frozen=True)
class _Given:
    """A value for a setting and where it came from, for the messages about it."""

    setting: Setting
    where: str  # "/home/config.toml: p2p.max_peers" or "GRIDTOKENX_P2P_MAX_PEERS"
    value: Any


class Layout(Generic[S]):
    """The file layout of the settings struct `struct`: render, parse, overrides."""

    def __init__(self, struct: type[S]) -> None:
        self.struct = struct
        found = list(_settings(struct))
        names = [s.name for s in found]
        if len(set(names)) != len(names):  # two fields mapped onto one key: a coding error
            raise TypeError(f"two fields map onto one config key: {sorted(names)}")
        used = {s.section for s in found}
        self.sections = [*(n for n in SECTIONS if n in used), *sorted(used - SECTIONS.keys())]
        self.settings = tuple(sorted(found, key=lambda s: self.sections.index(s.section)))
        """In file order: by section, then in the struct's field order."""
        self.by_name = {s.name: s for s in self.settings}
        self.by_path = {s.path: s for s in self.settings}
        self.by_env = {s.env: s for s in self.settings}
        self.env_prefixes = tuple(f"{ENV_PREFIX}{(n or BASE).upper()}_" for n in self.sections)

    def setting(self, path: str) -> Setting:
        """The setting of the struct field `path` (`api_port`, `p2p.max_peers`)."""
        return self.by_path[path]

    # --- writing ---------------------------------------------------------------------------
    def document(self, config: S) -> dict[str, Any]:
        """`config` as the file's tables of plain values (for TOML and `--json`)."""
        doc: dict[str, Any] = {}
        for s in self.settings:
            table = doc.setdefault(s.section, {}) if s.section else doc
            table[s.key] = to_file(s.type, _value(config, s))
        return doc

    def render(self, config: S, notes: Mapping[str, str] | None = None) -> str:
        """`config` as commented TOML: every setting, its comment and default; `notes`
        adds a remark after the value of the settings it names (`config show` says which
        come from the environment)."""
        notes = notes or {}
        lines = list(_HEADER)
        for section in self.sections:
            if section:
                comment = SECTIONS.get(section) or _docstring(self._struct_of(section))
                lines += ["", "", *_comment(comment), f"[{section}]"]
            for s in (s for s in self.settings if s.section == section):
                lines += ["", *_comment(s.description)]
                if s.default is not msgspec.NODEFAULT:
                    lines.append(f"# default: {_text(s, s.default)}")
                lines.append(_line(s, _value(config, s), notes.get(s.name, "")))
        return "\n".join(lines) + "\n"

    def _struct_of(self, field: str) -> Any:
        """The struct type of the nested struct field `field` (None: no such field)."""
        fields = {f.name: f for f in msgspec.structs.fields(self.struct)}
        return bare(fields[field].type) if field in fields else None

    # --- reading ---------------------------------------------------------------------------
    def parse(self, text: str, source: str, environ: Mapping[str, str] | None = None) -> S:
        """The struct a TOML file's `text` describes, with `environ`'s overrides."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{source}: not valid TOML: {exc}"]) from None
        given, problems = self._from_tables(doc, source)
        return self._load(given, problems, source, environ or {}, legacy=False)

    def parse_legacy_json(
        self, data: bytes, source: str, environ: Mapping[str, str] | None = None
    ) -> S:
        """The struct a legacy config.json (the struct's fields, `p2p` nested) describes,
        as strictly as a TOML file, with `environ`'s overrides."""
        try:
            doc = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise ConfigError([f"{source}: not valid JSON: {exc}"]) from None
        if not isinstance(doc, dict):
            raise ConfigError([f"{source}: must hold a JSON object"])
        given, problems = [], []
        for key, value in doc.items():
            s = self.by_path.get(key)
            if s is None and isinstance(value, dict) and self._is_parent(key):
                for inner, inner_value in value.items():
                    found = self.by_path.get(f"{key}.{inner}")
                    if found is None:
                        problems.append(_unknown(source, f"{key}.{inner}", self.by_path))
                    else:
                        given.append(_Given(found, f"{source}: {found.path}", inner_value))
            elif s is None:
                problems.append(_unknown(source, key, self.by_path))
            else:
                given.append(_Given(s, f"{source}: {key}", value))
        return self._load(given, problems, source, environ or {}, legacy=True)

    def _is_parent(self, key: str) -> bool:
        return any(s.parent == key for s in self.settings)

    def _from_tables(self, doc: dict[str, Any], source: str) -> tuple[list[_Given], list[str]]:
        given: list[_Given] = []
        problems: list[str] = []
        for key, value in doc.items():
            if key in self.sections and key and not isinstance(value, dict):
                problems.append(f"{source}: {key} must be a table ([{key}]), not a value")
                continue
            if isinstance(value, dict) and key not in self.by_name:  # a table: its keys
                entries = [(f"{key}.{inner}", v) for inner, v in value.items()]
            else:
                entries = [(key, value)]
            for name, v in entries:
                s = self.by_name.get(name)
                if s is None:
                    problems.append(_unknown(source, name, self.by_name))
                else:
                    given.append(_Given(s, f"{source}: {name}", v))
        return given, problems

    def overrides(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The config variables set in `environ`, by name (known or not)."""
        return {k: v for k, v in environ.items() if k.startswith(self.env_prefixes)}

    def without_overrides(self, environ: Mapping[str, str]) -> dict[str, str]:
        """`environ` less its config variables: for processes whose home must be the
        whole truth (a devnet's nodes)."""
        return {k: v for k, v in environ.items() if not k.startswith(self.env_prefixes)}

    def _from_env(self, environ: Mapping[str, str]) -> tuple[list[_Given], list[str]]:
        given: list[_Given] = []
        problems: list[str] = []
        for var, text in sorted(self.overrides(environ).items()):
            s = self.by_env.get(var)
            if s is None:
                problems.append(_unknown_variable(var, self.by_env))
            else:
                given.append(_Given(s, var, from_env(s.type, text)))
        return given, problems

    def _load(
        self,
        given: list[_Given],
        problems: list[str],
        source: str,
        environ: Mapping[str, str],
        legacy: bool,
    ) -> S:
        from_env, env_problems = self._from_env(environ)
        problems += env_problems
        values: dict[Setting, _Given] = {}
        for g in [*given, *from_env]:  # the environment's value last: it wins
            try:
                values[g.setting] = _Given(g.setting, g.where, convert(g.setting.type, g.value))
            except ValueError as exc:
                problems.append(f"{g.where} must be {exc}, not {shown(g.value)}")
        named = {g.setting for g in [*given, *from_env]}
        for s in self.settings:
            if s.default is msgspec.NODEFAULT and s not in named:
                problems.append(f"{source}: {s.path if legacy else s.name} is missing")
        if problems:
            raise ConfigError(problems)
        nested: dict[str, Any] = {}
        for parent in dict.fromkeys(s.parent for s in self.settings if s.parent):
            inner = {s.field: g for s, g in values.items() if s.parent == parent}
            nested[parent] = _build(self._struct_of(parent), inner)
        top = {s.field: g for s, g in values.items() if not s.parent}
        built: S = _build(self.struct, top, nested)
        return built


def _build(tp: Any, given: Mapping[str, _Given], ready: Mapping[str, Any] | None = None) -> Any:
    """`tp` from checked values; a value its own validation (`__post_init__`) refuses is
    named by trying each given value alone over the defaults."""
    kwargs = {field: g.value for field, g in given.items()} | dict(ready or {})
    try:
        return tp(**kwargs)
    except (ValueError, TypeError) as exc:
        required = {f.name for f in msgspec.structs.fields(tp) if f.required}
        base = {k: v for k, v in kwargs.items() if k in required}
        culprits = []
        for field, g in given.items():
            try:
                tp(**(base | {field: g.value}))
            except (ValueError, TypeError):
                culprits.append(f"{g.where} = {shown(g.value)} refused: {exc}")
        wheres = ", ".join(g.where for g in given.values())
        raise ConfigError(culprits or [f"{exc} (settings given: {wheres})"]) from None


def _settings(struct: type[msgspec.Struct], parent: str = "") -> Iterable[Setting]:
    hints = typing.get_type_hints(struct, include_extras=True)
    for f in msgspec.structs.fields(struct):
        tp = hints[f.name]
        inner = bare(tp)
        if not parent and isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            yield from _settings(inner, f.name)  # a nested struct: a section of its own
            continue
        default = f.default
        if f.default_factory is not msgspec.NODEFAULT:
            default = f.default_factory()
        section, key = (parent, f.name) if parent else _place(f.name)
        yield Setting(f.name, parent, section, key, tp, default, _description(tp))


def _place(field: str) -> tuple[str, str]:
    if field in PLACES:
        return PLACES[field], field
    for section in SECTIONS:
        if section and field.startswith(f"{section}_"):
            return section, field.removeprefix(f"{section}_")
    return "", field


def _description(tp: Any) -> str:
    metas = getattr(tp, "__metadata__", ())
    return " ".join(m.description for m in metas if isinstance(m, msgspec.Meta) and m.description)


def _docstring(tp: Any) -> str:
    return " ".join((getattr(tp, "__doc__", None) or "").split())


def _text(s: Setting, value: Any) -> str:
    return "(not set)" if value is None else toml_value(to_file(s.type, value))


def _line(s: Setting, value: Any, note: str) -> str:
    """`key = value`; a setting without a value (None: TOML has no null) is commented
    out, which reads back as its default."""
    line = f"{s.key} = {_text(s, value)}{f'  # {note}' if note else ''}"
    return f"# {line}" if value is None else line


def _value(config: Any, s: Setting) -> Any:
    return getattr(getattr(config, s.parent) if s.parent else config, s.field)


# --- messages -------------------------------------------------------------------------------
def _unknown(source: str, name: str, known: Iterable[str]) -> str:
    return f"{source}: unknown key {name}{_nearest(name, known)}"


def _unknown_variable(var: str, known: Iterable[str]) -> str:
    return f"{var}: no such config setting{_nearest(var, known)}"


def _nearest(name: str, known: Iterable[str]) -> str:
    """The known name a misspelt one most likely meant, as a hint."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _comment(text: str) -> list[str]:
    return [f"# {line}" for line in textwrap.wrap(text, width=88, break_on_hyphens=False)]


_HEADER = (
    "# GridTokenX node configuration.",
    "#",
    "# Written by `gridtokenx init` (or a devnet). Edit it while the node is stopped, then",
    "# run `gridtokenx config check --home HOME`. Every setting is here with its default;",
    "# an unknown key, a wrong type or a value out of range is refused, naming the key.",
    "#",
    "# Environment variables override this file: GRIDTOKENX_<SECTION>_<KEY>, for example",
    "# GRIDTOKENX_P2P_LISTEN_HOST=0.0.0.0 or GRIDTOKENX_API_PORT=8080; the keys above the",
    "# first [section] are section BASE (GRIDTOKENX_BASE_MONIKER). Arrays are",
    "# comma-separated. `gridtokenx config show --home HOME` prints the result.",
    "# See docs/configuration.md.",
)
