"""Dashboard pages for operators: venues, devices and their enrollment, users, the audit log.

Venue managers reach the venue and device pages too, for their own venues only (another
venue, or its device, is not found); creating, changing, revoking and enrolling are an
admin's. Each page calls the same functions as the JSON API, so that the two never differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from host.api.deps import Context, HostContext, require_venue_for
from host.api.errors import ApiError
from host.api.routes.admin import add_enrollment_token, add_venue, change_venue, devices_seen_by
from host.api.routes.posters import PosterFormat, venue_poster
from host.core.times import DAY_MS, to_ms
from host.flows import FlowCount, flows, local_day, local_midnight
from host.posters import PaperSize
from host.storage.base import VenueRecord
from host.storage.flows import FlowFilter, FlowLevel, Span
from host.storage.users import AuditRecord, Role, chain_problems
from host.users import UserCreate, UserRefused, create_user
from host.web.dashboard.common import (
    HEADERS,
    PREFIX,
    Viewer,
    posted_form,
    render,
    signed_in,
    when,
)
from host.web.pages import BINDINGS
from shared.messages import (
    ComponentHealth,
    DeviceForm,
    DeviceInfo,
    EnrollmentTokenRequest,
    VenueCreate,
    VenueUpdate,
)
from shared.policy import OnFail, VenueCategory
from shared.qrimage import qr_svg
from shared.venuecode import BindingKind

router = APIRouter(prefix=PREFIX, include_in_schema=False)
AdminViewer = Annotated[Viewer, signed_in(Role.ADMIN)]
VenueViewer = Annotated[Viewer, signed_in(Role.ADMIN, Role.VENUE_MANAGER)]

Words = tuple[str, str]  # (Chinese, English)
CATEGORIES: Mapping[VenueCategory, Words] = {
    VenueCategory.PUBLIC_PLACE: ("公共场所", "Public place"),
    VenueCategory.RESIDENTIAL: ("居民小区", "Residential compound"),
    VenueCategory.MEDICAL: ("医疗机构", "Medical"),
    VenueCategory.PUBLIC_TRANSPORT: ("公共交通", "Public transport"),
    VenueCategory.CONSTRUCTION_SITE: ("建筑工地", "Construction site"),
    VenueCategory.OFFICE: ("办公场所", "Office"),
}
FORMS: Mapping[DeviceForm, Words] = {
    DeviceForm.KIOSK: ("立式终端", "Kiosk"),
    DeviceForm.GATE: ("闸机", "Gate"),
    DeviceForm.HANDHELD: ("手持终端", "Handheld"),
}
COMPONENT_STATES: Mapping[ComponentHealth, tuple[str, str, str]] = {  # words, CSS class
    ComponentHealth.OK: ("正常", "ok", "state-ok"),
    ComponentHealth.FAILING: ("故障", "failing", "state-failed"),
    ComponentHealth.ABSENT: ("未安装", "absent", "muted"),
}
ON_FAIL: Mapping[OnFail, Words] = {
    OnFail.DENY: ("禁止通行", "deny"),
    OnFail.REFER: ("转人工", "refer to staff"),
}
CREDENTIALS: Mapping[str, Words] = {
    "health": ("健康码", "health code"),
    "dcc": ("欧盟证书", "EU DCC"),
    "idcard": ("身份证", "ID card"),
}
TOKEN_LIFETIMES: Mapping[int, Words] = {  # seconds: an enrollment token's choices
    900: ("15 分钟", "15 minutes"),
    3600: ("1 小时", "1 hour"),
    4 * 3600: ("4 小时", "4 hours"),
    24 * 3600: ("24 小时", "24 hours"),
}
COMMON_ZONES = ("Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong", "Asia/Macau", "Asia/Taipei")
COUNT_DAYS = 7  # the venue page's days of check-ins, today included
AUDIT_PAGE = 50
DEVICE_PAGE = 100
MINUTE_MS = 60_000


def ago(ms: int) -> str:
    """A duration as an operator reads it at a glance: minutes, hours, then days."""
    minutes = max(ms, 0) // MINUTE_MS
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


def zone_when(ms: int | None, timezone: str) -> str:
    """A time in a venue's own time zone, with its offset from UTC."""
    if ms is None:
        return "—"
    zone = ZoneInfo(timezone)
    offset = datetime.fromtimestamp(ms / 1000, zone).strftime("%z")
    return f"{when(ms, zone)} {offset[:3]}:{offset[3:]}"


