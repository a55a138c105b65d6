"""The device's SQLite store: each check-in committed before anyone is told, kept until acked."""

from __future__ import annotations

import glob
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from shared.messages import (
    CheckIn,
    ComponentHealth,
    ComponentState,
    DeviceConfig,
    StaffDecision,
)
from shared.private_files import private_database_file

log = logging.getLogger(__name__)

# MIGRATIONS[n - 1] takes the schema from version n - 1 to n, in one transaction; version 0 is
# an empty file. The version is kept in settings.schema_version.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS checkins (
            id TEXT PRIMARY KEY,
            venue_id TEXT NOT NULL,
            scanned_at_ms INTEGER NOT NULL,
            person_ref TEXT,
            kind TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reasons TEXT NOT NULL,
            temperature_c REAL,
            clock_trusted INTEGER NOT NULL,
            acked_at_ms INTEGER)""",
        "CREATE INDEX IF NOT EXISTS checkins_pending ON checkins (acked_at_ms, id)",
        "CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    (
        # The deny list table came within version 1, so a version 1 file may lack it.
        """CREATE TABLE IF NOT EXISTS denylist (
            only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
            document BLOB NOT NULL,
            refreshed_at_ms INTEGER NOT NULL)""",
        "ALTER TABLE checkins ADD COLUMN sealed_identity TEXT",
    ),
    ("ALTER TABLE checkins ADD COLUMN thermometer TEXT",),  # the readings, as JSON
    (
        # A handheld's vehicles: the plate (binding) and the group of its occupants.
        "ALTER TABLE checkins ADD COLUMN binding TEXT",
        "ALTER TABLE checkins ADD COLUMN group_id TEXT",
        # Staff PINs, only as slow hashes (device.pins), and what staff decided on referrals.
        """CREATE TABLE staff (
            id TEXT PRIMARY KEY,
            pin_hash TEXT NOT NULL,
            added_at_ms INTEGER NOT NULL)""",
        """CREATE TABLE staff_decisions (
            id TEXT PRIMARY KEY,
            checkin_id TEXT NOT NULL UNIQUE,
            venue_id TEXT NOT NULL,
            staff_id TEXT NOT NULL,
            action TEXT NOT NULL,
            reason TEXT NOT NULL,
            decided_at_ms INTEGER NOT NULL,
            clock_trusted INTEGER NOT NULL,
            acked_at_ms INTEGER)""",
        "CREATE INDEX staff_decisions_pending ON staff_decisions (acked_at_ms, id)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
CHECKIN_COLUMNS = (
    "id, venue_id, scanned_at_ms, person_ref, kind, outcome, reasons, temperature_c,"
    " clock_trusted, sealed_identity, thermometer, binding, group_id"
)
ALL_VALUES = f"({CHECKIN_COLUMNS}, acked_at_ms) VALUES ({', '.join('?' * 14)})"
INSERT_CHECKIN = f"INSERT INTO checkins {ALL_VALUES}"
SALVAGE_CHECKIN = f"INSERT OR IGNORE INTO checkins {ALL_VALUES}"  # a row read twice counts once
DECISION_COLUMNS = (
    "id, checkin_id, venue_id, staff_id, action, reason, decided_at_ms, clock_trusted"
)
DECISION_VALUES = f"({DECISION_COLUMNS}, acked_at_ms) VALUES ({', '.join('?' * 9)})"
# Staff decisions the host may be sent: their check-in is acknowledged (or purged since).
SENDABLE_DECISIONS = f"""SELECT {DECISION_COLUMNS} FROM staff_decisions d
    WHERE d.acked_at_ms IS NULL AND NOT EXISTS (
        SELECT 1 FROM checkins c WHERE c.id = d.checkin_id AND c.acked_at_ms IS NULL)
    ORDER BY d.id LIMIT ?"""
PIN_ATTEMPTS = "pin_attempts"  # the settings row: wrong PINs in a row, and a lock's end
SYNC_ERROR = "sync_error"  # the settings row: the last sync failure, and when it was resolved
CORRUPTION = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
SALVAGE_CHUNK = 1000
MAX_DAMAGED_REGIONS = 1000  # runs of unreadable pages stepped over; beyond, give up
MAX_DETAIL = 300  # ComponentState.detail's limit
QUARANTINE_INFIX = ".corrupt-"  # a damaged file moved aside: <name>.corrupt-<UTC time>[-wal|-shm]
QUARANTINE_STAMP = "%Y%m%dT%H%M%S.%fZ"


class StoreError(Exception):
    """The store could not do what was asked (an I/O error, a damaged file); nothing changed.

    Raised by `Store.record` when a check-in could not be committed: the person must not be
    told anything was recorded.
    """


class StoreFull(StoreError):
    """The disk (or the database's size cap) is full: the check-in was not recorded."""


class AlreadyStored(StoreError):
    """A staff member of that id, or a staff decision on that check-in, is stored already."""


@dataclass(frozen=True)
class SyncError:
    """The last sync failure: its message, when (Unix ms), how many in a row, when resolved."""

    error: str
    at_ms: int
    failures: int
    resolved_at_ms: int | None = None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _primary_code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _checkin_row(checkin: CheckIn, acked_at_ms: int | None) -> tuple[Any, ...]:
    """A row in `INSERT_CHECKIN` order."""
    return (
        str(checkin.id),
        checkin.venue_id,
        int(checkin.scanned_at.timestamp() * 1000),
        checkin.person_ref,
        checkin.kind.value,
        checkin.outcome.value,
        json.dumps(checkin.reasons, ensure_ascii=False),
        checkin.temperature_c,
        int(checkin.clock_trusted),
        checkin.sealed_identity,
        None if checkin.thermometer is None else checkin.thermometer.model_dump_json(),
        checkin.binding,
        None if checkin.group_id is None else str(checkin.group_id),
        acked_at_ms,
    )


def _checkin(row: dict[str, Any]) -> CheckIn:
    """A check-in from its row, by column name; ValidationError or ValueError if it is not one."""
    return CheckIn.model_validate(
        {
            "id": row["id"],
            "venue_id": row["venue_id"],
            "scanned_at": row["scanned_at_ms"] / 1000,
            "person_ref": row["person_ref"],
            "kind": row["kind"],
            "outcome": row["outcome"],
            "reasons": json.loads(row["reasons"]),
            "temperature_c": row["temperature_c"],
            "clock_trusted": bool(row["clock_trusted"]),
            "sealed_identity": row.get("sealed_identity"),
            "thermometer": json.loads(row.get("thermometer") or "null"),
            "binding": row.get("binding"),
            "group_id": row.get("group_id"),
        }
    )


def _decision_row(decision: StaffDecision) -> tuple[Any, ...]:
    """A row in `DECISION_VALUES` order, not yet acknowledged."""
    return (
        str(decision.id),
        str(decision.checkin_id),
        decision.venue_id,
        decision.staff_id,
        decision.action.value,
        decision.reason.value,
        int(decision.decided_at.timestamp() * 1000),
        int(decision.clock_trusted),
        None,
    )


def _decision(row: Sequence[Any]) -> StaffDecision:
    """A staff decision from its row in `DECISION_COLUMNS` order."""
    id_, checkin_id, venue_id, staff_id, action, reason, decided_at_ms, clock_trusted = row
    return StaffDecision(
        id=id_,
        checkin_id=checkin_id,
        venue_id=venue_id,
        staff_id=staff_id,
        action=action,
        reason=reason,
        decided_at=datetime.fromtimestamp(decided_at_ms / 1000, UTC),
        clock_trusted=bool(clock_trusted),
    )


def _schema_version(connection: sqlite3.Connection) -> int:
    has_settings = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'settings'"
    ).fetchone()
    if has_settings is None:
        return 0
    row = connection.execute("SELECT value FROM settings WHERE name = 'schema_version'").fetchone()
    return 0 if row is None else int(row[0])


