"""The web dashboard: static HTML, CSS and JavaScript shipped inside the package and
served by the node's own API at `/` and `/static/...`.

Nothing is built or fetched at run time (the charting library is vendored next to the
page), so a node on a machine without internet serves the same page. The page reads the
same public API as any client; the Content-Security-Policy keeps it to this origin, so
the page cannot load or send anything elsewhere even if a record held hostile text."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

STATIC: Final = Path(__file__).with_name("static")
HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def install(app: FastAPI) -> None:
    """Serve the page at `/` and its files under `/static`, outside the OpenAPI document
    (they are not part of the API contract)."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
