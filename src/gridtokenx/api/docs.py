"""The browsable API documents: Swagger UI at /docs and Redoc at /redoc, both over the
node's own OpenAPI document.

FastAPI's defaults load both from a CDN, which leaves a blank page on a node without
internet and breaks the dashboard's Content-Security-Policy. Here they are vendored next
to the dashboard (static/vendor, with their licences) and served under the same policy, so
the pages load nothing from elsewhere and send nothing elsewhere. Redoc's page differs in
two ways, both for that policy: its style elements are allowed by hash (below), and its
search is off (it runs in a worker made from a blob: URL, which the policy refuses). The
Redocly logo in its sidebar comes from their CDN, so the policy blocks it: the one thing
missing from the page offline or not."""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse

from gridtokenx.api.dashboard import HEADERS, STATIC

CSP: Final = "Content-Security-Policy"
REDOC_STYLES: Final = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # an empty <style>
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",  # redoc.standalone.js's scrollbar CSS
)
REDOC_HEADERS: Final = {
    **HEADERS,
    CSP: HEADERS[CSP].replace("style-src 'self'", f"style-src 'self' {' '.join(REDOC_STYLES)}"),
}
"""Redoc styles itself by inserting `<style>` elements (styled-components) and filling
them through the CSSOM, which `style-src 'self'` refuses at the insertion. Allowing an
empty style element by its hash (and the bundle's one fixed stylesheet by its hash) lets
exactly those in: no style text from anywhere else, and scripts, connections and images
stay as strict as the dashboard's."""


def install(app: FastAPI) -> None:
    """Serve the two pages, outside the OpenAPI document."""

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> FileResponse:
        return FileResponse(STATIC / "docs.html", media_type="text/html", headers=HEADERS)

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> FileResponse:
        return FileResponse(STATIC / "redoc.html", media_type="text/html", headers=REDOC_HEADERS)