def _reads_after(connection: sqlite3.Connection, rowid: int) -> bool:
    """Whether the first check-in after `rowid` can be read."""
    try:
        connection.execute(
            "SELECT rowid, * FROM checkins WHERE rowid > ? ORDER BY rowid LIMIT 1", (rowid,)
        ).fetchall()
    except sqlite3.DatabaseError:
        return False
    return True


def _resume_after_damage(connection: sqlite3.Connection, last: int) -> int | None:
    """The least rowid after `last` beyond which reading works again; None if none is found.

    Seek 1, 2, 4, ... rowids past the damage until a read works, then bisect back so that
    only the rows of the damaged pages are lost.
    """
    bad, step = last, 1
    while not _reads_after(connection, last + step):
        bad = last + step
        step *= 2
        if last + step >= 2**63:
            return None
    good = last + step
    while good - bad > 1:
        middle = (bad + good) // 2
        if _reads_after(connection, middle):
            good = middle
        else:
            bad = middle
    return good


def _readable_checkins(connection: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    """Every check-in row that can still be read, in rowid order, stepping over damaged pages."""
    last = 0
    for _ in range(MAX_DAMAGED_REGIONS + 1):
        read = 0
        try:
            cursor = connection.execute(
                "SELECT rowid, * FROM checkins WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last, SALVAGE_CHUNK),
            )
            names = [column[0] for column in cursor.description]
            for values in cursor:
                read += 1
                last = values[0]
                yield dict(zip(names, values, strict=True))
        except sqlite3.DatabaseError:
            resumed = _resume_after_damage(connection, last)
            if resumed is None:
                return
            last = resumed
            continue
        if read < SALVAGE_CHUNK:
            return


class Store:
    """Check-ins and cached host configuration; one connection per thread, WAL, synchronous=FULL.

    At open a damaged file is moved aside (`<name>.corrupt-<time>`), a fresh one started and
    whatever check-ins can still be read are copied over; `component()` reports it, as it
    reports a full disk. Every method raises `StoreError` (`StoreFull` for a full disk) rather
    than sqlite3's errors.
    """

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        """`synchronous` below FULL risks recorded check-ins on power loss: for benchmarks only."""
        if synchronous not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}")
        self.path = path
        self._synchronous = synchronous
        self._local = threading.local()
        self._lock = threading.Lock()
        self._baseline = ComponentState(state=ComponentHealth.OK, since=datetime.now(UTC))
        self._trouble: ComponentState | None = None  # the last write failed: full disk, I/O
        quarantined = self._quarantine_if_damaged()
        self._migrate()
        if quarantined is not None:
            self._salvage(quarantined)

    # ---- opening -----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            private_database_file(self.path)  # 0600, and so its -wal and -shm, whatever the umask
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute(f"PRAGMA synchronous={self._synchronous}")
            except sqlite3.Error:
                connection.close()
                raise
            self._local.connection = connection
        return connection

    def _quarantine_if_damaged(self) -> Path | None:
        """Check the file; if it is damaged, move it aside and return where it went."""
        try:
            verdict = self._connect().execute("PRAGMA quick_check").fetchone()[0]
            if verdict == "ok":
                return None
            reason = f"quick_check: {verdict}"
        except sqlite3.DatabaseError as error:
            if _primary_code(error) not in CORRUPTION:
                raise StoreError(f"cannot open {self.path}: {error}") from error
            reason = str(error)
        self.close()
        stamp = datetime.now(UTC).strftime(QUARANTINE_STAMP)
        quarantined = self.path.with_name(f"{self.path.name}{QUARANTINE_INFIX}{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                source.rename(f"{quarantined}{suffix}")
        log.error(
            "store: %s is corrupt (%s); moved aside to %s, starting a fresh database",
            self.path,
            reason[:200],
            quarantined.name,
        )
        return quarantined

    def _migrate(self) -> None:
        connection = self._connect()
        with self._guard(f"migrating {self.path}"):
            connection.execute("BEGIN IMMEDIATE")
            try:
                version = _schema_version(connection)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has schema version {version}; this software knows up to "
                        f"{SCHEMA_VERSION}: run a newer version, or move the file aside"
                    )
                for number in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[number - 1]:
                        connection.execute(statement)
                    connection.execute(
                        "INSERT INTO settings (name, value) VALUES ('schema_version', ?)"
                        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                        (str(number),),
                    )
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            if 0 < version < SCHEMA_VERSION:
                log.info("store: schema migrated from version %d to %d", version, SCHEMA_VERSION)

    def _salvage(self, quarantined: Path) -> None:
        """Copy what can still be read from the damaged file; the not yet acknowledged first."""
        pending: list[tuple[Any, ...]] = []
        acked: list[tuple[Any, ...]] = []
        unreadable = 0
        old = sqlite3.connect(quarantined, isolation_level=None)
        try:
            for row in _readable_checkins(old):
                try:
                    checkin = _checkin(row)
                except (ValidationError, ValueError, TypeError, KeyError):
                    unreadable += 1
                    continue
                acked_at_ms = row.get("acked_at_ms")
                (pending if acked_at_ms is None else acked).append(
                    _checkin_row(checkin, acked_at_ms)
                )
            config, denylist = self._salvage_settings(old)
            staff, decisions = self._salvage_staff(old)
        finally:
            old.close()
        connection = self._connect()
        outcome = (
            f"{len(pending) + len(acked)} check-ins salvaged ({len(pending)} not yet synced), "
            f"{unreadable} unreadable rows"
        )
        try:
            with self._guard("salvaging"):
                for rows in (pending, acked):
                    with connection:
                        connection.execute("BEGIN IMMEDIATE")
                        connection.executemany(SALVAGE_CHECKIN, rows)
            if config is not None:
                self.save_config(config)
            if denylist is not None:
                self.save_denylist(*denylist)
            with self._guard("salvaging staff"), connection:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(
                    "INSERT OR IGNORE INTO staff (id, pin_hash, added_at_ms) VALUES (?, ?, ?)",
                    staff,
                )
                connection.executemany(
                    f"INSERT OR IGNORE INTO staff_decisions {DECISION_VALUES}", decisions
                )
        except StoreError as error:
            outcome = f"salvage failed ({error}); the check-ins are still in that file"
        detail = f"database was corrupt at start, moved aside to {quarantined.name}; {outcome}"
        log.error("store: %s", detail)
        with self._lock:
            self._baseline = ComponentState(
                state=ComponentHealth.FAILING, since=datetime.now(UTC), detail=detail[:MAX_DETAIL]
            )

    @staticmethod
    def _salvage_settings(
        old: sqlite3.Connection,
    ) -> tuple[DeviceConfig | None, tuple[bytes, int] | None]:
        """The cached configuration and deny list, if they can still be read."""
        config = denylist = None
        try:
            row = old.execute("SELECT value FROM settings WHERE name = 'config'").fetchone()
            config = None if row is None else DeviceConfig.model_validate_json(row[0])
        except (sqlite3.DatabaseError, ValidationError):
            log.warning("store: the cached configuration was lost; the host sends it again")
        try:
            row = old.execute("SELECT document, refreshed_at_ms FROM denylist").fetchone()
            denylist = None if row is None else (bytes(row[0]), int(row[1]))
        except (sqlite3.DatabaseError, TypeError, ValueError):
            log.warning("store: the kept deny list was lost; the host sends it again")
        return config, denylist

    @staticmethod
    def _salvage_staff(old: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
        """The staff PINs and staff decisions, as far as they can still be read."""
        staff: list[Any] = []
        decisions: list[Any] = []
        try:
            listed = old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = {name for (name,) in listed}
            if "staff" in tables:
                staff = old.execute("SELECT id, pin_hash, added_at_ms FROM staff").fetchall()
            if "staff_decisions" in tables:
                decisions = old.execute(
                    f"SELECT {DECISION_COLUMNS}, acked_at_ms FROM staff_decisions"
                ).fetchall()
        except sqlite3.DatabaseError:
            log.warning(
                "store: staff PINs or decisions were lost; add the PINs again (sentinel device"
                " staff add); %d PINs and %d decisions salvaged",
                len(staff),
                len(decisions),
            )
        return staff, decisions

    # ---- health ------------------------------------------------------------------------------

    @contextmanager
    def _guard(self, action: str, *, write: bool = True) -> Iterator[None]:
        """sqlite3's errors as StoreError/StoreFull, kept for `component()`; a write clears them."""
        try:
            yield
        except sqlite3.Error as error:
            full = _primary_code(error) == sqlite3.SQLITE_FULL
            detail = "disk full: check-ins are refused" if full else f"{action} failed: {error}"
            with self._lock:
                if self._trouble is None or self._trouble.detail != detail[:MAX_DETAIL]:
                    self._trouble = ComponentState(
                        state=ComponentHealth.FAILING,
                        since=datetime.now(UTC),
                        detail=detail[:MAX_DETAIL],
                    )
                    log.error("store: %s", detail)
            raise (StoreFull if full else StoreError)(f"{action}: {error}") from error
        if write and self._trouble is not None:
            with self._lock:
                if self._trouble is not None:
                    log.warning("store: writing works again after: %s", self._trouble.detail)
                    self._trouble = None

    def component(self) -> ComponentState:
        """OK; or failing: the last write failed (disk full, I/O), or the file was quarantined."""
        with self._lock:
            return self._trouble or self._baseline

    # ---- check-ins ---------------------------------------------------------------------------

    def record(self, checkin: CheckIn) -> None:
        """Commit one check-in durably; returns only once it is on disk.

        Raises StoreFull when the disk is full and StoreError on any other failure: the
        check-in is then not recorded, and the person must be refused rather than let through.
        """
        with self._guard("recording a check-in"):
            self._connect().execute(INSERT_CHECKIN, _checkin_row(checkin, None))

    def pending(self, limit: int, *, after: UUID | None = None) -> list[CheckIn]:
        """The oldest check-ins the host has not acknowledged yet (with ids after `after`).

        A row that is no longer a valid check-in (a damaged card) is logged and left out.
        """
        with self._guard("reading pending check-ins", write=False):
            cursor = self._connect().execute(
                f"SELECT {CHECKIN_COLUMNS} FROM checkins WHERE acked_at_ms IS NULL AND id > ?"
                " ORDER BY id LIMIT ?",
                ("" if after is None else str(after), limit),
            )
            names = [column[0] for column in cursor.description]
            rows = cursor.fetchall()
        checkins = []
        for row in rows:
            try:
                checkins.append(_checkin(dict(zip(names, row, strict=True))))
            except (ValidationError, ValueError, TypeError) as error:
                # Not the error's text: it would quote the row, personal data and all.
                log.error(
                    "store: check-in %s is unreadable (%s), not sent", row[0], type(error).__name__
                )
        return checkins

    def mark_acked(self, ids: Sequence[UUID]) -> None:
        """The host has stored these check-ins; they may go once the retention period is over."""
        connection = self._connect()
        with self._guard("marking check-ins acknowledged"), connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "UPDATE checkins SET acked_at_ms = ? WHERE id = ? AND acked_at_ms IS NULL",
                [(_now_ms(), str(checkin_id)) for checkin_id in ids],
            )

    def purge_acked(self, retention_seconds: float) -> int:
        """Delete check-ins acknowledged longer than `retention_seconds` ago; how many went.

        Staff decisions acknowledged as long ago go too. Nothing the host has not acknowledged
        is ever deleted.
        """
        cutoff_ms = _now_ms() - int(retention_seconds * 1000)
        connection = self._connect()
        with self._guard("purging acknowledged check-ins"), connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(
                "DELETE FROM staff_decisions WHERE acked_at_ms IS NOT NULL AND acked_at_ms < ?",
                (cutoff_ms,),
            )
            return connection.execute(
                "DELETE FROM checkins WHERE acked_at_ms IS NOT NULL AND acked_at_ms < ?",
                (cutoff_ms,),
            ).rowcount

    def purge_quarantined(self, retention_seconds: float) -> list[Path]:
        """Delete damaged files moved aside longer than `retention_seconds` ago; which went.

        What could be read from them was salvaged when they were moved aside; the rest is kept
        for the retention period, for someone to look into, and no longer: it is personal data.
        The age is the time in the name, when the file was moved aside.
        """
        cutoff = datetime.now(UTC).timestamp() - retention_seconds
        prefix = f"{self.path.name}{QUARANTINE_INFIX}"
        removed = []
        for candidate in self.path.parent.glob(f"{glob.escape(prefix)}*"):
            stamp = candidate.name.removeprefix(prefix).removesuffix("-wal").removesuffix("-shm")
            try:
                moved_at = datetime.strptime(stamp, QUARANTINE_STAMP).replace(tzinfo=UTC)
            except ValueError:
                continue  # not one of ours: left alone
            if moved_at.timestamp() < cutoff:
                try:
                    candidate.unlink()
                except FileNotFoundError:
                    continue
                except OSError as error:
                    raise StoreError(f"cannot delete {candidate.name}: {error}") from error
                removed.append(candidate)
        return sorted(removed)

    def counts(self) -> tuple[int, int]:
        """(held, acknowledged) check-ins; held - acknowledged are still to sync."""
        with self._guard("counting check-ins", write=False):
            recorded, acked = (
                self._connect()
                .execute("SELECT COUNT(*), COUNT(acked_at_ms) FROM checkins")
                .fetchone()
            )
        return recorded, acked

    def since_and_unsynced(self, since_ms: int) -> tuple[int, int]:
        """(check-ins scanned at or after `since_ms`, check-ins still to sync), in one pass."""
        with self._guard("counting check-ins", write=False):
            since, unsynced = (
                self._connect()
                .execute(
                    "SELECT COALESCE(SUM(scanned_at_ms >= ?), 0), COUNT(*) - COUNT(acked_at_ms)"
                    " FROM checkins",
                    (since_ms,),
                )
                .fetchone()
            )
        return since, unsynced

    # ---- configuration and deny list ---------------------------------------------------------

    def save_config(self, config: DeviceConfig) -> None:
        with self._guard("saving the configuration"):
            self._connect().execute(
                "INSERT INTO settings (name, value) VALUES ('config', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (config.model_dump_json(),),
            )

    def load_config(self) -> DeviceConfig | None:
        with self._guard("loading the configuration", write=False):
            row = (
                self._connect()
                .execute("SELECT value FROM settings WHERE name = 'config'")
                .fetchone()
            )
        return DeviceConfig.model_validate_json(row[0]) if row else None

    def mark_revoked(self, device_id: str, reason: str) -> None:
        """The host revoked `device_id`: drop its configuration (keys, rules) and deny list.

        In one transaction, so a restart finds either the device in service with all it had,
        or revoked with nothing the host gave it. Check-ins stay, synced or not, for an operator.
        """
        revocation = json.dumps({"device_id": device_id, "reason": reason, "at_ms": _now_ms()})
        connection = self._connect()
        with self._guard("recording the revocation"), connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("DELETE FROM settings WHERE name = 'config'")
            connection.execute("DELETE FROM denylist")
            connection.execute(
                "INSERT INTO settings (name, value) VALUES ('revoked', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (revocation,),
            )

    def revocation(self, device_id: str) -> str | None:
        """Why the host revoked `device_id`, if it did (a device enrolled anew is not revoked)."""
        with self._guard("loading the revocation", write=False):
            row = (
                self._connect()
                .execute("SELECT value FROM settings WHERE name = 'revoked'")
                .fetchone()
            )
        if row is None:
            return None
        stored = json.loads(row[0])
        return stored["reason"] if stored.get("device_id") == device_id else None

    def record_sync_error(self, error: str, failures: int) -> None:
        """Keep the last sync failure (its message, when, how many in a row) for `status`."""
        value = json.dumps({"error": error, "at_ms": _now_ms(), "failures": failures})
        with self._guard("recording the sync error"):
            self._connect().execute(
                "INSERT INTO settings (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (SYNC_ERROR, value),
            )

    def resolve_sync_error(self) -> None:
        """Sync works again: the last error stays, marked with when it was resolved."""
        last = self.sync_error()
        if last is None or last.resolved_at_ms is not None:
            return
        value = json.dumps({**asdict(last), "resolved_at_ms": _now_ms()})
        with self._guard("resolving the sync error"):
            self._connect().execute(
                "UPDATE settings SET value = ? WHERE name = ?", (value, SYNC_ERROR)
            )

    def sync_error(self) -> SyncError | None:
        """The last sync failure recorded, if any."""
        with self._guard("loading the sync error", write=False):
            row = (
                self._connect()
                .execute("SELECT value FROM settings WHERE name = ?", (SYNC_ERROR,))
                .fetchone()
            )
        return None if row is None else SyncError(**json.loads(row[0]))

    def save_denylist(self, document: bytes, refreshed_at_ms: int) -> None:
        """Keep the host-signed deny list as received; it is checked again whenever loaded."""
        with self._guard("saving the deny list"):
            self._connect().execute(
                "INSERT INTO denylist (only_row, document, refreshed_at_ms) VALUES (1, ?, ?)"
                " ON CONFLICT (only_row) DO UPDATE SET"
                " document = excluded.document, refreshed_at_ms = excluded.refreshed_at_ms",
                (document, refreshed_at_ms),
            )

    def mark_denylist_refreshed(self, refreshed_at_ms: int) -> None:
        """The host confirmed that the kept list is current."""
        with self._guard("saving the deny list's age"):
            self._connect().execute("UPDATE denylist SET refreshed_at_ms = ?", (refreshed_at_ms,))

    def load_denylist(self) -> tuple[bytes, int] | None:
        """The kept deny list and when the host last confirmed it current, if one is kept."""
        with self._guard("loading the deny list", write=False):
            row = (
                self._connect().execute("SELECT document, refreshed_at_ms FROM denylist").fetchone()
            )
        return (bytes(row[0]), row[1]) if row else None

    # ---- staff -------------------------------------------------------------------------------

    def add_staff(self, staff_id: str, pin_hash: str) -> None:
        """Keep a staff member's PIN hash; AlreadyStored if the id is taken."""
        with self._guard("adding a staff PIN"):
            try:
                self._connect().execute(
                    "INSERT INTO staff (id, pin_hash, added_at_ms) VALUES (?, ?, ?)",
                    (staff_id, pin_hash, _now_ms()),
                )
            except sqlite3.IntegrityError:
                raise AlreadyStored(f"staff {staff_id} exists already") from None

    def remove_staff(self, staff_id: str) -> bool:
        """Forget a staff member's PIN; False if there was none."""
        with self._guard("removing a staff PIN"):
            return bool(
                self._connect().execute("DELETE FROM staff WHERE id = ?", (staff_id,)).rowcount
            )

    def staff(self) -> list[tuple[str, str, int]]:
        """(id, PIN hash, added at ms) of every staff member, by id."""
        with self._guard("reading the staff PINs", write=False):
            return (
                self._connect()
                .execute("SELECT id, pin_hash, added_at_ms FROM staff ORDER BY id")
                .fetchall()
            )

    def pin_attempts(self) -> tuple[int, int]:
        """(wrong PINs in a row, Unix ms until which PINs are refused: 0 when not locked)."""
        with self._guard("reading the PIN attempts", write=False):
            row = (
                self._connect()
                .execute("SELECT value FROM settings WHERE name = ?", (PIN_ATTEMPTS,))
                .fetchone()
            )
        if row is None:
            return 0, 0
        stored = json.loads(row[0])
        return int(stored["failures"]), int(stored["locked_until_ms"])

    def save_pin_attempts(self, failures: int, locked_until_ms: int) -> None:
        value = json.dumps({"failures": failures, "locked_until_ms": locked_until_ms})
        with self._guard("saving the PIN attempts"):
            self._connect().execute(
                "INSERT INTO settings (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (PIN_ATTEMPTS, value),
            )

    def checkin(self, checkin_id: UUID) -> CheckIn | None:
        """One recorded check-in, if this device still holds it."""
        with self._guard("reading a check-in", write=False):
            cursor = self._connect().execute(
                f"SELECT {CHECKIN_COLUMNS} FROM checkins WHERE id = ?", (str(checkin_id),)
            )
            names = [column[0] for column in cursor.description]
            row = cursor.fetchone()
        return None if row is None else _checkin(dict(zip(names, row, strict=True)))

    def record_staff_decision(self, decision: StaffDecision) -> None:
        """Commit a staff decision durably; AlreadyStored if its check-in was decided already.

        Returns only once it is on disk: the gate opens after this, never before.
        """
        with self._guard("recording a staff decision"):
            try:
                self._connect().execute(
                    f"INSERT INTO staff_decisions {DECISION_VALUES}", _decision_row(decision)
                )
            except sqlite3.IntegrityError:
                raise AlreadyStored(f"check-in {decision.checkin_id} was decided already") from None

    def pending_staff_decisions(self, limit: int) -> list[StaffDecision]:
        """The oldest staff decisions not yet acknowledged whose check-ins the host has."""
        with self._guard("reading pending staff decisions", write=False):
            rows = self._connect().execute(SENDABLE_DECISIONS, (limit,)).fetchall()
        return [_decision(row) for row in rows]

    def mark_staff_decisions_acked(self, ids: Sequence[UUID]) -> None:
        connection = self._connect()
        with self._guard("marking staff decisions acknowledged"), connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "UPDATE staff_decisions SET acked_at_ms = ? WHERE id = ? AND acked_at_ms IS NULL",
                [(_now_ms(), str(decision_id)) for decision_id in ids],
            )

    def staff_counts(self) -> tuple[int, int]:
        """(held, acknowledged) staff decisions; held - acknowledged are still to sync."""
        with self._guard("counting staff decisions", write=False):
            held, acked = (
                self._connect()
                .execute("SELECT COUNT(*), COUNT(acked_at_ms) FROM staff_decisions")
                .fetchone()
            )
        return held, acked

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
