"""Tracing queries: a case's visits, and whose check-ins overlap theirs in place and time."""

from __future__ import annotations

from host.storage.sqlbase import Dialect, SqlBase

TABLES = (
    # A case's visits are found by person; their contacts by venue and time (checkins_venue_time).
    "CREATE INDEX checkins_person_time ON checkins (person_ref, scanned_at)"
    " WHERE person_ref IS NOT NULL",
)


def schema(dialect: Dialect) -> list[str]:
    return list(TABLES)


class TracingQueries(SqlBase):
    """The tracing rule in SQL, on both backends."""
