"""Public endpoints: the health check, the host's public keys, and the venue-code page."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from host.api.deps import Context
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
def health(context: Context) -> dict[str, object]:
    return {"ok": True, "server_time": context.settings.now()}


@router.get(f"{API_PREFIX}/keys")
def keys(context: Context) -> dict[str, list[PublishedKey]]:
    """The host's public keys, for anyone verifying its codes (`sentinel verify --trust`)."""
    return {"keys": context.keys.published}


@router.get("/v/{venue_id}", response_class=HTMLResponse)
def venue_page(request: Request, context: Context) -> HTMLResponse:
    """Check the venue code's signature on the URL as printed, then name the venue."""
    query = request.url.query
    url = context.settings.public_url + request.url.path + (f"?{query}" if query else "")
    try:
        code = read_url(url, context.keys.trust)
    except CredentialError:
        return _page(400, "Not a valid venue code", "This code is damaged or was not issued here.")
    venue = context.storage.get_venue(code.venue_id)
    if venue is None:
        return _page(404, "Unknown venue", "This venue is no longer registered.")
    where = venue.name
    if code.binding is not None:
        where += f" ({code.binding.kind.value} {code.binding.value})"
    return _page(200, f"Checked in at {where}", venue.address)
