"""Dashboard pages: tracing for epidemiologists; a case's visits on a timeline, contacts, CSV.

The form names a case by reference or by ID number (resolved as the API does, shown only
masked, never typed back into the form), a period of whole days in the host's default time
zone, a window and a purpose. Every query goes through `host.tracing.run_trace`, the API's
own read, so it is written to the audit log in the same transaction; the page says so and
lists the user's own recent queries from that log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from host.api.deps import Context, HostContext, Principal
from host.api.routes.tracing import csv_answer
from host.storage.base import DEFAULT_TIMEZONE
from host.storage.tracing import TooBroad
from host.storage.users import AuditRecord, Role
from host.tracing import (
    DEFAULT_WINDOW_MINUTES,
    MAX_SPAN,
    MAX_WINDOW_MINUTES,
    SECOND_DEGREE_MAX_SPAN,
    SECOND_DEGREE_MAX_WINDOW_MINUTES,
    ContactOut,
    TraceOut,
    TraceRequest,
    run_trace,
)
from host.web.dashboard.common import (
    HEADERS,
    PREFIX,
    Viewer,
    posted_form,
    render,
    signed_in,
    when,
)
from shared.idnumber import holds_id_number, mask_id_number, normalise_id_number

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Epidemiologist = Annotated[Viewer, signed_in(Role.EPIDEMIOLOGIST)]
ZONE = ZoneInfo(DEFAULT_TIMEZONE)  # the form's dates and the page's times
DEFAULT_DAYS = 14  # the period the empty form proposes, ending today
RECENT_QUERIES = 10
TIMELINE_WIDTH = 1000  # the SVG's own units; CSS scales it to the page
NEARBY_WIDTH = 200
# A case typed as digits (spaces and hyphens allowed) is an ID number, valid or not: it is
# never typed back, so that a mistyped number is not shown either.
ID_NUMBER_LIKE = re.compile(r"[\dXx\s\-]{15,}")
# Where each field of TraceRequest is typed on the form.
FIELD_OF = {
    "person_ref": "case",
    "id_number": "case",
    "since": "since",
    "until": "until",
    "window_minutes": "window",
    "depth": "second_degree",
    "purpose": "purpose",
}
NO_VISITS = "no check-ins under this case in this period: an unknown reference, or other dates"
COLOUR_WORDS = {"green": "绿码 Green", "yellow": "黄码 Yellow", "red": "红码 Red"}
RESULT_WORDS = {"negative": "阴性 negative", "positive": "阳性 positive"}


@dataclass(frozen=True)
class TraceForm:
    """The form as typed, to show again: never an ID number, which is kept masked apart."""

    case: str = ""
    since: str = ""
    until: str = ""
    window: str = str(DEFAULT_WINDOW_MINUTES)
    purpose: str = ""
    second_degree: bool = False
    masked_id_number: str | None = None  # the case, when it was given by ID number

    @classmethod
    def empty(cls, today: date) -> TraceForm:
        return cls(
            since=(today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(), until=today.isoformat()
        )


@dataclass
class Problems:
    """What is wrong with a form: messages by field, and those about the form as a whole."""

    by_field: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def add(self, where: str | None, message: str) -> None:
        if where is None:
            self.general.append(message)
        else:
            self.by_field.setdefault(where, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.by_field or self.general)


def _is_id_number(case: str) -> bool:
    return holds_id_number(case) or ID_NUMBER_LIKE.fullmatch(case) is not None


def _day(text: str, where: str, problems: Problems) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.add(where, "not a date (YYYY-MM-DD)")
        return None


def read_form(form: FormData) -> tuple[TraceForm, TraceRequest | None, Problems]:
    """The form as typed (to show again), the request it makes, or what is wrong with it."""
    case = str(form.get("case", "")).strip()
    purpose = str(form.get("purpose", "")).strip()
    by_id_number = _is_id_number(case)
    typed = TraceForm(
        case="" if by_id_number else case,
        since=str(form.get("since", "")).strip(),
        until=str(form.get("until", "")).strip(),
        window=str(form.get("window", "")).strip(),
        purpose="" if holds_id_number(purpose) else purpose,
        second_degree=form.get("second_degree") == "on",
    )
    problems = Problems()
    if not case:
        problems.add("case", "name the case: a person reference or an ID number")
    first_day = _day(typed.since, "since", problems)
    last_day = _day(typed.until, "until", problems)
    if not typed.window.isdigit():
        problems.add("window", "a whole number of minutes")
    if problems or first_day is None or last_day is None:
        return typed, None, problems
    if last_day < first_day:
        problems.add("until", "the last day is before the first")
        return typed, None, problems
    fields = {
        "id_number" if by_id_number else "person_ref": case,
        "since": datetime.combine(first_day, time(), ZONE),
        "until": datetime.combine(last_day + timedelta(days=1), time(), ZONE),
        "window_minutes": int(typed.window),
        "depth": 2 if typed.second_degree else 1,
        "purpose": purpose,
    }
    try:
        request = TraceRequest.model_validate(fields)
    except ValidationError as error:
        for detail in error.errors(include_input=False, include_url=False):
            message = str(detail["msg"]).removeprefix("Value error, ")
            where = FIELD_OF.get(str(detail["loc"][0])) if detail["loc"] else None
            problems.add(where, message)
        return typed, None, problems
    if request.id_number is not None:
        typed = replace(typed, masked_id_number=mask_id_number(normalise_id_number(case)))
    return typed, request, problems


# ---- what the page shows ----------------------------------------------------------------------


def local(moment: datetime) -> str:
    return moment.astimezone(ZONE).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Nearby:
    """A first-degree contact's place on a visit's strip: the case's check-in in the middle."""

    x: float
    before: bool


