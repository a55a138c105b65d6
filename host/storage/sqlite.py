"""SQLite storage: one file in WAL mode, a small pool of connections shared by worker threads."""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from host.core.times import HOUR_MS, from_ms, to_ms
from host.storage.base import (
    DenyListEntry,
    DenyListSnapshot,
    DenyListState,
    DeviceRecord,
    EnrollmentRefused,
    HourCount,
    PersonRecord,
    ReportRecord,
    Storage,
    VenueRecord,
)
from shared.denylist import HashKind
from shared.healthcode import Colour, NucleicTest, TestResult
from shared.messages import CheckIn, DeviceForm, DeviceReport, HostStats
from shared.policy import Outcome, RuleSet, VenueCategory

log = logging.getLogger(__name__)

# Version 1 as first released; tables added later within version 1 are made by migration 2.
SCHEMA_V1 = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS host_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    """CREATE TABLE IF NOT EXISTS venues (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        address TEXT NOT NULL,
        category TEXT NOT NULL,
        code_url TEXT NOT NULL,
        policy TEXT,
        created_at BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS people (
        person_ref TEXT PRIMARY KEY,
        id_hmac BLOB NOT NULL UNIQUE,
        colour TEXT NOT NULL,
        test_sampled_at BIGINT,
        test_result TEXT,
        updated_at BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS enrollment_tokens (
        token_hash BLOB PRIMARY KEY,
        venue_id TEXT NOT NULL REFERENCES venues (id),
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT)""",
    """CREATE TABLE IF NOT EXISTS devices (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        form TEXT NOT NULL,
        venue_id TEXT NOT NULL REFERENCES venues (id),
        public_key TEXT NOT NULL,
        enrolled_at BIGINT NOT NULL,
        last_seen_at BIGINT,
        revoked_at BIGINT)""",
    """CREATE TABLE IF NOT EXISTS device_nonces (
        device_id TEXT NOT NULL,
        nonce TEXT NOT NULL,
        seen_at BIGINT NOT NULL,
        PRIMARY KEY (device_id, nonce))""",
    "CREATE INDEX IF NOT EXISTS device_nonces_seen_at ON device_nonces (seen_at)",
    # The check-in id is the UUID's 16 bytes: half the size of its text, and quicker to make.
    """CREATE TABLE IF NOT EXISTS checkins (
        id BLOB PRIMARY KEY,
        device_id TEXT NOT NULL,
        venue_id TEXT NOT NULL,
        scanned_at BIGINT NOT NULL,
        person_ref TEXT,
        kind TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reasons TEXT NOT NULL,
        temperature_c REAL,
        clock_trusted BOOLEAN NOT NULL,
        received_at BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS checkins_venue_time ON checkins (venue_id, scanned_at)",
)
ADDED_WITHIN_V1 = (
    # The deny list holds digests only; the one row of denylist_version counts its changes.
    """CREATE TABLE IF NOT EXISTS denylist_entries (
        kind TEXT NOT NULL,
        digest BLOB NOT NULL,
        reason TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (kind, digest)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS denylist_version (
        only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
        version BIGINT NOT NULL,
        changed_at BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS device_reports (
        device_id TEXT PRIMARY KEY REFERENCES devices (id),
        received_at BIGINT NOT NULL,
        report TEXT NOT NULL)""",
)


def _create_v1(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA_V1:
        conn.execute(statement)


def _rules_column(conn: sqlite3.Connection) -> None:
    """Venue rules live in `rules`; a stored policy of the old form gives way to the default."""
    for statement in ADDED_WITHIN_V1:
        conn.execute(statement)
    conn.execute("ALTER TABLE venues RENAME COLUMN policy TO rules")
    stored = conn.execute("SELECT id, category, rules FROM venues WHERE rules IS NOT NULL")
    for venue_id, category, rules in stored.fetchall():
        try:
            RuleSet.model_validate_json(rules)
        except ValidationError:
            conn.execute("UPDATE venues SET rules = NULL WHERE id = ?", (venue_id,))
            log.warning(
                "venue %s: its stored policy is not a rule set; reset to the default rule set"
                " for %s",
                venue_id,
                category,
            )


def _thermometer_column(conn: sqlite3.Connection) -> None:
    """A check-in keeps the thermometer's readings behind its temperature, as JSON."""
    conn.execute("ALTER TABLE checkins ADD COLUMN thermometer TEXT")


# MIGRATIONS[n - 1] takes the schema from version n - 1 to n; version 0 is an empty file.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _create_v1,
    _rules_column,
    _thermometer_column,
)
SCHEMA_VERSION = len(MIGRATIONS)
PURGE_CHUNK = 5000  # check-ins deleted per transaction, so that ingest is never held up long

VENUE_COLUMNS = "id, name, address, category, code_url, rules, created_at"
PERSON_COLUMNS = "person_ref, id_hmac, colour, test_sampled_at, test_result, updated_at"
DEVICE_COLUMNS = "id, name, form, venue_id, public_key, enrolled_at, last_seen_at, revoked_at"
# A newly imported test replaces the stored one only if it is at least as recent.
NEWER_TEST = (
    "excluded.test_sampled_at IS NOT NULL AND (people.test_sampled_at IS NULL"
    " OR excluded.test_sampled_at >= people.test_sampled_at)"
)
UPSERT_PERSON = f"""
    INSERT INTO people ({PERSON_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (id_hmac) DO UPDATE SET
        colour = excluded.colour,
        test_sampled_at = CASE WHEN {NEWER_TEST}
            THEN excluded.test_sampled_at ELSE people.test_sampled_at END,
        test_result = CASE WHEN {NEWER_TEST}
            THEN excluded.test_result ELSE people.test_result END,
        updated_at = excluded.updated_at"""
CHECKIN_COLUMNS = (
    "id, device_id, venue_id, scanned_at, person_ref, kind, outcome, reasons, temperature_c,"
    " thermometer, clock_trusted, received_at"
)
INSERT_CHECKIN = (
    f"INSERT INTO checkins ({CHECKIN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO NOTHING"
)
HOURLY_COUNTS = f"""
    SELECT scanned_at / {HOUR_MS} AS hour, COUNT(*),
        SUM(CASE WHEN outcome = '{Outcome.PASS.value}' THEN 1 ELSE 0 END),
        SUM(CASE WHEN outcome = '{Outcome.DENY.value}' THEN 1 ELSE 0 END),
        SUM(CASE WHEN outcome = '{Outcome.REFER.value}' THEN 1 ELSE 0 END)
    FROM checkins
    WHERE venue_id = ? AND scanned_at >= ? AND scanned_at < ?
    GROUP BY hour ORDER BY hour"""
RAISE_DENYLIST_VERSION = """
    INSERT INTO denylist_version (only_row, version, changed_at) VALUES (1, 1, ?)
    ON CONFLICT (only_row) DO UPDATE SET version = version + 1, changed_at = excluded.changed_at"""
LOOKUP_CHUNK = 500  # well under SQLite's limit on bound parameters


@functools.lru_cache(maxsize=4096)
def _reasons_json(reasons: tuple[str, ...]) -> str:
    """Reasons as JSON text; devices repeat the same few, so encoding each once saves time."""
    return json.dumps(reasons, ensure_ascii=False, separators=(",", ":"))


def _checkin_rows(
    device_id: str, venue_id: str, received_at_ms: int, checkins: Sequence[CheckIn]
) -> list[tuple[Any, ...]]:
    """Rows in `CHECKIN_COLUMNS` order, doing little per check-in: this is the ingest hot path.

    sqlite3 binds the str enums as their text, so there is no `.value` lookup per field.
    """
    return [
        (
            c.id.bytes,
            device_id,
            venue_id,
            to_ms(c.scanned_at),
            c.person_ref,
            c.kind,
            c.outcome,
            _reasons_json(tuple(c.reasons)),
            c.temperature_c,
            None if c.thermometer is None else c.thermometer.model_dump_json(),
            c.clock_trusted,
            received_at_ms,
        )
        for c in checkins
    ]


def _venue(row: Sequence[Any]) -> VenueRecord:
    id_, name, address, category, code_url, rules, created_at = row
    return VenueRecord(
        id=id_,
        name=name,
        address=address,
        category=VenueCategory(category),
        code_url=code_url,
        rules=None if rules is None else RuleSet.model_validate_json(rules),
        created_at_ms=created_at,
    )


def _person(row: Sequence[Any]) -> PersonRecord:
    person_ref, id_hmac, colour, sampled_at, result, updated_at = row
    test = None if sampled_at is None else NucleicTest(from_ms(sampled_at), TestResult(result))
    return PersonRecord(person_ref, bytes(id_hmac), Colour(colour), test, updated_at)


def _person_row(person: PersonRecord) -> tuple[Any, ...]:
    test = person.test
    return (
        person.person_ref,
        person.id_hmac,
        person.colour.value,
        None if test is None else to_ms(test.sampled_at),
        None if test is None else test.result.value,
        person.updated_at_ms,
    )


def _device(row: Sequence[Any]) -> DeviceRecord:
    id_, name, form, venue_id, public_key, enrolled_at, last_seen_at, revoked_at = row
    return DeviceRecord(
        id_, name, DeviceForm(form), venue_id, public_key, enrolled_at, last_seen_at, revoked_at
    )


def _denylist_head(conn: sqlite3.Connection) -> tuple[int, int | None]:
    """The deny list's version and last change: (0, None) before its first change."""
    row = conn.execute("SELECT version, changed_at FROM denylist_version").fetchone()
    return (0, None) if row is None else (row[0], row[1])


class SqliteStorage(Storage):
    """Storage in one SQLite file; the schema is created when the file is opened."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
        self._migrate()

    def _migrate(self) -> None:
        """Bring the file to `SCHEMA_VERSION`, all steps in one transaction; refuse a newer one."""
        with self._write() as conn:
            has_table = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            row = (
                conn.execute("SELECT version FROM schema_version").fetchone() if has_table else None
            )
            version = 0 if row is None else row[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self._path} has schema version {version}; this host knows up to"
                    f" {SCHEMA_VERSION}: run a newer version"
                )
            if version == SCHEMA_VERSION:
                return
            for step in MIGRATIONS[version:]:
                step(conn)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        if version:
            log.info("schema migrated from version %d to %d", version, SCHEMA_VERSION)

    # ---- connections and transactions --------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are begun explicitly, so that writers take the lock up
        # front (BEGIN IMMEDIATE) instead of failing when a read lock cannot be upgraded.
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA foreign_keys = ON")
        # FULL: a commit survives power loss, so an acknowledged check-in is really stored.
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise RuntimeError("storage is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
        try:
            yield conn
        finally:
            with self._lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchone()

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # ---- host secrets ------------------------------------------------------------------------

    def ensure_secret(self, name: str, make: Callable[[], bytes]) -> bytes:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO host_secrets (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (name, make()),
            )
            (value,) = conn.execute(
                "SELECT value FROM host_secrets WHERE name = ?", (name,)
            ).fetchone()
        return bytes(value)

    # ---- venues ------------------------------------------------------------------------------

    def add_venue(self, venue: VenueRecord) -> None:
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO venues ({VENUE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    venue.id,
                    venue.name,
                    venue.address,
                    venue.category.value,
                    venue.code_url,
                    None if venue.rules is None else venue.rules.model_dump_json(),
                    venue.created_at_ms,
                ),
            )

    def get_venue(self, venue_id: str) -> VenueRecord | None:
        row = self._fetchone(f"SELECT {VENUE_COLUMNS} FROM venues WHERE id = ?", (venue_id,))
        return None if row is None else _venue(row)

    def list_venues(self) -> list[VenueRecord]:
        rows = self._fetchall(f"SELECT {VENUE_COLUMNS} FROM venues ORDER BY created_at, id")
        return [_venue(row) for row in rows]

    def set_venue_rules(self, venue_id: str, rules: RuleSet) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE venues SET rules = ? WHERE id = ?", (rules.model_dump_json(), venue_id)
            )

    # ---- people ------------------------------------------------------------------------------

    def upsert_people(self, people: Sequence[PersonRecord]) -> list[PersonRecord]:
        hmacs = list(dict.fromkeys(person.id_hmac for person in people))
        stored: dict[bytes, PersonRecord] = {}
        with self._write() as conn:
            conn.executemany(UPSERT_PERSON, [_person_row(person) for person in people])
            for start in range(0, len(hmacs), LOOKUP_CHUNK):
                chunk = hmacs[start : start + LOOKUP_CHUNK]
                marks = ", ".join("?" * len(chunk))
                for row in conn.execute(
                    f"SELECT {PERSON_COLUMNS} FROM people WHERE id_hmac IN ({marks})", chunk
                ):
                    person = _person(row)
                    stored[person.id_hmac] = person
        return [stored[person.id_hmac] for person in people]

    def get_person(self, person_ref: str) -> PersonRecord | None:
        row = self._fetchone(
            f"SELECT {PERSON_COLUMNS} FROM people WHERE person_ref = ?", (person_ref,)
        )
        return None if row is None else _person(row)

    # ---- devices -----------------------------------------------------------------------------

    def add_enrollment_token(
        self, token_hash: bytes, venue_id: str, created_at_ms: int, expires_at_ms: int
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO enrollment_tokens (token_hash, venue_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (token_hash, venue_id, created_at_ms, expires_at_ms),
            )

    def enroll_device(
        self,
        token_hash: bytes,
        *,
        device_id: str,
        name: str,
        form: DeviceForm,
        public_key: str,
        now_ms: int,
    ) -> DeviceRecord:
        with self._write() as conn:
            row = conn.execute(
                "SELECT venue_id, expires_at, used_at FROM enrollment_tokens WHERE token_hash = ?",
                (token_hash,),
            ).fetchone()
            if row is None:
                raise EnrollmentRefused("bad-token", "no such enrollment token")
            venue_id, expires_at, used_at = row
            if used_at is not None:
                raise EnrollmentRefused("token-used", "the enrollment token was already used")
            if expires_at <= now_ms:
                raise EnrollmentRefused("token-expired", "the enrollment token has expired")
            claimed = conn.execute(
                "UPDATE enrollment_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
                (now_ms, token_hash),
            ).rowcount
            if claimed != 1:
                raise EnrollmentRefused("token-used", "the enrollment token was already used")
            device = DeviceRecord(device_id, name, form, venue_id, public_key, now_ms, None, None)
            conn.execute(
                f"INSERT INTO devices ({DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (device_id, name, form.value, venue_id, public_key, now_ms, None, None),
            )
        return device

    def get_device(self, device_id: str) -> DeviceRecord | None:
        row = self._fetchone(f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?", (device_id,))
        return None if row is None else _device(row)

    def list_devices(self) -> list[DeviceRecord]:
        rows = self._fetchall(f"SELECT {DEVICE_COLUMNS} FROM devices ORDER BY enrolled_at, id")
        return [_device(row) for row in rows]

    def revoke_device(self, device_id: str, now_ms: int) -> DeviceRecord | None:
        with self._write() as conn:
            conn.execute(
                "UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now_ms, device_id),
            )
            row = conn.execute(
                f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?", (device_id,)
            ).fetchone()
        return None if row is None else _device(row)

    def accept_nonce(self, device_id: str, nonce: str, now_ms: int) -> bool:
        with self._write() as conn:
            fresh = conn.execute(
                "INSERT INTO device_nonces (device_id, nonce, seen_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (device_id, nonce, now_ms),
            ).rowcount
            if fresh:
                conn.execute(
                    "UPDATE devices SET last_seen_at = ? WHERE id = ?", (now_ms, device_id)
                )
        return bool(fresh)

    def purge_nonces(self, before_ms: int) -> int:
        with self._write() as conn:
            deleted = conn.execute("DELETE FROM device_nonces WHERE seen_at < ?", (before_ms,))
            return deleted.rowcount

    # ---- check-ins ---------------------------------------------------------------------------

    def add_checkins(
        self, device_id: str, venue_id: str, received_at_ms: int, checkins: Sequence[CheckIn]
    ) -> int:
        rows = _checkin_rows(device_id, venue_id, received_at_ms, checkins)
        with self._write() as conn:
            # For executemany, rowcount sums the rows each execution changed: a skipped
            # duplicate changes none.
            return conn.executemany(INSERT_CHECKIN, rows).rowcount

    def purge_checkins(self, before_ms: int) -> int:
        # Venue by venue on the (venue_id, scanned_at) index, in short transactions.
        deleted = 0
        for (venue_id,) in self._fetchall("SELECT id FROM venues"):
            chunk = PURGE_CHUNK
            while chunk == PURGE_CHUNK:
                with self._write() as conn:
                    chunk = conn.execute(
                        "DELETE FROM checkins WHERE rowid IN (SELECT rowid FROM checkins"
                        " WHERE venue_id = ? AND scanned_at < ? AND received_at < ? LIMIT ?)",
                        (venue_id, before_ms, before_ms, PURGE_CHUNK),
                    ).rowcount
                deleted += chunk
        return deleted

    def hourly_counts(self, venue_id: str, since_ms: int, until_ms: int) -> list[HourCount]:
        rows = self._fetchall(HOURLY_COUNTS, (venue_id, since_ms, until_ms))
        return [
            HourCount(hour * HOUR_MS, total, passed, denied, referred)
            for hour, total, passed, denied, referred in rows
        ]

    def stats(self) -> HostStats:
        with self._connection() as conn:
            conn.execute("BEGIN")  # one snapshot for all four counts
            try:
                venues, people, devices, checkins = (
                    conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                    for table in ("venues", "people", "devices", "checkins")
                )
            finally:
                conn.execute("COMMIT")
        return HostStats(venues=venues, people=people, devices=devices, checkins=checkins)

    # ---- deny list ---------------------------------------------------------------------------

    def find_person_by_id_hmac(self, id_hmac: bytes) -> PersonRecord | None:
        row = self._fetchone(f"SELECT {PERSON_COLUMNS} FROM people WHERE id_hmac = ?", (id_hmac,))
        return None if row is None else _person(row)

    def add_denylist_entries(self, entries: Sequence[DenyListEntry], now_ms: int) -> int:
        rows = [(entry.kind.value, entry.digest, entry.reason, now_ms) for entry in entries]
        with self._write() as conn:
            added = conn.executemany(
                "INSERT INTO denylist_entries (kind, digest, reason, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                rows,
            ).rowcount
            if added:
                conn.execute(RAISE_DENYLIST_VERSION, (now_ms,))
        return added

    def remove_denylist_entry(self, kind: HashKind, digest: bytes, now_ms: int) -> bool:
        with self._write() as conn:
            removed = conn.execute(
                "DELETE FROM denylist_entries WHERE kind = ? AND digest = ?", (kind.value, digest)
            ).rowcount
            if removed:
                conn.execute(RAISE_DENYLIST_VERSION, (now_ms,))
        return bool(removed)

    def denylist_version(self) -> int:
        row = self._fetchone("SELECT version FROM denylist_version")
        return 0 if row is None else row[0]

    def denylist_state(self) -> DenyListState:
        with self._connection() as conn:
            conn.execute("BEGIN")  # the counts and the version from one snapshot
            try:
                version, changed_at_ms = _denylist_head(conn)
                counts = conn.execute(
                    "SELECT kind, COUNT(*) FROM denylist_entries GROUP BY kind"
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        return DenyListState(
            version, changed_at_ms, {HashKind(kind): count for kind, count in counts}
        )

    def denylist_snapshot(self) -> DenyListSnapshot:
        with self._connection() as conn:
            conn.execute("BEGIN")  # the digests and the version from one snapshot
            try:
                version, changed_at_ms = _denylist_head(conn)
                rows = conn.execute("SELECT kind, digest FROM denylist_entries").fetchall()
            finally:
                conn.execute("COMMIT")
        kinds = {kind.value: kind for kind in HashKind}  # a dict lookup: 100k rows and more
        return DenyListSnapshot(
            version, changed_at_ms, [(kinds[kind], digest) for kind, digest in rows]
        )

    # ---- device reports ----------------------------------------------------------------------

    def save_device_report(self, device_id: str, received_at_ms: int, report: DeviceReport) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO device_reports (device_id, received_at, report) VALUES (?, ?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET"
                " received_at = excluded.received_at, report = excluded.report",
                (device_id, received_at_ms, report.model_dump_json()),
            )

    def device_reports(self) -> dict[str, ReportRecord]:
        rows = self._fetchall("SELECT device_id, received_at, report FROM device_reports")
        return {
            device_id: ReportRecord(received_at, DeviceReport.model_validate_json(report))
            for device_id, received_at, report in rows
        }
