"""Dashboard pages: flows (check-ins per hour or day, charted against the usual) and alerts.

The numbers are those of the API (`host.flows.flows`, with the API's own filter and scope):
a venue manager sees only their venues, and at every level a group counts only their venues
in it. A group the viewer may not see answers as one that does not exist (404). Counts are
not people: no audit record is written, as in the API.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta
from typing import Annotated, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from host.api.deps import Context, HostContext
from host.api.routes.flows import flow_filter, visible_alerts
from host.core.times import DAY_MS
from host.flows import AlertMessage, FlowCount, flows, local_day, local_midnight
from host.storage.base import DEFAULT_TIMEZONE, VenueRecord
from host.storage.flows import FlowFilter, FlowLevel, Span
from host.storage.users import Role
from host.web.charts import Bar, Chart, Series, stacked_bars
from host.web.dashboard.common import PREFIX, Viewer, render, signed_in
from shared.policy import VenueCategory

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Choice = TypeVar("Choice", FlowLevel, Span)
FlowViewer = Annotated[Viewer, signed_in(Role.ADMIN, Role.EPIDEMIOLOGIST, Role.VENUE_MANAGER)]
REFRESH_SECONDS = 60
BASELINE_DAYS = 7  # "usual": the median of the same measure on this many days before
PERIOD_DAYS = (7, 30)  # what the day chart may cover
ALERTS_SHOWN = 200
EARLIEST_DAY = date(1970, 1, 10)  # a chart's day and its baseline stay after 1970
LATEST_DAY = date(9999, 12, 1)  # and within what every zone's local time can hold

LEVELS: dict[FlowLevel, tuple[str, str]] = {
    FlowLevel.VENUE: ("场所", "Venue"),
    FlowLevel.STREET: ("街道", "Street"),
    FlowLevel.DISTRICT: ("区", "District"),
    FlowLevel.CATEGORY: ("类别", "Category"),
}
BUCKETS: dict[Span, tuple[str, str]] = {
    Span.HOUR: ("按小时 (一天)", "Per hour (a day)"),
    Span.DAY: ("按天", "Per day"),
}
CATEGORIES: dict[VenueCategory, tuple[str, str]] = {
    VenueCategory.PUBLIC_PLACE: ("公共场所", "Public place"),
    VenueCategory.RESIDENTIAL: ("住宅小区", "Residential"),
    VenueCategory.MEDICAL: ("医疗机构", "Medical"),
    VenueCategory.PUBLIC_TRANSPORT: ("公共交通", "Public transport"),
    VenueCategory.CONSTRUCTION_SITE: ("建筑工地", "Construction site"),
    VenueCategory.OFFICE: ("办公场所", "Office"),
}
# The parts of each bar, bottom first: they add up to the total. Of the referrals, those
# staff decided on are shown apart from those still undecided (or decided on no device).
OUTCOMES = (
    Series("passed", "通过", "Pass", "outcome-pass"),
    Series("denied", "拒绝", "Deny", "outcome-deny"),
    Series("referred_undecided", "转人工 (未处理)", "Referred, no staff decision", "outcome-refer"),
    Series("staff_let_through", "人工放行", "Staff let through", "outcome-staff-let"),
    Series("staff_refused", "人工拒绝", "Staff refused", "outcome-staff-refused"),
)


class BadQuery(ValueError):
    """A filter the page cannot show, with what to do, in Chinese and English."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.zh = zh
        self.en = en


@dataclass(frozen=True)
class Tally:
    """Check-ins of one period, by outcome (the staff's decisions are among the referrals)."""

    total: int = 0
    passed: int = 0
    denied: int = 0
    referred: int = 0
    staff_let_through: int = 0
    staff_refused: int = 0

    def plus(self, count: FlowCount) -> Tally:
        return Tally(*(getattr(self, f.name) + getattr(count, f.name) for f in fields(self)))

    def parts(self) -> dict[str, int]:
        """The values of `OUTCOMES`, which add up to the total."""
        decided = self.staff_let_through + self.staff_refused
        return {
            "passed": self.passed,
            "denied": self.denied,
            "referred_undecided": self.referred - decided,
            "staff_let_through": self.staff_let_through,
            "staff_refused": self.staff_refused,
        }


NOTHING = Tally()


