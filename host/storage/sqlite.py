"""SQLite storage: one file in WAL mode, a small pool of connections shared by worker threads."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from host.storage.base import CheckInSource
from host.storage.flows import ADD_COUNTS, hour_counts
from host.storage.sql import (
    CHECKIN_COLUMNS,
    ID_BYTES,
    PURGE_CHUNK,
    SqlStorage,
    checkin_rows,
    schema_v4,
    schema_v5,
)
from host.storage.sqlbase import LOOKUP_CHUNK, Dialect
from shared.messages import CheckIn
from shared.policy import RuleSet
from shared.private_files import private_database_file, private_directory

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


def _epidemiology(conn: sqlite3.Connection) -> None:
    """Venues' places, check-ins' bindings; users and audit, tracing, flows and screening."""
    for statement in schema_v4(Dialect.SQLITE):
        conn.execute(statement)


def _dashboard(conn: sqlite3.Connection) -> None:
    """Dashboard sessions, rate limits and what else security needs in the database."""
    for statement in schema_v5(Dialect.SQLITE):
        conn.execute(statement)


# MIGRATIONS[n - 1] takes the schema from version n - 1 to n; version 0 is an empty file.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _create_v1,
    _rules_column,
    _thermometer_column,
    _epidemiology,
    _dashboard,
)
SCHEMA_VERSION = len(MIGRATIONS)
INSERT_CHECKIN = (
    f"INSERT INTO checkins ({CHECKIN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO NOTHING"
)
# Network file systems do not give SQLite's WAL the shared memory and locks it needs across
# processes: one worker on such a file at most.
NETWORK_FILE_SYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "fuse.sshfs"}
)


def file_system_type(path: Path, mountinfo: str) -> str | None:
    """The type of the file system `path` is on, from the text of /proc/self/mountinfo."""
    target = path.resolve()
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = Path(fields[4].replace("\\040", " "))
        fs_type = line.split(" - ", 1)[1].split()[0]
        if target == mount_point or mount_point in target.parents:
            depth = len(mount_point.parts)
            if best is None or depth >= best[0]:
                best = (depth, fs_type)
    return None if best is None else best[1]


def sqlite_refuses_workers(path: Path, workers: int, mountinfo: Path | None = None) -> str | None:
    """Why `workers` processes cannot share this SQLite file safely; None when they can.

    On one machine they can: WAL's locks work across processes, and everything that must be
    consistent (nonces, tokens) is decided in a transaction. On a network file system they do
    not, so several workers, or hosts on other machines, are refused there.
    """
    if workers <= 1:
        return None
    mountinfo = mountinfo or Path("/proc/self/mountinfo")
    try:
        fs_type = file_system_type(path.parent, mountinfo.read_text(encoding="utf-8"))
    except OSError:
        fs_type = None
    if fs_type in NETWORK_FILE_SYSTEMS:
        return (
            f"{path} is on a network file system ({fs_type}), where SQLite cannot be shared by"
            f" {workers} workers safely: run one worker, or use --db postgresql://..."
        )
    return None


class SqliteStorage(SqlStorage):
    """Storage in one SQLite file; the schema is created when the file is opened."""

    dialect = Dialect.SQLITE

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._pool_lock = threading.Lock()
        self._writer = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        private_directory(path.parent)
        private_database_file(path)  # 0600, and so its -wal and -shm, whatever the umask
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

    # ---- host keys: kept in a key directory, never here -------------------------------------

    @property
    def default_key_directory(self) -> Path:
        """`host.db.keys` beside `host.db`: copied with it only by whoever copies both."""
        return self._path.with_name(self._path.name + ".keys")

    def forget_legacy_secrets(self, names: Collection[str]) -> None:
        """Delete them with their bytes zeroed, then empty the WAL that held the pages before."""
        with self._write() as conn:
            conn.execute("PRAGMA secure_delete = ON")
            conn.executemany("DELETE FROM host_secrets WHERE name = ?", [(n,) for n in names])
        with self._connection() as conn:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            log.warning(
                "%s: the WAL is in use; old key pages leave it at its next checkpoint", self._path
            )

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
        with self._pool_lock:
            if self._closed:
                raise RuntimeError("storage is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
        try:
            yield conn
        finally:
            with self._pool_lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction; `durable=False` commits without waiting for the disk.

        The threads of this process queue for the one write lock here, in turn, rather than
        in SQLite's busy handler, which sleeps ever longer between tries (the p99 of seconds
        under load); only other processes' writers are met there.
        """
        with self._connection() as conn, self._writer:
            if not durable:
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                if not durable:
                    conn.execute("PRAGMA synchronous = FULL")

    def _lock(self, conn: sqlite3.Connection, purpose: str) -> None:
        """Nothing to take: a write transaction (BEGIN IMMEDIATE) holds the file's one lock."""

    def _nonce_write(self) -> AbstractContextManager[sqlite3.Connection]:
        """A nonce commits without an fsync: it survives the host process, only not power loss.

        After power loss the host restarts, and it refuses requests signed before it started
        (`HostContext.started_ms`), so a nonce lost with the power can never be replayed; an
        fsync per signed request was what capped them at a few hundred a second.
        """
        return self._write(durable=False)

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        with self._connection() as conn:
            conn.execute("BEGIN")  # a deferred read: one snapshot until COMMIT
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def add_checkins(
        self,
        device_id: str,
        venue_id: str,
        received_at_ms: int,
        checkins: Sequence[CheckIn],
        *,
        source: CheckInSource = CheckInSource.DEVICE,
    ) -> int:
        """Store the batch's new check-ins and add them to the hourly counts, in one transaction.

        Only what is new is counted: ids repeated in the batch count once, and ids already
        stored (looked up in the same write transaction, so no other writer comes between)
        not at all.
        """
        batch: dict[bytes, tuple[Any, ...]] = {}
        rows = checkin_rows(device_id, venue_id, received_at_ms, checkins, ID_BYTES, source=source)
        for row in rows:
            batch.setdefault(row[0], row)
        ids = list(batch)
        with self._write() as conn:
            for start in range(0, len(ids), LOOKUP_CHUNK):
                chunk = ids[start : start + LOOKUP_CHUNK]
                stored = conn.execute(
                    f"SELECT id FROM checkins WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                )
                for (stored_id,) in stored:
                    del batch[stored_id]
            new = list(batch.values())
            conn.executemany(INSERT_CHECKIN, new)
            conn.executemany(ADD_COUNTS, hour_counts(venue_id, ((r[3], r[6]) for r in new)))
        return len(new)

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
