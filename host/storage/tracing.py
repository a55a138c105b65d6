"""Tracing queries: a case's visits, and whose check-ins overlap theirs in place and time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from host.core.times import from_ms
from host.storage.sqlbase import Dialect, SqlBase
from host.storage.users import AuditDraft
from shared.healthcode import Colour, NucleicTest, TestResult

TABLES = (
    # A case's visits are found by person; their contacts by venue and time (checkins_venue_time).
    "CREATE INDEX checkins_person_time ON checkins (person_ref, scanned_at)"
    " WHERE person_ref IS NOT NULL",
)


def schema(dialect: Dialect) -> list[str]:
    return list(TABLES)


class TooBroad(Exception):
    """A second degree asked from more first-degree contacts than it may follow."""

    def __init__(self, people: int, most: int) -> None:
        super().__init__(
            f"{people} people met the case, more than the {most} a second degree follows:"
            " narrow the window or the span, or trace the first degree only"
        )


@dataclass(frozen=True)
class TraceQuery:
    """Whom to trace (every reference the case was checked in under), over what, how deep."""

    case_refs: tuple[str, ...]
    since_ms: int  # the case's check-ins scanned in [since, until) are their visits
    until_ms: int
    window_ms: int  # another's check-in this close to a visit's, either side, is a contact
    depth: int = 1  # 2: the contacts of the first-degree contacts too
    max_sources: int = 200  # first-degree people a second degree follows at most


@dataclass(frozen=True)
class Visit:
    """A check-in of the case's."""

    venue_id: str
    venue_name: str | None  # None for a venue the host does not know
    binding: str | None
    scanned_at_ms: int


@dataclass(frozen=True)
class Contact:
    """Someone checked in near a visit, with their status now (None for what is not known)."""

    person_ref: str
    venue_id: str
    binding: str | None
    case_scanned_at_ms: int  # the visit's time: the case's check-in, or `via`'s (degree 2)
    contact_scanned_at_ms: int
    colour: Colour | None  # None: not in the register (a card holder's pseudonym)
    test: NucleicTest | None
    status_updated_at_ms: int | None
    degree: int = 1
    via: str | None = None  # the first-degree contact met, for degree 2

    @property
    def apart_ms(self) -> int:
        return abs(self.contact_scanned_at_ms - self.case_scanned_at_ms)


@dataclass(frozen=True)
class Trace:
    visits: list[Visit]
    contacts: list[Contact]  # first degree by closeness, then second degree by closeness

    @property
    def records(self) -> int:
        """How many records of people's whereabouts the trace holds: visits and contacts."""
        return len(self.visits) + len(self.contacts)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


STATUS_CHUNK = 500  # people looked up per query: well under SQLite's limit on parameters
# Each row of `{outer}` meets the check-ins `c` that `{match}`, by an index probe per row.
# SQLite's planner always probes so; PostgreSQL's may hash-join whole partitions instead when
# they have no statistics yet (a new day's partition has none), so there the probe is spelt
# out: a LATERAL subquery, which OFFSET 0 keeps from being flattened back into a join.
PROBE = {
    Dialect.SQLITE: "{outer} JOIN checkins c ON {match}",
    Dialect.POSTGRESQL: "{outer} CROSS JOIN LATERAL (SELECT c.venue_id, c.scanned_at,"
    " c.person_ref, c.binding FROM checkins c WHERE {match} OFFSET 0) c",
}
NEAR_VISIT = (
    "c.venue_id = v.venue_id AND c.scanned_at >= v.scanned_at - ?"
    " AND c.scanned_at <= v.scanned_at + ?"
)
# Every check-in that identifies someone else at a visit's venue (and room or plate: a bound
# check-in meets only check-ins bound alike, an unbound one only unbound ones), scanned within
# the window either side; `visits` gives (source, venue_id, scanned_at, binding). Only index
# range scans: the nearest of each is picked in Python, cheaper than a window function here.
NEAR = """
    SELECT c.person_ref, v.source, v.venue_id, v.binding, v.scanned_at, c.scanned_at
    FROM {probe}
    WHERE c.person_ref IS NOT NULL AND {others} {also}
        AND COALESCE(c.binding, '') = COALESCE(v.binding, '')"""
