"""The browsable API documents: Swagger UI at /docs and Redoc at /redoc, both over the
node's own OpenAPI document.

FastAPI's defaults load both from a CDN, which leaves a blank page on a node without
internet and breaks the dashboard's Content-Security-Policy. Here they are vendored next
to the dashboard (static/vendor, with their licences) and served under the same policy, so
the pages load nothing from elsewhere and send nothing elsewhere."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import FileResponse

from gridtokenx.api.dashboard import HEADERS, STATIC


def install(app: FastAPI) -> None:
    """Serve the two pages, outside the OpenAPI document."""

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> FileResponse:
        return FileResponse(STATIC / "docs.html", media_type="text/html", headers=HEADERS)

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> FileResponse:
        return FileResponse(STATIC / "redoc.html", media_type="text/html", headers=HEADERS)
