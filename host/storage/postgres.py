"""PostgreSQL storage for a city: a connection pool, check-ins partitioned by day, COPY ingest.

Check-ins are range-partitioned on their id: a UUIDv7 begins with its Unix milliseconds, so
the ids of one day form one range and the idempotency key is also the partition key. A day's
partition is made when its first check-in arrives (days near the host's clock only); ids
outside every partition (a device clock far off) land in the default partition. Retention
drops whole partitions, and deletes rows only where a partition still holds late arrivals.
Every key and index that queries by venue begins with `venue_id`, so the table could be
distributed by venue (Citus-style) without changing a query.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import secrets
import shutil
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from host.core.times import DAY_MS, from_ms
from host.storage.base import CheckInSource
from host.storage.flows import count_scans
from host.storage.sql import (
    CHECKIN_COLUMNS,
    ID_UUID,
    LAST_SEEN_RESOLUTION_MS,
    PURGE_CHUNK,
    SqlStorage,
    checkin_rows,
    schema_v4,
    schema_v5,
)
from host.storage.sqlbase import Dialect
from shared.messages import CheckIn

log = logging.getLogger(__name__)

PARTITION_PREFIX = "checkins_d"  # checkins_d20260101 holds the ids of 2026-01-01 (UTC)
DEFAULT_PARTITION = "checkins_default"
# A day gets its own partition when a check-in of it arrives this close to the host's clock;
# a device clock further off sends its check-ins to the default partition.
PARTITION_DAYS_BEHIND = 7
PARTITION_DAYS_AHEAD = 1
POOL_MIN = 1
POOL_MAX = 16  # connections per worker process; the server's default limit is 100
POOL_TIMEOUT_S = 30.0

# The schema as this release makes it, in one step from an empty schema to version 3: the
# first PostgreSQL release, level with SQLite's version 3. Later versions add steps to both.
SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE host_secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL)",
    """CREATE TABLE venues (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        address TEXT NOT NULL,
        category TEXT NOT NULL,
        code_url TEXT NOT NULL,
        rules TEXT,
        created_at BIGINT NOT NULL)""",
    """CREATE TABLE people (
        person_ref TEXT PRIMARY KEY,
        id_hmac BYTEA NOT NULL UNIQUE,
        colour TEXT NOT NULL,
        test_sampled_at BIGINT,
        test_result TEXT,
        updated_at BIGINT NOT NULL)""",
    """CREATE TABLE enrollment_tokens (
        token_hash BYTEA PRIMARY KEY,
        venue_id TEXT NOT NULL REFERENCES venues (id),
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT)""",
    """CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        form TEXT NOT NULL,
        venue_id TEXT NOT NULL REFERENCES venues (id),
        public_key TEXT NOT NULL,
        enrolled_at BIGINT NOT NULL,
        last_seen_at BIGINT,
        revoked_at BIGINT)""",
    """CREATE TABLE device_nonces (
        device_id TEXT NOT NULL,
        nonce TEXT NOT NULL,
        seen_at BIGINT NOT NULL,
        PRIMARY KEY (device_id, nonce))""",
    "CREATE INDEX device_nonces_seen_at ON device_nonces (seen_at)",
    # Venue first in the key and the index: the distribution column, were it distributed.
    """CREATE TABLE checkins (
        venue_id TEXT NOT NULL,
        id UUID NOT NULL,
        device_id TEXT NOT NULL,
        scanned_at BIGINT NOT NULL,
        person_ref TEXT,
        kind TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reasons TEXT NOT NULL,
        temperature_c REAL,
        thermometer TEXT,
        clock_trusted BOOLEAN NOT NULL,
        received_at BIGINT NOT NULL,
        PRIMARY KEY (venue_id, id)) PARTITION BY RANGE (id)""",
    "CREATE INDEX checkins_venue_time ON checkins (venue_id, scanned_at)",
    f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF checkins DEFAULT",
    """CREATE TABLE denylist_entries (
        kind TEXT NOT NULL,
        digest BYTEA NOT NULL,
        reason TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (kind, digest))""",
    """CREATE TABLE denylist_version (
        only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
        version BIGINT NOT NULL,
        changed_at BIGINT NOT NULL)""",
    """CREATE TABLE device_reports (
        device_id TEXT PRIMARY KEY REFERENCES devices (id),
        received_at BIGINT NOT NULL,
        report TEXT NOT NULL)""",
)


def _create(conn: psycopg.Connection) -> None:
    for statement in SCHEMA:
        conn.execute(statement)


def _epidemiology(conn: psycopg.Connection) -> None:
    """Venues' places, check-ins' bindings; users and audit, tracing, flows and screening."""
    for statement in schema_v4(Dialect.POSTGRESQL):
        conn.execute(statement)


def _dashboard(conn: psycopg.Connection) -> None:
    """Dashboard sessions, rate limits and what else security needs in the database."""
    for statement in schema_v5(Dialect.POSTGRESQL):
        conn.execute(statement)


# (version reached, step): each step takes the schema from the version before it to its own.
MIGRATIONS: tuple[tuple[int, Callable[[psycopg.Connection], None]], ...] = (
    (3, _create),
    (4, _epidemiology),
    (5, _dashboard),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
STAGING = """CREATE TEMPORARY TABLE IF NOT EXISTS checkin_staging
    (LIKE checkins INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"""
COPY_STAGING = f"COPY checkin_staging ({CHECKIN_COLUMNS}) FROM STDIN"
# One round trip: record the nonce and, if it is new, the device's last-seen time (at most once
# per LAST_SEEN_RESOLUTION_MS, so a busy device's requests do not queue on its row).
ACCEPT_NONCE = f"""
    WITH fresh AS (
        INSERT INTO device_nonces (device_id, nonce, seen_at)
        VALUES (%(device)s, %(nonce)s, %(now)s)
        ON CONFLICT DO NOTHING RETURNING 1
    ), seen AS (
        UPDATE devices SET last_seen_at = %(now)s
        WHERE id = %(device)s AND EXISTS (SELECT 1 FROM fresh)
            AND (last_seen_at IS NULL OR last_seen_at <= %(now)s - {LAST_SEEN_RESOLUTION_MS})
    )
    SELECT count(*) FROM fresh"""
# One statement: insert the staged check-ins that are new, add those (and only those) to the
# hourly counts, and say how many there were. Duplicates within the staged batch conflict with
# the row inserted first, so they are skipped and counted once too.
INSERT_STAGED = f"""
    WITH inserted AS (
        INSERT INTO checkins ({CHECKIN_COLUMNS}) SELECT {CHECKIN_COLUMNS} FROM checkin_staging
        ON CONFLICT DO NOTHING RETURNING venue_id, scanned_at, outcome
    ), counted AS ({count_scans("inserted")})
    SELECT COUNT(*) FROM inserted"""


@functools.lru_cache(maxsize=512)
def _placeholders(query: str) -> str:
    """A query written with `?` placeholders in psycopg's `%s` style."""
    return query.replace("%", "%%").replace("?", "%s")


def days_of_ids(checkins: Sequence[CheckIn]) -> set[int]:
    """The UTC days (since 1970) the check-ins' UUIDv7 ids were made on; other versions have none.

    Read from the id's bits (version in bits 76-79, milliseconds above bit 80): UUID.version
    is a Python property, and this runs for every check-in ingested.
    """
    return {
        (number >> 80) // DAY_MS
        for number in (checkin.id.int for checkin in checkins)
        if (number >> 76) & 0xF == 7
    }


def id_floor(day: int) -> uuid.UUID:
    """The smallest UUID whose time stamp falls on `day`: the lower bound of its partition."""
    return uuid.UUID(int=(day * DAY_MS) << 80)


def partition_name(day: int) -> str:
    return f"{PARTITION_PREFIX}{from_ms(day * DAY_MS):%Y%m%d}"


def day_of_partition(name: str) -> int | None:
    """The day a partition's name stands for; None for a name not made by `partition_name`."""
    match = re.fullmatch(rf"{PARTITION_PREFIX}(\d{{8}})", name)
    if match is None:
        return None
    moment = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000) // DAY_MS


