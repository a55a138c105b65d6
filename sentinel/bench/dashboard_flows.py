"""The dashboard's flows and alerts pages timed on a synthetic city, per backend, as a table.

The city is `sentinel.bench.tracing.city`'s (14 days, venues of very different sizes, all in
one district and category, so a district's page counts the whole city). Each page is asked
through the app in-process (FastAPI's TestClient, signed in as the admin), and the median
and slowest of `RUNS` answers are kept. Run: `sentinel bench flows-pages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from host.storage import Database
from sentinel.bench.dashboard import on_fresh_databases, time_pages
from sentinel.bench.host import BACKEND_NAMES
from sentinel.bench.tracing import city

RUNS = 7
QUICK_CHECKINS = 200_000
FULL_CHECKINS = 2_000_000


@dataclass(frozen=True)
class PageRun:
    backend: str
    checkins: int
    venues: int
    page: str
    median_ms: float
    slowest_ms: float


def cases(busiest: str, day: str) -> list[tuple[str, str]]:
    """(what is asked, its path): one venue and the whole city, by hour and by day."""
    flows = "/dashboard/flows?"
    return [
        ("busiest venue, hours", f"{flows}level=venue&group={busiest}&day={day}"),
        ("busiest venue, 30 days", f"{flows}level=venue&group={busiest}&bucket=day&days=30"),
        ("district (whole city), hours", f"{flows}level=district&group=&day={day}"),
        ("district (whole city), 30 days", f"{flows}level=district&bucket=day&days=30"),
        ("alerts", "/dashboard/alerts"),
    ]


def measure(checkins: int, backends: Sequence[str], db_url: str) -> list[PageRun]:
    """Every page timed on a fresh city of about `checkins` check-ins, per backend."""
    return on_fresh_databases(
        backends, db_url, lambda backend, database: measure_backend(backend, database, checkins)
    )


def measure_backend(backend: str, database: Path | str, checkins: int) -> list[PageRun]:
    storage = Database.parse(database).open()
    try:
        population = city(storage, backend, checkins, 2022)
    finally:
        storage.close()
    end = datetime.fromtimestamp(population.end_ms / 1000 - 3600, UTC)
    asked = cases(population.venues[0], end.date().isoformat())
    timed = time_pages(database, end.timestamp, asked, RUNS)
    return [PageRun(backend, population.checkins, len(population.venues), *page) for page in timed]


def table(runs: Sequence[PageRun]) -> list[str]:
    lines = [
        "| backend | check-ins | venues | page | median ms | slowest ms |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {BACKEND_NAMES[r.backend]} | {r.checkins:,} | {r.venues:,} | {r.page} |"
        f" {r.median_ms:.1f} | {r.slowest_ms:.1f} |"
        for r in runs
    ]
    return lines
