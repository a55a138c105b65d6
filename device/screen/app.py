"""The screen's web app: the page (a server-rendered template), its event stream, its assets.

Every asset ships in this package and the page's Content-Security-Policy allows nothing from
anywhere but here: the kiosk works with no network beyond 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from device.screen.hub import ScreenHub

HERE = Path(__file__).parent
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
}


def make_app(hub: ScreenHub) -> Starlette:
    """The app for one hub: GET / (the page), /events (SSE), /state.json, /static/..."""
    templates = Jinja2Templates(directory=HERE / "templates")

    async def page(request: Request) -> Response:
        status, shown = hub.snapshot()
        context = {"status": status, "shown": shown}
        return templates.TemplateResponse(request, "screen.html", context, headers=HEADERS)

    async def events(request: Request) -> Response:
        return StreamingResponse(hub.stream(), media_type="text/event-stream", headers=HEADERS)

    async def state(request: Request) -> Response:
        status, shown = hub.snapshot()
        return JSONResponse({"status": status.as_json(), "shown": shown}, headers=HEADERS)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        polling = hub.start()
        try:
            yield
        finally:
            polling.cancel()

    return Starlette(
        routes=[
            Route("/", page),
            Route("/events", events),
            Route("/state.json", state),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        lifespan=lifespan,
    )