def field_problems(error: ValidationError) -> dict[str, str]:
    """Each field's first problem in a form, by field name ("" for the form as a whole)."""
    problems: dict[str, str] = {}
    for issue in error.errors():
        name = str(issue["loc"][0]) if issue["loc"] else ""
        problems.setdefault(name, issue["msg"].removeprefix("Value error, "))
    return problems


def form_text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _page(request: Request, template: str, viewer: Viewer, **context: Any) -> HTMLResponse:
    """A page of this module, with the words and formatting its templates use."""
    return render(
        request,
        template,
        viewer,
        categories=CATEGORIES,
        forms=FORMS,
        component_states=COMPONENT_STATES,
        zone_when=zone_when,
        ago=ago,
        **context,
    )


def _missing(request: Request, viewer: Viewer) -> HTMLResponse:
    """What a venue or device looks like that does not exist, or is not the viewer's."""
    return render(request, "venue_missing.html", viewer, status=404)


def _back_to(path: str) -> RedirectResponse:
    """After a change: the page that shows it (a GET, so reloading repeats nothing)."""
    return RedirectResponse(PREFIX + path, status_code=303, headers=HEADERS)


def visible_venue(context: HostContext, viewer: Viewer, venue_id: str) -> VenueRecord | None:
    """The venue, if the viewer may see it (as the API decides); else None."""
    try:
        return require_venue_for(context, viewer.principal, venue_id)
    except ApiError:
        return None


# ---- devices, as every device table shows them ----------------------------------------------


@dataclass(frozen=True)
class DeviceRow:
    """A device as its table row shows it: its venue, and its report's ages from now."""

    info: DeviceInfo
    venue: VenueRecord | None
    now_ms: int

    @property
    def timezone(self) -> str:
        return self.venue.timezone if self.venue is not None else "UTC"

    @property
    def deny_list_age(self) -> str | None:
        """How long since the device last had its deny list confirmed current by the host."""
        report = self.info.report
        if report is None or report.denylist is None:
            return None
        return ago(self.now_ms - to_ms(report.denylist.refreshed_at))

    @property
    def needs_attention(self) -> bool:
        """In service, and silent (no report) or with a failing component."""
        report = self.info.report
        if self.info.revoked:
            return False
        if report is None:
            return True
        failing = ComponentHealth.FAILING
        return any(part.state is failing for part in report.components.values())

    def time(self, moment: datetime | None) -> str:
        return zone_when(None if moment is None else to_ms(moment), self.timezone)


def device_rows(
    context: HostContext, viewer: Viewer, venue_id: str | None = None
) -> list[DeviceRow]:
    """The viewer's devices (of one venue, if given): needing attention first, revoked last."""
    venues = {venue.id: venue for venue in context.storage.list_venues()}
    now_ms = context.settings.now_ms()
    rows = [
        DeviceRow(info, venues.get(info.venue_id), now_ms)
        for info in devices_seen_by(context, viewer.principal, venue_id)
    ]
    rows.sort(
        key=lambda row: (
            row.info.revoked,
            not row.needs_attention,
            -to_ms(row.info.enrolled_at),
        )
    )
    return rows


# ---- venues ---------------------------------------------------------------------------------


