"""Dashboard pages: staff-list screening for screeners, their organisation's jobs only.

Upload a staff list (the API's CSV and size limit), follow the job, read its summary and
flags, download the result. Each read of results is audited as the API's, with the purpose
the job was made for. Names and staff ids stay sealed under the job's key, which the host
hands out once and does not keep: the page that answers the upload shows it, this browser tab
keeps it in its session storage (gone with the tab), and it comes back to the host only inside
the POST of a form that asks for names, as the API's `X-Screening-Key` header does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from host.api.deps import Context, HostContext, Principal
from host.api.fields import Purpose
from host.api.routes.screening import csv_download
from host.screening import (
    MAX_CSV_BYTES,
    MAX_ROWS,
    MAX_TEST_AGE_HOURS,
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
from host.storage.base import DEFAULT_TIMEZONE
from host.storage.screening import Flag, ScreeningRecord, ScreeningStatus
from host.storage.users import Role
from host.web.dashboard.common import HEADERS, PREFIX, Viewer, posted_form, render, signed_in
from shared.idnumber import holds_id_number

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Screener = Annotated[Viewer, signed_in(Role.SCREENER)]
PAGE = f"{PREFIX}/screening"
ZONE = ZoneInfo(DEFAULT_TIMEZONE)  # the times the pages show
LISTED = 50
DEFAULT_TEST_AGE_HOURS = 48
SHOWN_ROWS = 200  # flagged rows on the page; the download has them all
FLAGGED = tuple(flag for flag in Flag if flag is not Flag.OK)
FINISHED = (ScreeningStatus.DONE, ScreeningStatus.FAILED)
FLAG_WORDS = {
    Flag.OK: ("正常", "OK"),
    Flag.NO_RECENT_TEST: ("无近期核酸", "No recent test"),
    Flag.NOT_GREEN: ("非绿码", "Not green"),
    Flag.NOT_REGISTERED: ("未登记", "Not registered"),
    Flag.INVALID_ID_NUMBER: ("身份证号无效", "Invalid ID number"),
}
STATUS_WORDS = {
    ScreeningStatus.QUEUED: ("排队中", "Queued"),
    ScreeningStatus.RUNNING: ("比对中", "Running"),
    ScreeningStatus.DONE: ("已完成", "Done"),
    ScreeningStatus.FAILED: ("失败", "Failed"),
}
NOT_DONE = "the screening is not done yet: its result can be downloaded once it is"
_purpose = TypeAdapter(Purpose)


@dataclass(frozen=True)
class UploadForm:
    """The upload form as typed, to show again (a file input cannot be filled again)."""

    purpose: str = ""
    hours: str = str(DEFAULT_TEST_AGE_HOURS)


@dataclass(frozen=True)
class ShownRow:
    row: int
    flag: Flag
    hours_since_test: int | None
    echo: dict[str, str]


def _org(viewer: Viewer) -> str:
    assert viewer.principal.org is not None, "a screener always has an organisation"
    return viewer.principal.org


def _render(
    request: Request, viewer: Viewer, template: str, status: int = 200, **context: object
) -> HTMLResponse:
    return render(
        request,
        template,
        viewer,
        status=status,
        flag_words=FLAG_WORDS,
        status_words=STATUS_WORDS,
        page=PAGE,
        zone=ZONE,
        **context,
    )


# ---- the list and the upload ------------------------------------------------------------------


def _list_page(
    request: Request,
    context: HostContext,
    viewer: Viewer,
    typed: UploadForm,
    *,
    status: int = 200,
    problems: list[str] | None = None,
) -> HTMLResponse:
    screenings = context.storage.list_screenings(_org(viewer), context.settings.now_ms(), LISTED)
    return _render(
        request,
        viewer,
        "screening.html",
        status,
        typed=typed,
        problems=problems or [],
        screenings=screenings,
        max_bytes=MAX_CSV_BYTES,
        max_rows=MAX_ROWS,
        max_hours=MAX_TEST_AGE_HOURS,
    )


@router.get("/screening", response_class=HTMLResponse)
def screenings(request: Request, context: Context, viewer: Screener) -> Response:
    return _list_page(request, context, viewer, UploadForm())


def _read_upload(purpose: str, hours: str) -> tuple[int, list[str]]:
    """The test age asked, and what is wrong with the form's fields besides the file."""
    problems = []
    try:
        _purpose.validate_python(purpose)
    except ValidationError as error:
        for detail in error.errors(include_input=False, include_url=False):
            message = str(detail["msg"]).removeprefix("Value error, ")
            problems.append(f"事由 Purpose: {message}")
    max_age = int(hours) if hours.isdigit() else 0
    if not 1 <= max_age <= MAX_TEST_AGE_HOURS:
        problems.append(f"核酸时限 Test age: whole hours, 1 to {MAX_TEST_AGE_HOURS}")
    return max_age, problems


def _submit(
    context: HostContext, principal: Principal, data: bytes, purpose: str, max_age: int
) -> tuple[ScreeningRecord, str | None]:
    staff = parse_staff_list(data)
    return submit_screening(context, principal, staff, purpose=purpose, max_test_age_hours=max_age)


