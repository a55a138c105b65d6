"""Request bodies read whole before any route sees them: within a size limit and a deadline.

Every endpoint gets a limit by its path (413 `too-large`, from the declared length before a
byte is read, else as soon as it is passed), and a body must arrive within the deadline (408
`body-timeout`); either answer closes the connection. The route then reads the body from
memory, so a slow client holds no worker thread and no database connection.
"""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from host.api.errors import error_response
from host.screening import MAX_CSV_BYTES
from shared.messages import API_PREFIX

API_BODY_BYTES = 2 * 1024 * 1024  # an import of 10,000 people is about 1.2 MB
PAGE_FORM_BYTES = 256 * 1024  # a dashboard or phone page's form
FORM_OVERHEAD_BYTES = 64 * 1024  # a multipart form's boundaries and fields around a file
DEVICE_PATH = f"{API_PREFIX}/device/"
# Bodies larger than API_BODY_BYTES, by path prefix: staff lists, through the API or a form.
LARGE_BODIES = (
    (f"{API_PREFIX}/screenings", MAX_CSV_BYTES),
    ("/dashboard/screening", MAX_CSV_BYTES + FORM_OVERHEAD_BYTES),
)


class BodyRefused(Exception):
    """A body over its limit."""


def body_limit(path: str, device_limit: int) -> int:
    """The most bytes a request to `path` may send."""
    if path.startswith(DEVICE_PATH):
        return device_limit
    for prefix, limit in LARGE_BODIES:
        if path.startswith(prefix):
            return limit
    return API_BODY_BYTES if path.startswith(f"{API_PREFIX}/") else PAGE_FORM_BYTES


def _has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body; None if the client went away; `BodyRefused` past `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyRefused
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class BodyGuard:
    """ASGI middleware: read each body whole, within its limit and the deadline, then route it.

    Both come from the host's settings: `max_device_body_bytes` and `body_timeout_s`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not _has_body(headers):
            await self.app(scope, receive, send)
            return
        settings = scope["app"].state.context.settings
        limit = body_limit(scope["path"], settings.max_device_body_bytes)
        declared = headers.get("content-length", "")
        try:
            if declared.isdigit() and int(declared) > limit:
                raise BodyRefused
            async with asyncio.timeout(settings.body_timeout_s):
                body = await _read_body(receive, limit)
        except BodyRefused:
            await _refuse(413, "too-large", f"a body here is at most {limit:,} bytes", scope, send)
            return
        except TimeoutError:
            detail = f"the body did not arrive within {settings.body_timeout_s:g} s"
            await _refuse(408, "body-timeout", detail, scope, send)
            return
        if body is None:
            return  # the client is gone: nobody to answer
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body read, then whatever comes next (a disconnect)."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def _refuse(status: int, code: str, detail: str, scope: Scope, send: Send) -> None:
    """Answer with the error JSON and close the connection: the rest of the body is not read."""
    response = error_response(status, code, detail, {"Connection": "close"})

    async def nothing_more() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, nothing_more, send)
