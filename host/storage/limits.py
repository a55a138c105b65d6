"""Rate counters every worker shares, and the alerts of devices whose status lookups sweep."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from host.storage.flows import AlertKind
from host.storage.sqlbase import Dialect, SqlBase, in_dialect

TABLES = (
    # Hits per key (a limit's name and its subject: a device, a client address) in a fixed
    # window of time (its start, Unix ms). Rows of windows long past are purged.
    """CREATE TABLE rate_counters (
        key TEXT NOT NULL,
        window_start BIGINT NOT NULL,
        hits BIGINT NOT NULL,
        PRIMARY KEY (key, window_start))""",
    "CREATE INDEX rate_counters_window ON rate_counters (window_start)",
    # Alerts come in kinds now: a venue's spike, and a device sweeping status lookups. The
    # table is made again without UNIQUE (venue_id, period), which allowed one alert of any
    # kind per venue and day: once per kind, venue, device ('' for a spike) and day instead.
    """CREATE TABLE flow_alerts_v5 (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL DEFAULT 'spike',
        venue_id TEXT NOT NULL REFERENCES venues (id),
        device_id TEXT NOT NULL DEFAULT '',
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
        delivered_at BIGINT)""",
    """INSERT INTO flow_alerts_v5 (id, venue_id, period, measure, hour, checkins, baseline,
        ratio, created_at, attempts, next_attempt_at, leased_until, delivered_at)
    SELECT id, venue_id, period, measure, hour, checkins, baseline, ratio, created_at,
        attempts, next_attempt_at, leased_until, delivered_at FROM flow_alerts""",
    "DROP TABLE flow_alerts",
    "ALTER TABLE flow_alerts_v5 RENAME TO flow_alerts",
    "CREATE UNIQUE INDEX flow_alerts_once ON flow_alerts (kind, venue_id, device_id, period)",
    "CREATE INDEX flow_alerts_created ON flow_alerts (created_at)",
    "CREATE INDEX flow_alerts_due ON flow_alerts (next_attempt_at) WHERE delivered_at IS NULL",
)
COUNT_HIT = """
    INSERT INTO rate_counters (key, window_start, hits) VALUES (?, ?, 1)
    ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_counters.hits + 1
    RETURNING hits"""


def schema(dialect: Dialect) -> list[str]:
    """The rate counters, and alerts of more than one kind."""
    return in_dialect(TABLES, dialect)


class LimitQueries(SqlBase):
    """Count hits in a window atomically (one UPSERT ... RETURNING), read and purge counts."""

    def _counter_write(self) -> AbstractContextManager[Any]:
        """A counter commits as a nonce does (`SqlStorage._nonce_write`): on SQLite, unsynced.

        A count lost with the power lets a few more requests through, no more.
        """
        return getattr(self, "_nonce_write", self._write)()

    def count_hit(self, key: str, window_start_ms: int) -> int:
        """Add one hit to `key`'s window; the window's hits with it, whichever worker adds."""
        with self._counter_write() as conn:
            (hits,) = self._run(conn, COUNT_HIT, (key, window_start_ms)).fetchone()
        return int(hits)

    def count_hits(self, keys: list[tuple[str, int]]) -> list[int]:
        """`count_hit` for several (key, window start) pairs in one transaction, in order."""
        with self._counter_write() as conn:
            return [int(self._run(conn, COUNT_HIT, key).fetchone()[0]) for key in keys]

    def hits(self, key: str, window_start_ms: int) -> int:
        """The hits `key` has in the window so far (0 for none)."""
        row = self._fetchone(
            "SELECT hits FROM rate_counters WHERE key = ? AND window_start = ?",
            (key, window_start_ms),
        )
        return 0 if row is None else int(row[0])

    def purge_rate_counters(self, before_ms: int) -> int:
        """Delete the counts of windows that started before `before_ms`."""
        with self._write() as conn:
            return self._run(
                conn, "DELETE FROM rate_counters WHERE window_start < ?", (before_ms,)
            ).rowcount

    def add_sweep_alert(
        self,
        alert_id: str,
        *,
        venue_id: str,
        device_id: str,
        period: str,
        hour_ms: int,
        unknown: int,
        threshold: int,
        now_ms: int,
    ) -> bool:
        """Store a status-sweep alert, due for delivery now; False if the device has one that day.

        As a spike's: `checkins` holds the unknown numbers asked in the window, `baseline` the
        count a real entrance is not expected to reach, `ratio` the one over the other.
        """
        with self._write() as conn:
            return bool(
                self._run(
                    conn,
                    "INSERT INTO flow_alerts (id, kind, venue_id, device_id, period, measure,"
                    " hour, checkins, baseline, ratio, created_at, next_attempt_at)"
                    " VALUES (?, ?, ?, ?, ?, 'hour', ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (
                        alert_id,
                        AlertKind.STATUS_SWEEP.value,
                        venue_id,
                        device_id,
                        period,
                        hour_ms,
                        unknown,
                        threshold,
                        unknown / threshold,
                        now_ms,
                        now_ms,
                    ),
                ).rowcount
            )
