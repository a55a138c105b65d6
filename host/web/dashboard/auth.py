"""Signing in and out of the dashboard, its home, and its answers to the signed-out and the lost.

A token is typed once into the sign-in form (never put in a URL, so it is in no log and no
history) and exchanged for a session cookie. The sign-in form is protected from cross-site
posting by a cookie of its own that the form must repeat.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from host.api.deps import Context, client_address, principal_of_guess
from host.core.security import new_token, token_hash
from host.web.dashboard.common import (
    CSRF_FIELD,
    HEADERS,
    PREFIX,
    SESSION_COOKIE,
    SESSION_HOURS,
    AnyRole,
    BadForm,
    NotForRole,
    SignInRequired,
    home_path,
    posted_form,
    render,
    sign_in_path,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)
SIGN_IN_COOKIE = "sentinel_dashboard_sign_in"  # the sign-in form's own CSRF secret
SIGN_IN_COOKIE_SECONDS = 1800
MAX_TOKEN_LENGTH = 200


def _cookie(response: Response, request: Request, name: str, value: str | None, age: int) -> None:
    """Set (or, with None, remove) a dashboard cookie: HttpOnly, Strict, Secure over https."""
    secure = request.url.scheme == "https"
    if value is None:
        response.delete_cookie(name, path=PREFIX, secure=secure, httponly=True, samesite="strict")
        return
    response.set_cookie(
        name, value, max_age=age, path=PREFIX, secure=secure, httponly=True, samesite="strict"
    )


def _safe_then(then: str) -> str | None:
    """`then` if it is a dashboard path of this host (never another site), else None."""
    if then.startswith(PREFIX + "/") and not then.startswith("//") and "\\" not in then:
        return then
    return None


def _sign_in_page(request: Request, then: str, problem: str | None, status: int) -> Response:
    form_secret = secrets.token_urlsafe(24)
    response = render(
        request,
        "sign_in.html",
        None,
        status=status,
        then=_safe_then(then) or "",
        problem=problem,
        form_secret=form_secret,
    )
    _cookie(response, request, SIGN_IN_COOKIE, form_secret, SIGN_IN_COOKIE_SECONDS)
    return response


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, then: str = "") -> Response:
    return _sign_in_page(request, then, None, 200)


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, context: Context) -> Response:
    """Exchange a user's token for a session; the form again, with the reason, if refused.

    429 (the error JSON) once the client's address has sent too many wrong tokens.
    """
    form = await request.form()
    then = str(form.get("then", ""))
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    sent = str(form.get(CSRF_FIELD, ""))
    if not expected or not hmac.compare_digest(sent, expected):
        return _sign_in_page(request, then, "stale", 400)
    token = str(form.get("token", "")).strip()
    principal = None
    if 0 < len(token) <= MAX_TOKEN_LENGTH:
        address = client_address(context, request)
        principal = await run_in_threadpool(principal_of_guess, context, token, address)
    if principal is None:
        return _sign_in_page(request, then, "refused", 401)
    session_token = new_token("dash")
    now_ms = context.settings.now_ms()
    await run_in_threadpool(
        context.storage.start_dashboard_session,
        token_hash(session_token),
        principal.user_id,
        now_ms,
        now_ms + SESSION_HOURS * 3_600_000,
    )
    response = RedirectResponse(
        _safe_then(then) or home_path(principal.role), status_code=303, headers=HEADERS
    )
    _cookie(response, request, SESSION_COOKIE, session_token, SESSION_HOURS * 3600)
    _cookie(response, request, SIGN_IN_COOKIE, None, 0)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, context: Context, viewer: AnyRole) -> Response:
    await posted_form(request, viewer)
    session_token = request.cookies.get(SESSION_COOKIE, "")
    await run_in_threadpool(context.storage.end_dashboard_session, token_hash(session_token))
    response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303, headers=HEADERS)
    _cookie(response, request, SESSION_COOKIE, None, 0)
    return response


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def home(viewer: AnyRole) -> Response:
    return RedirectResponse(home_path(viewer.role), status_code=303, headers=HEADERS)


async def _sign_in_required(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    # A relative Location: never built from the request's Host header.
    return RedirectResponse(sign_in_path(exc.then), status_code=303, headers=HEADERS)


async def _not_for_role(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotForRole)
    return render(request, "not_for_role.html", exc.viewer, status=403)


async def _bad_form(request: Request, exc: Exception) -> Response:
    return render(request, "bad_form.html", None, status=400, problem=str(exc))


def install(app: FastAPI) -> None:
    """Add the dashboard's pages and its answers to the signed-out, the lost and stale forms."""
    from host.web.dashboard import flows, operators, screening, tracing

    app.include_router(router)
    for pages in (operators, flows, tracing, screening):
        app.include_router(pages.router)
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(NotForRole, _not_for_role)
    app.add_exception_handler(BadForm, _bad_form)
