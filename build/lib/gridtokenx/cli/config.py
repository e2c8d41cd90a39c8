"""`gridtokenx config show/check/migrate`: a node home's config file, as the node would
read it, without starting the node.

`show` and `check` apply the GRIDTOKENX_<SECTION>_<KEY> variables of this shell, so run
them in the node's environment (a systemd unit's `Environment=` lines) to see what the
node will run with."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gridtokenx.cli.errors import BadInput, Refused
from gridtokenx.cli.render import plain, print_json

if TYPE_CHECKING:
    from gridtokenx.node.home import Config

config_app = typer.Typer(help="Show, check or migrate a node's config file.")
Home = Annotated[Path, typer.Option(help="the node's home directory")]


def _effective(home: Path) -> Config:
    """The config `home`'s node would start with; a home without one is bad input, a
    config the node would refuse is INVALID_HOME with one line per problem."""
    from gridtokenx.node.home import CONFIG_FILE, ConfigError, config_path, read_config

    path = config_path(home)
    if not path.exists():
        raise BadInput(f"{home} has no {CONFIG_FILE} (run `gridtokenx init` or `devnet`)")
    try:
        return read_config(home, os.environ)
    except ConfigError as exc:
        raise Refused("INVALID_HOME", *exc.problems) from None
    except OSError as exc:
        raise Refused("INVALID_HOME", f"{path}: {exc.strerror or exc}") from None


@config_app.command("show")
def show(
    home: Home,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of TOML")] = False,
) -> None:
    """Print the config the node of HOME would start with: its file with this shell's
    GRIDTOKENX_<SECTION>_<KEY> overrides applied, as commented TOML (or JSON)."""
    from gridtokenx.node.home import LAYOUT

    config = _effective(home)
    if as_json:
        print_json(LAYOUT.document(config))
        return
    overridden = {LAYOUT.by_env[var].name: f"from {var}" for var in LAYOUT.overrides(os.environ)}
    sys.stdout.write(LAYOUT.render(config, overridden))


@config_app.command("check")
def check(home: Home) -> None:
    """Check the config of HOME (file and environment) as `node start` would, without
    starting the node: every problem on a line of its own, exit 1 if there is one."""
    from gridtokenx.node.home import config_path

    _effective(home)
    plain.print(f"{config_path(home)}: ok")


@config_app.command("migrate")
def migrate(home: Home) -> None:
    """Write HOME's config.json as config.toml (atomically; the JSON is kept as
    config.json.bak). Values are checked first: a config.json the node would refuse is
    left as it is."""
    from gridtokenx.node.home import (
        CONFIG_FILE,
        LAYOUT,
        LEGACY_CONFIG_FILE,
        ConfigError,
        write_config,
    )

    legacy, target = home / LEGACY_CONFIG_FILE, home / CONFIG_FILE
    if target.exists():
        raise Refused("EXISTS", f"{target} exists; nothing to migrate")
    if not legacy.is_file():
        raise BadInput(f"{home} has no {LEGACY_CONFIG_FILE} to migrate")
    try:
        config = LAYOUT.parse_legacy_json(legacy.read_bytes(), str(legacy))
    except ConfigError as exc:
        raise Refused("INVALID_HOME", *exc.problems) from None
    write_config(home, config)
    plain.print(f"wrote {target}; the old config is {legacy}.bak")
