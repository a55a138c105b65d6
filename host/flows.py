"""Flows in venues' local time, the spike detector, and delivery of its alerts to a webhook."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict

from host.core.security import random_id
from host.core.times import DAY_MS, EPOCH, HOUR_MS, MILLISECOND, from_ms, to_ms
from host.storage.flows import (
    AlertKind,
    AlertRecord,
    FlowFilter,
    FlowLevel,
    FlowQueries,
    FlowSum,
    Span,
    Spike,
    hour_of,
)

log = logging.getLogger(__name__)

EPOCH_DAY = EPOCH.date()
DETECTOR_JOB = "spike-detector"
# Delivery: a short timeout, then retries further and further apart (with jitter, so that a
# webhook that comes back is not met by every alert at once), up to about a day in all.
DELIVERY_TIMEOUT_S = 5.0
RETRY_FIRST_S = 10.0
RETRY_MAX_S = 3600.0
MAX_ATTEMPTS = 30
CLAIM_LIMIT = 10  # alerts one worker takes for delivery at a time
LEASE_MS = int((CLAIM_LIMIT * DELIVERY_TIMEOUT_S + 30) * 1000)  # beyond the longest round
DELIVERY_MAX_AGE_MS = DAY_MS  # an alert older than this is not sent (a webhook set up late)


@dataclass(frozen=True)
class SpikeRule:
    """When a venue's count is a spike: far above its own usual, and not a quiet venue's.

    A count is compared with the median of the same measure on each of the `baseline_days`
    local days before; it is a spike when it is at least `ratio` times that (a median of 0
    taken as 1) and at least the minimum count. A venue with check-ins on fewer than
    `history_days` of those days (new, or reopening) has no usual yet, and never alarms.
    """

    ratio: float = 3.0
    min_hour: int = 100  # check-ins in one local hour
    min_day: int = 500  # check-ins in the local day so far
    baseline_days: int = 7
    history_days: int = 4

    def __post_init__(self) -> None:
        if self.ratio <= 1:
            raise ValueError("the alert ratio must be above 1")
        if self.min_hour < 1 or self.min_day < 1:
            raise ValueError("the minimum counts of an alert must be at least 1")
        if not 1 <= self.history_days <= self.baseline_days:
            raise ValueError("history days must be between 1 and the baseline days")


def check_webhook(url: str) -> str:
    """`url` if it can receive alerts (an http or https URL with a host), else ValueError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the alert webhook must be an http(s) URL, not {url!r}")
    return url


@dataclass(frozen=True)
class Alerting:
    """The spike detector's rule and pace, and where its alerts are POSTed (if anywhere)."""

    rule: SpikeRule = field(default_factory=SpikeRule)
    webhook: str | None = None
    detect_every_s: float = 60.0
    deliver_every_s: float = 5.0

    def __post_init__(self) -> None:
        if self.webhook is not None:
            check_webhook(self.webhook)
        if self.detect_every_s <= 0 or self.deliver_every_s <= 0:
            raise ValueError("the detector's and delivery's intervals must be positive")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alerting:
        return cls(**{**data, "rule": SpikeRule(**data["rule"])})


# ---- local time ---------------------------------------------------------------------------
#
# Counts are kept per UTC hour; a venue's local hours and days are made from them with its
# time zone. That is exact where the offset from UTC is a whole number of hours (all of
# China); elsewhere (India's +05:30) each local "hour" is the UTC hour, labelled in local time.


@functools.lru_cache(maxsize=100_000)
def local_hour(timezone: str, hour_ms: int) -> datetime:
    """The local time at the start of a UTC hour; cached: every venue of a zone asks alike."""
    return from_ms(hour_ms).astimezone(ZoneInfo(timezone))


def local_day(timezone: str, ms: int) -> date:
    return from_ms(ms).astimezone(ZoneInfo(timezone)).date()


def local_midnight(timezone: str, day: date) -> int:
    """When a local day begins, in Unix ms."""
    return to_ms(datetime.combine(day, time(), ZoneInfo(timezone)))


