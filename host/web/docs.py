"""The API's interactive docs (/docs): Swagger UI served from the host, under a strict CSP.

FastAPI's own /docs loads Swagger UI from a CDN; kiosks and health offices run on closed
networks, so the host serves the copy vendored in static/vendor/swagger-ui/ instead. The page
starts Swagger UI with one inline script, which its Content-Security-Policy allows by hash and
nothing else inline.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from host.web.pages import ASSETS_PATH

DOCS_PATH = "/docs"
SWAGGER_UI = f"{ASSETS_PATH}/vendor/swagger-ui"
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def script_hashes(html: str) -> list[str]:
    """The CSP source expressions ('sha256-...') of every inline script in `html`."""
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in INLINE_SCRIPT.findall(html)
    ]


def docs_page(openapi_url: str, title: str) -> HTMLResponse:
    """Swagger UI for the schema at `openapi_url`, every asset from this host."""
    page = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/icon.svg",
        # No call to swagger.io's online validator: the docs work on a closed network.
        swagger_ui_parameters={"validatorUrl": None},
    )
    html = bytes(page.body).decode()
    page.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {' '.join(script_hashes(html))};"
        " img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return page


def install(app: FastAPI) -> None:
    """Serve /docs from the host; the app must be made with docs_url=None (and redoc_url=None)."""
    assert app.openapi_url is not None, "the docs need the OpenAPI schema"
    openapi_url, title = app.openapi_url, f"{app.title} · API"

    @app.get(DOCS_PATH, include_in_schema=False)
    def docs() -> HTMLResponse:
        return docs_page(openapi_url, title)
