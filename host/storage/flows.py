"""Flow queries: check-in counts per venue and hour kept at ingest, and spike alerts."""

from __future__ import annotations

from host.storage.sqlbase import Dialect, SqlBase


def schema(dialect: Dialect) -> list[str]:
    return []


class FlowQueries(SqlBase):
    """Counts per venue, street, district and category; alerts and their delivery."""
