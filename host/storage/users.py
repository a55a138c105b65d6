"""Host users with one role each, and the append-only, hash-chained audit of personal-data reads."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from host.storage.sqlbase import Dialect, SqlBase, in_dialect


class Role(StrEnum):
    """What a user may do; each user has exactly one."""

    ADMIN = "admin"  # operations: venues, people, devices, users, the audit log
    EPIDEMIOLOGIST = "epidemiologist"  # tracing, person lookup, flows and alerts
    VENUE_MANAGER = "venue-manager"  # their venues' counts, devices and posters
    SCREENER = "screener"  # their organisation's staff screenings


class UserExists(Exception):
    """A user of that name exists already (revoked users keep their names: the audit names them)."""


@dataclass(frozen=True)
class UserRecord:
    """A host user as stored; their token is kept only as a hash, beside this record."""

    id: str
    name: str
    role: Role
    venues: tuple[str, ...]  # a venue manager's venues; empty for every other role
    org: str | None  # a screener's organisation; None for every other role
    created_at_ms: int
    revoked_at_ms: int | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at_ms is not None


@dataclass(frozen=True)
class AuditDraft:
    """Who reads personal data, what, and why; the record is written with how many were read."""

    user_id: str
    user_name: str
    role: Role
    action: str  # tracing, person-lookup, screening-create, screening-result, ...
    purpose: str  # as stated by the user: a case number, an order
    subject: Mapping[str, str] = field(default_factory=dict)  # case, org, venue, screening


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at_ms: int
    user_id: str
    user_name: str
    role: Role
    action: str
    subject: dict[str, str]
    purpose: str
    records: int
    prev_hash: bytes
    hash: bytes


GENESIS = bytes(32)  # the "previous hash" of the first record
USER_COLUMNS = "id, name, role, venues, org, created_at, revoked_at"
AUDIT_COLUMNS = (
    "seq, at, user_id, user_name, role, action, subject, purpose, records, prev_hash, hash"
)
APPEND_ONLY = "the audit log is append-only"
TABLES = (
    """CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        token_hash {blob} NOT NULL UNIQUE,
        venues TEXT NOT NULL,
        org TEXT,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT)""",
    # seq is given by the writer, one above the last, under a lock: the chain has no gaps.
    """CREATE TABLE audit_log (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        user_id TEXT NOT NULL,
        user_name TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        purpose TEXT NOT NULL,
        records BIGINT NOT NULL,
        prev_hash {blob} NOT NULL,
        hash {blob} NOT NULL)""",
    "CREATE INDEX audit_log_user ON audit_log (user_id, seq)",
)
# No statement may change or remove an audit record, whoever sends it.
APPEND_ONLY_TRIGGERS = {
    Dialect.SQLITE: tuple(
        f"""CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log
        BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"""
        for verb in ("UPDATE", "DELETE")
    ),
    Dialect.POSTGRESQL: (
        f"""CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$""",
        """CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
        """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
    ),
}


def schema(dialect: Dialect) -> list[str]:
    """The tables of users and the audit log, and the triggers that keep the log append-only."""
    return in_dialect(TABLES, dialect) + list(APPEND_ONLY_TRIGGERS[dialect])


def audit_hash(prev_hash: bytes, seq: int, at_ms: int, draft: AuditDraft, records: int) -> bytes:
    """SHA-256 over the previous record's hash and this record's fields, canonically encoded."""
    fields = [
        seq,
        at_ms,
        draft.user_id,
        draft.user_name,
        draft.role.value,
        draft.action,
        dict(sorted(draft.subject.items())),
        draft.purpose,
        records,
    ]
    encoded = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(prev_hash + encoded).digest()


def chain_problems(records: Iterator[AuditRecord]) -> tuple[int, bytes, list[str]]:
    """Walk the log in order: (records read, the last hash, what does not hold).

    A changed field breaks its record's hash; a removed or inserted record breaks the
    sequence or the next record's link. Removing the newest records leaves a shorter valid
    chain: compare the last hash with one noted earlier to see that.
    """
    problems: list[str] = []
    expected_prev, expected_seq, count = GENESIS, 1, 0
    for record in records:
        count += 1
        if record.seq != expected_seq:
            problems.append(f"record {record.seq}: expected sequence number {expected_seq}")
        if record.prev_hash != expected_prev:
            problems.append(f"record {record.seq}: does not link to the record before it")
        draft = AuditDraft(
            record.user_id,
            record.user_name,
            record.role,
            record.action,
            record.purpose,
            record.subject,
        )
        if audit_hash(record.prev_hash, record.seq, record.at_ms, draft, record.records) != (
            record.hash
        ):
            problems.append(f"record {record.seq}: its contents do not match its hash")
        expected_prev, expected_seq = record.hash, record.seq + 1
    return count, expected_prev, problems


def _user(row: tuple[Any, ...]) -> UserRecord:
    id_, name, role, venues, org, created_at, revoked_at = row
    return UserRecord(id_, name, Role(role), tuple(json.loads(venues)), org, created_at, revoked_at)


def _audit(row: tuple[Any, ...]) -> AuditRecord:
    seq, at, user_id, user_name, role, action, subject, purpose, records, prev, hash_ = row
    return AuditRecord(
        seq,
        at,
        user_id,
        user_name,
        Role(role),
        action,
        json.loads(subject),
        purpose,
        records,
        bytes(prev),
        bytes(hash_),
    )


Result = TypeVar("Result")


class UserQueries(SqlBase):
    """Users and their tokens; the audit log, written in the transaction of the read it records."""

    def add_user(self, user: UserRecord, token_hash: bytes) -> None:
        """Store a user with the hash of their token; `UserExists` if the name is taken."""
        with self._write() as conn:
            taken = self._run(conn, "SELECT 1 FROM users WHERE name = ?", (user.name,)).fetchone()
            if taken:
                raise UserExists(f"a user named {user.name!r} exists already")
            self._run(
                conn,
                f"INSERT INTO users ({USER_COLUMNS}, token_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user.id,
                    user.name,
                    user.role.value,
                    json.dumps(list(user.venues)),
                    user.org,
                    user.created_at_ms,
                    user.revoked_at_ms,
                    token_hash,
                ),
            )

    def user_by_token(self, token_hash: bytes) -> UserRecord | None:
        row = self._fetchone(
            f"SELECT {USER_COLUMNS} FROM users WHERE token_hash = ?", (token_hash,)
        )
        return None if row is None else _user(row)

    def user_by_id(self, user_id: str) -> UserRecord | None:
        row = self._fetchone(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
        return None if row is None else _user(row)

    def list_users(self) -> list[UserRecord]:
        return [
            _user(row) for row in self._fetchall(f"SELECT {USER_COLUMNS} FROM users ORDER BY name")
        ]

    def revoke_user(self, name: str, now_ms: int) -> UserRecord | None:
        """Refuse the user's token from now on (the first revocation stays); None if unknown."""
        with self._write() as conn:
            self._run(
                conn,
                "UPDATE users SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (now_ms, name),
            )
            row = self._run(
                conn, f"SELECT {USER_COLUMNS} FROM users WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else _user(row)

    # ---- the audit log -----------------------------------------------------------------------

    def audited(
        self,
        draft: AuditDraft,
        now_ms: int,
        read: Callable[[Any], Result],
        records: Callable[[Result], int],
    ) -> Result:
        """`read(conn)` and its audit record in one transaction: no read goes unrecorded.

        The record is appended last, under a lock held only to the commit, so concurrent reads
        from every worker chain their records one after another.
        """
        with self._write() as conn:
            result = read(conn)
            self._append_audit(conn, draft, now_ms, records(result))
        return result

    def _append_audit(self, conn: Any, draft: AuditDraft, now_ms: int, records: int) -> None:
        self._lock(conn, "audit")
        last = self._run(conn, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        row = last.fetchone()
        seq, prev_hash = (1, GENESIS) if row is None else (row[0] + 1, bytes(row[1]))
        self._run(
            conn,
            f"INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                now_ms,
                draft.user_id,
                draft.user_name,
                draft.role.value,
                draft.action,
                json.dumps(dict(sorted(draft.subject.items())), ensure_ascii=False),
                draft.purpose,
                records,
                prev_hash,
                audit_hash(prev_hash, seq, now_ms, draft, records),
            ),
        )

    def list_audit(
        self,
        *,
        user_name: str | None = None,
        action: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Audit records matching every filter given, newest first."""
        conditions, params = ["1 = 1"], []
        for condition, value in (
            ("user_name = ?", user_name),
            ("action = ?", action),
            ("at >= ?", since_ms),
            ("at < ?", until_ms),
            ("seq < ?", before_seq),
        ):
            if value is not None:
                conditions.append(condition)
                params.append(value)
        rows = self._fetchall(
            f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {' AND '.join(conditions)}"
            " ORDER BY seq DESC LIMIT ?",
            (*params, limit),
        )
        return [_audit(row) for row in rows]

    def audit_chain(self, chunk: int = 10_000) -> Iterator[AuditRecord]:
        """Every audit record, oldest first, read `chunk` at a time."""
        after = 0
        while True:
            rows = self._fetchall(
                f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, chunk),
            )
            yield from (_audit(row) for row in rows)
            if len(rows) < chunk:
                return
            after = rows[-1][0]
