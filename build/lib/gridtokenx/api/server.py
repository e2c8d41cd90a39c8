"""Serving the API with uvicorn (httptools, websockets) as a task on the node's loop.

The node owns the process's signals: uvicorn's own handlers would take SIGINT/SIGTERM
away from `node.service.run_node`, so they are not installed; `ApiServer.stop` ends the server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from gridtokenx.api.app import create_app
from gridtokenx.api.connections import guarded
from gridtokenx.api.routes.admin import remove_cookie, write_cookie
from gridtokenx.api.settings import ApiSettings
from gridtokenx.node.home import Config, HomeError, load_genesis
from gridtokenx.node.runtime import Node
from gridtokenx.node.service import binding

STARTUP_SECONDS = 10.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class ApiServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    cookie: tuple[Path, str] | None = None  # (home, admin token) while serving

    @property
    def port(self) -> int:
        """The bound port (useful when the settings asked for port 0)."""
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("the API server is not listening")

    async def stop(self) -> None:
        self.server.should_exit = True
        try:
            await asyncio.wait_for(self.task, STARTUP_SECONDS)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        finally:
            if self.cookie is not None:
                remove_cookie(*self.cookie)


def check_tls(settings: ApiSettings) -> None:
    """The certificate and key load as a pair, or a ValueError naming the setting: checked
    before the port is bound, so a node with a broken TLS setup says why and starts nothing
    (uvicorn would fail later, inside its task)."""
    if not settings.tls_cert:
        return
    for setting, path in (("api_tls_cert", settings.tls_cert), ("api_tls_key", settings.tls_key)):
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"{setting} {path}: {exc.strerror or exc}") from None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            settings.tls_cert, settings.tls_key
        )
    except ssl.SSLError as exc:
        raise ValueError(
            f"api_tls_cert {settings.tls_cert} and api_tls_key {settings.tls_key} are not a "
            f"PEM certificate and its private key ({exc.reason or exc})"
        ) from None


async def serve(node: Node, settings: ApiSettings) -> ApiServer:
    """Start serving on the running loop (HTTPS when the settings name a certificate);
    returns once the socket is bound. A TLS pair that does not load is a ValueError."""
    check_tls(settings)
    # Bound here, so a port in use is an OSError (`PortInUse`) for the caller (uvicorn
    # itself would exit the whole process).
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with binding("API", "api_port", settings.host, settings.port, "api_host"):
            sock.bind((settings.host, settings.port))
    except OSError:
        sock.close()
        raise
    app = create_app(node, settings)
    cookie = None
    if settings.home is not None:  # the admin endpoints' token, for the home's owner only
        cookie = (settings.home, write_cookie(settings.home))
        app.state.admin_token = cookie[1]
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="none",  # the node's loop is already running
        http=guarded(settings),  # httptools, with deadlines and a connection cap
        ws="websockets-sansio",
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        ws_max_size=64 * 1024,
        timeout_keep_alive=settings.keep_alive,
        timeout_graceful_shutdown=2,
        ssl_certfile=settings.tls_cert or None,
        ssl_keyfile=settings.tls_key or None,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_SECONDS
    started = ApiServer(server, task, cookie)
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why it could not start (a port in use)
                raise RuntimeError("the API server stopped while starting")
            if loop.time() > deadline:
                task.cancel()
                raise RuntimeError("the API server did not start in time")
            await asyncio.sleep(0.01)
    except BaseException:
        if cookie is not None:
            remove_cookie(*cookie)
        raise
    return started


async def start_api(node: Node, config: Config) -> ApiServer | None:
    """The node's API as its home's config asks (`node.service.run_node`'s `services`):
    off when `api_port` is 0; a port in use (`PortInUse`) or settings out of range
    (`HomeError`) raise, which stops the node cleanly."""
    if not config.api_port:
        return None
    home = node.app.store.path.parent  # run_node opens HOME/data
    try:
        settings = settings_of(config, home)
        check_tls(settings)
    except ValueError as exc:
        raise HomeError(f"config.toml [api]: {exc}") from None
    return await serve(node, settings)


def settings_of(config: Config, home: Path | None = None) -> ApiSettings:
    """The API settings of a home's config (ValueError for values out of range)."""
    genesis = home / "genesis.json" if home is not None else None
    genesis_hash = None
    if genesis is not None and genesis.is_file():  # the hash operators compare (`genesis hash`)
        genesis_hash = load_genesis(genesis).hash().hex()
    return ApiSettings(
        host=config.api_host,
        port=config.api_port,
        cors_origins=config.api_cors_origins,
        rate_per_second=config.api_rate_per_second,
        rate_burst=2 * config.api_rate_per_second,
        max_connections=config.api_max_connections,
        header_timeout=config.api_header_timeout_s,
        body_timeout=config.api_body_timeout_s,
        keep_alive=config.api_keep_alive_s,
        tls_cert=config.api_tls_cert,
        tls_key=config.api_tls_key,
        home=home,
        moniker=config.moniker,
        genesis_hash=genesis_hash,
    )
