"""Public endpoints: the health check, the host's public keys, and the venue-code page."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from host.api.deps import Context, HostContext
from shared.envelope import CredentialError
from shared.messages import API_PREFIX, PublishedKey
from shared.venuecode import read_url

router = APIRouter(tags=["public"])

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body><h1>{title}</h1><p>{text}</p></body>
</html>
"""


def _page(status: int, title: str, text: str) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=escape(title), text=escape(text)), status_code=status)


@router.get(f"{API_PREFIX}/health")
async def health(context: Context) -> dict[str, object]:
    return {"ok": True, "server_time": context.settings.now()}


@router.get(f"{API_PREFIX}/keys")
async def keys(context: Context) -> dict[str, list[PublishedKey]]:
    """The host's public keys, for anyone verifying its codes (`sentinel verify --trust`)."""
    return {"keys": context.keys.published}


@router.get("/v/{venue_id}", response_class=HTMLResponse)
async def venue_page(request: Request, context: Context) -> HTMLResponse:
    """Check the venue code's signature on the URL as printed, then name the venue.

    Phones open the same few codes again and again: a page is kept for a few seconds per URL
    (`HostContext.venue_pages`), so most answers need neither the signature check nor the
    database, nor a worker thread.
    """
    query = request.url.query
    url = context.settings.public_url + request.url.path + (f"?{query}" if query else "")
    fresh, page = context.venue_pages.get(url)
    if not fresh or page is None:
        page = await run_in_threadpool(_venue_page, context, url)
        context.venue_pages.put(url, page)
    status, title, text = page
    return _page(status, title, text)


def _venue_page(context: HostContext, url: str) -> tuple[int, str, str]:
    """(status, title, text) of the page for this venue URL."""
    try:
        code = read_url(url, context.keys.trust)
    except CredentialError:
        return 400, "Not a valid venue code", "This code is damaged or was not issued here."
    venue = context.storage.get_venue(code.venue_id)
    if venue is None:
        return 404, "Unknown venue", "This venue is no longer registered."
    where = venue.name
    if code.binding is not None:
        where += f" ({code.binding.kind.value} {code.binding.value})"
    return 200, f"Checked in at {where}", venue.address
