"""Flows at scale: a synthetic city's check-ins with spikes planted, the detector and flows timed.

The city is `sentinel.bench.tracing.populate`'s (many venues of very different sizes, 14 days
in Beijing time). On its last day, `SPIKES` of the busiest venues get nine times their usual
day on top (ten times in all), up to the evening. The spike detector then runs as a host
worker runs it, at 19:30 that day: the first pass (which stores the alerts), then passes with
nothing new (what each minute costs), timed; the alerts are checked against the venues
planted. Flow queries are timed too, straight on the storage, per backend.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, cast

from host.core.times import DAY_MS, HOUR_MS, from_ms
from host.flows import SpikeRule, detect_spikes, flows
from host.storage import Database
from host.storage.flows import FlowFilter, FlowLevel, FlowQueries, Span
from host.storage.sql import SqlStorage
from sentinel.bench.host import (
    BACKEND_NAMES,
    BACKENDS,
    DEFAULT_DB_URL,
    POSTGRESQL,
    Row,
    fresh_database,
    markdown,
    postgres_unavailable,
)
from sentinel.bench.tracing import DAYS, Population, city, venues_for
from sentinel.progress import progress
from shared.messages import MAX_BATCH, CheckIn
from shared.policy import Outcome
from shared.uuid7 import Uuid7Generator
from shared.verification import CredentialKind

FULL_CHECKINS = 10_000_000
QUICK_CHECKINS = 200_000
SPIKES = 20  # venues given a spike on the last day: every third of the busiest 60
SPIKE_FACTOR = 10
SPIKE_HOURS = range(8, 20)  # local hours the extra check-ins fall in
DETECT_AT_MS = 19 * HOUR_MS + 30 * 60_000  # local time of day the detector is timed at
STEADY_PASSES = 5  # passes after the first, with nothing new to store
QUERY_RUNS = 5  # each flow query, the median kept


@dataclass(frozen=True)
class FlowQuery:
    name: str
    level: FlowLevel
    bucket: Span
    days: int


FLOW_QUERIES = (
    FlowQuery("every venue by hour, last 24 h", FlowLevel.VENUE, Span.HOUR, 1),
    FlowQuery("every venue by day, last 7 days", FlowLevel.VENUE, Span.DAY, 7),
    FlowQuery("per category by hour, last 24 h", FlowLevel.CATEGORY, Span.HOUR, 1),
    FlowQuery("per district by day, last 7 days", FlowLevel.DISTRICT, Span.DAY, 7),
)


@dataclass(frozen=True)
class DetectorRun(Row):
    KEY_COLUMNS: ClassVar = ("checkins", "backend")
    FIGURE_COLUMNS: ClassVar = (
        "venues",
        "busy venues read",
        "hourly rows read",
        "first pass s",
        "later passes s (median)",
        "alerts",
        "planted found",
        "false alarms",
    )
    checkins: int
    backend: str
    venues: int = 0
    busy: int = 0
    rows: int = 0
    first_s: float = 0.0
    steady_s: tuple[float, ...] = ()
    alerts: int = 0
    found: int = 0
    false_alarms: int = 0
    not_measured: str | None = None

    def figures_json(self) -> dict[str, Any]:
        return {
            "venues": self.venues,
            "busy_venues": self.busy,
            "hourly_rows": self.rows,
            "first_pass_s": round(self.first_s, 3),
            "later_passes_s": round(statistics.median(self.steady_s), 3),
            "alerts": self.alerts,
            "planted": SPIKES,
            "planted_found": self.found,
            "false_alarms": self.false_alarms,
        }

    def figure_cells(self) -> list[str]:
        figures = self.figures_json()
        return [
            f"{self.venues:,}",
            f"{self.busy:,}",
            f"{self.rows:,}",
            f"{figures['first_pass_s']:.3f}",
            f"{figures['later_passes_s']:.3f}",
            str(self.alerts),
            f"{self.found} of {SPIKES}",
            str(self.false_alarms),
        ]

    @property
    def order(self) -> tuple[int, ...]:
        return (BACKENDS.index(self.backend),)


@dataclass(frozen=True)
class FlowQueryRun(Row):
    KEY_COLUMNS: ClassVar = ("query", "checkins", "backend")
    FIGURE_COLUMNS: ClassVar = ("counts returned", "ms (median)")
    query: str
    checkins: int
    backend: str
    counts: int = 0
    seconds: tuple[float, ...] = ()
    not_measured: str | None = None

    def figures_json(self) -> dict[str, Any]:
        return {"counts": self.counts, "ms": round(statistics.median(self.seconds) * 1000, 1)}

    def figure_cells(self) -> list[str]:
        return [f"{self.counts:,}", f"{self.figures_json()['ms']:.1f}"]

    @property
    def order(self) -> tuple[int, ...]:
        names = [query.name for query in FLOW_QUERIES]
        return names.index(self.query), BACKENDS.index(self.backend)


def plant_spikes(storage: SqlStorage, population: Population) -> list[str]:
    """Nine more of its usual days, on the last day, at `SPIKES` of the busiest venues."""
    last_day = population.end_ms - DAY_MS
    make_id = Uuid7Generator()
    planted = population.venues[: 3 * SPIKES : 3]
    for venue_id in planted:
        week = storage.hourly_counts(venue_id, last_day - 7 * DAY_MS, last_day)
        extra = (SPIKE_FACTOR - 1) * sum(count.total for count in week) // 7
        hours = [last_day + hour * HOUR_MS for hour in SPIKE_HOURS]
        moments = [hours[n % len(hours)] + (n * 7919) % HOUR_MS for n in range(extra)]
        checkins = [
            CheckIn.model_construct(
                id=make_id(moment),
                venue_id=venue_id,
                scanned_at=from_ms(moment),
                person_ref=None,
                kind=CredentialKind.HEALTH,
                outcome=Outcome.PASS,
                reasons=["ok"],
                temperature_c=None,
                thermometer=None,
                clock_trusted=True,
                binding=None,
                sealed_identity=None,
            )
            for moment in sorted(moments)
        ]
        for start in range(0, len(checkins), MAX_BATCH):
            batch = checkins[start : start + MAX_BATCH]
            storage.add_checkins(f"d_{venue_id[2:]}", venue_id, population.end_ms, batch)
    return planted


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


class ReadCounter:
    """A storage that counts what the detector reads through it: venues, then their hours."""

    def __init__(self, storage: FlowQueries) -> None:
        self.storage = storage
        self.busy = 0
        self.rows = 0

    def busy_venues(self, *args: Any) -> list[str]:
        found = self.storage.busy_venues(*args)
        self.busy = len(found)
        return found

    def venue_hours(self, *args: Any) -> dict[str, tuple[str, list[tuple[int, int]]]]:
        found = self.storage.venue_hours(*args)
        self.rows = sum(len(hours) for _, hours in found.values())
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)


def time_detector(
    storage: FlowQueries, population: Population, planted: Sequence[str], backend: str
) -> DetectorRun:
    """The detector's first pass and `STEADY_PASSES` more, at 19:30 on the last day."""
    rule = SpikeRule()
    now = population.end_ms - DAY_MS + DETECT_AT_MS
    counter = ReadCounter(storage)
    reads = cast(FlowQueries, counter)
    first_s, alerts = _timed(lambda: detect_spikes(reads, rule, now))
    steady = tuple(_timed(lambda: detect_spikes(reads, rule, now))[0] for _ in range(STEADY_PASSES))
    alerted = {alert.spike.venue_id for alert in alerts}
    return DetectorRun(
        population.checkins,
        backend,
        len(population.venues),
        counter.busy,
        counter.rows,
        first_s,
        steady,
        len(alerts),
        len(alerted & set(planted)),
        len(alerted - set(planted)),
    )