@dataclass(frozen=True)
class FlowCount:
    """A group's check-ins in one local hour (its start, ISO with offset) or day (ISO date)."""

    group: tuple[str, ...]
    period: str
    total: int
    passed: int
    denied: int
    referred: int
    staff_let_through: int  # of the referrals, let through by staff
    staff_refused: int  # and refused by them


def offset_spans(timezone: str, since_ms: int, until_ms: int) -> list[tuple[int, int, int]]:
    """[start, end) spans of the window, each with the zone's UTC offset (ms) all through it.

    One span, unless the zone changes its clocks in the window (found hour by hour).
    """
    spans: list[tuple[int, int, int]] = []
    for hour in range(since_ms, until_ms, HOUR_MS):
        offset = local_hour(timezone, hour).utcoffset() // MILLISECOND
        if spans and spans[-1][2] == offset:
            continue
        if spans:
            spans[-1] = (spans[-1][0], hour, spans[-1][2])
        spans.append((hour, until_ms, offset))
    return spans


def flows(
    storage: FlowQueries,
    level: FlowLevel,
    bucket: Span,
    *,
    since_ms: int,
    until_ms: int,
    where: FlowFilter,
) -> list[FlowCount]:
    """Counts per group of `level` in local hours or days, ordered by group and period.

    Hours: every hour that overlaps [since, until). Days: every local day the window
    touches, counted whole (its local midnight to the next), in each venue's own zone; the
    database adds them up per day, so an answer is as long as the counts it holds.
    """
    counts: list[FlowCount] = []
    for timezone in storage.flow_timezones(where):
        if bucket is Span.HOUR:
            hours = (hour_of(since_ms), until_ms)
            for found in storage.flow_sums(level, where, timezone, hours):
                period = local_hour(timezone, found.bucket).isoformat()
                counts.append(FlowCount(found.group, period, *_totals(found)))
            continue
        first = local_midnight(timezone, local_day(timezone, since_ms))
        last = local_midnight(timezone, local_day(timezone, until_ms - 1) + timedelta(days=1))
        for start, end, offset in offset_spans(timezone, first, last):
            for found in storage.flow_sums(level, where, timezone, (start, end), offset):
                period = (EPOCH_DAY + timedelta(days=found.bucket)).isoformat()
                counts.append(FlowCount(found.group, period, *_totals(found)))
    return _summed(counts)


def _totals(found: FlowSum | FlowCount) -> tuple[int, int, int, int, int, int]:
    return (
        found.total,
        found.passed,
        found.denied,
        found.referred,
        found.staff_let_through,
        found.staff_refused,
    )


def _summed(counts: Iterable[FlowCount]) -> list[FlowCount]:
    """One count per group and period, in order: zones and clock changes may give several."""
    sums: dict[tuple[tuple[str, ...], str], list[int]] = defaultdict(lambda: [0] * 6)
    for count in counts:
        totals = sums[count.group, count.period]
        for index, value in enumerate(_totals(count)):
            totals[index] += value
    return [FlowCount(group, period, *totals) for (group, period), totals in sorted(sums.items())]


# ---- the spike detector -------------------------------------------------------------------


