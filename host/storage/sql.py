"""The SQL both backends share: every query but the schema, check-in ingest and retention."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from operator import attrgetter
from typing import Any

from host.core.times import from_ms, to_ms
from host.storage import citizens, flows, limits, screening, sessions, staff, tracing, users
from host.storage.base import (
    DEFAULT_TIMEZONE,
    CheckInSource,
    DenyListEntry,
    DenyListSnapshot,
    DenyListState,
    DeviceRecord,
    EnrollmentRefused,
    PersonRecord,
    ReportRecord,
    Storage,
    VenueRecord,
)
from host.storage.citizens import CitizenQueries
from host.storage.flows import FlowQueries
from host.storage.limits import LimitQueries
from host.storage.screening import ScreeningQueries
from host.storage.sessions import SessionQueries
from host.storage.sqlbase import LOOKUP_CHUNK, Dialect, TokenProblem, TokenRefused
from host.storage.staff import StaffQueries
from host.storage.tracing import TracingQueries
from host.storage.users import AuditDraft, UserQueries
from shared.denylist import HashKind
from shared.healthcode import Colour, NucleicTest, TestResult
from shared.messages import CheckIn, DeviceForm, DeviceReport, HostStats
from shared.policy import RuleSet, VenueCategory

# A device's last-seen time is written at most this often: a busy kiosk's requests would
# otherwise all queue on its one row.
LAST_SEEN_RESOLUTION_MS = 1000

VENUE_COLUMNS = (
    "id, name, address, category, code_url, rules, created_at, district, street, timezone"
)
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
    " thermometer, clock_trusted, received_at, binding, source, group_id"
)
RAISE_DENYLIST_VERSION = """
    INSERT INTO denylist_version (only_row, version, changed_at) VALUES (1, 1, ?)
    ON CONFLICT (only_row) DO UPDATE
    SET version = denylist_version.version + 1, changed_at = excluded.changed_at"""
# An enrollment token's problem as the API names it: (code, detail).
ENROLLMENT_REFUSALS = {
    TokenProblem.UNKNOWN: ("bad-token", "no such enrollment token"),
    TokenProblem.USED: ("token-used", "the enrollment token was already used"),
    TokenProblem.EXPIRED: ("token-expired", "the enrollment token has expired"),
}
PURGE_CHUNK = 5000  # check-ins deleted per transaction, so that ingest is never held up long


@functools.lru_cache(maxsize=4096)
def reasons_json(reasons: tuple[str, ...]) -> str:
    """Reasons as JSON text; devices repeat the same few, so encoding each once saves time."""
    return json.dumps(reasons, ensure_ascii=False, separators=(",", ":"))


def checkin_rows(
    device_id: str,
    venue_id: str,
    received_at_ms: int,
    checkins: Sequence[CheckIn],
    id_value: Callable[[CheckIn], Any],
    *,
    source: CheckInSource,
) -> list[tuple[Any, ...]]:
    """Rows in `CHECKIN_COLUMNS` order, doing little per check-in: this is the ingest hot path.

    `id_value` gives the id as the backend stores it (`ID_BYTES` or `ID_UUID`). The str enums
    bind as their text, so there is no `.value` lookup per field.
    """
    return [
        (
            id_value(c),
            device_id,
            venue_id,
            to_ms(c.scanned_at),
            c.person_ref,
            c.kind,
            c.outcome,
            reasons_json(tuple(c.reasons)),
            c.temperature_c,
            None if c.thermometer is None else c.thermometer.model_dump_json(),
            c.clock_trusted,
            received_at_ms,
            c.binding,
            source,
            None if c.group_id is None else str(c.group_id),
        )
        for c in checkins
    ]


ID_BYTES = attrgetter("id.bytes")  # SQLite: the UUID's 16 bytes
ID_UUID = attrgetter("id")  # PostgreSQL: its uuid type


def _ruleset(stored: str) -> RuleSet:
    """A stored rule set, parsed (and its CertLogic validated) once per text: it is frozen."""
    return RuleSet.model_validate_json(stored)


def _venue(row: Sequence[Any]) -> VenueRecord:
    id_, name, address, category, code_url, rules, created_at, district, street, timezone = row
    return VenueRecord(
        id=id_,
        name=name,
        address=address,
        category=VenueCategory(category),
        code_url=code_url,
        rules=None if rules is None else _ruleset(rules),
        created_at_ms=created_at,
        district=district,
        street=street,
        timezone=timezone,
    )


# Version 4: where venues are (district, street, time zone), the room or plate a check-in was
# bound to, what recorded it (a kiosk or a phone) and the vehicle it came in (a handheld's
# group), and the tables of users and audit, tracing, flows, screening, citizens' sign-ins
# and staff decisions.
VENUE_PLACE = (
    "ALTER TABLE venues ADD COLUMN district TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE venues ADD COLUMN street TEXT NOT NULL DEFAULT ''",
    f"ALTER TABLE venues ADD COLUMN timezone TEXT NOT NULL DEFAULT '{DEFAULT_TIMEZONE}'",
    "ALTER TABLE checkins ADD COLUMN binding TEXT",
    f"ALTER TABLE checkins ADD COLUMN source TEXT NOT NULL DEFAULT '{CheckInSource.DEVICE}'",
    "ALTER TABLE checkins ADD COLUMN group_id TEXT",
)


# The keys live in a key directory; the database records only which key ring it was served
# with, so that a host started without that directory refuses instead of making new keys.
# host_secrets, where older versions kept the keys, stays empty once they are moved out.
KEY_RING = (
    """CREATE TABLE host_key_ring (
        only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
        key_ring TEXT NOT NULL)""",
)
LEGACY_SECRETS = "SELECT name, value FROM host_secrets ORDER BY name"


def schema_v4(dialect: Dialect) -> list[str]:
    """The statements that take either backend's schema from version 3 to 4."""
    return [
        *VENUE_PLACE,
        *users.schema(dialect),
        *tracing.schema(dialect),
        *flows.schema(dialect),
        *screening.schema(dialect),
        *citizens.schema(dialect),
        *staff.schema(dialect),
    ]