@router.post("/screening", response_class=HTMLResponse)
async def upload(request: Request, context: Context, viewer: Screener) -> Response:
    """Screen the uploaded list: its key page (shown once), or the list saying what is wrong."""
    form = await posted_form(request, viewer)
    purpose = str(form.get("purpose", "")).strip()
    hours = str(form.get("max_test_age_hours", "")).strip()
    typed = UploadForm("" if holds_id_number(purpose) else purpose, hours)
    max_age, problems = _read_upload(purpose, hours)
    upload = form.get("staff_list")
    if not isinstance(upload, UploadFile) or not upload.filename:
        problems.append("名单 Staff list: choose the CSV file")
    if problems:
        return await run_in_threadpool(
            _list_page, request, context, viewer, typed, status=422, problems=problems
        )
    assert isinstance(upload, UploadFile)
    data = await upload.read()
    try:
        screening, key = await run_in_threadpool(
            _submit, context, viewer.principal, data, purpose, max_age
        )
    except StaffListError as error:
        return await run_in_threadpool(
            _list_page, request, context, viewer, typed, status=error.status,
            problems=[f"名单 Staff list: {error.detail}"],
        )  # fmt: skip
    start = BackgroundTask(screen_now, context)  # small lists are done in a moment
    if key is None:
        return RedirectResponse(
            f"{PAGE}/{screening.id}", status_code=303, headers=HEADERS, background=start
        )
    response = _render(request, viewer, "screening_key.html", 201, screening=screening, key=key)
    response.background = start
    return response


# ---- one screening ---------------------------------------------------------------------------


def _unknown(request: Request, viewer: Viewer) -> HTMLResponse:
    return _render(request, viewer, "screening_unknown.html", 404)


def _screening_page(
    request: Request,
    context: HostContext,
    viewer: Viewer,
    screening_id: str,
    key: str | None,
    *,
    problem: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """A job's progress; once done, its summary and flagged rows (names with the key): audited."""
    org = _org(viewer)
    screening = context.storage.get_screening(screening_id, org, context.settings.now_ms())
    if screening is None:
        return _unknown(request, viewer)
    seal = None
    rows: list[ShownRow] = []
    if screening.status is ScreeningStatus.DONE:
        try:
            seal = echo_seal(context, viewer.principal, screening_id, key)
        except WrongKey as error:
            problem, status = str(error), 422
        screening, found = read_results(
            context, viewer.principal, screening_id, FLAGGED, 0, SHOWN_ROWS,
            screening.purpose, "screening-result",
        )  # fmt: skip
        rows = [
            ShownRow(row.row_no, row.flag, row.hours_since_test, echo_of(seal, screening, row))
            for row in found
        ]
    flagged = sum(count for flag, count in (screening.summary or {}).items() if flag in FLAGGED)
    return _render(
        request,
        viewer,
        "screening_job.html",
        status,
        screening=screening,
        rows=rows,
        flagged=flagged,
        named=seal is not None,
        problem=problem,
        finished=screening.status in FINISHED,
    )


@router.get("/screening/{screening_id}", response_class=HTMLResponse)
def screening(request: Request, screening_id: str, context: Context, viewer: Screener) -> Response:
    try:
        return _screening_page(request, context, viewer, screening_id, None)
    except UnknownScreening:
        return _unknown(request, viewer)


def _key_of(form_key: object) -> str | None:
    key = str(form_key or "").strip()
    return key or None


@router.post("/screening/{screening_id}", response_class=HTMLResponse)
async def screening_named(
    request: Request, screening_id: str, context: Context, viewer: Screener
) -> Response:
    """The same page with names and staff ids opened by the key the form carries."""
    form = await posted_form(request, viewer)
    try:
        return await run_in_threadpool(
            _screening_page, request, context, viewer, screening_id, _key_of(form.get("key"))
        )
    except UnknownScreening:
        return _unknown(request, viewer)


@router.get("/screening/{screening_id}/progress")
def progress(screening_id: str, context: Context, viewer: Screener) -> Response:
    """A job's progress for the page's script: status, rows flagged, rows in all."""
    screening = context.storage.get_screening(screening_id, _org(viewer), context.settings.now_ms())
    if screening is None:
        return JSONResponse({"error": "unknown-screening"}, status_code=404, headers=HEADERS)
    return JSONResponse(
        {
            "status": screening.status.value,
            "processed": screening.processed,
            "total": screening.total,
        },
        headers=HEADERS,
    )


@router.post("/screening/{screening_id}/result.csv")
async def download(
    request: Request, screening_id: str, context: Context, viewer: Screener
) -> Response:
    """The results as CSV, read as the API's download is (audited `screening-download`).

    Names and staff ids are put back when the form carries the job's key.
    """
    form = await posted_form(request, viewer)
    key = _key_of(form.get("key"))
    screening = await run_in_threadpool(
        context.storage.get_screening, screening_id, _org(viewer), context.settings.now_ms()
    )
    if screening is None:
        return _unknown(request, viewer)
    if screening.status is not ScreeningStatus.DONE:
        return await run_in_threadpool(
            _screening_page,
            request,
            context,
            viewer,
            screening_id,
            None,
            problem=NOT_DONE,
            status=409,
        )
    try:
        seal = await run_in_threadpool(echo_seal, context, viewer.principal, screening_id, key)
        screening, rows = await run_in_threadpool(
            read_results, context, viewer.principal, screening_id, (), 0, MAX_ROWS,
            screening.purpose, "screening-download",
        )  # fmt: skip
    except UnknownScreening:
        return _unknown(request, viewer)
    except WrongKey:  # the page says so, as it would for showing names
        return await run_in_threadpool(_screening_page, request, context, viewer, screening_id, key)
    response = csv_download(results_csv(screening, rows, seal), f"{screening_id}.csv")
    response.headers.update(HEADERS)
    return response