@dataclass(frozen=True)
class VisitView:
    venue: str
    binding: str | None
    at: str
    x: float  # on the period's timeline
    nearby: list[Nearby]

    @property
    def before(self) -> int:
        return sum(dot.before for dot in self.nearby)


@dataclass(frozen=True)
class ContactView:
    person_ref: str
    degree: int
    via: str | None
    venue: str
    binding: str | None
    case_at: str
    contact_at: str
    minutes_apart: float
    status: str
    status_class: str


@dataclass(frozen=True)
class TraceView:
    """A trace as the page draws it: visits on the period's timeline, contacts in a table."""

    refs: list[str]
    first_day: str
    last_day: str
    day_marks: list[float]
    visits: list[VisitView]
    contacts: list[ContactView]
    people: int
    second_degree_people: int | None


def _status(contact: ContactOut) -> tuple[str, str]:
    """A contact's status in words, and the class that colours it."""
    status = contact.status
    if not status.known or status.colour is None:
        return "未登记 Not in the register", "status-unknown"
    words = COLOUR_WORDS[status.colour.value]
    if status.test is not None:
        result = RESULT_WORDS[status.test.result.value]
        words += f" · {result} {local(status.test.sampled_at)}"
    return words, f"status-{status.colour.value}"


def trace_view(answer: TraceOut, window_minutes: int) -> TraceView:
    summary = answer.summary
    since, until = summary.since, summary.until
    span = (until - since).total_seconds()

    def x_of(moment: datetime) -> float:
        return round((moment - since).total_seconds() / span * TIMELINE_WIDTH, 1)

    names = {visit.venue_id: visit.venue_name or visit.venue_id for visit in answer.visits}
    half = NEARBY_WIDTH / 2 - 8
    visits = []
    for visit in answer.visits:
        met = [
            contact
            for contact in answer.contacts
            if contact.degree == 1
            and contact.venue_id == visit.venue_id
            and contact.case_scanned_at == visit.scanned_at
        ]
        nearby = [
            Nearby(
                round(
                    NEARBY_WIDTH / 2
                    + (c.contact_scanned_at - c.case_scanned_at).total_seconds()
                    / (window_minutes * 60)
                    * half,
                    1,
                ),
                c.contact_scanned_at < c.case_scanned_at,
            )
            for c in met
        ]
        visits.append(
            VisitView(
                names[visit.venue_id],
                visit.binding,
                local(visit.scanned_at),
                x_of(visit.scanned_at),
                nearby,
            )
        )
    contacts = []
    for contact in answer.contacts:
        words, css = _status(contact)
        contacts.append(
            ContactView(
                person_ref=contact.person_ref,
                degree=contact.degree,
                via=contact.via,
                venue=names.get(contact.venue_id, contact.venue_id),
                binding=contact.binding,
                case_at=local(contact.case_scanned_at),
                contact_at=local(contact.contact_scanned_at),
                minutes_apart=contact.minutes_apart,
                status=words,
                status_class=css,
            )
        )
    local_since = since.astimezone(ZONE)
    days = round(span / 86_400)
    marks = [x_of(local_since + timedelta(days=day)) for day in range(1, days)]
    return TraceView(
        refs=summary.case_refs,
        first_day=local_since.date().isoformat(),
        last_day=(until.astimezone(ZONE) - timedelta(seconds=1)).date().isoformat(),
        day_marks=marks,
        visits=visits,
        contacts=contacts,
        people=summary.people,
        second_degree_people=summary.second_degree_people,
    )