# For this transaction only. Every day's partition makes the plans look dear: above
# jit_above_cost PostgreSQL would compile them, a second or more for queries of milliseconds.
# And planning a query over every partition costs more than running it, so the prepared ones
# (psycopg prepares a query run five times on a connection) keep one generic plan, which the
# probes above keep to index lookups.
POSTGRES_SETTINGS = (
    "SELECT set_config('jit', 'off', true),"
    " set_config('plan_cache_mode', 'force_generic_plan', true)"
)
# A first-degree contact's own check-ins, from the one that met the case until `until`.
SINCE_MET = "c.person_ref = s.person_ref AND c.scanned_at >= s.from_at AND c.scanned_at < ?"
Near = tuple[str, str, str, str | None, int, int]  # person, source, venue, binding, visit, time
Clause = tuple[str, list[Any]]  # SQL with `?` placeholders, and its parameters


def _nearest(rows: list[Near], per_visit: bool) -> list[Near]:
    """Each person's check-in nearest a visit (per visit, or overall), nearest first.

    Ties go to the earlier check-in, then to the first source by reference; the list is ordered
    by how far apart, then the visit's time, then the person.
    """
    best: dict[tuple[Any, ...], tuple[tuple[int, int, str], Near]] = {}
    for row in rows:
        person, source, venue, binding, visit_at, contact_at = row
        key = (person, source, venue, binding, visit_at) if per_visit else (person,)
        rank = (abs(contact_at - visit_at), contact_at, source)
        kept = best.get(key)
        if kept is None or rank < kept[0]:
            best[key] = (rank, row)
    return sorted((row for _, row in best.values()), key=lambda r: (abs(r[5] - r[4]), r[4], r[0]))


