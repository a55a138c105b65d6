"""Staff-list screening for screeners: upload a list, follow the job, read its flags (audited)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from host.api.deps import Context, HostContext, Principal, read_limited, requires
from host.api.errors import ApiError
from host.api.fields import Purpose
from host.core.times import from_ms
from host.screening import (
    KEY_HEADER,
    MAX_CSV_BYTES,
    MAX_ROWS,
    MAX_TEST_AGE_HOURS,
    RETENTION_DAYS,
    EchoSeal,
    StaffListError,
    UnknownScreening,
    WrongKey,
    echo_of,
    echo_seal,
    parse_staff_list,
    read_results,
    results_csv,
    screen_now,
    submit_screening,
)
from host.storage.screening import Flag, RowResult, ScreeningRecord, ScreeningStatus
from host.storage.users import Role
from shared.messages import API_PREFIX

router = APIRouter(tags=["screening"])
Screener = Annotated[Principal, requires(Role.SCREENER)]
MAX_PAGE = 1000
MAX_LISTED = 100
# What a CSV file is sent as: by curl, browsers, Excel's Windows registry entry, or nothing.
CSV_TYPES = frozenset(
    {"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel",
     "application/octet-stream", ""}
)  # fmt: skip
CSV_BODY = {
    "requestBody": {
        "required": True,
        "description": "the staff list: CSV, UTF-8 (a BOM is fine), a header row "
        "`id_number[,name][,staff_id]` (common spellings, English or Chinese, are accepted), "
        f"at most {MAX_ROWS:,} rows and {MAX_CSV_BYTES:,} bytes",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}
KEY_DESCRIPTION = (
    "the key the POST gave: names and staff ids are echoed back only with it (the host keeps "
    "them sealed under it, and does not keep the key)"
)
Key = Annotated[str | None, Header(alias=KEY_HEADER, description=KEY_DESCRIPTION)]
Flags = Annotated[
    list[Flag] | None, Query(alias="flag", description="only rows with these flags (repeat)")
]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScreeningOut(Model):
    id: str
    status: ScreeningStatus
    purpose: str
    max_test_age_hours: int
    columns: list[str] = Field(description="the list's echo columns (name, staff_id), if any")
    total: int = Field(description="rows submitted")
    processed: int = Field(description="rows flagged so far")
    created_at: AwareDatetime
    expires_at: AwareDatetime = Field(
        description="when the job and its results are deleted at the latest (sooner if the "
        "host keeps check-ins for less time)"
    )

    @classmethod
    def of(cls, screening: ScreeningRecord) -> ScreeningOut:
        return cls(
            id=screening.id,
            status=screening.status,
            purpose=screening.purpose,
            max_test_age_hours=screening.max_test_age_hours,
            columns=list(screening.echo_columns),
            total=screening.total,
            processed=screening.processed,
            created_at=from_ms(screening.created_at_ms),
            expires_at=from_ms(screening.expires_at_ms),
        )


class ScreeningCreated(ScreeningOut):
    key: str | None = Field(
        description=f"shown once, never kept by the host: send it as {KEY_HEADER} to have "
        "names and staff ids echoed back; null when the list had neither"
    )


class ResultRow(Model):
    row: int = Field(description="1 for the first row under the header; blank lines skipped")
    flag: Flag
    hours_since_test: int | None = Field(
        description="whole hours (rounded up) since the last test, with no-recent-test only"
    )
    name: str | None = Field(default=None, description=f"with {KEY_HEADER} only")
    staff_id: str | None = Field(default=None, description=f"with {KEY_HEADER} only")


class ScreeningResults(ScreeningOut):
    summary: dict[Flag, int] | None = Field(
        description="rows per flag: with a purpose, once done"
    )
    rows: list[ResultRow] | None = Field(description="a page of results: with a purpose, once done")
    next_after: int | None = Field(description="`after` for the next page; null on the last")


def _csv_body_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in CSV_TYPES:
        raise ApiError(
            415,
            "unsupported-media-type",
            "send the CSV file itself as the body, with Content-Type: text/csv",
        )


def _create(
    context: HostContext, principal: Principal, data: bytes, purpose: str, max_age: int
) -> ScreeningCreated:
    try:
        staff = parse_staff_list(data)
    except StaffListError as error:
        raise ApiError(error.status, "bad-staff-list", error.detail) from None
    screening, key = submit_screening(
        context, principal, staff, purpose=purpose, max_test_age_hours=max_age
    )
    return ScreeningCreated(**ScreeningOut.of(screening).model_dump(), key=key)


CREATE_DESCRIPTION = f"""Screen a staff list: who has no negative test sampled within the age
asked, or is not green, or is not in the register.