def find_spike(
    rule: SpikeRule, venue_id: str, timezone: str, hours: Iterable[tuple[int, int]], now_ms: int
) -> Spike | None:
    """The venue's spike today (its local day at `now_ms`), if it has one.

    `hours` are (UTC hour, total) pairs reaching back over the baseline days. Every local
    hour of today so far is set against the median of the same hour on the days before, and
    the day so far against the median of those days up to the same hour. The earliest hour
    that is a spike is reported; failing one, the day.
    """
    today = local_day(timezone, now_ms)
    first = today - timedelta(days=rule.baseline_days)
    current = hour_of(now_ms)
    counts: dict[date, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    starts: dict[int, int] = {}  # today's local hours: the UTC hour each begins at
    for hour_ms, total in hours:
        local = local_hour(timezone, hour_ms)
        day = local.date()
        if first <= day <= today and hour_ms <= current:
            counts[day][local.hour] += total
            if day == today:
                starts.setdefault(local.hour, hour_ms)
    before = [first + timedelta(days=offset) for offset in range(rule.baseline_days)]
    if sum(1 for day in before if any(counts[day].values())) < rule.history_days:
        return None
    now_hour = local_hour(timezone, current).hour

    def spike(measure: Span, hour_ms: int, count: int, usual: list[int]) -> Spike:
        baseline = statistics.median(usual)
        ratio = count / max(baseline, 1)
        return Spike(venue_id, today.isoformat(), measure, hour_ms, count, baseline, ratio)

    for hour in sorted(starts):
        usual = [counts[day][hour] for day in before]
        found = spike(Span.HOUR, starts[hour], counts[today][hour], usual)
        if found.count >= rule.min_hour and found.ratio >= rule.ratio:
            return found
    so_far = [sum(n for h, n in counts[day].items() if h <= now_hour) for day in before]
    found = spike(Span.DAY, current, sum(counts[today].values()), so_far)
    if found.count >= rule.min_day and found.ratio >= rule.ratio:
        return found
    return None


def detect_spikes(storage: FlowQueries, rule: SpikeRule, now_ms: int) -> list[AlertRecord]:
    """Find today's spikes and store an alert for each venue that has none today yet.

    Only venues that reached a minimum in the last day (an hour's, or a day's) can have a
    spike: they are found first, and only their baselines read. Any number of workers may
    run this at once: the database keeps one alert per venue and day, and each worker
    returns only those it stored.
    """
    current = hour_of(now_ms)
    busy = storage.busy_venues(current - DAY_MS, current + HOUR_MS, rule.min_hour, rule.min_day)
    if not busy:
        return []
    alerted = storage.alerted_periods(current - 2 * DAY_MS)
    # From before the first baseline day's local midnight (whatever the zone) to this hour.
    since = current - (rule.baseline_days + 2) * DAY_MS
    stored = []
    for venue_id, (timezone, hours) in storage.venue_hours(busy, since, current + HOUR_MS).items():
        if (venue_id, local_day(timezone, now_ms).isoformat()) in alerted:
            continue
        spike = find_spike(rule, venue_id, timezone, hours, now_ms)
        if spike is None:
            continue
        alert_id = random_id("a_", 16)
        if storage.add_alert(alert_id, spike, now_ms):
            alert = storage.get_alert(alert_id)
            assert alert is not None
            stored.append(alert)
            log.warning(
                "spike alert %s: venue %s on %s, %s count %d against a usual %g (%.1fx)",
                alert_id,
                venue_id,
                spike.period,
                spike.measure.value,
                spike.count,
                spike.baseline,
                spike.ratio,
            )
    return stored


def detect_if_due(storage: FlowQueries, alerting: Alerting, now_ms: int) -> list[AlertRecord]:
    """`detect_spikes`, if no worker has run it within `detect_every_s`; else nothing."""
    if not storage.claim_job(DETECTOR_JOB, now_ms, int(alerting.detect_every_s * 1000)):
        return []
    return detect_spikes(storage, alerting.rule, now_ms)


# ---- alerts as sent -----------------------------------------------------------------------


class AlertMessage(BaseModel):
    """An alert as the API answers it and as the webhook receives it.

    A status sweep (a device asking many unknown ID numbers) is told in a spike's terms:
    `count` is the unknown numbers asked within the window, `baseline` the count a real
    entrance is not expected to reach, `hour` the hour it was raised in.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    kind: AlertKind = AlertKind.SPIKE
    device_id: str | None = None  # the device of a status sweep
    venue_id: str
    venue_name: str
    district: str
    street: str
    period: date  # the venue's local day
    measure: Span  # an hour's count, or the day's so far
    hour: AwareDatetime  # the local hour that fired (for the day: the latest counted)
    count: int
    baseline: float  # median of the same measure on the days before
    ratio: float  # count / baseline (a baseline of 0 taken as 1)
    created_at: AwareDatetime
    delivered_at: AwareDatetime | None

    @classmethod
    def of(cls, alert: AlertRecord) -> AlertMessage:
        spike = alert.spike
        return cls(
            id=alert.id,
            kind=alert.kind,
            device_id=alert.device_id,
            venue_id=spike.venue_id,
            venue_name=alert.venue_name,
            district=alert.district,
            street=alert.street,
            period=date.fromisoformat(spike.period),
            measure=spike.measure,
            hour=local_hour(alert.timezone, spike.hour_ms),
            count=spike.count,
            baseline=spike.baseline,
            ratio=round(spike.ratio, 2),
            created_at=from_ms(alert.created_at_ms),
            delivered_at=None if alert.delivered_at_ms is None else from_ms(alert.delivered_at_ms),
        )


# ---- delivery -----------------------------------------------------------------------------


def retry_delay_ms(attempts: int, rng: random.Random) -> int:
    """How long after its `attempts`-th failure an alert is tried again: doubling, jittered."""
    delay = min(RETRY_FIRST_S * 2 ** (attempts - 1), RETRY_MAX_S)
    return int(delay * rng.uniform(0.5, 1.0) * 1000)


def deliver_due(
    storage: FlowQueries,
    webhook: str,
    now_ms: Callable[[], int],
    client: httpx.Client,
    rng: random.Random,
) -> int:
    """POST the alerts due for delivery (claimed under a lease) to the webhook; how many went.

    Each is sent as JSON with its id as the Idempotency-Key: a worker that dies between the
    POST and marking it delivered leaves it to be sent again, so a receiver may see it twice.
    """
    now = now_ms()
    claimed = storage.claim_alerts(
        now, lease_ms=LEASE_MS, raised_since_ms=now - DELIVERY_MAX_AGE_MS, limit=CLAIM_LIMIT
    )
    delivered = 0
    for alert in claimed:
        try:
            response = client.post(
                webhook,
                content=AlertMessage.of(alert).model_dump_json(),
                headers={"Content-Type": "application/json", "Idempotency-Key": alert.id},
            )
            failure = None if response.is_success else f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            failure = type(error).__name__
        if failure is None:
            storage.alert_delivered(alert.id, now_ms())
            delivered += 1
            continue
        retry = (
            None
            if alert.attempts >= MAX_ATTEMPTS
            else now_ms() + retry_delay_ms(alert.attempts, rng)
        )
        storage.alert_not_delivered(alert.id, retry)
        log.warning(
            "alert %s not delivered (attempt %d: %s); %s",
            alert.id,
            alert.attempts,
            failure,
            "given up" if retry is None else "will retry",
        )
    return delivered


# ---- in the background, in every worker ---------------------------------------------------


async def detect_periodically(
    storage: FlowQueries, alerting: Alerting, now_ms: Callable[[], int]
) -> None:
    """`detect_if_due` every `detect_every_s`, in a worker thread, until cancelled."""
    while True:
        try:
            await asyncio.to_thread(detect_if_due, storage, alerting, now_ms())
        except Exception:  # any failure: logged, and tried again next time
            log.exception("spike detection failed")
        await asyncio.sleep(alerting.detect_every_s)


async def deliver_periodically(
    storage: FlowQueries, webhook: str, every_s: float, now_ms: Callable[[], int]
) -> None:
    """`deliver_due` every `every_s`, in a worker thread, until cancelled; never on ingest."""
    rng = random.Random()
    with httpx.Client(timeout=DELIVERY_TIMEOUT_S) as client:
        while True:
            try:
                await asyncio.to_thread(deliver_due, storage, webhook, now_ms, client, rng)
            except Exception:  # any failure: logged, and tried again next time
                log.exception("alert delivery failed")
            await asyncio.sleep(every_s)


def background_tasks(
    storage: FlowQueries, alerting: Alerting, now_ms: Callable[[], int]
) -> Sequence[asyncio.Task[None]]:
    """The detector, and delivery if there is a webhook, started on the running loop."""
    tasks = [asyncio.create_task(detect_periodically(storage, alerting, now_ms))]
    if alerting.webhook is not None:
        tasks.append(
            asyncio.create_task(
                deliver_periodically(storage, alerting.webhook, alerting.deliver_every_s, now_ms)
            )
        )
    return tasks
