"""HTTP hardening every response gets: security headers, and an access log without people in it.

Pages set their own Content-Security-Policy (the citizens' pages, the dashboard, /docs); every
other response (JSON, files, errors) gets one that allows nothing, so a response never runs
as a page. HSTS is sent only over https, where a browser heeds it.

The access log keeps who asked for what kind of thing and how it went, not whom it was
about: query strings (plates, rooms, sign-in tokens, signatures) are cut to their names, and
the segment after /people/ is hidden.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
UNLESS_SET = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
}
HSTS = "max-age=31536000; includeSubDomains"
HIDDEN = "…"
PERSONAL_SEGMENTS = frozenset({"people"})  # the segment after one of these names a person


def security_headers(over_tls: bool) -> dict[str, str]:
    """The headers of a response that sets none of its own (a 500 from the outermost handler)."""
    return {**ALWAYS, **UNLESS_SET, **({"Strict-Transport-Security": HSTS} if over_tls else {})}


class SecurityHeadersMiddleware:
    """Add the security headers to every HTTP response, keeping a page's own CSP."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        over_tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers[name] = value
                for name, value in UNLESS_SET.items():
                    if name not in headers:
                        headers[name] = value
                if over_tls:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)


def redact_target(target: str) -> str:
    """A request target as the access log keeps it: query values and people's references hidden."""
    path, _, query = target.partition("?")
    segments = path.split("/")
    for index in range(1, len(segments)):
        if segments[index - 1] in PERSONAL_SEGMENTS and segments[index]:
            segments[index] = HIDDEN
    kept = "/".join(segments)
    if not query:
        return kept
    names = [name for name, _value in parse_qsl(query, keep_blank_values=True)]
    return kept + "?" + "&".join(f"{name}={HIDDEN}" for name in names)


class RedactedAccessLog(logging.Filter):
    """Rewrites uvicorn's access-log records (client, method, target, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_target(args[2]), args[3], args[4])
        return True


def redact_access_log() -> None:
    """Install the filter on uvicorn's access logger (once per process)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, RedactedAccessLog) for existing in access.filters):
        access.addFilter(RedactedAccessLog())
