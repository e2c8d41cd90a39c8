"""Operator actions on a running node, for its own operator only: a checkpoint of its store
(what `gridtokenx db backup --home` and `report export --home` ask for while the node runs,
since RocksDB lets no other process open the store).

Three guards, each enough on its own against a different caller: the request must come
from a loopback address; it must carry no proxy header (`Forwarded`, `X-Forwarded-For`,
`X-Real-IP`), because a reverse proxy on the same host makes every internet client look
like loopback; and it must present the token the API wrote to the home's `admin.cookie`
when it started (mode 0600, renewed at each start), which only the home's owner can read,
so another account on the same machine cannot use it either. What the endpoint writes is
confined to the home: a new directory under `checkpoints/` whose name is one path
component (no `/`, no `..`), never an existing one."""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, Request

from gridtokenx.api.deps import NodeDep, SettingsDep
from gridtokenx.api.errors import ApiError
from gridtokenx.api.models import ERRORS, Checkpoint, CheckpointIn, ErrorBody
from gridtokenx.node.home import ADMIN_COOKIE, CHECKPOINTS

TOKEN_HEADER: Final = "x-gridtokenx-admin"
FORBIDDEN: Final = "FORBIDDEN"
_PROXY_HEADERS: Final = (b"forwarded", b"x-forwarded-for", b"x-real-ip")

router = APIRouter(
    tags=["admin"],
    responses={
        **ERRORS,
        403: {"model": ErrorBody, "description": "not the home's owner on loopback"},
        409: {"model": ErrorBody, "description": "the checkpoint exists"},
    },
)


def write_cookie(home: Path) -> str:
    """A fresh admin token in `home/admin.cookie`, readable by its owner alone."""
    token = secrets.token_hex(32)
    path = home / ADMIN_COOKIE
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token)
    return token


def remove_cookie(home: Path, token: str) -> None:
    """Remove the cookie if it is still this server's (another start may have replaced it)."""
    path = home / ADMIN_COOKIE
    with contextlib.suppress(OSError):
        if path.read_text() == token:
            path.unlink()


def _loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _admitted(request: Request, home: Path | None) -> Path:
    """The home, once the request passed the three guards (module docstring); 403 else."""
    token: str | None = getattr(request.app.state, "admin_token", None)
    if home is None or token is None:
        raise ApiError(403, FORBIDDEN, "this node's API has no home: admin endpoints are off")
    client = request.client
    if client is None or not _loopback(client.host):
        raise ApiError(403, FORBIDDEN, "admin endpoints answer loopback clients only")
    if any(name in _PROXY_HEADERS for name, _ in request.headers.raw):
        raise ApiError(403, FORBIDDEN, "admin endpoints refuse proxied requests")
    given = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(403, FORBIDDEN, f"wrong or missing {TOKEN_HEADER} (see {ADMIN_COOKIE})")
    return home


@router.post("/admin/checkpoint", response_model=Checkpoint, status_code=201)
async def checkpoint(
    body: CheckpointIn, request: Request, node: NodeDep, settings: SettingsDep
) -> dict[str, Any]:
    """Write a RocksDB checkpoint of the store to HOME/checkpoints/NAME (a new directory).
    It runs on the node's loop, so it falls between two commits: the copy holds whole
    heights, and the height and state root returned are the copy's."""
    home = _admitted(request, settings.home)
    target = home / CHECKPOINTS / body.name
    if target.exists():
        raise ApiError(409, "EXISTS", f"{target} exists; choose a new name")
    app = node.app
    try:
        target.parent.mkdir(exist_ok=True)
        app.store.checkpoint(target)
    except Exception as exc:  # rocksdict raises bare Exceptions (a full disk, permissions)
        raise ApiError(500, "CHECKPOINT_FAILED", f"{target}: {exc}") from None
    return {"path": str(target.resolve()), "height": app.height,
            "state_root": app.state.root().hex()}  # fmt: skip