@dataclass(frozen=True)
class Group:
    """One group of a level that the viewer may see: its form value, words and filter."""

    key: str
    label: str
    timezones: frozenset[str]
    venue: str | None = None
    district: str | None = None
    street: str | None = None
    category: VenueCategory | None = None

    def where(self, context: HostContext, viewer: Viewer) -> FlowFilter:
        """The group's venues, within the viewer's scope (the API's own filter)."""
        return flow_filter(
            context,
            viewer.principal,
            venue=self.venue,
            district=self.district,
            street=self.street,
            category=self.category,
        )


@dataclass(frozen=True)
class FlowQuery:
    """What the filter form asks for; `group` None (not asked): the level's first group."""

    level: FlowLevel
    group: str | None
    bucket: Span
    day: date | None
    days: int


@dataclass(frozen=True)
class Row:
    """A line of the numbers' table, the same as its bar."""

    period: str
    tally: Tally
    usual: float | None


@dataclass(frozen=True)
class Comparison:
    """A day so far (up to `until`, "HH:00", or the whole day) against its usual level."""

    day: date
    today: bool
    until: str | None  # None: the whole day
    count: int
    usual: float | None  # None: no check-ins on any of the days before
    ratio: float | None


# ---- the filter form ------------------------------------------------------------------------


def _choice(enum: type[Choice], raw: str | None, default: Choice, zh: str, en: str) -> Choice:
    if raw is None or raw == "":
        return default
    try:
        return enum(raw)
    except ValueError:
        raise BadQuery(f"{zh}无效", f"{en} is not one of the choices") from None


def parse_query(params: Mapping[str, str], viewer: Viewer) -> FlowQuery:
    """The form's values, checked; BadQuery says which is wrong."""
    default_level = FlowLevel.VENUE if viewer.role is Role.VENUE_MANAGER else FlowLevel.DISTRICT
    level = _choice(FlowLevel, params.get("level"), default_level, "层级", "The level")
    bucket = _choice(Span, params.get("bucket"), Span.HOUR, "时段", "The bucket")
    day = None
    if params.get("day"):
        try:
            day = date.fromisoformat(params["day"])
        except ValueError:
            raise BadQuery(
                "日期格式应为 YYYY-MM-DD", "The day must be a date, YYYY-MM-DD"
            ) from None
        if not EARLIEST_DAY <= day <= LATEST_DAY:
            raise BadQuery("日期超出范围", f"The day must be from {EARLIEST_DAY} to {LATEST_DAY}")
    days = PERIOD_DAYS[0]
    if params.get("days"):
        if params["days"] not in {str(choice) for choice in PERIOD_DAYS}:
            raise BadQuery("天数无效", "The number of days must be 7 or 30")
        days = int(params["days"])
    return FlowQuery(level, params.get("group"), bucket, day, days)


def _place(name: str) -> str:
    return name or "—"


def groups_of(level: FlowLevel, venues: Iterable[VenueRecord]) -> list[Group]:
    """The groups of `level` these venues make, in the order of their words."""
    found: dict[str, Group] = {}
    for venue in venues:
        zone = frozenset({venue.timezone})
        if level is FlowLevel.VENUE:
            label = f"{venue.name} · {_place(venue.district)} {_place(venue.street)}"
            group = Group(venue.id, label, zone, venue=venue.id)
        elif level is FlowLevel.STREET:
            key = json.dumps([venue.district, venue.street], ensure_ascii=False)
            label = f"{_place(venue.district)} · {_place(venue.street)}"
            group = Group(key, label, zone, district=venue.district, street=venue.street)
        elif level is FlowLevel.DISTRICT:
            group = Group(venue.district, _place(venue.district), zone, district=venue.district)
        else:
            zh, en = CATEGORIES[venue.category]
            group = Group(venue.category.value, f"{zh} {en}", zone, category=venue.category)
        seen = found.get(group.key)
        if seen is not None:
            group = replace(seen, timezones=seen.timezones | zone)
        found[group.key] = group
    return sorted(found.values(), key=lambda group: (group.label, group.key))


def visible_venues(context: HostContext, viewer: Viewer) -> list[VenueRecord]:
    return [v for v in context.storage.list_venues() if viewer.principal.sees_venue(v.id)]


# ---- the numbers ------------------------------------------------------------------------------


def days_before(day: date) -> list[date]:
    """The baseline days before `day`, oldest first."""
    return [day - timedelta(days=back) for back in range(BASELINE_DAYS, 0, -1)]


def _usual(history: Sequence[int], any_history: bool) -> float | None:
    return statistics.median(history) if any_history else None


