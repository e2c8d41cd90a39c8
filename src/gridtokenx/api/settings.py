"""What an operator may tune about the API; the defaults are safe for a laptop devnet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gridtokenx.surveillance import SurveillanceSettings


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"  # loopback unless the operator deliberately exposes the node
    port: int = 0  # 0 picks a free port (tests); run_node passes config.api_port
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API; none: off
    rate_per_second: float = 100.0  # requests per client IP, on average
    rate_burst: float = 200.0  # and at once
    max_body_bytes: int = 4 * 1024 * 1024  # a full batch of maximum-size transactions fits
    max_batch: int = 1000  # transactions in one batch request
    ws_queue: int = 256  # messages buffered per WebSocket client before it is dropped
    ws_max_subscriptions: int = 64  # per WebSocket client
    # Connections (api/connections.py): what a client that never finishes costs the node.
    max_connections: int = 512  # open at once, WebSockets included; beyond: 503 and closed
    header_timeout: float = 10.0  # seconds to send a request's headers, from its first byte
    body_timeout: float = 30.0  # seconds to send its body once the headers are in
    keep_alive: int = 5  # whole seconds an idle connection stays open after a response
    max_header_bytes: int = 64 * 1024  # request line and headers; beyond: 431 and closed
    # TLS ([api] tls_cert and tls_key in config.toml): both PEM files, or neither (plain HTTP).
    tls_cert: str = ""
    tls_key: str = ""
    # The node's home: the admin endpoints (checkpoints) work in it, and are off without it.
    home: Path | None = None
    # What GET /status says about the node that its Node object does not know.
    moniker: str = ""
    genesis_hash: str | None = None  # `Genesis.hash()` of the home's genesis, hex
    # Market surveillance (docs/surveillance.md): the node follows its own commits and
    # serves the ERC's alerts; off, /surveillance answers 404. Thresholds: the defaults
    # unless the operator passes the ERC's SurveillanceSettings.
    surveillance: bool = True
    surveillance_settings: SurveillanceSettings | None = None

    def __post_init__(self) -> None:
        if self.rate_per_second <= 0 or self.rate_burst < 1:
            raise ValueError("the API rate limit needs rate > 0 and burst >= 1")
        if min(self.max_body_bytes, self.max_batch, self.ws_queue) < 1:
            raise ValueError("API size limits must be positive")
        if min(self.max_connections, self.keep_alive, self.max_header_bytes) < 1:
            raise ValueError("API connection limits must be positive")
        if not (self.header_timeout > 0 and self.body_timeout > 0):
            raise ValueError("API timeouts must be positive")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("api_tls_cert and api_tls_key go together: set both or neither")
