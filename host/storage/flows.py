"""Flow queries: check-in counts per venue and hour kept at ingest, and spike alerts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from host.core.times import DAY_MS, HOUR_MS
from host.storage.base import HourCount
from host.storage.sqlbase import LOOKUP_CHUNK, Dialect, SqlBase
from shared.policy import Outcome

COUNT_COLUMNS = "venue_id, hour, total, passed, denied, referred"
# The UTC hour a scan falls in, floored: device clocks before 1970 give negative times, and
# SQL's % keeps the sign of the dividend.
HOUR_OF_SCAN = f"scanned_at - ((scanned_at % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS}"
OUTCOME_SUMS = ", ".join(
    ["COUNT(*)"]
    + [
        f"SUM(CASE WHEN outcome = '{outcome.value}' THEN 1 ELSE 0 END)"
        for outcome in (Outcome.PASS, Outcome.DENY, Outcome.REFER)
    ]
)
ADD_TO_COUNTS = """ON CONFLICT (venue_id, hour) DO UPDATE SET
    total = checkin_counts.total + excluded.total,
    passed = checkin_counts.passed + excluded.passed,
    denied = checkin_counts.denied + excluded.denied,
    referred = checkin_counts.referred + excluded.referred"""
# One venue's hours from a batch, counted by the caller (SQLite's ingest).
ADD_COUNTS = (
    f"INSERT INTO checkin_counts ({COUNT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) {ADD_TO_COUNTS}"
)


def count_scans(source: str) -> str:
    """Add the check-ins `source` names (a table or a CTE) to the hourly counts.

    In a fixed order, so that two transactions adding to the same hours cannot deadlock;
    `WHERE true` keeps SQLite from reading the ON CONFLICT as a join's ON.
    """
    return f"""INSERT INTO checkin_counts ({COUNT_COLUMNS})
        SELECT venue_id, {HOUR_OF_SCAN}, {OUTCOME_SUMS} FROM {source} WHERE true
        GROUP BY 1, 2 ORDER BY 1, 2 {ADD_TO_COUNTS}"""


TABLES = (
    # Anonymous counts per venue and UTC hour (its start, Unix ms), kept in the transaction
    # that stores the check-ins; they outlive the check-ins' retention. Of the hour's
    # referrals, those staff let through or refused are added as their decisions come in
    # (host.storage.staff).
    """CREATE TABLE checkin_counts (
        venue_id TEXT NOT NULL,
        hour BIGINT NOT NULL,
        total BIGINT NOT NULL,
        passed BIGINT NOT NULL,
        denied BIGINT NOT NULL,
        referred BIGINT NOT NULL,
        staff_let_through BIGINT NOT NULL DEFAULT 0,
        staff_refused BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (venue_id, hour)){without_rowid}""",
    # Counts by hour across venues: the spike detector's first question, and flows.
    "CREATE INDEX checkin_counts_hour ON checkin_counts ({hour_index})",
    # At most one alert per venue and local day (`period`), whichever worker stores it first;
    # delivery to the webhook is leased to one worker at a time and retried with backoff.
    """CREATE TABLE flow_alerts (
        id TEXT PRIMARY KEY,
        venue_id TEXT NOT NULL REFERENCES venues (id),
        period TEXT NOT NULL,
        measure TEXT NOT NULL,
        hour BIGINT NOT NULL,
        checkins BIGINT NOT NULL,
        baseline DOUBLE PRECISION NOT NULL,
        ratio DOUBLE PRECISION NOT NULL,
        created_at BIGINT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at BIGINT,
        leased_until BIGINT NOT NULL DEFAULT 0,
        delivered_at BIGINT,
        UNIQUE (venue_id, period))""",
    "CREATE INDEX flow_alerts_created ON flow_alerts (created_at)",
    "CREATE INDEX flow_alerts_due ON flow_alerts (next_attempt_at) WHERE delivered_at IS NULL",
    # When each periodic job (the spike detector) is next due, so one worker of many runs it.
    "CREATE TABLE flow_jobs (name TEXT PRIMARY KEY, due_at BIGINT NOT NULL)",
    # The counts of the check-ins stored before this version.
    count_scans("checkins"),
)
WITHOUT_ROWID = {Dialect.SQLITE: " WITHOUT ROWID", Dialect.POSTGRESQL: ""}
# SQLite plans without statistics (the host never runs ANALYZE): an index holding the counts
# lets it read an hour range from the index alone, 3-5 times faster than with (hour). With
# PostgreSQL's own statistics (hour) does as well, and leaves the counts' updates HOT.
HOUR_INDEX = {
    Dialect.SQLITE: (
        "hour, venue_id, total, passed, denied, referred, staff_let_through, staff_refused"
    ),
    Dialect.POSTGRESQL: "hour",
}


def schema(dialect: Dialect) -> list[str]:
    """The hourly counts (filled from the check-ins already stored), alerts and job claims."""
    return [
        statement.format(without_rowid=WITHOUT_ROWID[dialect], hour_index=HOUR_INDEX[dialect])
        for statement in TABLES
    ]


def hour_of(ms: int) -> int:
    """The start of the UTC hour `ms` falls in (floored, before 1970 too)."""
    return ms - ms % HOUR_MS


def hour_counts(venue_id: str, scans: Iterable[tuple[int, str]]) -> list[tuple[Any, ...]]:
    """`ADD_COUNTS` rows for one venue's (scanned_at ms, outcome) pairs, one per hour."""
    tally: Counter[tuple[int, str]] = Counter((hour_of(at), outcome) for at, outcome in scans)
    hours = sorted({hour for hour, _ in tally})
    return [
        (
            venue_id,
            hour,
            tally[hour, Outcome.PASS] + tally[hour, Outcome.DENY] + tally[hour, Outcome.REFER],
            tally[hour, Outcome.PASS],
            tally[hour, Outcome.DENY],
            tally[hour, Outcome.REFER],
        )
        for hour in hours
    ]


