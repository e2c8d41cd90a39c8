"""One error shape for every failure: `{"error": {"code": ..., "message": ...}}`.

Codes are the ledger's and the mempool's own stable codes (errors.py, codec.py, mempool.py)
where a transaction is refused, and a few API codes otherwise, so a client can branch on
the code and show the message."""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from gridtokenx.chain import mempool

NOT_FOUND: Final = "NOT_FOUND"
INVALID_REQUEST: Final = "INVALID_REQUEST"
RATE_LIMITED: Final = "RATE_LIMITED"
BODY_TOO_LARGE: Final = "BODY_TOO_LARGE"
NODE_HALTED: Final = "NODE_HALTED"
TOO_MANY_CONNECTIONS: Final = "TOO_MANY_CONNECTIONS"  # api/connections.py, below the app
HEADERS_TOO_LARGE: Final = "HEADERS_TOO_LARGE"

_CONFLICT: Final = frozenset({mempool.DUPLICATE, mempool.NONCE_TAKEN})
MEMPOOL_RETRY_AFTER: Final = 1
"""Seconds a client waits before resubmitting to a full mempool: about one block, after
which the committed transactions have left room."""


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def not_found(what: str) -> ApiError:
    return ApiError(404, NOT_FOUND, f"{what} not found")


def invalid(message: str) -> ApiError:
    return ApiError(422, INVALID_REQUEST, message)


def rejection_status(code: str) -> int:
    """HTTP status of a refused transaction: the node is saturated and a retry later may
    succeed (503: the server's state, not the client's rate, which is the limiter's 429),
    the same transaction is already waiting (409), or the transaction itself is wrong
    (400)."""
    if code == mempool.MEMPOOL_FULL:
        return 503
    return 409 if code in _CONFLICT else 400


def rejected(code: str, message: str) -> ApiError:
    """A refused transaction as the API's error; a full mempool says when to come back
    (`Retry-After`, as the rate limiter's 429 does), so clients back off the same way."""
    status = rejection_status(code)
    headers = {"Retry-After": str(MEMPOOL_RETRY_AFTER)} if code == mempool.MEMPOOL_FULL else None
    return ApiError(status, code, message, headers)


def body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body(code, message), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return response(exc.status, exc.code, exc.message, exc.headers)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for error in exc.errors()[:10]:
            where = ".".join(str(part) for part in error.get("loc", ()))
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return response(422, INVALID_REQUEST, "; ".join(problems) or "invalid request")

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = NOT_FOUND if exc.status_code == 404 else f"HTTP_{exc.status_code}"
        return response(exc.status_code, code, str(exc.detail))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http_error)
