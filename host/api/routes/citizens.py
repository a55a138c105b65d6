"""Citizens' phone pages: the sign-in link, their personal code, and the venue-code check-in.

`GET /v/{venue_id}` is what a phone camera opens when it scans a venue poster. With a session
cookie it records the check-in (no script needed) and shows it: that page is the person's own
and is never cached. Without one it says how to check in; that answer is the same for everyone
who opens the URL, so it is kept a few seconds per URL (`HostContext.venue_pages`) and most
phones need neither the signature check nor the database, nor a worker thread.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from host.api.deps import Context, HostContext
from host.api.errors import ApiError
from host.phone import (
    SESSION_COOKIE,
    SIGN_IN_PATH,
    Session,
    check_in,
    dynamic_code,
    signed_in,
    start_session,
)
from host.storage.base import PersonRecord
from host.storage.sqlbase import TokenProblem, TokenRefused
from host.web.pages import (
    HEADERS,
    INVALID_CODE,
    NOT_SIGNED_IN,
    SIGN_IN_NEEDED,
    SIGN_IN_REFUSED,
    UNKNOWN_VENUE,
    checkin_page,
    code_view,
    notice,
    personal_page,
)
from shared.envelope import CredentialError
from shared.venuecode import read_url

router = APIRouter(tags=["citizens"])
PERSONAL_PAGE = "/me"
MAX_TOKEN_LENGTH = 200


def _html(status: int, html: str) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _session_cookie(response: Response, request: Request, session: Session | None) -> None:
    """Set the session cookie (None: remove it): script-proof, sent on a camera's navigation.

    SameSite=Lax, not Strict: a venue code is opened by a top-level navigation from the camera
    app, which a Strict cookie would not go with. Secure whenever the request came over https.
    """
    secure = request.url.scheme == "https"
    if session is None:
        response.delete_cookie(
            SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="lax"
        )
        return
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=session.max_age_s,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )


@router.get(SIGN_IN_PATH, response_class=HTMLResponse)
def sign_in(
    request: Request,
    context: Context,
    token: Annotated[str, Query(max_length=MAX_TOKEN_LENGTH)] = "",
) -> Response:
    """Open a one-time sign-in link: start a session (the cookie), then show the personal page."""
    try:
        session = start_session(context, token)
    except TokenRefused as refused:
        status = 400 if refused.problem is TokenProblem.UNKNOWN else 410
        return _html(status, notice(SIGN_IN_REFUSED[refused.problem]))
    response = RedirectResponse(PERSONAL_PAGE, status_code=303, headers=HEADERS)
    _session_cookie(response, request, session)
    return response


def _person(request: Request, context: HostContext) -> PersonRecord | None:
    return signed_in(context, request.cookies.get(SESSION_COOKIE))


@router.get(PERSONAL_PAGE, response_class=HTMLResponse)
def personal(request: Request, context: Context) -> Response:
    """The signed-in citizen's dynamic code, framed in its colour and renewed before it expires."""
    person = _person(request, context)
    if person is None:
        return _html(401, notice(NOT_SIGNED_IN))
    return _html(200, personal_page(person, *dynamic_code(context, person)))


@router.get(f"{PERSONAL_PAGE}/code.json")
def personal_code(request: Request, context: Context) -> JSONResponse:
    """A fresh code for the personal page to renew itself with: its SVG, colour and test."""
    person = _person(request, context)
    if person is None:
        raise ApiError(401, "not-signed-in", "open your personal page from the city health app")
    return JSONResponse(code_view(person, *dynamic_code(context, person)), headers=HEADERS)


@router.get("/v/{venue_id}", response_class=HTMLResponse)
async def venue_page(request: Request, context: Context) -> Response:
    """Check the venue code's signature on the URL as printed; check in a signed-in phone."""
    query = request.url.query
    url = context.settings.public_url + request.url.path + (f"?{query}" if query else "")
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        return await run_in_threadpool(_signed_in_page, context, request, url)
    fresh, page = context.venue_pages.get(url)
    if not fresh or page is None:
        page = await run_in_threadpool(_anonymous_page, context, url)
    return _html(*page)


def _venue_answer(context: HostContext, url: str, person: PersonRecord | None) -> tuple[int, str]:
    """(status, HTML) for this venue URL: a refusal, how to check in, or the person's check-in."""
    try:
        code = read_url(url, context.keys.trust)
    except CredentialError:
        return 400, notice(INVALID_CODE)
    venue = context.storage.get_venue(code.venue_id)
    if venue is None:
        return 404, notice(UNKNOWN_VENUE)
    if person is None:
        return 200, notice(SIGN_IN_NEEDED, venue, code.binding)
    visit = check_in(context, person, venue, code)
    return 200, checkin_page(venue, code.binding, person, visit, context.settings.now())


def _anonymous_page(context: HostContext, url: str) -> tuple[int, str]:
    """The answer to anyone without a session, kept for a few seconds."""
    page = _venue_answer(context, url, None)
    context.venue_pages.put(url, page)
    return page


def _signed_in_page(context: HostContext, request: Request, url: str) -> Response:
    """The person's check-in; a cookie of no live session is removed, and answered as none."""
    person = _person(request, context)
    if person is None:
        response = _html(*_anonymous_page(context, url))
        _session_cookie(response, request, None)
        return response
    return _html(*_venue_answer(context, url, person))