def hour_tallies(
    context: HostContext, *, level: FlowLevel, group: Group, viewer: Viewer, zone: str, day: date
) -> dict[date, dict[int, Tally]]:
    """The group's check-ins per local day and hour, on `day` and the baseline days before it.

    Hours are each venue's local wall-clock hours (a day the clocks go back has two 01:00s,
    counted as one).
    """
    first = day - timedelta(days=BASELINE_DAYS)
    # A day either side, so that venues in other zones than `zone` are read whole.
    since = local_midnight(zone, first) - DAY_MS
    until = local_midnight(zone, day + timedelta(days=1)) + DAY_MS
    where = group.where(context, viewer)
    tallies: dict[date, dict[int, Tally]] = defaultdict(lambda: defaultdict(Tally))
    for count in flows(
        context.storage, level, Span.HOUR, since_ms=since, until_ms=until, where=where
    ):
        local = datetime.fromisoformat(count.period)
        if first <= local.date() <= day:
            hours = tallies[local.date()]
            hours[local.hour] = hours[local.hour].plus(count)
    return tallies


def day_tallies(
    context: HostContext,
    *,
    level: FlowLevel,
    group: Group,
    viewer: Viewer,
    zone: str,
    days: tuple[date, date],
) -> dict[date, Tally]:
    """The group's check-ins per local day, from the baseline days before `days[0]` to `days[1]`."""
    first, last = days[0] - timedelta(days=BASELINE_DAYS), days[1]
    since = local_midnight(zone, first)
    until = local_midnight(zone, last + timedelta(days=1))
    where = group.where(context, viewer)
    tallies: dict[date, Tally] = defaultdict(Tally)
    for count in flows(
        context.storage, level, Span.DAY, since_ms=since, until_ms=until, where=where
    ):
        period = date.fromisoformat(count.period)
        if first <= period <= last:
            tallies[period] = tallies[period].plus(count)
    return tallies


def hour_rows(tallies: Mapping[date, Mapping[int, Tally]], day: date) -> list[Row]:
    """The 24 local hours of `day`, each with the median of that hour on the days before."""
    before = days_before(day)
    any_history = any(tallies.get(past) for past in before)
    today = tallies.get(day, {})
    return [
        Row(
            f"{hour:02d}:00",
            today.get(hour, NOTHING),
            _usual(
                [tallies.get(past, {}).get(hour, NOTHING).total for past in before], any_history
            ),
        )
        for hour in range(24)
    ]


def day_rows(tallies: Mapping[date, Tally], first: date, last: date) -> list[Row]:
    """Each day of [first, last], with the median of the baseline days before it."""
    rows = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        before = days_before(day)
        history = [tallies.get(past, NOTHING).total for past in before]
        rows.append(Row(day.isoformat(), tallies.get(day, NOTHING), _usual(history, any(history))))
    return rows


def compare(
    tallies: Mapping[date, Mapping[int, Tally]], day: date, today: date, now_hour: int
) -> Comparison:
    """`day` up to now (today) or whole, against the median of the same hours on the days before."""
    last_hour = now_hour if day == today else 23
    before = days_before(day)

    def so_far(of: date) -> int:
        return sum(t.total for hour, t in tallies.get(of, {}).items() if hour <= last_hour)

    count = so_far(day)
    usual = _usual([so_far(past) for past in before], any(tallies.get(past) for past in before))
    ratio = None if usual is None else count / max(usual, 1)
    until = None if last_hour == 23 else f"{last_hour + 1:02d}:00"
    return Comparison(day, day == today, until, count, usual, ratio)


# ---- the charts -------------------------------------------------------------------------------


def _bar_title(row: Row) -> str:
    t = row.tally
    usual = "—" if row.usual is None else f"{row.usual:g}"
    return (
        f"{row.period}: {t.total} 人次 check-ins; 通过 pass {t.passed}, 拒绝 deny {t.denied},"
        f" 转人工 referred {t.referred} (人工放行 staff let through {t.staff_let_through},"
        f" 人工拒绝 staff refused {t.staff_refused}); 往常 usual {usual}"
    )


def chart_of(rows: Sequence[Row], bucket: Span, group: Group, day: date, days: int) -> Chart:
    """The rows as stacked bars with the usual level, described in words."""
    total = sum(row.tally.total for row in rows)
    if bucket is Span.HOUR:
        title = f"{group.label}: {day} 每小时签到 Check-ins per hour"
        what = "每小时 per local hour"
        line = "前 7 天同一小时的中位数 the median of the same hour on the 7 days before"
    else:
        title = f"{group.label}: 截至 {day} 的 {days} 天每日签到 Check-ins per day, {days} days"
        what = "每天 per local day"
        line = "前 7 天的中位数 the median of the 7 days before"
    description = (
        f"按结果堆叠的签到人次 ({what}), 折线为往常水平: {line}。共 {total} 人次。"
        f" Check-ins stacked by outcome; the line is the usual level. {total} in all."
    )
    bars = [
        Bar(
            row.period[:2] if bucket is Span.HOUR else row.period[5:],
            _bar_title(row),
            row.tally.parts(),
            row.usual,
            {"period": row.period, "referred": row.tally.referred},
        )
        for row in rows
    ]
    return stacked_bars("flow-chart", title, description, OUTCOMES, bars)


