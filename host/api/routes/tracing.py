"""`POST /tracing`: a case's visits and contacts for an epidemiologist, audited, as JSON or CSV."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from host.api.deps import Context, Principal, requires
from host.api.errors import ApiError
from host.api.parsing import StrictJsonRoute
from host.storage.tracing import TooBroad
from host.storage.users import Role
from host.tracing import TraceOut, TraceRequest, run_trace, trace_csv

router = APIRouter(tags=["tracing"], route_class=StrictJsonRoute)
Epidemiologist = Annotated[Principal, requires(Role.EPIDEMIOLOGIST)]
CSV_TYPE = "text/csv"


def wants_csv(request: Request) -> bool:
    """Whether the client asked for CSV (`Accept: text/csv`) rather than JSON."""
    accepted = request.headers.get("accept", "")
    return any(part.split(";", 1)[0].strip() == CSV_TYPE for part in accepted.split(","))


@router.post(
    "/tracing",
    response_model=TraceOut,
    responses={200: {"content": {CSV_TYPE: {}}, "description": "JSON, or CSV on request"}},
)
def trace(
    body: TraceRequest, request: Request, context: Context, principal: Epidemiologist
) -> Response:
    """The case's visits and everyone checked in near them in place and time; audited.

    The read and its audit record (who, why, the case by reference, how many records) are
    one transaction. `Accept: text/csv` answers the same as one CSV table.
    """
    try:
        answer = run_trace(context, principal, body)
    except TooBroad as error:
        raise ApiError(422, "too-broad", str(error)) from None
    if wants_csv(request):
        return csv_answer(answer)
    return Response(answer.model_dump_json(), media_type="application/json")


def csv_answer(answer: TraceOut) -> Response:
    """The answer as the CSV download `Accept: text/csv` asks for."""
    return Response(
        trace_csv(answer),
        media_type=f"{CSV_TYPE}; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="tracing.csv"'},
    )
