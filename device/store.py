"""The device's SQLite store: each check-in committed before anyone is told, kept until acked."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from uuid import UUID

from shared.messages import CheckIn, DeviceConfig

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS checkins (
    id TEXT PRIMARY KEY,
    venue_id TEXT NOT NULL,
    scanned_at_ms INTEGER NOT NULL,
    person_ref TEXT,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reasons TEXT NOT NULL,
    temperature_c REAL,
    clock_trusted INTEGER NOT NULL,
    acked_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS checkins_pending ON checkins (acked_at_ms, id);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS denylist (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    document BLOB NOT NULL,
    refreshed_at_ms INTEGER NOT NULL
);
"""


class Store:
    """Check-ins and cached host configuration; one connection per thread, WAL, synchronous=FULL."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        with self._connect() as connection:
            connection.executescript(SCHEMA)
            connection.execute(
                "INSERT OR IGNORE INTO settings (name, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    def _connect(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            self._local.connection = connection
        return connection

    def record(self, checkin: CheckIn) -> None:
        """Commit one check-in durably; returns only once it is on disk."""
        self._connect().execute(
            "INSERT INTO checkins (id, venue_id, scanned_at_ms, person_ref, kind, outcome, reasons,"
            " temperature_c, clock_trusted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(checkin.id),
                checkin.venue_id,
                int(checkin.scanned_at.timestamp() * 1000),
                checkin.person_ref,
                checkin.kind.value,
                checkin.outcome.value,
                json.dumps(checkin.reasons, ensure_ascii=False),
                checkin.temperature_c,
                int(checkin.clock_trusted),
            ),
        )

    def pending(self, limit: int) -> list[CheckIn]:
        """The oldest check-ins the host has not acknowledged yet."""
        rows = self._connect().execute(
            "SELECT id, venue_id, scanned_at_ms, person_ref, kind, outcome, reasons, temperature_c,"
            " clock_trusted FROM checkins WHERE acked_at_ms IS NULL ORDER BY id LIMIT ?",
            (limit,),
        )
        return [
            CheckIn.model_validate(
                {
                    "id": row[0],
                    "venue_id": row[1],
                    "scanned_at": row[2] / 1000,
                    "person_ref": row[3],
                    "kind": row[4],
                    "outcome": row[5],
                    "reasons": json.loads(row[6]),
                    "temperature_c": row[7],
                    "clock_trusted": bool(row[8]),
                }
            )
            for row in rows
        ]

    def mark_acked(self, ids: list[UUID]) -> None:
        now_ms = time.time_ns() // 1_000_000
        connection = self._connect()
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "UPDATE checkins SET acked_at_ms = ? WHERE id = ? AND acked_at_ms IS NULL",
                [(now_ms, str(checkin_id)) for checkin_id in ids],
            )

    def counts(self) -> tuple[int, int]:
        """(recorded, acknowledged) check-ins."""
        recorded, acked = (
            self._connect().execute("SELECT COUNT(*), COUNT(acked_at_ms) FROM checkins").fetchone()
        )
        return recorded, acked

    def save_config(self, config: DeviceConfig) -> None:
        self._connect().execute(
            "INSERT INTO settings (name, value) VALUES ('config', ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (config.model_dump_json(),),
        )

    def load_config(self) -> DeviceConfig | None:
        row = self._connect().execute("SELECT value FROM settings WHERE name = 'config'").fetchone()
        return DeviceConfig.model_validate_json(row[0]) if row else None

    def save_denylist(self, document: bytes, refreshed_at_ms: int) -> None:
        """Keep the host-signed deny list as received; it is checked again whenever loaded."""
        self._connect().execute(
            "INSERT INTO denylist (only_row, document, refreshed_at_ms) VALUES (1, ?, ?)"
            " ON CONFLICT (only_row) DO UPDATE SET"
            " document = excluded.document, refreshed_at_ms = excluded.refreshed_at_ms",
            (document, refreshed_at_ms),
        )

    def mark_denylist_refreshed(self, refreshed_at_ms: int) -> None:
        """The host confirmed that the kept list is current."""
        self._connect().execute("UPDATE denylist SET refreshed_at_ms = ?", (refreshed_at_ms,))

    def load_denylist(self) -> tuple[bytes, int] | None:
        """The kept deny list and when the host last confirmed it current, if one is kept."""
        row = self._connect().execute("SELECT document, refreshed_at_ms FROM denylist").fetchone()
        return (bytes(row[0]), row[1]) if row else None

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
