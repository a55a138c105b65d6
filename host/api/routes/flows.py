"""Flows (check-ins per venue, street, district or category, in local time) and spike alerts.

Both are counts, not people: no audit record is written. A venue manager sees only their
venues: at any level, a group counts only the venues of theirs in it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict

from host.api.deps import Context, HostContext, Principal, require_venue_for, requires
from host.api.errors import ApiError
from host.api.parsing import StrictJsonRoute
from host.core.times import DAY_MS, from_ms, to_ms
from host.flows import AlertMessage, flows
from host.storage.flows import LEVEL_COLUMNS, AlertRecord, FlowFilter, FlowLevel, Span
from host.storage.users import Role
from shared.messages import PlaceName
from shared.policy import VenueCategory

router = APIRouter(tags=["flows"], route_class=StrictJsonRoute)
FlowReader = Annotated[Principal, requires(Role.ADMIN, Role.EPIDEMIOLOGIST, Role.VENUE_MANAGER)]
DEFAULT_WINDOW_MS = {Span.HOUR: DAY_MS, Span.DAY: 7 * DAY_MS}
LONGEST_WINDOW_DAYS = {Span.HOUR: 31, Span.DAY: 400}
# Nothing was scanned before 1970 (a wrong device clock aside), and a local time must be
# representable in every zone: windows are clamped to these.
EARLIEST_MS = 0
LATEST_MS = 253_402_128_000_000  # 9999-12-30T00:00:00Z
MAX_ALERTS_PAGE = 1000


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FlowCountOut(Model):
    """One group's check-ins in one local hour or day; the group's fields as its level has them."""

    venue_id: str | None = None
    district: str | None = None
    street: str | None = None
    category: VenueCategory | None = None
    period: str  # a local hour's start (2022-05-01T16:00:00+08:00) or a local day (2022-05-01)
    total: int
    passed: int
    denied: int
    referred: int
    staff_let_through: int  # of the referrals, let through by staff at the device
    staff_refused: int  # and refused by them


class FlowsOut(Model):
    """The counts, and the window they were asked for (clamped to 1970 to 9999)."""

    level: FlowLevel
    bucket: Span
    since: AwareDatetime
    until: AwareDatetime
    counts: list[FlowCountOut]


def _scope(principal: Principal) -> frozenset[str] | None:
    """The venues a principal's flows and alerts are limited to; None: all of them."""
    return principal.venues if principal.role is Role.VENUE_MANAGER else None


def flow_filter(
    context: HostContext,
    principal: Principal,
    *,
    venue: str | None = None,
    district: str | None = None,
    street: str | None = None,
    category: VenueCategory | None = None,
) -> FlowFilter:
    """The venues a principal's flows count: those asked for, within their scope.

    A venue they may not see is refused as an unknown one (ApiError 404), as in the API.
    """
    if venue is not None:
        require_venue_for(context, principal, venue)
    return FlowFilter(
        venue_id=venue,
        district=district,
        street=street,
        category=None if category is None else category.value,
        venues=_scope(principal),
    )


def visible_alerts(
    context: HostContext,
    principal: Principal,
    *,
    since_ms: int | None = None,
    venue: str | None = None,
    limit: int = 100,
) -> list[AlertRecord]:
    """The alerts since `since_ms` (of one venue) that the principal may see, newest first."""
    if venue is not None:
        require_venue_for(context, principal, venue)
    return context.storage.list_alerts(
        since_ms=since_ms, venue_id=venue, venues=_scope(principal), limit=limit
    )


@router.get("/flows")
def get_flows(  # noqa: PLR0917 - one parameter per filter of the query string
    context: Context,
    principal: FlowReader,
    level: FlowLevel = FlowLevel.VENUE,
    bucket: Span = Span.HOUR,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    venue: Annotated[str | None, Query(max_length=64)] = None,
    district: Annotated[PlaceName | None, Query()] = None,
    street: Annotated[PlaceName | None, Query()] = None,
    category: VenueCategory | None = None,
) -> FlowsOut:
    """Check-ins per group, in local hours (those overlapping the window) or whole local days.

    By default the last 24 hours (hours) or 7 days (days) up to now. Local time is each
    venue's own time zone.
    """
    end_ms = to_ms(until) if until is not None else context.settings.now_ms()
    start_ms = to_ms(since) if since is not None else end_ms - DEFAULT_WINDOW_MS[bucket]
    since_ms, until_ms = max(start_ms, EARLIEST_MS), min(end_ms, LATEST_MS)
    if since_ms >= until_ms:
        raise ApiError(422, "bad-window", "since must be before until, and both after 1970")
    if until_ms - since_ms > LONGEST_WINDOW_DAYS[bucket] * DAY_MS:
        raise ApiError(
            422,
            "window-too-long",
            f"{bucket.value} counts cover at most {LONGEST_WINDOW_DAYS[bucket]} days",
        )
    where = flow_filter(
        context, principal, venue=venue, district=district, street=street, category=category
    )
    counts = flows(
        context.storage, level, bucket, since_ms=since_ms, until_ms=until_ms, where=where
    )
    fields = ["venue_id" if column == "id" else column for column in LEVEL_COLUMNS[level]]
    return FlowsOut(
        level=level,
        bucket=bucket,
        since=from_ms(since_ms),
        until=from_ms(until_ms),
        counts=[
            FlowCountOut(
                **dict(zip(fields, count.group, strict=True)),
                period=count.period,
                total=count.total,
                passed=count.passed,
                denied=count.denied,
                referred=count.referred,
                staff_let_through=count.staff_let_through,
                staff_refused=count.staff_refused,
            )
            for count in counts
        ],
    )


@router.get("/alerts")
def get_alerts(
    context: Context,
    principal: FlowReader,
    since: AwareDatetime | None = None,
    venue: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ALERTS_PAGE)] = 100,
) -> list[AlertMessage]:
    """Spike alerts raised at or after `since` (of one venue), newest first."""
    alerts = visible_alerts(
        context,
        principal,
        since_ms=None if since is None else to_ms(since),
        venue=venue,
        limit=limit,
    )
    return [AlertMessage.of(alert) for alert in alerts]
