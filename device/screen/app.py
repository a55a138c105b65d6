"""The screen's web app: the page (a server-rendered template), its event stream, its assets.

Every asset ships in this package and the page's Content-Security-Policy allows nothing from
anywhere but here: the kiosk works with no network beyond 127.0.0.1.

The staff's actions (settle a referral; a handheld's scan, vehicle and manual registration)
are POSTs of JSON from the page. Each must carry a token the server put in a page it drew, come
from the page's own origin, and name this server as its host (a DNS-rebound name does not), so
no other site open in a browser can send one; settling a referral needs a staff PIN besides.
Nothing a request carries is logged (the server's access log is off): a manual registration's
ID number goes straight to the pipeline, which keeps it only sealed.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from device.handheld import Handheld
from device.screen.hub import ScreenHub
from device.screen.view import STAFF_ACTIONS, STAFF_REASONS
from device.staff import StaffDesk, StaffRefusal
from shared.messages import StaffAction, StaffReason

HERE = Path(__file__).parent
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
}
TOKEN_HEADER = "X-Screen-Token"
MAX_TOKENS = 32  # pages drawn whose tokens are still accepted; the oldest go first
MAX_BODY_BYTES = 4096
# HTTP status of each reason a staff decision was not made.
REFUSAL_STATUS = {"not-open": 409, "wrong-pin": 403, "locked": 429, "cannot-record": 503}
Action = Callable[[dict[str, Any]], Awaitable[None]]


class Refused(Exception):
    """A staff action refused: an HTTP status, a code, and a message for staff."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def is_loopback(host: str) -> bool:
    """Whether a host (a name, an address, [::1]) is this machine's loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: where it points may change
        return False


def _text(body: dict[str, Any], name: str, longest: int = 64) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= longest:
        raise Refused(422, "bad-request", f"{name}: a text of 1 to {longest} characters")
    return value


Choice = TypeVar("Choice", StaffAction, StaffReason)


def _choice(body: dict[str, Any], name: str, choices: type[Choice]) -> Choice:
    try:
        return choices(body.get(name))
    except ValueError:
        allowed = ", ".join(choice.value for choice in choices)
        raise Refused(422, "bad-request", f"{name}: one of {allowed}") from None


async def _decide(desk: StaffDesk, body: dict[str, Any]) -> None:
    checkin_id = _text(body, "checkin_id")
    action = _choice(body, "action", StaffAction)
    reason = _choice(body, "reason", StaffReason)
    pin = _text(body, "pin", 32)
    try:
        await run_in_threadpool(desk.decide, checkin_id, action, reason, pin)
    except StaffRefusal as refusal:
        raise Refused(REFUSAL_STATUS[refusal.code], refusal.code, str(refusal)) from None


async def _scan(handheld: Handheld, body: dict[str, Any]) -> None:
    handheld.scan()


async def _start_vehicle(handheld: Handheld, body: dict[str, Any]) -> None:
    try:
        handheld.start_vehicle(_text(body, "plate"))
    except ValueError as error:
        raise Refused(422, "bad-plate", str(error)) from None


async def _end_vehicle(handheld: Handheld, body: dict[str, Any]) -> None:
    handheld.end_vehicle()


async def _register(handheld: Handheld, body: dict[str, Any]) -> None:
    try:
        await run_in_threadpool(handheld.register, _text(body, "id_number", 40))
    except ValueError as error:  # its message never quotes the number
        raise Refused(422, "bad-id-number", str(error)) from None


async def _checked_body(
    request: Request, tokens: deque[str], listening_host: str
) -> dict[str, Any]:
    """The JSON body of a staff action, once it is known to come from one of our pages."""
    host = request.headers.get("host", "")
    name = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
    if not (is_loopback(name) or name.strip("[]") == listening_host):
        raise Refused(403, "wrong-host", "the screen answers to its own address only")
    same_origin = request.headers.get("origin") == f"http://{host}"
    fetched_by = request.headers.get("sec-fetch-site", "same-origin")  # a browser says so
    if not same_origin or fetched_by not in ("same-origin", "none"):
        raise Refused(403, "cross-origin", "staff actions come from the screen's own page")
    sent = request.headers.get(TOKEN_HEADER, "")
    if not any(secrets.compare_digest(sent, token) for token in tokens):
        raise Refused(403, "bad-token", "reload the screen: its page is too old")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise Refused(413, "too-large", f"at most {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise Refused(422, "bad-request", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refused(422, "bad-request", "the body is not a JSON object")
    return body


def make_app(
    hub: ScreenHub,
    *,
    listening_host: str = "127.0.0.1",
    desk: StaffDesk | None = None,
    handheld: Handheld | None = None,
) -> Starlette:
    """The app for one hub: GET / (the page), /events (SSE), /state.json, /static/...

    With a staff desk, POST /staff/decide; on a handheld, POST /handheld/scan, /handheld/vehicle,
    /handheld/vehicle/end and /handheld/manual.
    """
    templates = Jinja2Templates(directory=HERE / "templates")
    tokens: deque[str] = deque(maxlen=MAX_TOKENS)

    async def page(request: Request) -> Response:
        status, shown = hub.snapshot()
        token = secrets.token_urlsafe(24)
        tokens.append(token)
        context = {
            "status": status,
            "shown": shown,
            "panels": hub.panels(),
            "form": "handheld" if handheld is not None else "kiosk",
            "staff": desk is not None,
            "token": token,
            "actions": STAFF_ACTIONS,
            "reasons": STAFF_REASONS,
        }
        return templates.TemplateResponse(request, "screen.html", context, headers=HEADERS)

    async def events(request: Request) -> Response:
        return StreamingResponse(hub.stream(), media_type="text/event-stream", headers=HEADERS)

    async def state(request: Request) -> Response:
        status, shown = hub.snapshot()
        body = {"status": status.as_json(), "shown": shown, "panels": hub.panels()}
        return JSONResponse(body, headers=HEADERS)

    def staff_action(act: Action) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                await act(await _checked_body(request, tokens, listening_host))
            except Refused as refused:
                body = {"error": refused.code, "detail": str(refused)}
                return JSONResponse(body, status_code=refused.status, headers=HEADERS)
            return JSONResponse({"ok": True}, headers=HEADERS)

        return endpoint

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        polling = hub.start()
        try:
            yield
        finally:
            polling.cancel()

    routes = [
        Route("/", page),
        Route("/events", events),
        Route("/state.json", state),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    posts: dict[str, Action] = {}
    if desk is not None:
        posts["/staff/decide"] = partial(_decide, desk)
    if handheld is not None:
        posts |= {
            "/handheld/scan": partial(_scan, handheld),
            "/handheld/vehicle": partial(_start_vehicle, handheld),
            "/handheld/vehicle/end": partial(_end_vehicle, handheld),
            "/handheld/manual": partial(_register, handheld),
        }
    routes += [Route(path, staff_action(act), methods=["POST"]) for path, act in posts.items()]
    return Starlette(routes=routes, lifespan=lifespan)