class FlowLevel(StrEnum):
    """What flows are counted per: a venue, a street (街道), a district (区) or a category."""

    VENUE = "venue"
    STREET = "street"
    DISTRICT = "district"
    CATEGORY = "category"


class AlertKind(StrEnum):
    """What an alert is about: a venue's spike in check-ins, or a device sweeping ID numbers."""

    SPIKE = "spike"
    STATUS_SWEEP = "status-sweep"


class Span(StrEnum):
    """An hour or a day: the bucket of a flow count, the measure an alert fired on."""

    HOUR = "hour"
    DAY = "day"


DAY_SHIFT = 1000  # days added before dividing, taken off after: windows start after 1969
# The venue columns a level groups by; a venue's row carries where it is, too.
LEVEL_COLUMNS = {
    FlowLevel.VENUE: ("id", "district", "street", "category"),
    FlowLevel.STREET: ("district", "street"),
    FlowLevel.DISTRICT: ("district",),
    FlowLevel.CATEGORY: ("category",),
}


@dataclass(frozen=True)
class FlowFilter:
    """Which venues flows count: every filter given must hold (`venues`: a manager's scope)."""

    venue_id: str | None = None
    district: str | None = None
    street: str | None = None
    category: str | None = None
    venues: frozenset[str] | None = None


@dataclass(frozen=True)
class FlowSum:
    """A group's check-ins in one bucket: a UTC hour (its start, ms) or a day (since 1970)."""

    group: tuple[str, ...]  # the values of the level's columns
    bucket: int
    total: int
    passed: int
    denied: int
    referred: int
    staff_let_through: int
    staff_refused: int


@dataclass(frozen=True)
class Spike:
    """A venue's count far above its own baseline, as the detector found it."""

    venue_id: str
    period: str  # the venue's local day, ISO (2022-05-01)
    measure: Span  # the hour's count, or the day's so far
    hour_ms: int  # start of the UTC hour that fired (the day's: the latest hour counted)
    count: int
    baseline: float  # median of the previous days' counts
    ratio: float  # count / baseline, a baseline of 0 taken as 1


@dataclass(frozen=True)
class AlertRecord:
    """A stored alert, where its venue is, and how its delivery to the webhook stands."""

    id: str
    spike: Spike
    created_at_ms: int
    venue_name: str
    district: str
    street: str
    timezone: str
    attempts: int
    delivered_at_ms: int | None
    kind: AlertKind = AlertKind.SPIKE
    device_id: str | None = None  # the device of a status sweep


ALERT_COLUMNS = (
    "a.id, a.venue_id, a.period, a.measure, a.hour, a.checkins, a.baseline, a.ratio,"
    " a.created_at, v.name, v.district, v.street, v.timezone, a.attempts, a.delivered_at,"
    " a.kind, a.device_id"
)
ALERTS_OF_VENUES = f"SELECT {ALERT_COLUMNS} FROM flow_alerts a JOIN venues v ON v.id = a.venue_id"


def _alert(row: Sequence[Any]) -> AlertRecord:
    id_, venue_id, period, measure, hour, count, baseline, ratio, created_at, *rest = row
    name, district, street, timezone, attempts, delivered_at, kind, device_id = rest
    spike = Spike(venue_id, period, Span(measure), hour, count, baseline, ratio)
    return AlertRecord(
        id_,
        spike,
        created_at,
        name,
        district,
        street,
        timezone,
        attempts,
        delivered_at,
        AlertKind(kind),
        device_id or None,
    )


def _marks(values: Collection[Any]) -> str:
    return ", ".join("?" * len(values))