class TracingQueries(SqlBase):
    """The tracing rule in SQL, on both backends."""

    def trace(self, query: TraceQuery, audit: AuditDraft, now_ms: int) -> Trace:
        """The case's visits and contacts, recorded in the audit log in the same transaction.

        `TooBroad` (and nothing recorded) when a second degree would follow too many people.
        """

        def read(conn: Any) -> Trace:
            if self.dialect is Dialect.POSTGRESQL:
                self._run(conn, POSTGRES_SETTINGS)
            visits = self._visits(conn, query)
            first = self._first_degree(conn, query)
            second: list[Near] = []
            if query.depth == 2 and first:
                sources: dict[str, int] = {}  # each first-degree contact, from their first meeting
                for person, *_, contact_at in first:
                    sources[person] = min(sources.get(person, contact_at), contact_at)
                if len(sources) > query.max_sources:
                    raise TooBroad(len(sources), query.max_sources)
                second = self._second_degree(conn, query, sources)
            statuses = self._statuses(conn, {row[0] for row in first + second})
            return Trace(
                visits,
                [_contact(row, statuses, 1) for row in first]
                + [_contact(row, statuses, 2) for row in second],
            )

        return self.audited(audit, now_ms, read, lambda trace: trace.records)

    # PostgreSQL takes each list as one array parameter, so that a query's text never changes
    # and psycopg prepares it: planning a query over every day's partition costs more than
    # running it. SQLite takes a parameter per item.

    def _among(self, column: str, values: Sequence[Any], *, negated: bool = False) -> Clause:
        """`column` is one of `values` (or none of them, `negated`)."""
        if self.dialect is Dialect.POSTGRESQL:
            return f"{column} {'<> ALL' if negated else '= ANY'}(?)", [list(values)]
        return f"{column} {'NOT IN' if negated else 'IN'} ({_marks(len(values))})", list(values)

    def _sources(self, sources: dict[str, int]) -> Clause:
        """The CTE `sources (person_ref, from_at)` of these people and times."""
        if self.dialect is Dialect.POSTGRESQL:
            table = "SELECT * FROM unnest(?::text[], ?::bigint[])"
            return f"sources (person_ref, from_at) AS ({table})", [
                list(sources),
                list(sources.values()),
            ]
        values = ", ".join("(?, ?)" for _ in sources)
        flat = [value for source in sources.items() for value in source]
        return f"sources (person_ref, from_at) AS (VALUES {values})", flat

    def _probe(self, outer: str, match: str) -> str:
        return PROBE[self.dialect].format(outer=outer, match=match)

    def _near(self, query: TraceQuery, also: str = "") -> Clause:
        """NEAR for the `visits` CTE, and its parameters."""
        others, params = self._among("c.person_ref", query.case_refs, negated=True)
        sql = NEAR.format(probe=self._probe("visits v", NEAR_VISIT), others=others, also=also)
        return sql, [query.window_ms, query.window_ms, *params]

    def _visits(self, conn: Any, query: TraceQuery) -> list[Visit]:
        cases, params = self._among("c.person_ref", query.case_refs)
        rows = self._run(
            conn,
            "SELECT c.venue_id, v.name, c.binding, c.scanned_at"
            f" FROM checkins c LEFT JOIN venues v ON v.id = c.venue_id WHERE {cases}"
            " AND c.scanned_at >= ? AND c.scanned_at < ? ORDER BY c.scanned_at, c.venue_id",
            (*params, query.since_ms, query.until_ms),
        ).fetchall()
        return [Visit(*row) for row in rows]

    def _first_degree(self, conn: Any, query: TraceQuery) -> list[Near]:
        """Per person and visit, their check-in nearest the case's."""
        cases, case_params = self._among("person_ref", query.case_refs)
        near, near_params = self._near(query)
        sql = (
            "WITH visits AS (SELECT person_ref AS source, venue_id, scanned_at, binding"
            f" FROM checkins WHERE {cases} AND scanned_at >= ? AND scanned_at < ?) {near}"
        )
        params = (*case_params, query.since_ms, query.until_ms, *near_params)
        return _nearest(self._run(conn, sql, params).fetchall(), per_visit=True)

    def _second_degree(self, conn: Any, query: TraceQuery, sources: dict[str, int]) -> list[Near]:
        """Per person, their check-in nearest one of a first-degree contact's since they met.

        A first-degree contact's check-ins count from the one that met the case until `until`;
        the case and the first-degree contacts themselves are not listed again.
        """
        table, source_params = self._sources(sources)
        near, near_params = self._near(
            query, "AND NOT EXISTS (SELECT 1 FROM sources s WHERE s.person_ref = c.person_ref)"
        )
        sql = (
            f"WITH {table}, visits AS (SELECT c.person_ref AS source, c.venue_id, c.scanned_at,"
            f" c.binding FROM {self._probe('sources s', SINCE_MET)}) {near}"
        )
        params = (*source_params, query.until_ms, *near_params)
        return _nearest(self._run(conn, sql, params).fetchall(), per_visit=False)

    def _statuses(self, conn: Any, people: set[str]) -> dict[str, tuple[Any, ...]]:
        """Colour, test time and result, and last update of those of `people` in the register."""
        wanted, found = sorted(people), {}
        for start in range(0, len(wanted), STATUS_CHUNK):
            among, params = self._among("person_ref", wanted[start : start + STATUS_CHUNK])
            rows = self._run(
                conn,
                "SELECT person_ref, colour, test_sampled_at, test_result, updated_at"
                f" FROM people WHERE {among}",
                params,
            ).fetchall()
            found.update((row[0], row[1:]) for row in rows)
        return found


def _contact(row: Near, statuses: dict[str, tuple[Any, ...]], degree: int) -> Contact:
    person_ref, source, venue_id, binding, visit_at, contact_at = row
    colour, sampled_at, result, updated_at = statuses.get(person_ref, (None,) * 4)
    return Contact(
        person_ref=person_ref,
        venue_id=venue_id,
        binding=binding,
        case_scanned_at_ms=visit_at,
        contact_scanned_at_ms=contact_at,
        colour=None if colour is None else Colour(colour),
        test=None if sampled_at is None else NucleicTest(from_ms(sampled_at), TestResult(result)),
        status_updated_at_ms=updated_at,
        degree=degree,
        via=source if degree > 1 else None,
    )
