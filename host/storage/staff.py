"""Staff decisions at devices: each settles a referral of its own device, and is counted by hour.

A decision is stored once (by its id; a check-in is settled once), linked to the check-in it
settles, and added in the same transaction to the hourly counts of that check-in's hour: of an
hour's referrals, how many staff let through and how many they refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from host.core.times import to_ms
from host.storage.flows import hour_of
from host.storage.sqlbase import LOOKUP_CHUNK, Dialect, SqlBase
from shared.messages import StaffAction, StaffDecision
from shared.policy import Outcome

TABLES = (
    # The check-in is named by its id (as text: the link outlives the check-in's retention).
    """CREATE TABLE staff_decisions (
        id TEXT PRIMARY KEY,
        checkin_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        venue_id TEXT NOT NULL,
        staff_id TEXT NOT NULL,
        action TEXT NOT NULL,
        reason TEXT NOT NULL,
        decided_at BIGINT NOT NULL,
        clock_trusted BOOLEAN NOT NULL,
        received_at BIGINT NOT NULL,
        UNIQUE (venue_id, checkin_id))""",
    "CREATE INDEX staff_decisions_decided ON staff_decisions (decided_at)",  # for retention
)
DECISION_COLUMNS = (
    "id, checkin_id, device_id, venue_id, staff_id, action, reason, decided_at, clock_trusted,"
    " received_at"
)
INSERT_DECISION = (
    f"INSERT INTO staff_decisions ({DECISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)
ADD_STAFF_COUNTS = """
    INSERT INTO checkin_counts
        (venue_id, hour, total, passed, denied, referred, staff_let_through, staff_refused)
    VALUES (?, ?, 0, 0, 0, 0, ?, ?)
    ON CONFLICT (venue_id, hour) DO UPDATE SET
        staff_let_through = checkin_counts.staff_let_through + excluded.staff_let_through,
        staff_refused = checkin_counts.staff_refused + excluded.staff_refused"""
# A check-in id as each backend keys check-ins: SQLite its 16 bytes, PostgreSQL its uuid.
CHECKIN_KEY = {Dialect.SQLITE: lambda id_: id_.bytes, Dialect.POSTGRESQL: lambda id_: id_}


def schema(dialect: Dialect) -> list[str]:
    """The staff decisions' table (the counts' staff columns are the flows module's)."""
    return list(TABLES)


class StaffDecisionRefused(Exception):
    """A batch naming a check-in that is not a referral of the sending device; nothing stored.

    `code` is unknown-checkin or not-a-referral.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _uuid(stored: Any) -> UUID:
    return stored if isinstance(stored, UUID) else UUID(bytes=bytes(stored))


class StaffQueries(SqlBase):
    """Staff decisions: stored idempotently, checked against the check-ins they settle."""

    def add_staff_decisions(
        self,
        device_id: str,
        venue_id: str,
        received_at_ms: int,
        decisions: Sequence[StaffDecision],
    ) -> int:
        """Store the batch's new decisions and count them, in one transaction; how many were new.

        Each must settle a referral that `device_id` recorded at `venue_id`; if one does not,
        StaffDecisionRefused and nothing is stored. A decision already stored, or a second one
        on a check-in already settled, is skipped.
        """
        key = CHECKIN_KEY[self.dialect]
        wanted = list(dict.fromkeys(decision.checkin_id for decision in decisions))
        with self._write() as conn:
            settled: dict[UUID, tuple[int, str, str]] = {}  # scanned_at, outcome, device
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                chunk = wanted[start : start + LOOKUP_CHUNK]
                rows = self._run(
                    conn,
                    "SELECT id, scanned_at, outcome, device_id FROM checkins"
                    f" WHERE venue_id = ? AND id IN ({', '.join('?' * len(chunk))})",
                    (venue_id, *(key(checkin_id) for checkin_id in chunk)),
                ).fetchall()
                settled |= {_uuid(id_): (at, outcome, device) for id_, at, outcome, device in rows}
            for checkin_id in wanted:
                found = settled.get(checkin_id)
                if found is None or found[2] != device_id:
                    raise StaffDecisionRefused(
                        "unknown-checkin", f"check-in {checkin_id} is not one this device recorded"
                    )
                if found[1] != Outcome.REFER:
                    raise StaffDecisionRefused(
                        "not-a-referral", f"check-in {checkin_id} is a {found[1]}, not a referral"
                    )
            tally: Counter[tuple[int, StaffAction]] = Counter()
            for decision in decisions:
                if self._run(
                    conn, INSERT_DECISION, _row(decision, device_id, received_at_ms)
                ).rowcount:
                    tally[hour_of(settled[decision.checkin_id][0]), decision.action] += 1
            counts = [
                (
                    venue_id,
                    hour,
                    tally[hour, StaffAction.LET_THROUGH],
                    tally[hour, StaffAction.REFUSE],
                )
                for hour in sorted({hour for hour, _ in tally})  # in order: writers never deadlock
            ]
            if counts:
                self._executemany(conn, ADD_STAFF_COUNTS, counts)
        return sum(tally.values())

    def purge_staff_decisions(self, before_ms: int) -> int:
        """Delete decisions both made and received before `before_ms`; how many went.

        Both, as with check-ins: a device with a wrong clock may send an old time late.
        """
        with self._write() as conn:
            return self._run(
                conn,
                "DELETE FROM staff_decisions WHERE decided_at < ? AND received_at < ?",
                (before_ms, before_ms),
            ).rowcount


def _row(decision: StaffDecision, device_id: str, received_at_ms: int) -> tuple[Any, ...]:
    """A row in `DECISION_COLUMNS` order."""
    return (
        str(decision.id),
        str(decision.checkin_id),
        device_id,
        decision.venue_id,
        decision.staff_id,
        decision.action.value,
        decision.reason.value,
        to_ms(decision.decided_at),
        decision.clock_trusted,
        received_at_ms,
    )
