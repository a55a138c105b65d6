"""What every dashboard page shares: the session behind its cookie, CSRF, roles, rendering.

A user signs in with their token once; the browser then holds a session cookie (HttpOnly,
SameSite=Strict, Secure over https, scoped to the dashboard) whose hash names a row in the
database, so every worker honours it. Every form that changes or reads something carries a
CSRF token derived from the session, checked on POST. Roles are checked here, in
`signed_in`, and nowhere else.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from host.api.deps import ADMIN_TOKEN_USER, Context, HostContext, Principal
from host.core.security import token_hash
from host.storage.users import Role
from host.web.pages import ASSETS_PATH, TEMPLATES

PREFIX = "/dashboard"
SESSION_COOKIE = "sentinel_dashboard"
SESSION_HOURS = 12  # a session ends this long after sign-in, used or not
IDLE_MINUTES = 30  # and sooner, once unused this long
CSRF_FIELD = "csrf"
HEADERS = {
    "Cache-Control": "no-store",  # pages hold personal data and differ by user
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self';"
        " frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class NavItem:
    path: str
    zh: str
    en: str
    roles: frozenset[Role]


ALL_ROLES = frozenset(Role)
OFFICIALS = frozenset({Role.ADMIN, Role.EPIDEMIOLOGIST})
# The menu, in order; each user sees the entries of their role.
NAV = (
    NavItem("/flows", "流量", "Flows", frozenset({*OFFICIALS, Role.VENUE_MANAGER})),
    NavItem("/alerts", "预警", "Alerts", frozenset({*OFFICIALS, Role.VENUE_MANAGER})),
    NavItem("/tracing", "流调", "Tracing", frozenset({Role.EPIDEMIOLOGIST})),
    NavItem("/venues", "场所", "Venues", frozenset({Role.ADMIN, Role.VENUE_MANAGER})),
    NavItem("/devices", "设备", "Devices", frozenset({Role.ADMIN, Role.VENUE_MANAGER})),
    NavItem("/users", "用户", "Users", frozenset({Role.ADMIN})),
    NavItem("/audit", "审计", "Audit log", frozenset({Role.ADMIN})),
    NavItem("/screening", "筛查", "Screening", frozenset({Role.SCREENER})),
)
ROLE_WORDS: Mapping[Role, tuple[str, str]] = {
    Role.ADMIN: ("运维", "Operator"),
    Role.EPIDEMIOLOGIST: ("流调", "Epidemiologist"),
    Role.VENUE_MANAGER: ("场所管理", "Venue manager"),
    Role.SCREENER: ("筛查", "Screener"),
}


class SignInRequired(Exception):
    """No live session: the browser is sent to sign in, and back to `then` afterwards."""

    def __init__(self, then: str) -> None:
        super().__init__(then)
        self.then = then


class NotForRole(Exception):
    """A signed-in user asked for a page their role does not include."""

    def __init__(self, viewer: Viewer) -> None:
        super().__init__(viewer.principal.role.value)
        self.viewer = viewer


class BadForm(Exception):
    """A POST without this session's CSRF token, or otherwise not one of our forms."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a request: who they are, and the CSRF token of their session."""

    principal: Principal
    csrf: str

    @property
    def role(self) -> Role:
        return self.principal.role

    def nav(self) -> list[NavItem]:
        return [item for item in NAV if self.role in item.roles]


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: derived from its secret, so nothing more is stored."""
    return hmac.new(session_token.encode(), b"dashboard-csrf", hashlib.sha256).hexdigest()


def home_path(role: Role) -> str:
    """Where a role lands after signing in: its first menu entry."""
    return PREFIX + next(item.path for item in NAV if role in item.roles)


def principal_of_session(context: HostContext, session_token: str) -> Principal | None:
    """The principal of a live session; None if it ended or its user was revoked since."""
    now_ms = context.settings.now_ms()
    session = context.storage.dashboard_session(
        token_hash(session_token), now_ms, IDLE_MINUTES * 60_000
    )
    if session is None:
        return None
    if session.user_id == ADMIN_TOKEN_USER:
        return Principal(ADMIN_TOKEN_USER, "admin", Role.ADMIN)
    user = context.storage.user_by_id(session.user_id)
    if user is None or user.revoked:
        context.storage.end_dashboard_session(token_hash(session_token))
        return None
    return Principal.of(user)


def _then(request: Request) -> str:
    """The path (and query) to come back to after signing in: always one of ours."""
    query = f"?{request.url.query}" if request.url.query else ""
    return request.url.path + query


def signed_in(*roles: Role) -> Any:
    """A dependency giving the request's `Viewer`, if signed in and of one of `roles`."""
    allowed = frozenset(roles) or ALL_ROLES

    async def viewer(request: Request, context: Context) -> Viewer:
        session_token = request.cookies.get(SESSION_COOKIE, "")
        principal = None
        if session_token:
            principal = await run_in_threadpool(principal_of_session, context, session_token)
        if principal is None:
            raise SignInRequired(_then(request) if request.method == "GET" else PREFIX)
        found = Viewer(principal, csrf_token(session_token))
        if principal.role not in allowed:
            raise NotForRole(found)
        return found

    return Depends(viewer)


AnyRole = Annotated[Viewer, signed_in()]


async def posted_form(request: Request, viewer: Viewer) -> FormData:
    """The form of a POST, once its CSRF token is found to be this session's; else `BadForm`."""
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent, viewer.csrf):
        raise BadForm("the form is stale or not from this dashboard: open the page again")
    return form


def sign_in_path(then: str) -> str:
    return f"{PREFIX}/sign-in?then={quote(then, safe='/')}"


def when(ms: int | None, zone: Any = UTC) -> str:
    """A time as the dashboard shows it: local date and minute, or a dash for none."""
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M")


TEMPLATES.filters["when"] = when


def render(
    request: Request,
    template: str,
    viewer: Viewer | None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A dashboard page from its template, with the menu, the CSRF token and the assets path."""
    html = TEMPLATES.get_template(f"dashboard/{template}").render(
        assets=ASSETS_PATH,
        prefix=PREFIX,
        viewer=viewer,
        role_words=ROLE_WORDS,
        path=request.url.path,
        csrf_field=CSRF_FIELD,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})