def _venue_conditions(where: FlowFilter) -> tuple[list[str], list[Any]]:
    """SQL conditions on venues `v` (and their parameters) for every filter given."""
    conditions, params = ["1 = 1"], []
    for column, value in (
        ("id", where.venue_id),
        ("district", where.district),
        ("street", where.street),
        ("category", where.category),
    ):
        if value is not None:
            conditions.append(f"v.{column} = ?")
            params.append(value)
    if where.venues is not None:
        conditions.append(f"v.id IN ({_marks(where.venues)})" if where.venues else "1 = 0")
        params.extend(sorted(where.venues))
    return conditions, params


class FlowQueries(SqlBase):
    """Counts per venue, street, district and category; alerts and their delivery."""

    # ---- counts ------------------------------------------------------------------------------

    def hourly_counts(self, venue_id: str, since_ms: int, until_ms: int) -> list[HourCount]:
        rows = self._fetchall(
            "SELECT hour, total, passed, denied, referred, staff_let_through, staff_refused"
            " FROM checkin_counts WHERE venue_id = ? AND hour > ? AND hour < ? ORDER BY hour",
            (venue_id, since_ms - HOUR_MS, until_ms),
        )
        return [HourCount(*row) for row in rows]

    def flow_timezones(self, where: FlowFilter) -> list[str]:
        """The time zones of the venues `where` selects."""
        conditions, params = _venue_conditions(where)
        rows = self._fetchall(
            f"SELECT DISTINCT v.timezone FROM venues v WHERE {' AND '.join(conditions)}", params
        )
        return [timezone for (timezone,) in rows]

    def flow_sums(
        self,
        level: FlowLevel,
        where: FlowFilter,
        timezone: str,
        hours: tuple[int, int],
        day_offset_ms: int | None = None,
    ) -> list[FlowSum]:
        """Counts per group of `level` of the venues in `timezone`, per UTC hour or local day.

        Of the hours starting in [hours[0], hours[1]); per day when `day_offset_ms` is the
        zone's UTC offset all through those hours.
        """
        columns = ", ".join(f"v.{column}" for column in LEVEL_COLUMNS[level])
        conditions, params = _venue_conditions(where)
        conditions += ["v.timezone = ?", "c.hour >= ?", "c.hour < ?"]
        params += [timezone, *hours]
        if day_offset_ms is None:
            bucket = "c.hour"
        else:
            # Days since 1970 at that offset, shifted so that SQL's division never sees a
            # negative number (it truncates; days must floor).
            bucket = f"(c.hour + ? + {DAY_SHIFT * DAY_MS}) / {DAY_MS} - {DAY_SHIFT}"
            params.insert(0, day_offset_ms)
        rows = self._fetchall(
            f"SELECT {columns}, {bucket} AS bucket, SUM(c.total), SUM(c.passed), SUM(c.denied),"
            " SUM(c.referred), SUM(c.staff_let_through), SUM(c.staff_refused)"
            " FROM checkin_counts c JOIN venues v ON v.id = c.venue_id"
            f" WHERE {' AND '.join(conditions)} GROUP BY {columns}, bucket",
            params,
        )
        width = len(LEVEL_COLUMNS[level])
        return [FlowSum(tuple(row[:width]), *map(int, row[width:])) for row in rows]

    def busy_venues(self, since_ms: int, until_ms: int, hour: int, day: int) -> list[str]:
        """Venues with `hour` check-ins in some hour, or `day` in all, of [since, until)."""
        rows = self._fetchall(
            "SELECT venue_id FROM checkin_counts WHERE hour >= ? AND hour < ?"
            " GROUP BY venue_id HAVING MAX(total) >= ? OR SUM(total) >= ?",
            (since_ms, until_ms, hour, day),
        )
        return [venue_id for (venue_id,) in rows]

    def venue_hours(
        self, venue_ids: Sequence[str], since_ms: int, until_ms: int
    ) -> dict[str, tuple[str, list[tuple[int, int]]]]:
        """Each venue's time zone and (hour, total) for hours starting in [since, until)."""
        found: dict[str, tuple[str, list[tuple[int, int]]]] = {}
        with self._snapshot() as conn:
            for start in range(0, len(venue_ids), LOOKUP_CHUNK):
                chunk = venue_ids[start : start + LOOKUP_CHUNK]
                rows = self._run(
                    conn,
                    "SELECT c.venue_id, v.timezone, c.hour, c.total"
                    " FROM checkin_counts c JOIN venues v ON v.id = c.venue_id"
                    f" WHERE c.venue_id IN ({_marks(chunk)}) AND c.hour >= ? AND c.hour < ?",
                    (*chunk, since_ms, until_ms),
                ).fetchall()
                for venue_id, timezone, hour, total in rows:
                    found.setdefault(venue_id, (timezone, []))[1].append((hour, total))
        return found

    # ---- alerts ------------------------------------------------------------------------------

    def alerted_periods(self, since_hour_ms: int) -> set[tuple[str, str]]:
        """(venue, local day) of the spike alerts whose hour is `since_hour_ms` or later."""
        rows = self._fetchall(
            "SELECT venue_id, period FROM flow_alerts WHERE hour >= ? AND kind = ?",
            (since_hour_ms, AlertKind.SPIKE.value),
        )
        return {(venue_id, period) for venue_id, period in rows}

    def add_alert(self, alert_id: str, spike: Spike, now_ms: int) -> bool:
        """Store the alert, due for delivery now; False if its venue has one for that day."""
        with self._write() as conn:
            return bool(
                self._run(
                    conn,
                    "INSERT INTO flow_alerts (id, venue_id, period, measure, hour, checkins,"
                    " baseline, ratio, created_at, next_attempt_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (
                        alert_id,
                        spike.venue_id,
                        spike.period,
                        spike.measure.value,
                        spike.hour_ms,
                        spike.count,
                        spike.baseline,
                        spike.ratio,
                        now_ms,
                        now_ms,
                    ),
                ).rowcount
            )

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        row = self._fetchone(f"{ALERTS_OF_VENUES} WHERE a.id = ?", (alert_id,))
        return None if row is None else _alert(row)

    def list_alerts(
        self,
        *,
        since_ms: int | None = None,
        venue_id: str | None = None,
        venues: frozenset[str] | None = None,
        limit: int = 100,
    ) -> list[AlertRecord]:
        """Alerts raised at or after `since_ms`, of one venue or of `venues`; newest first."""
        conditions, params = ["1 = 1"], []
        if since_ms is not None:
            conditions.append("a.created_at >= ?")
            params.append(since_ms)
        if venue_id is not None:
            conditions.append("a.venue_id = ?")
            params.append(venue_id)
        if venues is not None:
            if not venues:
                return []
            conditions.append(f"a.venue_id IN ({_marks(venues)})")
            params.extend(sorted(venues))
        rows = self._fetchall(
            f"{ALERTS_OF_VENUES} WHERE {' AND '.join(conditions)}"
            " ORDER BY a.created_at DESC, a.id DESC LIMIT ?",
            (*params, limit),
        )
        return [_alert(row) for row in rows]

    def claim_job(self, name: str, now_ms: int, every_ms: int) -> bool:
        """Whether this caller runs job `name` now: it is due, and now taken for `every_ms`."""
        with self._write() as conn:
            return bool(
                self._run(
                    conn,
                    "INSERT INTO flow_jobs (name, due_at) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET due_at = excluded.due_at"
                    " WHERE flow_jobs.due_at <= ?",
                    (name, now_ms + every_ms, now_ms),
                ).rowcount
            )

    # ---- delivery ----------------------------------------------------------------------------

    def claim_alerts(
        self, now_ms: int, *, lease_ms: int, raised_since_ms: int, limit: int
    ) -> list[AlertRecord]:
        """Undelivered alerts due now, leased to this caller for `lease_ms`; oldest due first.

        Claims take turns on a lock, so no two callers get the same alert while its lease runs;
        a caller that dies holding one leaves it to be claimed again when the lease ends.
        """
        with self._write() as conn:
            self._lock(conn, "alert-delivery")
            rows = self._run(
                conn,
                f"{ALERTS_OF_VENUES} WHERE a.delivered_at IS NULL AND a.next_attempt_at <= ?"
                " AND a.leased_until <= ? AND a.created_at >= ?"
                " ORDER BY a.next_attempt_at, a.id LIMIT ?",
                (now_ms, now_ms, raised_since_ms, limit),
            ).fetchall()
            ids = [row[0] for row in rows]
            if ids:
                self._run(
                    conn,
                    "UPDATE flow_alerts SET leased_until = ?, attempts = attempts + 1"
                    f" WHERE id IN ({_marks(ids)})",
                    (now_ms + lease_ms, *ids),
                )
        return [replace(_alert(row), attempts=row[13] + 1) for row in rows]

    def alert_delivered(self, alert_id: str, now_ms: int) -> None:
        with self._write() as conn:
            self._run(
                conn,
                "UPDATE flow_alerts SET delivered_at = ?, next_attempt_at = NULL,"
                " leased_until = 0 WHERE id = ?",
                (now_ms, alert_id),
            )

    def alert_not_delivered(self, alert_id: str, next_attempt_ms: int | None) -> None:
        """Release the alert's lease; it is tried again at `next_attempt_ms` (None: never)."""
        with self._write() as conn:
            self._run(
                conn,
                "UPDATE flow_alerts SET next_attempt_at = ?, leased_until = 0 WHERE id = ?",
                (next_attempt_ms, alert_id),
            )
