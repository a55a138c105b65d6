"""Screening queries: staff lists checked against the register as jobs any worker can finish."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from host.storage.sqlbase import LOOKUP_CHUNK, Dialect, SqlBase, in_dialect
from host.storage.users import AuditDraft
from shared.healthcode import Colour, TestResult


class ScreeningStatus(StrEnum):
    QUEUED = "queued"  # waiting for a worker
    RUNNING = "running"  # a worker holds its lease
    DONE = "done"
    FAILED = "failed"  # the host failed on it (logged); its rows stay unflagged


class Flag(StrEnum):
    """A screened row's result: the least that tells the firm whom to send for a test."""

    OK = "ok"
    NO_RECENT_TEST = "no-recent-test"  # no negative test sampled within the asked age
    NOT_GREEN = "not-green"  # colour not green, or the latest test positive
    NOT_REGISTERED = "not-registered"  # no one with this ID number in the register
    INVALID_ID_NUMBER = "invalid-id-number"  # not 18 characters with a right MOD 11-2 check


@dataclass(frozen=True)
class ScreeningRecord:
    """A screening job as stored; its rows are kept apart, under its id."""

    id: str
    org: str
    user_id: str
    purpose: str
    max_test_age_hours: int
    echo_columns: tuple[str, ...]  # the columns sealed in each row's echo, e.g. (name, staff_id)
    # Seals nothing, under the echo key: tells a wrong key from the right one, not the key.
    key_check: bytes | None
    status: ScreeningStatus
    total: int
    processed: int
    summary: dict[Flag, int] | None  # rows per flag, once done
    created_at_ms: int
    expires_at_ms: int


@dataclass(frozen=True)
class SubmittedRow:
    """A staff-list row as stored: the keyed hash of its ID number, never the number."""

    row_no: int  # 1 for the first row under the header
    id_hmac: bytes | None  # None for an invalid number, flagged at once
    echo: bytes | None  # the row's other columns, sealed under a key the host does not keep
    flag: Flag | None  # set at once for an invalid number; else by the worker


@dataclass(frozen=True)
class RowResult:
    row_no: int
    flag: Flag
    hours_since_test: int | None  # only with no-recent-test, and only if there was a test
    echo: bytes | None


@dataclass(frozen=True)
class Standing:
    """What screening reads of a registered person: their colour and latest test."""

    colour: Colour
    test_sampled_at_ms: int | None
    test_result: TestResult | None


TABLES = (
    # lease_owner is the claim's own token: a worker whose lease was taken over writes nothing.
    """CREATE TABLE screenings (
        id TEXT PRIMARY KEY,
        org TEXT NOT NULL,
        user_id TEXT NOT NULL,
        purpose TEXT NOT NULL,
        max_test_age_hours INTEGER NOT NULL,
        echo_columns TEXT NOT NULL,
        key_check {blob},
        status TEXT NOT NULL,
        total INTEGER NOT NULL,
        processed INTEGER NOT NULL,
        summary TEXT,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        lease_owner TEXT,
        lease_until BIGINT)""",
    "CREATE INDEX screenings_org ON screenings (org, created_at)",
    "CREATE INDEX screenings_expiry ON screenings (expires_at)",
    "CREATE INDEX screenings_unfinished ON screenings (status, lease_until)"
    " WHERE status IN ('queued', 'running')",
    """CREATE TABLE screening_rows (
        screening_id TEXT NOT NULL REFERENCES screenings (id),
        row_no INTEGER NOT NULL,
        id_hmac {blob},
        echo {blob},
        flag TEXT,
        hours_since_test INTEGER,
        PRIMARY KEY (screening_id, row_no))""",
)
SCREENING_COLUMNS = (
    "id, org, user_id, purpose, max_test_age_hours, echo_columns, key_check, status, total,"
    " processed, summary, created_at, expires_at"
)
CLAIMABLE = "(status = 'queued' OR (status = 'running' AND lease_until < ?))"


def schema(dialect: Dialect) -> list[str]:
    """The tables of screening jobs and their rows."""
    return in_dialect(TABLES, dialect)


