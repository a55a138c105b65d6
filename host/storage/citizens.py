"""Citizens' phones: one-time sign-in links, sessions, and the latest phone check-in per place.

Tokens are kept only as their hashes. Everything here is in the database, so any worker
answers any phone: a session made by one is honoured by all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from host.storage.sqlbase import Dialect, SqlBase, in_dialect
from shared.messages import CheckIn

TABLES = (
    # A sign-in link's token: used once, within minutes, to start a session.
    """CREATE TABLE citizen_sign_ins (
        token_hash {blob} PRIMARY KEY,
        person_ref TEXT NOT NULL REFERENCES people (person_ref),
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT)""",
    "CREATE INDEX citizen_sign_ins_expiry ON citizen_sign_ins (expires_at)",
    # A phone's session, named by the hash of its cookie.
    """CREATE TABLE citizen_sessions (
        token_hash {blob} PRIMARY KEY,
        person_ref TEXT NOT NULL REFERENCES people (person_ref),
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL)""",
    "CREATE INDEX citizen_sessions_expiry ON citizen_sessions (expires_at)",
    # Each person's latest phone check-in per venue and binding ('' for none), as the check-in
    # it is: claimed here before it is stored, so two workers opening the same code at once
    # record it once, and a repeat within the window shows it again.
    """CREATE TABLE phone_visits (
        person_ref TEXT NOT NULL,
        venue_id TEXT NOT NULL,
        binding TEXT NOT NULL,
        scanned_at BIGINT NOT NULL,
        checkin TEXT NOT NULL,
        PRIMARY KEY (person_ref, venue_id, binding))""",
    "CREATE INDEX phone_visits_time ON phone_visits (scanned_at)",
)
# The claim: a new row, or the old one replaced if it is older than the repeat window.
CLAIM_VISIT = """
    INSERT INTO phone_visits (person_ref, venue_id, binding, scanned_at, checkin)
    VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (person_ref, venue_id, binding) DO UPDATE
    SET scanned_at = excluded.scanned_at, checkin = excluded.checkin
    WHERE phone_visits.scanned_at <= ?"""


def schema(dialect: Dialect) -> list[str]:
    """The tables of sign-in links, sessions and phone visits."""
    return in_dialect(TABLES, dialect)


@dataclass(frozen=True)
class PhoneVisit:
    """The check-in a phone scan stands for, and whether it is new or an earlier one shown again."""

    checkin: CheckIn
    new: bool


class CitizenQueries(SqlBase):
    """Sign-in links, sessions and the repeat window of phone check-ins, on both backends."""

    def add_sign_in(
        self, token_hash: bytes, person_ref: str, created_at_ms: int, expires_at_ms: int
    ) -> None:
        with self._write() as conn:
            self._run(
                conn,
                "INSERT INTO citizen_sign_ins (token_hash, person_ref, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (token_hash, person_ref, created_at_ms, expires_at_ms),
            )

    def start_session(
        self, sign_in_hash: bytes, session_hash: bytes, now_ms: int, expires_at_ms: int
    ) -> str:
        """Use up a sign-in link and start a session for its person; `TokenRefused` if it cannot."""
        with self._write() as conn:
            person_ref = self._claim_token(
                conn, "citizen_sign_ins", "person_ref", sign_in_hash, now_ms
            )
            self._run(
                conn,
                "INSERT INTO citizen_sessions (token_hash, person_ref, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (session_hash, person_ref, now_ms, expires_at_ms),
            )
        return person_ref

    def session_person(self, session_hash: bytes, now_ms: int) -> str | None:
        """The person a session belongs to, while it lasts; None for an unknown or ended one."""
        row = self._fetchone(
            "SELECT person_ref FROM citizen_sessions WHERE token_hash = ? AND expires_at > ?",
            (session_hash, now_ms),
        )
        return None if row is None else row[0]

    def claim_phone_visit(self, checkin: CheckIn, now_ms: int, repeat_window_ms: int) -> PhoneVisit:
        """`checkin` as the person's visit to its venue and binding, unless one is recent.

        A visit scanned within `repeat_window_ms` before `now_ms` stays, and is answered
        instead (`new` false). The caller stores the answer's check-in either way: storing is
        idempotent by id, so a claim whose check-in was not stored (a crash between the two)
        is stored on the next repeat.
        """
        if checkin.person_ref is None:
            raise ValueError("a phone check-in names its person")
        key = (checkin.person_ref, checkin.venue_id, checkin.binding or "")
        with self._write() as conn:
            self._run(
                conn,
                CLAIM_VISIT,
                (*key, now_ms, checkin.model_dump_json(), now_ms - repeat_window_ms),
            )
            (stored,) = self._run(
                conn,
                "SELECT checkin FROM phone_visits"
                " WHERE person_ref = ? AND venue_id = ? AND binding = ?",
                key,
            ).fetchone()
        visit = CheckIn.model_validate_json(stored)
        return PhoneVisit(visit, new=visit.id == checkin.id)

    def purge_citizens(self, now_ms: int, visits_before_ms: int) -> int:
        """Delete ended sign-in links and sessions, and visits scanned before `visits_before_ms`."""
        deleted = 0
        statements: tuple[tuple[str, Any], ...] = (
            ("DELETE FROM citizen_sign_ins WHERE expires_at <= ?", now_ms),
            ("DELETE FROM citizen_sessions WHERE expires_at <= ?", now_ms),
            ("DELETE FROM phone_visits WHERE scanned_at < ?", visits_before_ms),
        )
        for sql, before in statements:
            with self._write() as conn:
                deleted += self._run(conn, sql, (before,)).rowcount
        return deleted
