"""Venue-code posters to print, PDF or SVG: the fixed code, or one page per room or vehicle."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.responses import Response

from host.api.deps import Context, HostContext, require_venue_for
from host.api.errors import ApiError
from host.api.parsing import StrictJsonRoute
from host.api.routes.admin import VenueManager, _venue_url
from host.posters import (
    FontMissing,
    PageListError,
    PaperSize,
    PosterPage,
    bindings,
    csv_values,
    expand_rooms,
    render_pdf,
    render_svg,
    split_list,
)
from host.storage.base import VenueRecord
from shared.venuecode import Binding, BindingKind

router = APIRouter(prefix="/admin", tags=["admin"], route_class=StrictJsonRoute)
MAX_CSV_CHARACTERS = 64 * 1024  # 500 lines of a room or plate and a few more columns


class PosterFormat(StrEnum):
    PDF = "pdf"  # one page or many
    SVG = "svg"  # one page: to edit, or to print one poster


MEDIA_TYPES = {PosterFormat.PDF: "application/pdf", PosterFormat.SVG: "image/svg+xml"}
POSTER = {
    200: {"content": {media_type: {} for media_type in MEDIA_TYPES.values()}},
    503: {"description": "no font with Chinese characters is installed on the host"},
}
CsvBody = Annotated[
    str,
    Body(
        media_type="text/csv",
        max_length=MAX_CSV_CHARACTERS,
        description="one room or plate a line (the first column of a CSV), taken as written",
    ),
]


def _chosen(kind: BindingKind, values: Iterable[str]) -> list[Binding]:
    """The bindings of `values` (read lazily: a bad range or CSV is found here), or 422."""
    try:
        return bindings(kind, values)
    except PageListError as error:
        raise ApiError(422, error.code, str(error)) from None


def _poster(
    context: HostContext,
    venue: VenueRecord,
    output: PosterFormat,
    size: PaperSize,
    chosen: list[Binding] | None,
) -> Response:
    """The poster as a response: a page per binding chosen, else one of the fixed code."""
    if chosen is None:
        pages = [PosterPage(venue, venue.code_url)]
    else:
        pages = [
            PosterPage(venue, _venue_url(context, venue, binding), binding) for binding in chosen
        ]
    try:
        if output is PosterFormat.PDF:
            content = render_pdf(pages, size)
        elif len(pages) == 1:
            content = render_svg(pages[0], size)
        else:
            raise ApiError(
                422,
                "svg-one-page",
                f"an SVG holds one page and these are {len(pages)}: ask for poster.pdf",
            )
    except FontMissing as error:
        raise ApiError(503, "no-cjk-font", str(error)) from None
    name = f"poster-{venue.id}-{size.value}.{output.value}"
    headers = {
        "Content-Disposition": f'inline; filename="{name}"',
        "X-Poster-Pages": str(len(pages)),
    }
    return Response(content, media_type=MEDIA_TYPES[output], headers=headers)


@router.get("/venues/{venue_id}/poster.{output}", response_class=Response, responses=POSTER)
def venue_poster(
    venue_id: str,
    output: PosterFormat,
    context: Context,
    principal: VenueManager,
    *,
    size: PaperSize = PaperSize.A4,
    rooms: str | None = None,
    plates: str | None = None,
) -> Response:
    """The venue's poster: its fixed code, or a page per room or plate, each with its own code.

    `rooms=101-120,201,B01-B12`: rooms and ranges of them; `plates=京A12345,苏A67890`.
    At most 500 pages; an SVG holds one.
    """
    venue = require_venue_for(context, principal, venue_id)
    if rooms is not None and plates is not None:
        raise ApiError(422, "bad-binding", "one page per room or per plate: not both")
    chosen = None
    if rooms is not None:
        chosen = _chosen(BindingKind.ROOM, expand_rooms(split_list(rooms)))
    elif plates is not None:
        chosen = _chosen(BindingKind.PLATE, split_list(plates))
    return _poster(context, venue, output, size, chosen)


@router.post("/venues/{venue_id}/poster.{output}", response_class=Response, responses=POSTER)
def venue_poster_for_list(
    venue_id: str,
    output: PosterFormat,
    context: Context,
    principal: VenueManager,
    *,
    kind: BindingKind,
    body: CsvBody,
    size: PaperSize = PaperSize.A4,
) -> Response:
    """A page per room or plate (`kind`) listed in a CSV body, one a line, for long lists."""
    venue = require_venue_for(context, principal, venue_id)
    return _poster(context, venue, output, size, _chosen(kind, csv_values(body)))