def with_search_path(url: str, schema: str) -> str:
    """`url` with its connections' search_path set to `schema` (libpq's `options`)."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "options"]
    query.append(("options", f"-c search_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@contextmanager
def scratch_schema(url: str, prefix: str = "sentinel_scratch") -> Iterator[str]:
    """A new empty schema in the database at `url`, dropped afterwards; yields a URL using it.

    For tests, the demo and benchmarks: each run in a schema of its own, leaving nothing.
    """
    schema = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    scratch_url = with_search_path(url, schema)
    try:
        yield scratch_url
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        shutil.rmtree(postgres_key_directory(scratch_url), ignore_errors=True)  # its keys too


def postgres_key_directory(url: str) -> Path:
    """Where a PostgreSQL host keeps its keys unless told: the serving user's state directory.

    One directory per database (and schema), named by it; the password is left out, so a
    changed password finds the same keys.
    """
    parts = urlsplit(url)
    named = f"{parts.username}@{parts.hostname}:{parts.port}{parts.path}?{parts.query}"
    digest = hashlib.sha256(named.encode()).hexdigest()[:12]
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    database = parts.path.strip("/") or "postgres"
    return Path(state) / "digital-sentinel" / "host-keys" / f"{database}-{digest}"


class PostgresStorage(SqlStorage):
    """Storage in a PostgreSQL database (the schema first on the URL's search_path)."""

    dialect = Dialect.POSTGRESQL

    def __init__(self, url: str, *, pool_max: int = POOL_MAX) -> None:
        self._url = url
        self._partitions: set[int] = set()  # days known to have a partition: a cache only
        self._partitions_lock = threading.Lock()
        self._migrate()
        self._pool = ConnectionPool(
            url,
            min_size=POOL_MIN,
            max_size=pool_max,
            timeout=POOL_TIMEOUT_S,
            kwargs={"autocommit": True},
            configure=self._configure,
            open=False,
        )
        self._pool.open(wait=True, timeout=POOL_TIMEOUT_S)

    @staticmethod
    def _configure(conn: psycopg.Connection) -> None:
        """Each pooled connection gets its own staging table for COPY ingest."""
        conn.execute(STAGING)

    @staticmethod
    def _table_exists(conn: psycopg.Connection, name: str) -> bool:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        return bool(row and row[0])

    def _lock(self, conn: psycopg.Connection, purpose: str) -> None:
        """Take a transaction-level advisory lock for `purpose` in this schema."""
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':' || %s))", (purpose,)
        )

    def _migrate(self) -> None:
        """Bring the schema to `SCHEMA_VERSION` in one transaction; refuse a newer one untouched.

        Workers starting together take turns on an advisory lock: one migrates, the rest see it
        done.
        """
        try:
            conn = psycopg.connect(self._url, autocommit=True)
        except psycopg.OperationalError as error:
            raise RuntimeError(f"cannot connect to PostgreSQL: {error}".strip()) from None
        with conn, conn.transaction():
            self._lock(conn, "migrate")
            schema = conn.execute("SELECT current_schema()").fetchone()
            if schema is None or schema[0] is None:
                raise RuntimeError(
                    "the database URL names no schema that exists: create it, or fix search_path"
                )
            row = (
                conn.execute("SELECT version FROM schema_version").fetchone()
                if self._table_exists(conn, "schema_version")
                else None
            )
            version = 0 if row is None else row[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"schema {schema[0]} has schema version {version}; this host knows up to"
                    f" {SCHEMA_VERSION}: run a newer version"
                )
            if version == SCHEMA_VERSION:
                return
            for reached, step in MIGRATIONS:
                if reached > version:
                    step(conn)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
        log.info("schema %s: from version %d to %d", schema[0], version, SCHEMA_VERSION)

    # ---- host keys: kept in a key directory, never here -------------------------------------

    @property
    def default_key_directory(self) -> Path:
        return postgres_key_directory(self._url)

    def forget_legacy_secrets(self, names: Collection[str]) -> None:
        """Delete them, then rewrite the table, so its old file (dead rows and all) is gone."""
        super().forget_legacy_secrets(names)
        with self._connection() as conn:
            conn.execute("VACUUM FULL host_secrets")

    # ---- connections and transactions --------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return _placeholders(sql)

    def _executemany(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with conn.cursor() as cursor:
            cursor.executemany(self._sql(sql), rows)
            return cursor.rowcount

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        if self._pool.closed:
            raise RuntimeError("storage is closed")
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection]:
        with self._connection() as conn, conn.transaction():
            yield conn

    @contextmanager
    def _snapshot(self) -> Iterator[psycopg.Connection]:
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn

    def close(self) -> None:
        self._pool.close()

    def accept_nonce(self, device_id: str, nonce: str, now_ms: int) -> bool:
        with self._connection() as conn:  # one statement: its own transaction
            row = conn.execute(
                ACCEPT_NONCE, {"device": device_id, "nonce": nonce, "now": now_ms}
            ).fetchone()
        return bool(row and row[0])

    # ---- check-ins ---------------------------------------------------------------------------

    def add_checkins(
        self,
        device_id: str,
        venue_id: str,
        received_at_ms: int,
        checkins: Sequence[CheckIn],
        *,
        source: CheckInSource = CheckInSource.DEVICE,
    ) -> int:
        """COPY the batch into this connection's staging table; insert and count what is new."""
        self._ensure_partitions(days_of_ids(checkins), received_at_ms)
        rows = checkin_rows(device_id, venue_id, received_at_ms, checkins, ID_UUID, source=source)
        with self._write() as conn:
            with conn.cursor() as cursor, cursor.copy(COPY_STAGING) as copy:
                for row in rows:
                    copy.write_row(row)
            (inserted,) = conn.execute(INSERT_STAGED).fetchone()  # staged rows go at commit
        return inserted

    def _ensure_partitions(self, days: set[int], now_ms: int) -> None:
        """Make the partitions of the days near `now_ms` that check-ins are about to need."""
        today = now_ms // DAY_MS
        wanted = {
            day
            for day in days
            if today - PARTITION_DAYS_BEHIND <= day <= today + PARTITION_DAYS_AHEAD
        }
        with self._partitions_lock:
            missing = sorted(wanted - self._partitions)
        for day in missing:
            self._make_partition(day)
            with self._partitions_lock:
                self._partitions.add(day)

    def _make_partition(self, day: int) -> None:
        """Attach a partition for `day`, moving any of its ids the default partition holds."""
        name = sql.Identifier(partition_name(day))
        low, high = id_floor(day), id_floor(day + 1)
        with self._write() as conn:
            self._lock(conn, "partitions")
            if self._table_exists(conn, partition_name(day)):
                return
            # No check-in may reach the default partition between the move and the attach.
            conn.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    sql.Identifier(DEFAULT_PARTITION)
                )
            )
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE checkins INCLUDING DEFAULTS)").format(name))
            conn.execute(
                sql.SQL(
                    "WITH moved AS (DELETE FROM {} WHERE id >= %s AND id < %s RETURNING *)"
                    " INSERT INTO {} SELECT * FROM moved"
                ).format(sql.Identifier(DEFAULT_PARTITION), name),
                (low, high),
            )
            conn.execute(
                sql.SQL(
                    "ALTER TABLE checkins ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})"
                ).format(name, sql.Literal(str(low)), sql.Literal(str(high)))
            )
        log.info("check-in partition %s made", partition_name(day))

    def partitions(self) -> list[str]:
        """The names of the check-in partitions, the default one last."""
        rows = self._fetchall(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'checkins'::regclass ORDER BY c.relname"
        )
        names = [name for (name,) in rows]
        return sorted(names, key=lambda name: name == DEFAULT_PARTITION)

    def purge_checkins(self, before_ms: int) -> int:
        """Drop the day partitions wholly past retention; delete row by row only what remains.

        A partition ends before `before_ms` when its day does; it is dropped whole unless a
        check-in in it was scanned or received since (a device with a wrong clock, or one that
        was offline for weeks), in which case its old rows go one chunk at a time.
        """
        deleted = 0
        for name in self.partitions():
            day = day_of_partition(name)
            if day is not None and (day + 1) * DAY_MS <= before_ms:
                dropped = self._drop_partition(name, day, before_ms)
                if dropped is not None:
                    deleted += dropped
                    continue
            if day is None or day * DAY_MS < before_ms:
                deleted += self._delete_rows(name, before_ms)
        return deleted

    def _drop_partition(self, name: str, day: int, before_ms: int) -> int | None:
        """Drop the partition and say how many check-ins went; None if some must stay."""
        table = sql.Identifier(name)
        with self._write() as conn:
            self._lock(conn, "partitions")
            if not self._table_exists(conn, name):
                return 0  # another worker dropped it meanwhile
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(table))
            count, recent = conn.execute(
                sql.SQL(
                    "SELECT COUNT(*), COUNT(*) FILTER (WHERE scanned_at >= %s OR received_at >= %s)"
                    " FROM {}"
                ).format(table),
                (before_ms, before_ms),
            ).fetchone()
            if recent:
                return None
            conn.execute(sql.SQL("DROP TABLE {}").format(table))
        with self._partitions_lock:
            self._partitions.discard(day)
        log.info("check-in partition %s dropped: %d check-ins past retention", name, count)
        return count

    def _delete_rows(self, name: str, before_ms: int) -> int:
        """Delete the check-ins of one partition scanned and received before `before_ms`."""
        delete = sql.SQL(
            "DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table}"
            " WHERE scanned_at < %s AND received_at < %s LIMIT %s)"
        ).format(table=sql.Identifier(name))
        deleted = 0
        chunk = PURGE_CHUNK
        while chunk == PURGE_CHUNK:
            with self._write() as conn:
                chunk = conn.execute(delete, (before_ms, before_ms, PURGE_CHUNK)).rowcount
            deleted += chunk
        return deleted
