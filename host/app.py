"""The host service as an ASGI app: storage, keys, error handling, server time and routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from host.api.bodies import BodyGuard
from host.api.deps import HostContext
from host.api.errors import install_error_handlers
from host.api.hardening import SecurityHeadersMiddleware, redact_access_log
from host.api.routes import (
    admin,
    citizens,
    denylist,
    devices,
    flows,
    posters,
    public,
    screening,
    tracing,
    users,
)
from host.core.config import Settings
from host.core.times import DAY_MS
from host.flows import Alerting, background_tasks
from host.ratelimit import networks
from host.screening import screen_periodically
from host.signing import HostKeys
from host.web import docs
from host.web.dashboard import auth as dashboard
from host.web.dashboard.common import IDLE_MINUTES
from host.web.pages import ASSETS_PATH, STATIC
from shared import LOG_FORMAT
from shared.auth import HEADER_SERVER_TIME
from shared.dcc.schema import SchemaStore
from shared.messages import API_PREFIX

log = logging.getLogger(__name__)
# `sentinel host serve` hands its settings to every worker process through this variable.
SERVE_ENVIRONMENT = "SENTINEL_HOST_SERVE"


@dataclass(frozen=True)
class Retention:
    """How long the host keeps check-ins, and how often it purges older ones."""

    checkin_days: float = 28.0
    purge_every_seconds: float = 3600.0


def purge_expired(context: HostContext, retention: Retention) -> None:
    """Delete what its time ran out for: check-ins and what goes with them, nonces, sessions.

    With the check-ins go screenings and staff decisions; nonces too old to replay, and ended
    sign-in links and sessions (citizens' and the dashboard's) go too.
    """
    now_ms = context.settings.now_ms()
    before_ms = now_ms - int(retention.checkin_days * DAY_MS)
    purged = context.storage.purge_checkins(before_ms)
    context.purge_nonces_now_and_then(now_ms)
    if purged:
        log.info("purged %d check-ins older than %g days", purged, retention.checkin_days)
    # Screenings go at their expiry, and never later than the check-ins.
    screenings = context.storage.purge_screenings(now_ms, before_ms)
    if screenings:
        log.info("purged %d screenings past retention", screenings)
    # Staff decisions go with the check-ins they settled (their counts stay).
    decisions = context.storage.purge_staff_decisions(before_ms)
    if decisions:
        log.info("purged %d staff decisions older than %g days", decisions, retention.checkin_days)
    # Sign-in links and sessions at their expiry; phone visits once past the repeat window.
    context.storage.purge_citizens(now_ms, now_ms - context.settings.phone_repeat_ms)
    context.storage.purge_dashboard_sessions(now_ms, now_ms - IDLE_MINUTES * 60_000)


async def purge_periodically(context: HostContext, retention: Retention) -> None:
    """`purge_expired` now and every `purge_every_seconds`, in a worker thread, until cancelled."""
    while True:
        try:
            await asyncio.to_thread(purge_expired, context, retention)
        except Exception:  # any failure: logged, and tried again next time
            log.exception("purge failed")
        await asyncio.sleep(retention.purge_every_seconds)


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


def create_app(
    settings: Settings, retention: Retention | None = None, key_directory: Path | None = None
) -> FastAPI:
    """Open the storage (migrating its schema) and the keys (made on first start), build the app.

    Keys are read from `key_directory` (by default the storage's) once, here: a rotation
    reaches a running host when it is restarted.
    """
    storage = settings.database.open()
    try:
        keys = HostKeys.load(storage, settings.dcc_trust, key_directory, settings.now_ms())
    except BaseException:
        storage.close()
        raise
    context = HostContext(settings, storage, keys, SchemaStore.default())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        purging = asyncio.create_task(purge_periodically(context, retention or Retention()))
        screening_jobs = asyncio.create_task(screen_periodically(context))
        flow_jobs = background_tasks(storage, settings.alerting, settings.now_ms)
        try:
            yield
        finally:
            for task in (purging, screening_jobs, *flow_jobs):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            storage.close()

    # /docs is served from the host's own copy of Swagger UI (host.web.docs), not a CDN's.
    # No redirect for a trailing slash: Starlette builds its Location from the Host header.
    app = FastAPI(
        title="Digital Sentinel host",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.context = context
    install_error_handlers(app)
    app.add_middleware(ServerTimeMiddleware, now_ms=settings.now_ms)
    app.add_middleware(BodyGuard)  # bodies too large (413) or too slow (408)
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(admin.router, prefix=API_PREFIX)
    app.include_router(admin.venue_router, prefix=API_PREFIX)
    app.include_router(posters.router, prefix=API_PREFIX)
    app.include_router(users.router, prefix=API_PREFIX)
    app.include_router(tracing.router, prefix=API_PREFIX)
    app.include_router(screening.router, prefix=API_PREFIX)
    app.include_router(flows.router, prefix=API_PREFIX)
    app.include_router(devices.router, prefix=API_PREFIX)
    app.include_router(denylist.admin_router, prefix=API_PREFIX)
    app.include_router(denylist.device_router, prefix=API_PREFIX)
    app.include_router(public.router)
    app.include_router(citizens.router)
    dashboard.install(app)
    docs.install(app)
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC), name="assets")
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker of `sentinel host serve`, from the settings it put in the environment.

    Each worker reads the admin token from its file and opens its own storage; all that must be
    consistent between workers (nonces, tokens, the deny list's version) is in the database.
    """
    served = json.loads(os.environ[SERVE_ENVIRONMENT])
    # A worker spawned by `--workers N` starts with no logging set up (with one worker, this
    # is the command's own process, set up already, and basicConfig changes nothing).
    logging.basicConfig(level=served["log_level"], format=LOG_FORMAT, stream=sys.stderr)
    redact_access_log()
    token_file = Path(served["admin_token_file"])
    settings = Settings(
        database=served["database"],
        public_url=served["public_url"],
        admin_token=token_file.read_text(encoding="utf-8").strip(),
        dcc_trust=None if served["dcc_trust"] is None else Path(served["dcc_trust"]),
        alerting=Alerting.from_json(served["alerting"]),
        trusted_proxies=networks(served["trusted_proxies"]),
        body_timeout_s=served["body_timeout_s"],
    )
    return create_app(
        settings, Retention(checkin_days=served["retention_days"]), Path(served["keys"])
    )