# ---- the pages ---------------------------------------------------------------------------------


def _page(
    request: Request,
    viewer: Viewer,
    query: FlowQuery,
    groups: Sequence[Group],
    *,
    status: int = 200,
    problem: BadQuery | None = None,
    **shown: object,
) -> HTMLResponse:
    return render(
        request,
        "flows.html",
        viewer,
        status=status,
        refresh=REFRESH_SECONDS,
        query=query,
        groups=groups,
        levels=LEVELS,
        buckets=BUCKETS,
        period_days=PERIOD_DAYS,
        series=OUTCOMES,
        problem=problem,
        **{"chart": None, "rows": [], "comparison": None, "group": None, "day": None} | shown,
    )


def flows_view(
    context: HostContext, viewer: Viewer, query: FlowQuery, group: Group
) -> dict[str, object]:
    """The chart, the numbers and the day against the usual: what the page shows of `group`."""
    zone = min(group.timezones) if group.timezones else DEFAULT_TIMEZONE
    now_ms = context.settings.now_ms()
    today = local_day(zone, now_ms)
    day = query.day or today
    hours = hour_tallies(context, level=query.level, group=group, viewer=viewer, zone=zone, day=day)
    now_hour = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(zone)).hour
    if query.bucket is Span.HOUR:
        rows = hour_rows(hours, day)
    else:
        first = day - timedelta(days=query.days - 1)
        rows = day_rows(
            day_tallies(
                context,
                level=query.level,
                group=group,
                viewer=viewer,
                zone=zone,
                days=(first, day),
            ),
            first,
            day,
        )
    return {
        "group": group,
        "day": day,
        "rows": rows,
        "chart": chart_of(rows, query.bucket, group, day, query.days),
        "comparison": compare(hours, day, today, now_hour),
        "zone": zone,
    }


@router.get("/flows", response_class=HTMLResponse)
async def flows_page(request: Request, context: Context, viewer: FlowViewer) -> Response:
    """Check-ins of one group per hour or day, charted, with the numbers and the usual level."""
    venues = await run_in_threadpool(visible_venues, context, viewer)
    try:
        query = parse_query(request.query_params, viewer)
    except BadQuery as problem:
        fallback = parse_query({}, viewer)
        groups = groups_of(fallback.level, venues)
        return _page(request, viewer, fallback, groups, status=400, problem=problem)
    groups = groups_of(query.level, venues)
    if not groups:
        return _page(request, viewer, query, groups)
    found = (g for g in groups if g.key == query.group)
    group = groups[0] if query.group is None else next(found, None)
    if group is None:
        problem = BadQuery(
            "没有这个分组，请从列表中选择", "No such group: choose one from the list"
        )
        return _page(request, viewer, query, groups, status=404, problem=problem)
    shown = await run_in_threadpool(flows_view, context, viewer, query, group)
    return _page(request, viewer, query, groups, **shown)


def flows_link(venue_id: str, day: date) -> str:
    """The flows page charting one venue's hours on one day."""
    query = {"level": FlowLevel.VENUE.value, "group": venue_id, "bucket": "hour", "day": day}
    return f"{PREFIX}/flows?{urlencode(query)}"


@router.get("/alerts", response_class=HTMLResponse)
async def alerts_page(request: Request, context: Context, viewer: FlowViewer) -> Response:
    """The spike alerts the viewer may see, newest first, each linked to its venue's chart."""
    records = await run_in_threadpool(visible_alerts, context, viewer.principal, limit=ALERTS_SHOWN)
    alerts = [(AlertMessage.of(record), ZoneInfo(record.timezone)) for record in records]
    return render(
        request,
        "alerts.html",
        viewer,
        alerts=[
            {
                "message": message,
                "raised": message.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                "link": flows_link(message.venue_id, message.period),
            }
            for message, zone in alerts
        ],
        limit=ALERTS_SHOWN,
        refresh=REFRESH_SECONDS,
        webhook=context.settings.alerting.webhook is not None,
    )