def schema_v5(dialect: Dialect) -> list[str]:
    """The statements that take either backend's schema from version 4 to 5."""
    return [*sessions.schema(dialect), *KEY_RING, *limits.schema(dialect)]


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


def _denylist_head(row: Sequence[Any] | None) -> tuple[int, int | None]:
    """The deny list's version and last change: (0, None) before its first change."""
    return (0, None) if row is None else (row[0], row[1])


class SqlStorage(
    UserQueries,
    TracingQueries,
    FlowQueries,
    ScreeningQueries,
    CitizenQueries,
    StaffQueries,
    SessionQueries,
    LimitQueries,
    Storage,
):
    """Storage on a DB-API connection; a backend supplies connections, transactions and ingest.

    Queries are written with `?` placeholders; `_sql` turns them into the backend's own.
    """

    def _nonce_write(self) -> AbstractContextManager[Any]:
        """The transaction a request nonce is recorded in: by default, like any other write."""
        return self._write()

    # ---- host keys: kept in a key directory, never here -------------------------------------

    def legacy_secrets(self) -> dict[str, bytes]:
        return {name: bytes(value) for name, value in self._fetchall(LEGACY_SECRETS)}

    def forget_legacy_secrets(self, names: Collection[str]) -> None:
        with self._write() as conn:
            rows = [(name,) for name in names]
            self._executemany(conn, "DELETE FROM host_secrets WHERE name = ?", rows)

    def bound_key_ring(self) -> str | None:
        row = self._fetchone("SELECT key_ring FROM host_key_ring")
        return None if row is None else row[0]

    def bind_key_ring(self, key_ring: str) -> str:
        with self._write() as conn:
            self._run(
                conn,
                "INSERT INTO host_key_ring (only_row, key_ring) VALUES (1, ?)"
                " ON CONFLICT DO NOTHING",
                (key_ring,),
            )
            (bound,) = self._run(conn, "SELECT key_ring FROM host_key_ring").fetchone()
        return str(bound)

    # ---- venues ------------------------------------------------------------------------------

    def add_venue(self, venue: VenueRecord) -> None:
        with self._write() as conn:
            self._run(
                conn,
                f"INSERT INTO venues ({VENUE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    venue.id,
                    venue.name,
                    venue.address,
                    venue.category.value,
                    venue.code_url,
                    None if venue.rules is None else venue.rules.model_dump_json(),
                    venue.created_at_ms,
                    venue.district,
                    venue.street,
                    venue.timezone,
                ),
            )

    def get_venue(self, venue_id: str) -> VenueRecord | None:
        row = self._fetchone(f"SELECT {VENUE_COLUMNS} FROM venues WHERE id = ?", (venue_id,))
        return None if row is None else _venue(row)

    def list_venues(self) -> list[VenueRecord]:
        rows = self._fetchall(f"SELECT {VENUE_COLUMNS} FROM venues ORDER BY created_at, id")
        return [_venue(row) for row in rows]

    def update_venue(self, venue: VenueRecord) -> None:
        """Store a venue's name, address and place as given (its code and category stay)."""
        with self._write() as conn:
            self._run(
                conn,
                "UPDATE venues SET name = ?, address = ?, district = ?, street = ?, timezone = ?"
                " WHERE id = ?",
                (
                    venue.name,
                    venue.address,
                    venue.district,
                    venue.street,
                    venue.timezone,
                    venue.id,
                ),
            )

    def set_venue_rules(self, venue_id: str, rules: RuleSet) -> None:
        with self._write() as conn:
            self._run(
                conn,
                "UPDATE venues SET rules = ? WHERE id = ?",
                (rules.model_dump_json(), venue_id),
            )

    # ---- people ------------------------------------------------------------------------------

    def upsert_people(self, people: Sequence[PersonRecord]) -> list[PersonRecord]:
        hmacs = list(dict.fromkeys(person.id_hmac for person in people))
        stored: dict[bytes, PersonRecord] = {}
        with self._write() as conn:
            self._executemany(conn, UPSERT_PERSON, [_person_row(person) for person in people])
            for start in range(0, len(hmacs), LOOKUP_CHUNK):
                chunk = hmacs[start : start + LOOKUP_CHUNK]
                marks = ", ".join("?" * len(chunk))
                found = self._run(
                    conn, f"SELECT {PERSON_COLUMNS} FROM people WHERE id_hmac IN ({marks})", chunk
                )
                for row in found.fetchall():
                    person = _person(row)
                    stored[person.id_hmac] = person
        return [stored[person.id_hmac] for person in people]

    def get_person(self, person_ref: str) -> PersonRecord | None:
        row = self._fetchone(
            f"SELECT {PERSON_COLUMNS} FROM people WHERE person_ref = ?", (person_ref,)
        )
        return None if row is None else _person(row)

    def lookup_person(self, person_ref: str, audit: AuditDraft, now_ms: int) -> PersonRecord | None:
        """`get_person` for a user, recorded in the audit log in the same transaction."""

        def read(conn: Any) -> PersonRecord | None:
            row = self._run(
                conn, f"SELECT {PERSON_COLUMNS} FROM people WHERE person_ref = ?", (person_ref,)
            ).fetchone()
            return None if row is None else _person(row)

        return self.audited(audit, now_ms, read, lambda person: int(person is not None))

    # ---- devices -----------------------------------------------------------------------------

    def add_enrollment_token(
        self, token_hash: bytes, venue_id: str, created_at_ms: int, expires_at_ms: int
    ) -> None:
        with self._write() as conn:
            self._run(
                conn,
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
            try:
                venue_id = self._claim_token(
                    conn, "enrollment_tokens", "venue_id", token_hash, now_ms
                )
            except TokenRefused as refused:
                raise EnrollmentRefused(*ENROLLMENT_REFUSALS[refused.problem]) from None
            device = DeviceRecord(device_id, name, form, venue_id, public_key, now_ms, None, None)
            self._run(
                conn,
                f"INSERT INTO devices ({DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (device_id, name, form.value, venue_id, public_key, now_ms, None, None),
            )
        return device

    def get_device(self, device_id: str) -> DeviceRecord | None:
        row = self._fetchone(f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?", (device_id,))
        return None if row is None else _device(row)

    def list_devices(self, venue_id: str | None = None) -> list[DeviceRecord]:
        if venue_id is None:
            rows = self._fetchall(f"SELECT {DEVICE_COLUMNS} FROM devices ORDER BY enrolled_at, id")
        else:
            rows = self._fetchall(
                f"SELECT {DEVICE_COLUMNS} FROM devices WHERE venue_id = ? ORDER BY enrolled_at, id",
                (venue_id,),
            )
        return [_device(row) for row in rows]

    def revoke_device(self, device_id: str, now_ms: int) -> DeviceRecord | None:
        with self._write() as conn:
            self._run(
                conn,
                "UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now_ms, device_id),
            )
            row = self._run(
                conn, f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?", (device_id,)
            ).fetchone()
        return None if row is None else _device(row)

    def accept_nonce(self, device_id: str, nonce: str, now_ms: int) -> bool:
        with self._nonce_write() as conn:
            fresh = self._run(
                conn,
                "INSERT INTO device_nonces (device_id, nonce, seen_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (device_id, nonce, now_ms),
            ).rowcount
            if fresh:
                self._run(
                    conn,
                    "UPDATE devices SET last_seen_at = ? WHERE id = ?"
                    " AND (last_seen_at IS NULL OR last_seen_at <= ?)",
                    (now_ms, device_id, now_ms - LAST_SEEN_RESOLUTION_MS),
                )
        return bool(fresh)

    def purge_nonces(self, before_ms: int) -> int:
        with self._write() as conn:
            return self._run(
                conn, "DELETE FROM device_nonces WHERE seen_at < ?", (before_ms,)
            ).rowcount

    # ---- check-ins ---------------------------------------------------------------------------

    def stats(self) -> HostStats:
        with self._snapshot() as conn:
            venues, people, devices, checkins = (
                self._run(conn, f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("venues", "people", "devices", "checkins")
            )
        return HostStats(venues=venues, people=people, devices=devices, checkins=checkins)

    # ---- deny list ---------------------------------------------------------------------------

    def find_person_by_id_hmac(self, id_hmac: bytes) -> PersonRecord | None:
        row = self._fetchone(f"SELECT {PERSON_COLUMNS} FROM people WHERE id_hmac = ?", (id_hmac,))
        return None if row is None else _person(row)

    def add_denylist_entries(self, entries: Sequence[DenyListEntry], now_ms: int) -> int:
        rows = [(entry.kind.value, entry.digest, entry.reason, now_ms) for entry in entries]
        with self._write() as conn:
            added = self._executemany(
                conn,
                "INSERT INTO denylist_entries (kind, digest, reason, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                rows,
            )
            if added:
                self._run(conn, RAISE_DENYLIST_VERSION, (now_ms,))
        return added

    def remove_denylist_entry(self, kind: HashKind, digest: bytes, now_ms: int) -> bool:
        with self._write() as conn:
            removed = self._run(
                conn,
                "DELETE FROM denylist_entries WHERE kind = ? AND digest = ?",
                (kind.value, digest),
            ).rowcount
            if removed:
                self._run(conn, RAISE_DENYLIST_VERSION, (now_ms,))
        return bool(removed)

    def denylist_version(self) -> int:
        row = self._fetchone("SELECT version FROM denylist_version")
        return 0 if row is None else row[0]

    def _denylist_read(self, sql: str) -> tuple[int, int | None, list[Any]]:
        """The version, last change and the rows of `sql`, from one snapshot."""
        with self._snapshot() as conn:
            head = self._run(conn, "SELECT version, changed_at FROM denylist_version").fetchone()
            rows = self._run(conn, sql).fetchall()
        return (*_denylist_head(head), rows)

    def denylist_state(self) -> DenyListState:
        version, changed_at_ms, counts = self._denylist_read(
            "SELECT kind, COUNT(*) FROM denylist_entries GROUP BY kind"
        )
        return DenyListState(
            version, changed_at_ms, {HashKind(kind): count for kind, count in counts}
        )

    def denylist_snapshot(self) -> DenyListSnapshot:
        version, changed_at_ms, rows = self._denylist_read(
            "SELECT kind, digest FROM denylist_entries"
        )
        kinds = {kind.value: kind for kind in HashKind}  # a dict lookup: 100k rows and more
        return DenyListSnapshot(
            version, changed_at_ms, [(kinds[kind], bytes(digest)) for kind, digest in rows]
        )

    # ---- device reports ----------------------------------------------------------------------

    def save_device_report(self, device_id: str, received_at_ms: int, report: DeviceReport) -> None:
        with self._write() as conn:
            self._run(
                conn,
                "INSERT INTO device_reports (device_id, received_at, report) VALUES (?, ?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET"
                " received_at = excluded.received_at, report = excluded.report",
                (device_id, received_at_ms, report.model_dump_json()),
            )

    def device_reports(self, venue_id: str | None = None) -> dict[str, ReportRecord]:
        if venue_id is None:
            rows = self._fetchall("SELECT device_id, received_at, report FROM device_reports")
        else:
            rows = self._fetchall(
                "SELECT r.device_id, r.received_at, r.report FROM device_reports r"
                " JOIN devices d ON d.id = r.device_id WHERE d.venue_id = ?",
                (venue_id,),
            )
        return {
            device_id: ReportRecord(received_at, DeviceReport.model_validate_json(report))
            for device_id, received_at, report in rows
        }