@router.get("/venues", response_class=HTMLResponse)
def venues_page(request: Request, context: Context, viewer: VenueViewer) -> Response:
    """Every venue (a venue manager's own only), with how many devices each has in service."""
    venues = [
        venue for venue in context.storage.list_venues() if viewer.principal.sees_venue(venue.id)
    ]
    in_service: dict[str, int] = {}
    for device in context.storage.list_devices():
        if not device.revoked:
            in_service[device.venue_id] = in_service.get(device.venue_id, 0) + 1
    venues.sort(key=lambda venue: (venue.district, venue.street, venue.name))
    return _page(request, "venues.html", viewer, venues=venues, in_service=in_service)


def _venue_form(
    request: Request,
    viewer: Viewer,
    venue: VenueRecord | None,
    values: Mapping[str, str],
    problems: Mapping[str, str] | None = None,
) -> HTMLResponse:
    return _page(
        request,
        "venue_form.html",
        viewer,
        status=422 if problems else 200,
        venue=venue,
        values=values,
        problems=problems or {},
        zones=COMMON_ZONES,
    )


VENUE_FIELDS = ("name", "address", "category", "district", "street", "timezone")


@router.get("/venues/new", response_class=HTMLResponse)
def new_venue_form(request: Request, viewer: AdminViewer) -> Response:
    return _venue_form(request, viewer, None, {"timezone": COMMON_ZONES[0]})


@router.post("/venues/new", response_class=HTMLResponse)
async def create_venue(request: Request, context: Context, viewer: AdminViewer) -> Response:
    form = await posted_form(request, viewer)
    values = {name: form_text(form, name) for name in VENUE_FIELDS}
    try:
        asked = VenueCreate.model_validate(values)
    except ValidationError as error:
        return _venue_form(request, viewer, None, values, field_problems(error))
    venue = await run_in_threadpool(add_venue, context, asked)
    return _back_to(f"/venues/{venue.id}")


@router.get("/venues/{venue_id}/edit", response_class=HTMLResponse)
def edit_venue_form(
    request: Request, venue_id: str, context: Context, viewer: AdminViewer
) -> Response:
    venue = visible_venue(context, viewer, venue_id)
    if venue is None:
        return _missing(request, viewer)
    values = {name: str(getattr(venue, name)) for name in VENUE_FIELDS}
    return _venue_form(request, viewer, venue, values)


@router.post("/venues/{venue_id}/edit", response_class=HTMLResponse)
async def edit_venue(
    request: Request, venue_id: str, context: Context, viewer: AdminViewer
) -> Response:
    form = await posted_form(request, viewer)
    venue = await run_in_threadpool(visible_venue, context, viewer, venue_id)
    if venue is None:
        return _missing(request, viewer)
    values = {name: form_text(form, name) for name in VENUE_FIELDS if name != "category"}
    try:
        asked = VenueUpdate.model_validate(values)
    except ValidationError as error:
        shown = {**values, "category": venue.category.value}
        return _venue_form(request, viewer, venue, shown, field_problems(error))
    await run_in_threadpool(change_venue, context, venue, asked)
    return _back_to(f"/venues/{venue.id}")


@dataclass(frozen=True)
class DayCount:
    """One local day's check-ins at a venue (zero where none were counted)."""

    day: date
    total: int = 0
    passed: int = 0
    denied: int = 0
    referred: int = 0

    @classmethod
    def of(cls, day: date, found: FlowCount | None) -> DayCount:
        if found is None:
            return cls(day)
        return cls(day, found.total, found.passed, found.denied, found.referred)


def daily_counts(context: HostContext, venue: VenueRecord) -> list[DayCount]:
    """The venue's check-ins on each of its last `COUNT_DAYS` local days, today first."""
    now_ms = context.settings.now_ms()
    today = local_day(venue.timezone, now_ms)
    first = today - timedelta(days=COUNT_DAYS - 1)
    found = flows(
        context.storage,
        FlowLevel.VENUE,
        Span.DAY,
        since_ms=local_midnight(venue.timezone, first),
        until_ms=max(now_ms, local_midnight(venue.timezone, today) + 1),
        where=FlowFilter(venue_id=venue.id),
    )
    by_day = {count.period: count for count in found}
    days = (today - timedelta(days=back) for back in range(COUNT_DAYS))
    return [DayCount.of(day, by_day.get(day.isoformat())) for day in days]