def recent_queries(context: HostContext, principal: Principal) -> list[AuditRecord]:
    """The user's own latest tracing queries, from the audit log, newest first."""
    records = context.storage.list_audit(
        user_name=principal.name, action="tracing", limit=RECENT_QUERIES
    )
    return [record for record in records if record.user_id == principal.user_id]


def _period(record: AuditRecord) -> str:
    """An audited query's period as the form's days: its first day to its last."""
    try:
        since = datetime.fromisoformat(record.subject["since"]).astimezone(ZONE)
        until = datetime.fromisoformat(record.subject["until"]).astimezone(ZONE)
    except (KeyError, ValueError):
        return "—"
    return f"{since.date().isoformat()} to {(until - timedelta(seconds=1)).date().isoformat()}"


# ---- the pages --------------------------------------------------------------------------------


def _page(
    request: Request,
    context: HostContext,
    viewer: Viewer,
    typed: TraceForm,
    *,
    status: int = 200,
    problems: Problems | None = None,
    refused: str | None = None,
    view: TraceView | None = None,
) -> HTMLResponse:
    recent = recent_queries(context, viewer.principal)
    recorded = None
    if view is not None:
        case = ",".join(view.refs)
        recorded = next((r for r in recent if r.subject.get("case") == case), None)
    return render(
        request,
        "tracing.html",
        viewer,
        status=status,
        typed=typed,
        problems=problems or Problems(),
        refused=refused,
        view=view,
        recorded=recorded,
        recent=recent,
        period_of=_period,
        when_local=partial(when, zone=ZONE),
        limits={
            "window": MAX_WINDOW_MINUTES,
            "span_days": MAX_SPAN.days,
            "second_span_days": SECOND_DEGREE_MAX_SPAN.days,
            "second_window": SECOND_DEGREE_MAX_WINDOW_MINUTES,
        },
        zone=DEFAULT_TIMEZONE,
        timeline_width=TIMELINE_WIDTH,
        nearby_width=NEARBY_WIDTH,
    )


def _today(context: HostContext) -> date:
    return datetime.fromtimestamp(context.settings.now_ms() / 1000, ZONE).date()


@router.get("/tracing", response_class=HTMLResponse)
def tracing_form(request: Request, context: Context, viewer: Epidemiologist) -> Response:
    return _page(request, context, viewer, TraceForm.empty(_today(context)))


async def _traced(
    request: Request, context: HostContext, viewer: Viewer
) -> tuple[TraceForm, TraceRequest, TraceOut] | Response:
    """The posted form's query, traced and audited; or the form again, saying what is wrong."""
    typed, trace_request, problems = read_form(await posted_form(request, viewer))
    if trace_request is None:
        return await run_in_threadpool(
            _page, request, context, viewer, typed, status=422, problems=problems
        )
    try:
        answer = await run_in_threadpool(run_trace, context, viewer.principal, trace_request)
    except TooBroad as error:
        return await run_in_threadpool(
            _page, request, context, viewer, typed, status=422, refused=str(error)
        )
    return typed, trace_request, answer


@router.post("/tracing", response_class=HTMLResponse)
async def tracing_query(request: Request, context: Context, viewer: Epidemiologist) -> Response:
    """Trace the case of the form: the answer under the form, or the form with its problems."""
    traced = await _traced(request, context, viewer)
    if isinstance(traced, Response):
        return traced
    typed, trace_request, answer = traced
    view = trace_view(answer, trace_request.window_minutes)
    # Named by reference from now on: the CSV form and another query carry no ID number.
    typed = replace(typed, case=view.refs[0])
    problems = Problems()
    if not view.visits:
        problems.add("case", NO_VISITS)
    return await run_in_threadpool(
        _page, request, context, viewer, typed, problems=problems, view=view
    )


@router.post("/tracing.csv")
async def tracing_csv(request: Request, context: Context, viewer: Epidemiologist) -> Response:
    """The same query as CSV, as the API answers `Accept: text/csv`; audited likewise."""
    traced = await _traced(request, context, viewer)
    if isinstance(traced, Response):
        return traced
    response = csv_answer(traced[2])
    response.headers.update(HEADERS)
    return response