def _blob(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _screening(row: Sequence[Any]) -> ScreeningRecord:
    id_, org, user_id, purpose, max_age, echo_columns, key_check, status, total = row[:9]
    processed, summary, created_at, expires_at = row[9:]
    return ScreeningRecord(
        id=id_,
        org=org,
        user_id=user_id,
        purpose=purpose,
        max_test_age_hours=max_age,
        echo_columns=tuple(json.loads(echo_columns)),
        key_check=_blob(key_check),
        status=ScreeningStatus(status),
        total=total,
        processed=processed,
        summary=(
            None
            if summary is None
            else {Flag(flag): count for flag, count in json.loads(summary).items()}
        ),
        created_at_ms=created_at,
        expires_at_ms=expires_at,
    )


class ScreeningQueries(SqlBase):
    """Screening jobs, their rows (keyed hashes, never numbers) and their results."""

    def create_screening(
        self, screening: ScreeningRecord, rows: Sequence[SubmittedRow], audit: AuditDraft
    ) -> None:
        """Store a queued job and its rows, and its audit record, in one transaction."""

        def insert(conn: Any) -> None:
            self._run(
                conn,
                f"INSERT INTO screenings ({SCREENING_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    screening.id,
                    screening.org,
                    screening.user_id,
                    screening.purpose,
                    screening.max_test_age_hours,
                    json.dumps(list(screening.echo_columns)),
                    screening.key_check,
                    screening.status.value,
                    screening.total,
                    screening.processed,
                    None,
                    screening.created_at_ms,
                    screening.expires_at_ms,
                ),
            )
            self._executemany(
                conn,
                "INSERT INTO screening_rows (screening_id, row_no, id_hmac, echo, flag)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        screening.id,
                        row.row_no,
                        row.id_hmac,
                        row.echo,
                        None if row.flag is None else row.flag.value,
                    )
                    for row in rows
                ],
            )

        self.audited(audit, screening.created_at_ms, insert, lambda _: len(rows))

    def claim_screening(
        self, owner: str, now_ms: int, lease_until_ms: int
    ) -> ScreeningRecord | None:
        """Take the oldest queued job, or one whose worker's lease ran out, for `owner`.

        The update is the guard: of two workers that pick the same job, the second's update
        finds it claimed (its lease renewed) and changes nothing. Looking is a plain read, so
        that workers looking every few seconds do not queue for SQLite's write lock.
        """
        found = self._fetchone(
            f"SELECT id FROM screenings WHERE {CLAIMABLE} ORDER BY created_at LIMIT 1", (now_ms,)
        )
        if found is None:
            return None
        with self._write() as conn:
            claimed = self._run(
                conn,
                "UPDATE screenings SET status = 'running', lease_owner = ?, lease_until = ?"
                f" WHERE id = ? AND {CLAIMABLE}",
                (owner, lease_until_ms, found[0], now_ms),
            ).rowcount
            if claimed != 1:
                return None
            row = self._run(
                conn, f"SELECT {SCREENING_COLUMNS} FROM screenings WHERE id = ?", (found[0],)
            ).fetchone()
        return _screening(row)

    def pending_screening_rows(
        self, screening_id: str, after_row: int, limit: int
    ) -> list[tuple[int, bytes]]:
        """(row number, ID hash) of up to `limit` unflagged rows after `after_row`, in order."""
        rows = self._fetchall(
            "SELECT row_no, id_hmac FROM screening_rows"
            " WHERE screening_id = ? AND row_no > ? AND flag IS NULL ORDER BY row_no LIMIT ?",
            (screening_id, after_row, limit),
        )
        return [(row_no, bytes(id_hmac)) for row_no, id_hmac in rows]

    def standings(self, id_hmacs: Sequence[bytes]) -> dict[bytes, Standing]:
        """The colour and latest test of each registered person among these ID hashes."""
        wanted = list(dict.fromkeys(id_hmacs))
        found: dict[bytes, Standing] = {}
        with self._snapshot() as conn:
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                chunk = wanted[start : start + LOOKUP_CHUNK]
                rows = self._run(
                    conn,
                    "SELECT id_hmac, colour, test_sampled_at, test_result FROM people"
                    f" WHERE id_hmac IN ({', '.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for id_hmac, colour, sampled_at, result in rows:
                    found[bytes(id_hmac)] = Standing(
                        Colour(colour), sampled_at, None if result is None else TestResult(result)
                    )
        return found

    def save_screening_results(
        self,
        screening_id: str,
        owner: str,
        results: Sequence[tuple[int, Flag, int | None]],
        lease_until_ms: int,
    ) -> bool:
        """Flag rows (row number, flag, hours) and renew the lease; False if `owner` lost it.

        The job's row is updated first: that takes its row lock, so no other worker can claim
        the job between the check and the rows written.
        """
        with self._write() as conn:
            held = self._run(
                conn,
                "UPDATE screenings SET processed = processed + ?, lease_until = ?"
                " WHERE id = ? AND lease_owner = ? AND status = 'running'",
                (len(results), lease_until_ms, screening_id, owner),
            ).rowcount
            if held != 1:
                return False
            self._executemany(
                conn,
                "UPDATE screening_rows SET flag = ?, hours_since_test = ?"
                " WHERE screening_id = ? AND row_no = ?",
                [(flag.value, hours, screening_id, row_no) for row_no, flag, hours in results],
            )
        return True

    def finish_screening(self, screening_id: str, owner: str, status: ScreeningStatus) -> bool:
        """End `owner`'s lease with `status`, counting rows per flag when done; False if lost."""
        with self._write() as conn:
            counts = self._run(
                conn,
                "SELECT flag, COUNT(*) FROM screening_rows"
                " WHERE screening_id = ? AND flag IS NOT NULL GROUP BY flag",
                (screening_id,),
            ).fetchall()
            summary = {flag.value: 0 for flag in Flag} | dict(counts)
            return (
                self._run(
                    conn,
                    "UPDATE screenings SET status = ?, summary = ?, lease_owner = NULL,"
                    " lease_until = NULL WHERE id = ? AND lease_owner = ? AND status = 'running'",
                    (
                        status.value,
                        json.dumps(summary) if status is ScreeningStatus.DONE else None,
                        screening_id,
                        owner,
                    ),
                ).rowcount
                == 1
            )

    def get_screening(self, screening_id: str, org: str, now_ms: int) -> ScreeningRecord | None:
        """The organisation's job, unless past its expiry; another org's is None as well."""
        row = self._fetchone(
            f"SELECT {SCREENING_COLUMNS} FROM screenings"
            " WHERE id = ? AND org = ? AND expires_at > ?",
            (screening_id, org, now_ms),
        )
        return None if row is None else _screening(row)

    def list_screenings(self, org: str, now_ms: int, limit: int) -> list[ScreeningRecord]:
        """The organisation's jobs not yet expired, newest first."""
        rows = self._fetchall(
            f"SELECT {SCREENING_COLUMNS} FROM screenings WHERE org = ? AND expires_at > ?"
            " ORDER BY created_at DESC, id LIMIT ?",
            (org, now_ms, limit),
        )
        return [_screening(row) for row in rows]

    def screening_results(  # noqa: PLR0917 - what to read, then who reads it and when
        self,
        screening_id: str,
        org: str,
        flags: Sequence[Flag],
        after_row: int,
        limit: int,
        audit: AuditDraft,
        now_ms: int,
    ) -> tuple[ScreeningRecord, list[RowResult]] | None:
        """A done job's flagged rows after `after_row` (only `flags`, if given), audited.

        The read and its audit record are one transaction; the record counts the rows
        returned. None for a job this organisation does not have; no rows until it is done.
        """
        only = f" AND flag IN ({', '.join('?' * len(flags))})" if flags else ""

        def read(conn: Any) -> tuple[ScreeningRecord, list[RowResult]] | None:
            found = self._run(
                conn,
                f"SELECT {SCREENING_COLUMNS} FROM screenings"
                " WHERE id = ? AND org = ? AND expires_at > ?",
                (screening_id, org, now_ms),
            ).fetchone()
            if found is None:
                return None
            screening = _screening(found)
            if screening.status is not ScreeningStatus.DONE:
                return screening, []
            rows = self._run(
                conn,
                "SELECT row_no, flag, hours_since_test, echo FROM screening_rows"
                f" WHERE screening_id = ? AND row_no > ?{only} ORDER BY row_no LIMIT ?",
                (screening_id, after_row, *(flag.value for flag in flags), limit),
            ).fetchall()
            return screening, [
                RowResult(row_no, Flag(flag), hours, _blob(echo))
                for row_no, flag, hours, echo in rows
            ]

        return self.audited(audit, now_ms, read, lambda read: 0 if read is None else len(read[1]))

    def purge_screenings(self, now_ms: int, created_before_ms: int) -> int:
        """Delete jobs past their expiry or made before `created_before_ms`; how many went.

        One job at a time, its rows first, each in a transaction of its own.
        """
        expired = self._fetchall(
            "SELECT id FROM screenings WHERE expires_at <= ? OR created_at < ?",
            (now_ms, created_before_ms),
        )
        for (screening_id,) in expired:
            with self._write() as conn:
                self._run(
                    conn, "DELETE FROM screening_rows WHERE screening_id = ?", (screening_id,)
                )
                self._run(conn, "DELETE FROM screenings WHERE id = ?", (screening_id,))
        return len(expired)
