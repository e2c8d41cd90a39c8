"""A node home as a running node: where its API answers from this machine, and a
consistent copy of its store whether or not the node runs.

RocksDB lets one process at a time open a store, so while a node runs, `db backup --home`
and `report export --home` cannot open `HOME/data`. They ask the node instead
(`POST /api/v1/admin/checkpoint`, api/routes/admin.py): the node writes a RocksDB
checkpoint under `HOME/checkpoints/` between two commits, and the command moves it where
it was asked (a backup) or reads it and deletes it (an export). A node that is not running
is not asked: the command opens the store itself, as before.

Why through the node and not beside it: RocksDB's other ways in while a primary writes
cannot give a whole copy. A read-only open is not supported next to a writer (files it has
not opened yet may be compacted away), and a secondary instance can create a checkpoint
that silently lacks what the primary holds only in its memtable and log (tried on
rocksdict 0.3.29: a secondary's checkpoint of a store with 1,000 unflushed writes held
none of them). The primary's checkpoint flushes first and is consistent by design.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridtokenx.cli.errors import BadInput, Refused

if TYPE_CHECKING:
    from gridtokenx.node.home import Config
    from gridtokenx.storage.store import Store

ADMIN_TIMEOUT_S = 120.0  # a checkpoint of a large store flushes and links many files


def config_of(home: Path) -> Config:
    """The home's config as its node would run with it (environment overrides included),
    or bad input naming what is wrong with the home."""
    from gridtokenx.node.home import CONFIG_FILE, ConfigError, config_path, read_config

    try:
        return read_config(home, os.environ)
    except FileNotFoundError:
        raise BadInput(f"{home} is not a node home (no {CONFIG_FILE})") from None
    except ConfigError as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        raise BadInput(f"{config_path(home)}: {exc.strerror or exc}") from None


def api_of(config: Config) -> tuple[str, ssl.SSLContext | bool]:
    """The URL at which this machine reaches the home's API, and how to check its TLS
    certificate. A wildcard bind (0.0.0.0, ::) is reached on loopback. An https node's
    own certificate is the trust anchor (it may be self-signed, or issued for a public name
    the loopback address does not carry), so the host name is not checked: the address
    came from the home's own config, not from the network."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.api_host, config.api_host)
    netloc = f"[{host}]" if ":" in host else host
    if not config.api_tls_cert:
        return f"http://{netloc}:{config.api_port}", True
    try:
        context = ssl.create_default_context(cafile=config.api_tls_cert)
    except (OSError, ssl.SSLError) as exc:
        raise BadInput(f"api_tls_cert {config.api_tls_cert}: {exc}") from None
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the leaf itself is trusted
    return f"https://{netloc}:{config.api_port}", context


def _open_or_none(data: Path) -> Store | None:
    """The store when no process holds it; None while its node runs."""
    from gridtokenx.cli.db import open_store
    from gridtokenx.storage.store import StoreLocked

    try:
        return open_store(data)
    except StoreLocked:
        return None


def checkpoint_through_node(home: Path, name: str) -> dict[str, Any]:
    """Ask the home's running node for a checkpoint at HOME/checkpoints/NAME."""
    import httpx

    from gridtokenx.node.home import ADMIN_COOKIE

    config = config_of(home)
    if not config.api_port:
        raise Refused("STORE_LOCKED", f"{home / 'data'} is held by its running node, whose API "
                      "is off (api_port 0): a running node is backed up through its API; "
                      "enable it, or stop the node")  # fmt: skip
    try:
        token = (home / ADMIN_COOKIE).read_text().strip()
    except OSError as exc:
        raise Refused("STORE_LOCKED", f"{home / 'data'} is held by a process that serves no "
                      f"admin token ({home / ADMIN_COOKIE}: {exc.strerror}); is the node "
                      "still starting?") from None  # fmt: skip
    url, verify = api_of(config)
    with httpx.Client(base_url=url, timeout=ADMIN_TIMEOUT_S, verify=verify) as http:
        answer = http.post("/api/v1/admin/checkpoint", json={"name": name},
                           headers={"x-gridtokenx-admin": token})  # fmt: skip
    from gridtokenx.client.models import checked

    result: dict[str, Any] = checked(answer)
    return result


def _scratch_name(purpose: str) -> str:
    return f"{purpose}-{os.getpid()}-{time.time_ns()}"


@contextlib.contextmanager
def store_of_home(home: Path) -> Iterator[Store]:
    """HOME/data itself when its node is stopped; while it runs, a checkpoint the node
    takes on the fly, deleted after use."""
    from gridtokenx.cli.db import open_store

    store = _open_or_none(home / "data")
    if store is not None:
        with store:
            yield store
        return
    taken = Path(checkpoint_through_node(home, _scratch_name("export"))["path"])
    try:
        with open_store(taken) as copy:
            yield copy
    finally:
        shutil.rmtree(taken, ignore_errors=True)


def backup_home(home: Path, out: Path) -> Path:
    """A checkpoint of HOME's store at `out` (a new directory), whether its node runs or
    not; returns `out`."""
    if out.exists():
        raise Refused("EXISTS", f"{out} exists; choose a new directory")
    store = _open_or_none(home / "data")
    if store is not None:
        with store:
            out.parent.mkdir(parents=True, exist_ok=True)
            store.checkpoint(out)
        return out
    taken = Path(checkpoint_through_node(home, _scratch_name("backup"))["path"])
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _move(taken, out)
    finally:
        shutil.rmtree(taken, ignore_errors=True)
    return out


def _move(source: Path, destination: Path) -> None:
    """A rename on the same filesystem; a copy (then the source goes) onto another."""
    try:
        source.rename(destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.copytree(source, destination)