def _venue_page(
    request: Request,
    context: HostContext,
    viewer: Viewer,
    venue: VenueRecord,
    *,
    poster_values: Mapping[str, str] | None = None,
    poster_problem: str | None = None,
) -> HTMLResponse:
    rules = venue.effective_rules()
    return _page(
        request,
        "venue.html",
        viewer,
        status=422 if poster_problem else 200,
        venue=venue,
        counts=daily_counts(context, venue),
        devices=device_rows(context, viewer, venue.id),
        rules=rules,
        default_rules=venue.rules is None,
        on_fail=ON_FAIL,
        credentials=CREDENTIALS,
        bindings=BINDINGS,
        poster_values=poster_values or {"kind": BindingKind.ROOM.value, "size": "a4"},
        poster_problem=poster_problem,
        sizes=list(PaperSize),
    )


@router.get("/venues/{venue_id}", response_class=HTMLResponse)
def venue_page(request: Request, venue_id: str, context: Context, viewer: VenueViewer) -> Response:
    """A venue: its check-ins by day, devices, posters and rule set."""
    venue = visible_venue(context, viewer, venue_id)
    if venue is None:
        return _missing(request, viewer)
    return _venue_page(request, context, viewer, venue)


def _as_download(response: Response) -> Response:
    """A poster from the API's function, saved as a file rather than shown in the tab."""
    disposition = response.headers["Content-Disposition"]
    response.headers["Content-Disposition"] = disposition.replace("inline", "attachment", 1)
    return response


@router.get("/venues/{venue_id}/poster.{output}")
def venue_poster_file(  # noqa: PLR0917 - the path's parts, the size asked, and who asks
    request: Request,
    venue_id: str,
    output: PosterFormat,
    context: Context,
    viewer: VenueViewer,
    size: PaperSize = PaperSize.A4,
) -> Response:
    """The venue's single poster (its fixed code), made by the API's own poster function."""
    try:
        poster = venue_poster(venue_id, output, context, viewer.principal, size=size)
    except ApiError as error:
        if error.status == 404:
            return _missing(request, viewer)
        raise
    return _as_download(poster)


@router.post("/venues/{venue_id}/posters")
async def venue_posters_for_list(
    request: Request, venue_id: str, context: Context, viewer: VenueViewer
) -> Response:
    """A PDF of a page per room or plate typed in the venue page's form; the form again if bad."""
    form = await posted_form(request, viewer)
    venue = await run_in_threadpool(visible_venue, context, viewer, venue_id)
    if venue is None:
        return _missing(request, viewer)
    values = {name: form_text(form, name) for name in ("kind", "items", "size")}
    problem = None
    try:
        kind, size = BindingKind(values["kind"]), PaperSize(values["size"] or PaperSize.A4)
    except ValueError:
        problem = "choose rooms or plates, and a paper size"
    else:
        listed = {"rooms" if kind is BindingKind.ROOM else "plates": values["items"]}
        try:
            poster = await run_in_threadpool(
                lambda: venue_poster(
                    venue.id, PosterFormat.PDF, context, viewer.principal, size=size, **listed
                )
            )
        except ApiError as error:
            problem = error.detail
        else:
            return _as_download(poster)
    return await run_in_threadpool(
        lambda: _venue_page(
            request, context, viewer, venue, poster_values=values, poster_problem=problem
        )
    )


# ---- devices --------------------------------------------------------------------------------


