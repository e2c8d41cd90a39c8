"""The node's REST and WebSocket API (FastAPI on uvicorn, inside the node's event loop)."""

from gridtokenx.api.app import create_app
from gridtokenx.api.server import ApiServer, serve
from gridtokenx.api.settings import ApiSettings

__all__ = ["ApiServer", "ApiSettings", "create_app", "serve"]