def time_flow_queries(
    storage: FlowQueries, population: Population, backend: str
) -> list[FlowQueryRun]:
    """Each of `FLOW_QUERIES` up to the end of the data, `QUERY_RUNS` times."""

    def ask(query: FlowQuery) -> int:
        since_ms = population.end_ms - query.days * DAY_MS
        answer = flows(
            storage,
            query.level,
            query.bucket,
            since_ms=since_ms,
            until_ms=population.end_ms,
            where=FlowFilter(),
        )
        return len(answer)

    runs = []
    for query in FLOW_QUERIES:
        timed = [_timed(lambda query=query: ask(query)) for _ in range(QUERY_RUNS)]
        seconds = tuple(seconds for seconds, _ in timed)
        runs.append(FlowQueryRun(query.name, population.checkins, backend, timed[0][1], seconds))
    return runs


def measure_backend(
    backend: str, workdir: Path, *, db_url: str, checkins: int, seed: int
) -> tuple[DetectorRun, list[FlowQueryRun]]:
    """Populate a fresh database, plant the spikes, then time the detector and flow queries."""
    with fresh_database(backend, workdir, db_url) as database:
        storage = Database.parse(database).open()
        assert isinstance(storage, SqlStorage)
        try:
            population = city(storage, backend, checkins, seed)
            planted = plant_spikes(storage, population)
            progress.update(f"{BACKEND_NAMES[backend]}: {len(planted)} spikes planted")
            return (
                time_detector(storage, population, planted, backend),
                time_flow_queries(storage, population, backend),
            )
        finally:
            storage.close()