The body is the CSV itself. Each ID number is checked (MOD 11-2) and
kept only as a keyed hash; names and staff ids are sealed under a key returned here once and
never kept by the host, so they are echoed back only to whoever holds it. The job runs in the
background: follow it at `GET /screenings/{{id}}`. The job and its results are deleted after
{RETENTION_DAYS:g} days, or sooner if the host keeps check-ins for less time. Creating one is
recorded in the audit log, with the number of rows submitted."""


@router.post(
    "/screenings", status_code=202, openapi_extra=CSV_BODY, description=CREATE_DESCRIPTION
)
async def create_screening(  # noqa: PLR0917 - the body is read here, not declared
    request: Request,
    response: Response,
    background: BackgroundTasks,
    context: Context,
    principal: Screener,
    max_test_age_hours: Annotated[
        int,
        Query(ge=1, le=MAX_TEST_AGE_HOURS, description="a test sampled longer ago is too old"),
    ],
    purpose: Annotated[Purpose, Query()],
) -> ScreeningCreated:
    _csv_body_type(request)
    data = await read_limited(request, MAX_CSV_BYTES, "a staff list")
    created = await run_in_threadpool(
        _create, context, principal, data, purpose, max_test_age_hours
    )
    response.headers["Location"] = f"{API_PREFIX}/screenings/{created.id}"
    background.add_task(screen_now, context)  # small lists are done in a moment
    return created


@router.get("/screenings")
def list_screenings(
    context: Context,
    principal: Screener,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 20,
) -> list[ScreeningOut]:
    """The organisation's screenings not yet deleted, newest first; no results."""
    assert principal.org is not None
    screenings = context.storage.list_screenings(principal.org, context.settings.now_ms(), limit)
    return [ScreeningOut.of(screening) for screening in screenings]


def _unknown(screening_id: str) -> ApiError:
    return ApiError(404, "unknown-screening", f"no screening {screening_id}")


def _seal(
    context: HostContext, principal: Principal, screening_id: str, key: str | None
) -> EchoSeal | None:
    try:
        return echo_seal(context, principal, screening_id, key)
    except UnknownScreening:
        raise _unknown(screening_id) from None
    except WrongKey as error:
        raise ApiError(422, "bad-screening-key", str(error)) from None


def _results(  # noqa: PLR0917 - the job, the page, and who asks why
    context: HostContext,
    principal: Principal,
    screening_id: str,
    flags: Sequence[Flag],
    after: int,
    limit: int,
    purpose: str,
    action: str,
) -> tuple[ScreeningRecord, list[RowResult]]:
    try:
        return read_results(context, principal, screening_id, flags, after, limit, purpose, action)
    except UnknownScreening:
        raise _unknown(screening_id) from None


@router.get("/screenings/{screening_id}")
def get_screening(  # noqa: PLR0917 - one parameter per part of the query
    screening_id: str,
    context: Context,
    principal: Screener,
    key: Key = None,
    purpose: Annotated[
        Purpose | None,
        Query(description="why the results are read: with it, the summary and a page of "
        "results once done, and the read is recorded in the audit log"),
    ] = None,
    flags: Flags = None,
    after: Annotated[int, Query(ge=0, description="rows after this row number")] = 0,
    limit: Annotated[int, Query(ge=0, le=MAX_PAGE)] = 100,
) -> ScreeningResults:
    """A screening's progress; with a purpose, its summary and flags too (audited).

    Flags only: no colour and no test dates; hours since the last test with no-recent-test.
    """
    if purpose is None:
        assert principal.org is not None
        screening = context.storage.get_screening(
            screening_id, principal.org, context.settings.now_ms()
        )
        if screening is None:
            raise _unknown(screening_id)
        return ScreeningResults(
            **ScreeningOut.of(screening).model_dump(), summary=None, rows=None, next_after=None
        )
    seal = _seal(context, principal, screening_id, key)
    screening, rows = _results(
        context, principal, screening_id, flags or (), after, limit, purpose, "screening-result"
    )
    done = screening.status is ScreeningStatus.DONE
    return ScreeningResults(
        **ScreeningOut.of(screening).model_dump(),
        summary=screening.summary,
        rows=[
            ResultRow(
                row=row.row_no,
                flag=row.flag,
                hours_since_test=row.hours_since_test,
                **echo_of(seal, screening, row),
            )
            for row in rows
        ]
        if done
        else None,
        next_after=rows[-1].row_no if done and rows and len(rows) == limit else None,
    )


@router.get(
    "/screenings/{screening_id}/result.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def screening_csv(  # noqa: PLR0917 - one parameter per part of the query
    screening_id: str,
    context: Context,
    principal: Screener,
    purpose: Annotated[Purpose, Query(description="why the results are read; audited")],
    key: Key = None,
    flags: Flags = None,
) -> Response:
    """A done screening's results as CSV (UTF-8 with a BOM, for spreadsheets); audited.

    Columns: row, then name and staff_id if the list had them and the key is given, then
    flag and hours_since_test.
    """
    seal = _seal(context, principal, screening_id, key)
    screening, rows = _results(
        context, principal, screening_id, flags or (), 0, MAX_ROWS, purpose, "screening-download"
    )
    if screening.status is not ScreeningStatus.DONE:
        raise ApiError(
            409, "screening-not-done", f"screening {screening_id} is {screening.status.value}"
        )
    return csv_download(results_csv(screening, rows, seal), f"{screening_id}.csv")


def csv_download(text: str, filename: str) -> Response:
    """A result CSV as a download: UTF-8 with a BOM, which spreadsheets need to read it so."""
    return Response(
        "\ufeff" + text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