def _devices_page(
    request: Request,
    context: HostContext,
    viewer: Viewer,
    *,
    page: int = 1,
    values: Mapping[str, str] | None = None,
    problems: Mapping[str, str] | None = None,
) -> HTMLResponse:
    venues = []
    if viewer.role is Role.ADMIN:
        venues = sorted(context.storage.list_venues(), key=lambda venue: venue.name)
    rows = device_rows(context, viewer)
    pages = max(1, -(-len(rows) // DEVICE_PAGE))
    page = min(max(page, 1), pages)
    return _page(
        request,
        "devices.html",
        viewer,
        status=422 if problems else 200,
        devices=rows[(page - 1) * DEVICE_PAGE : page * DEVICE_PAGE],
        device_count=len(rows),
        page=page,
        pages=pages,
        venues=venues,
        lifetimes=TOKEN_LIFETIMES,
        values=values or {"ttl_seconds": str(next(iter(TOKEN_LIFETIMES)))},
        problems=problems or {},
    )


@router.get("/devices", response_class=HTMLResponse)
def devices_page(
    request: Request, context: Context, viewer: VenueViewer, page: int = 1
) -> Response:
    """The viewer's devices with their latest reports, a page at a time; an enrollment form."""
    return _devices_page(request, context, viewer, page=page)


@router.post("/devices/enroll", response_class=HTMLResponse)
async def make_enrollment_token(
    request: Request, context: Context, viewer: AdminViewer
) -> Response:
    """A one-time enrollment token, shown once with its QR code and the command to type."""
    form = await posted_form(request, viewer)
    values = {name: form_text(form, name) for name in ("venue_id", "ttl_seconds")}
    try:
        asked = EnrollmentTokenRequest.model_validate(values)
    except ValidationError as error:
        problems = field_problems(error)
    else:
        venue = await run_in_threadpool(context.storage.get_venue, asked.venue_id)
        if venue is not None:
            made = await run_in_threadpool(add_enrollment_token, context, venue, asked.ttl_seconds)
            command = (
                f"sentinel device enroll --host {context.settings.public_url}"
                f" --token {made.token} --form kiosk --name <name>"
            )
            return _page(
                request,
                "device_enrollment.html",
                viewer,
                status=201,
                venue=venue,
                token=made,
                expires_at_ms=to_ms(made.expires_at),
                command=command,
                qr=qr_svg(made.token, title="注册令牌 Enrollment token"),
            )
        problems = {"venue_id": "choose a venue"}
    return await run_in_threadpool(
        lambda: _devices_page(request, context, viewer, values=values, problems=problems)
    )


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device_page(
    request: Request, device_id: str, context: Context, viewer: VenueViewer
) -> Response:
    """One device: its report in full, and (for an admin) its revocation."""
    device = context.storage.get_device(device_id)
    rows = [
        row
        for row in (device_rows(context, viewer, device.venue_id) if device is not None else [])
        if row.info.id == device_id
    ]
    if not rows:
        return _missing(request, viewer)
    return _page(request, "device.html", viewer, row=rows[0])


@router.post("/devices/{device_id}/revoke")
async def revoke_device(
    request: Request, device_id: str, context: Context, viewer: AdminViewer
) -> Response:
    """Refuse the device's requests from now on; it must be enrolled again to come back."""
    await posted_form(request, viewer)
    now_ms = context.settings.now_ms()
    revoked = await run_in_threadpool(context.storage.revoke_device, device_id, now_ms)
    if revoked is None:
        return _missing(request, viewer)
    return _back_to(f"/devices/{device_id}")


# ---- users ----------------------------------------------------------------------------------


def _users_page(
    request: Request,
    context: HostContext,
    viewer: Viewer,
    *,
    values: Mapping[str, Any] | None = None,
    problems: Mapping[str, str] | None = None,
) -> HTMLResponse:
    venues = {venue.id: venue for venue in context.storage.list_venues()}
    return _page(
        request,
        "users.html",
        viewer,
        status=422 if problems else 200,
        users=context.storage.list_users(),
        venues=venues,
        roles=list(Role),
        values=values or {"role": Role.EPIDEMIOLOGIST.value, "venues": []},
        problems=problems or {},
    )


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, context: Context, viewer: AdminViewer) -> Response:
    return _users_page(request, context, viewer)


@router.post("/users", response_class=HTMLResponse)
async def add_user(request: Request, context: Context, viewer: AdminViewer) -> Response:
    """A new user of a role with its scope; their token shown once, on this answer only."""
    form = await posted_form(request, viewer)
    values: dict[str, Any] = {
        "name": form_text(form, "name"),
        "role": form_text(form, "role"),
        "venues": [venue for venue in form.getlist("venues") if isinstance(venue, str)],
        "org": form_text(form, "org") or None,
    }
    problems: dict[str, str]
    try:
        asked = UserCreate.model_validate(values)
        user, token = await run_in_threadpool(
            create_user, context.storage, asked, context.settings.now_ms()
        )
    except ValidationError as error:
        problems = field_problems(error)
    except UserRefused as refusal:
        problems = {"venues" if refusal.code == "unknown-venue" else "name": str(refusal)}
    else:
        venues = await run_in_threadpool(context.storage.list_venues)
        return _page(
            request,
            "users_added.html",
            viewer,
            status=201,
            user=user,
            token=token,
            venues={venue.id: venue for venue in venues},
        )
    return await run_in_threadpool(
        lambda: _users_page(request, context, viewer, values=values, problems=problems)
    )


@router.post("/users/revoke")
async def revoke_user(request: Request, context: Context, viewer: AdminViewer) -> Response:
    """Refuse the user's token and end their dashboard sessions from now on."""
    form = await posted_form(request, viewer)
    now_ms = context.settings.now_ms()
    await run_in_threadpool(context.storage.revoke_user, form_text(form, "name"), now_ms)
    return _back_to("/users")


# ---- the audit log --------------------------------------------------------------------------


class AuditFilter(BaseModel):
    """The audit page's filters as its form sends them: blank fields filter nothing."""

    user: str | None = None
    action: str | None = None
    since: date | None = None  # a UTC day, from its start
    until: date | None = None  # a UTC day, to its end
    before: int | None = Field(default=None, ge=1)  # paging: records before this one
    verify: bool = False  # walk the whole hash chain (linear in the log's length: on request)

    def query(self, **changes: Any) -> str:
        """The filter (with `changes`) as a query string, for the paging links."""
        fields = self.model_dump(mode="json", exclude_defaults=True) | changes
        return urlencode({key: value for key, value in fields.items() if value is not None})


def _day_ms(day: date) -> int:
    return to_ms(datetime(day.year, day.month, day.day, tzinfo=UTC))


@dataclass(frozen=True)
class ChainVerdict:
    """`sentinel host audit verify`'s verdict: records read, the last hash, what does not hold."""

    records: int
    last_hash: str
    problems: list[str]


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, context: Context, viewer: AdminViewer) -> Response:
    """Who read which personal data, newest first, filtered and paged; the chain's verdict.

    The verdict walks the whole log (seconds at hundreds of thousands of records), so it is
    given when asked for (`verify`), not on every view.
    """
    raw = {key: value.strip() or None for key, value in request.query_params.items()}
    problems: dict[str, str] = {}
    try:
        chosen = AuditFilter.model_validate(raw)
    except ValidationError as error:
        problems = field_problems(error)
        chosen = AuditFilter()
    records: list[AuditRecord] = []
    if not problems:
        records = context.storage.list_audit(
            user_name=chosen.user,
            action=chosen.action,
            since_ms=None if chosen.since is None else _day_ms(chosen.since),
            until_ms=None if chosen.until is None else _day_ms(chosen.until) + DAY_MS,
            before_seq=chosen.before,
            limit=AUDIT_PAGE + 1,
        )
    verdict = None
    if chosen.verify:
        count, last_hash, broken = chain_problems(context.storage.audit_chain())
        verdict = ChainVerdict(count, last_hash.hex(), broken)
    older = records[AUDIT_PAGE - 1].seq if len(records) > AUDIT_PAGE else None
    return _page(
        request,
        "audit.html",
        viewer,
        status=422 if problems else 200,
        records=records[:AUDIT_PAGE],
        values={key: value or "" for key, value in raw.items()},
        problems=problems,
        chosen=chosen,
        older=older,
        verdict=verdict,
    )