def measure(
    *,
    backends: Sequence[str] = BACKENDS,
    db_url: str = DEFAULT_DB_URL,
    checkins: int = FULL_CHECKINS,
    seed: int = 2022,
) -> tuple[list[DetectorRun], list[FlowQueryRun]]:
    """The detector and every flow query on each backend, in a temporary directory."""
    detector: list[DetectorRun] = []
    queries: list[FlowQueryRun] = []
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-flows-") as temporary:
        for backend in backends:
            reason = postgres_unavailable(db_url) if backend == POSTGRESQL else None
            if reason is not None:
                detector.append(DetectorRun(checkins, backend, not_measured=reason))
                queries += [
                    FlowQueryRun(query.name, checkins, backend, not_measured=reason)
                    for query in FLOW_QUERIES
                ]
                continue
            workdir = Path(temporary) / backend
            workdir.mkdir()
            run_, runs = measure_backend(
                backend, workdir, db_url=db_url, checkins=checkins, seed=seed
            )
            detector.append(run_)
            queries += runs
    return detector, queries


def tables(detector: Sequence[DetectorRun], queries: Sequence[FlowQueryRun]) -> list[str]:
    """The headings and Markdown tables of the runs."""
    checkins = max(run.checkins for run in detector)
    rule = SpikeRule()
    return [
        f"Spike detector: `detect_spikes` as a host worker runs it, at 19:30 on the last of "
        f"{DAYS} days of {checkins:,} check-ins ({venues_for(checkins):,} venues), {SPIKES} of "
        f"the busiest given {SPIKE_FACTOR}x their usual day; rule: {rule.ratio:g}x the median "
        f"of {rule.baseline_days} days, at least {rule.min_hour} an hour or {rule.min_day} a "
        f"day; the first pass stores the alerts, {STEADY_PASSES} more find nothing new\n",
        *markdown(detector),
        f"\nFlows: `host.flows.flows` straight on the storage, up to the end of the data, "
        f"median of {QUERY_RUNS}\n",
        *markdown(queries),
    ]


def run(
    *,
    backends: Sequence[str] = BACKENDS,
    db_url: str = DEFAULT_DB_URL,
    quick: bool = False,
    checkins: int | None = None,
    as_json: bool = False,
    seed: int = 2022,
) -> tuple[list[DetectorRun], list[FlowQueryRun]]:
    """Measure (10 million check-ins, or 200,000 with `quick`) and print tables or JSON."""
    detector, queries = measure(
        backends=backends,
        db_url=db_url,
        checkins=checkins or (QUICK_CHECKINS if quick else FULL_CHECKINS),
        seed=seed,
    )
    if as_json:
        measured = datetime.now(UTC).isoformat()
        print(
            json.dumps(
                {
                    "measured": measured,
                    "spike_detector": [row.as_json() for row in detector],
                    "flows": [row.as_json() for row in queries],
                }
            )
        )
    else:
        print("\n".join(tables(detector, queries)))
    return detector, queries
