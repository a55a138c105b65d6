"""The host service as an ASGI app: storage, keys, error handling, server time and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from host.api.deps import HostContext
from host.api.errors import install_error_handlers
from host.api.routes import admin, denylist, devices, public
from host.core.config import Settings
from host.signing import HostKeys
from host.storage.sqlite import SqliteStorage
from shared.auth import HEADER_SERVER_TIME
from shared.dcc.schema import SchemaStore
from shared.messages import API_PREFIX


class ServerTimeMiddleware:
    """Stamp every response with the host's time, which devices use to correct their clocks."""

    def __init__(self, app: ASGIApp, now_ms: Callable[[], int]) -> None:
        self.app = app
        self.now_ms = now_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_time(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER_SERVER_TIME] = str(self.now_ms())
            await send(message)

        await self.app(scope, receive, send_with_time)


def create_app(settings: Settings) -> FastAPI:
    """Open the storage (creating schema and keys on first start) and build the app on it."""
    storage = SqliteStorage(settings.db_path)
    context = HostContext(
        settings, storage, HostKeys.load(storage, settings.dcc_trust), SchemaStore.default()
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            storage.close()

    app = FastAPI(title="Digital Sentinel host", lifespan=lifespan)
    app.state.context = context
    install_error_handlers(app)
    app.add_middleware(ServerTimeMiddleware, now_ms=settings.now_ms)
    app.include_router(admin.router, prefix=API_PREFIX)
    app.include_router(devices.router, prefix=API_PREFIX)
    app.include_router(denylist.admin_router, prefix=API_PREFIX)
    app.include_router(denylist.device_router, prefix=API_PREFIX)
    app.include_router(public.router)
    return app
