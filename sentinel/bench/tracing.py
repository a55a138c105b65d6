"""Tracing at scale: a synthetic city's check-ins, then `POST /api/v1/tracing` timed, per backend.

`populate` fills a fresh database through `Storage.add_checkins` with a deterministic city:
many venues of very different sizes, people who come back to a few favourite places a few
times a day, some rooms and vehicle plates. A real `sentinel host serve` then answers tracing
queries from an epidemiologist's token, one at a time, and each is timed from request to the
whole answer read: p50, p95 and p99 per kind of query, and how much each returned.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from base64 import b32encode
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import httpx
import numpy as np

from host.core.times import DAY_MS, HOUR_MS, from_ms
from host.identities import PSEUDONYM_PREFIX
from host.storage import Database
from host.storage.base import PersonRecord, Storage, VenueRecord
from sentinel.bench.host import (
    BACKEND_NAMES,
    BACKENDS,
    DEFAULT_DB_URL,
    POSTGRESQL,
    Row,
    fresh_database,
    markdown,
    postgres_unavailable,
    start_host,
)
from sentinel.demo import DEMO_PUBLIC_URL
from sentinel.progress import progress
from shared.healthcode import Colour, NucleicTest, TestResult
from shared.messages import API_PREFIX, MAX_BATCH, CheckIn
from shared.policy import Outcome, VenueCategory
from shared.verification import CredentialKind

FULL_CHECKINS = 10_000_000
QUICK_CHECKINS = 200_000
FULL_QUERIES = 300  # timed queries per kind of query
QUICK_QUERIES = 40
WARMUP_QUERIES = 20  # answered before timing starts, by other cases
DAYS = 14  # of check-ins stored, ending now (well within the host's 28-day retention)
# As DESIGN.md's district: ~20,000 scan points, ~400,000 scans a day, 20 a point; and people
# who check in a few times a day.
VENUE_CHECKINS_A_DAY = 20
PERSON_CHECKINS_A_DAY = 2.4

# The city's shape.
POPULARITY_OFFSET = 50  # venue i draws 1 / (i + offset) of the traffic: a long tail of shops
FAVOURITES = 4  # places each person keeps going back to
FAVOURITE_SHARE = 0.7  # check-ins at one of them; the rest anywhere, by popularity
UNIDENTIFIED_SHARE = 0.03  # referred to staff with nobody identified (a code that failed)
CARD_HOLDER_SHARE = 0.05  # people not in the register, checked in by ID card (a pseudonym)
BOUND_SHARE = 0.1  # venues whose codes name a room (hotels) or a plate (buses, taxis)
BINDINGS_PER_VENUE = 40
HOLD_DAYS = 5  # a device sends what it holds at least this often (under PostgreSQL's 7 days)
UTC_OFFSET_MS = 8 * HOUR_MS  # venues keep Beijing time
# Check-ins per local hour: quiet nights, a morning, a lunch and an evening peak.
HOURLY = np.array(
    [1, 0.5, 0.3, 0.3, 0.5, 1, 3, 8, 10, 7, 6, 8, 9, 7, 6, 6, 7, 9, 10, 8, 6, 4, 3, 2], float
)
COLOURS = (Colour.GREEN, Colour.YELLOW, Colour.RED)
COLOUR_SHARES = (0.97, 0.02, 0.01)
PASS_REASONS, DENY_REASONS = ["ok"], ["colour-not-accepted: the health status must be green"]
REFER_REASONS = ["untrusted-signer: no health key with this id"]
PURPOSE = "bench: tracing at scale"
PROGRESS_EVERY = 1_000_000  # check-ins stored between progress reports


@dataclass(frozen=True)
class Query:
    """One kind of tracing query: how far back from the end of the data, how close, how deep."""

    name: str
    days: float
    window_minutes: int
    depth: int


QUERIES = (
    Query("7 days, ±30 min", 7, 30, 1),
    Query("14 days, ±30 min", 14, 30, 1),
    Query("second degree: 3 days, ±15 min", 3, 15, 2),
)


def venues_for(count: int, days: int = DAYS) -> int:
    return max(10, round(count / (VENUE_CHECKINS_A_DAY * days)))


def people_for(count: int, days: int = DAYS) -> int:
    return max(10, round(count / (PERSON_CHECKINS_A_DAY * days)))


def _token(seed: int, kind: str, index: int, length: int) -> bytes:
    return hashlib.blake2b(f"{seed}:{kind}:{index}".encode(), digest_size=length).digest()


def venue_id(seed: int, index: int) -> str:
    return "v_" + b32encode(_token(seed, "venue", index, 10)).decode().lower()


def person_ref(seed: int, index: int, people: int) -> str:
    """The reference person `index` of `populate(..., people, seed)` is checked in under.

    The last `CARD_HOLDER_SHARE` of them are card holders outside the register, with a
    pseudonym as the host gives them; the rest are registered, with a status.
    """
    if index >= registered_people(people):
        return PSEUDONYM_PREFIX + _token(seed, "card", index, 12).hex()
    return "p_" + b32encode(_token(seed, "person", index, 10)).decode().lower()


def registered_people(people: int) -> int:
    return people - int(people * CARD_HOLDER_SHARE)


@dataclass(frozen=True)
class Population:
    """What `populate` stored: enough for a benchmark to pick cases, places and times."""

    checkins: int
    venues: list[str]  # ids, the most visited first
    people: int
    seed: int
    start_ms: int  # the first day stored begins here (local midnight)
    end_ms: int  # and the last ends here

    def person_ref(self, index: int) -> str:
        return person_ref(self.seed, index, self.people)


def populate(
    storage: Storage,
    count: int,
    *,
    venues: int,
    days: int,
    people: int,
    seed: int,
    end_ms: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Population:
    """Store `count` check-ins of a synthetic city over `days` days ending at `end_ms` (now).

    Deterministic for a seed (ids too). `venues` venues (created), of Zipf-like popularity;
    `people` people, each with `FAVOURITES` favourite places drawn by popularity, where most of
    their check-ins are; the registered ones (all but `CARD_HOLDER_SHARE`) are stored with a
    status. Times follow `HOURLY` in Beijing time. A tenth of the venues bind their codes to
    rooms or plates, each person keeping to theirs. A few check-ins identify nobody.

    Stored through `add_checkins` as each venue's device would send them, in time order: a
    full batch of `MAX_BATCH` (1000) as soon as there is one, and what is left once its oldest
    is `HOLD_DAYS` old. `progress` is told the running total now and then.
    """
    rng = np.random.default_rng(seed)
    end_ms = (time.time_ns() // 1_000_000 if end_ms is None else end_ms) // DAY_MS * DAY_MS
    start_ms = end_ms - days * DAY_MS - UTC_OFFSET_MS  # a local midnight
    ids = [venue_id(seed, index) for index in range(venues)]
    refs = [person_ref(seed, index, people) for index in range(people)]
    _add_venues(storage, ids, start_ms)
    _add_people(storage, refs[: registered_people(people)], rng, seed, end_ms)
    city = City.drawn(rng, venues, people, start_ms)
    bound = np.flatnonzero(rng.random(venues) < BOUND_SHARE)
    binding_of = {int(v): "room" if i % 2 else "plate" for i, v in enumerate(bound)}

    stored, reported = 0, 0
    pending: tuple[np.ndarray, ...] | None = None  # check-ins generated, not sent yet
    for day in range(days):
        fresh = city.day(rng, day, count // days + (day < count % days))
        if pending is not None:
            fresh = tuple(np.concatenate(pair) for pair in zip(pending, fresh, strict=True))
        columns = fresh
        order = np.lexsort((columns[1], columns[0]))  # by venue, then time
        columns = tuple(column[order] for column in columns)
        received_ms = start_ms + (day + 1) * DAY_MS + 60_000
        send = _due(columns[0], columns[1], received_ms - HOLD_DAYS * DAY_MS, day == days - 1)
        pending = tuple(column[~send] for column in columns)
        for index, batch in _batches(*(column[send].tolist() for column in columns)):
            place = ids[index]
            venue = (index, place, binding_of.get(index))
            checkins = [_checkin(venue, refs, *row) for row in batch]
            stored += storage.add_checkins(f"d_{place[2:]}", place, received_ms, checkins)
            if progress is not None and stored >= reported + PROGRESS_EVERY:
                reported = stored
                progress(stored)
    return Population(stored, ids, people, seed, start_ms, start_ms + days * DAY_MS)


@dataclass(frozen=True)
class City:
    """Where and when people check in: venues' popularity, people's favourites, the hours."""

    popularity: np.ndarray  # each venue's share of the traffic
    favourites: np.ndarray  # people x FAVOURITES venue indices
    hourly: np.ndarray  # each local hour's share of a day's check-ins
    start_ms: int

    @classmethod
    def drawn(cls, rng: np.random.Generator, venues: int, people: int, start_ms: int) -> City:
        popularity = 1 / (np.arange(venues) + POPULARITY_OFFSET)
        popularity /= popularity.sum()
        favourites = rng.choice(venues, size=(people, FAVOURITES), p=popularity)
        return cls(popularity, favourites, HOURLY / HOURLY.sum(), start_ms)

    def day(self, rng: np.random.Generator, day: int, size: int) -> tuple[np.ndarray, ...]:
        """A day's check-ins as columns: venue, time, person, a roll, temperature, id bits."""
        people = len(self.favourites)
        person = rng.integers(0, people, size)
        anywhere = rng.choice(len(self.popularity), size, p=self.popularity)
        own = self.favourites[person, rng.integers(0, FAVOURITES, size)]
        venue = np.where(rng.random(size) < FAVOURITE_SHARE, own, anywhere)
        moment = (
            self.start_ms
            + day * DAY_MS
            + rng.choice(24, size, p=self.hourly) * HOUR_MS
            + rng.integers(0, HOUR_MS, size)
        )
        return (
            venue,
            moment,
            person,
            rng.random(size),  # who is identified, and the outcome
            rng.normal(36.5, 0.25, size).round(1),
            rng.integers(0, 1 << 62, size),  # the ids' random bits
        )


def _due(venue: np.ndarray, moment: np.ndarray, held_since_ms: int, last: bool) -> np.ndarray:
    """Which check-ins, sorted by venue and time, are sent now: as many as fill whole batches.

    And all of a venue's once its oldest was scanned before `held_since_ms`, or on the `last` day.
    """
    if not len(venue):
        return np.zeros(0, bool)
    starts = np.flatnonzero(np.r_[True, venue[1:] != venue[:-1]])
    lengths = np.diff(np.r_[starts, len(venue)])
    run = np.repeat(np.arange(len(starts)), lengths)
    position = np.arange(len(venue)) - starts[run]
    whole = np.full(len(starts), last) | (moment[starts] < held_since_ms)
    return whole[run] | (position < lengths[run] // MAX_BATCH * MAX_BATCH)


def _add_venues(storage: Storage, ids: Sequence[str], created_ms: int) -> None:
    for index, venue in enumerate(ids):
        storage.add_venue(
            VenueRecord(
                venue,
                f"Bench venue {index}",
                f"{index} Bench Road",
                VenueCategory.PUBLIC_PLACE,
                f"{DEMO_PUBLIC_URL}/v/{venue}",
                None,
                created_ms,
            )
        )


def _add_people(
    storage: Storage, refs: Sequence[str], rng: np.random.Generator, seed: int, now_ms: int
) -> None:
    """The registered people with a colour and a recent negative test (no ID numbers exist)."""
    colours = rng.choice(len(COLOURS), len(refs), p=COLOUR_SHARES).tolist()
    sampled = (now_ms - rng.integers(HOUR_MS, 3 * DAY_MS, len(refs))).tolist()
    for start in range(0, len(refs), 10_000):
        storage.upsert_people(
            [
                PersonRecord(
                    refs[index],
                    _token(seed, "id", index, 32),
                    COLOURS[colours[index]],
                    NucleicTest(from_ms(sampled[index]), TestResult.NEGATIVE),
                    now_ms,
                )
                for index in range(start, min(len(refs), start + 10_000))
            ]
        )


def _batches(venue: list[int], *rows: list[Any]) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
    """Runs of one venue (the rows are sorted by venue), cut at `MAX_BATCH` rows."""
    start = 0
    while start < len(venue):
        end = start + 1
        limit = min(len(venue), start + MAX_BATCH)
        while end < limit and venue[end] == venue[start]:
            end += 1
        yield venue[start], list(zip(*(column[start:end] for column in rows), strict=True))
        start = end


def _checkin(
    venue: tuple[int, str, str | None], refs: Sequence[str], *row: Any
) -> CheckIn:
    """One check-in from its generated row: (time, person, roll, temperature, id bits)."""
    venue_index, venue_id, bound = venue
    moment, person, roll, temperature, bits = row
    identified = roll >= UNIDENTIFIED_SHARE
    if not identified:
        outcome, reasons = Outcome.REFER, REFER_REASONS
    elif roll < 0.95:
        outcome, reasons = Outcome.PASS, PASS_REASONS
    else:
        outcome, reasons = Outcome.DENY, DENY_REASONS
    ref = refs[person] if identified else None
    binding = None
    if bound is not None and identified:
        number = (person * 7919 + venue_index) % BINDINGS_PER_VENUE  # each keeps to theirs
        binding = f"room:{1001 + number}" if bound == "room" else f"plate:京B{number:05d}"
    card = ref is not None and ref.startswith(PSEUDONYM_PREFIX)
    return CheckIn.model_construct(
        id=UUID(int=(moment << 80) | (0x7 << 76) | (2 << 62) | bits),
        venue_id=venue_id,
        scanned_at=from_ms(moment),
        person_ref=ref,
        kind=CredentialKind.ID_CARD if card else CredentialKind.HEALTH,
        outcome=outcome,
        reasons=reasons,
        temperature_c=temperature,
        thermometer=None,
        clock_trusted=True,
        binding=binding,
        sealed_identity=None,
    )


# ---- the benchmark ------------------------------------------------------------------------


@dataclass(frozen=True)
class TracingRun(Row):
    KEY_COLUMNS: ClassVar = ("query", "checkins", "backend")
    FIGURE_COLUMNS: ClassVar = (
        "queries",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "visits p50",
        "contacts p50 / p95 / max",
        "refused too broad",
    )
    query: str
    checkins: int
    backend: str
    latencies_ms: tuple[float, ...] = ()
    visits: tuple[int, ...] = ()
    contacts: tuple[int, ...] = ()  # rows returned, per answered query
    too_broad: int = 0  # second-degree queries refused (422 too-broad): timed all the same
    not_measured: str | None = None

    def figures_json(self) -> dict[str, Any]:
        return {
            "queries": len(self.latencies_ms),
            "p50_ms": round(_percentile(self.latencies_ms, 50), 2),
            "p95_ms": round(_percentile(self.latencies_ms, 95), 2),
            "p99_ms": round(_percentile(self.latencies_ms, 99), 2),
            "visits_p50": _percentile(self.visits, 50),
            "contacts_p50": _percentile(self.contacts, 50),
            "contacts_p95": _percentile(self.contacts, 95),
            "contacts_max": max(self.contacts, default=0),
            "too_broad": self.too_broad,
        }

    def figure_cells(self) -> list[str]:
        figures = self.figures_json()
        return [
            str(figures["queries"]),
            f"{figures['p50_ms']:.1f}",
            f"{figures['p95_ms']:.1f}",
            f"{figures['p99_ms']:.1f}",
            f"{figures['visits_p50']:g}",
            f"{figures['contacts_p50']:g} / {figures['contacts_p95']:g} / "
            f"{figures['contacts_max']}",
            str(self.too_broad),
        ]

    @property
    def order(self) -> tuple[int, ...]:
        names = [query.name for query in QUERIES]
        return names.index(self.query), BACKENDS.index(self.backend)


def _percentile(values: Sequence[float], percent: float) -> float:
    return float(np.percentile(values, percent, method="nearest")) if values else math.nan


def epidemiologist(admin: httpx.Client) -> httpx.Client:
    """A client with the token of a new epidemiologist user, made by the host's admin."""
    made = admin.post("/admin/users", json={"name": "bench-epi", "role": "epidemiologist"})
    made.raise_for_status()
    return httpx.Client(
        base_url=str(admin.base_url),
        headers={"Authorization": f"Bearer {made.json()['token']}"},
        timeout=60,
    )


def time_queries(
    client: httpx.Client,
    population: Population,
    query: Query,
    cases: Sequence[int],
    backend: str,
) -> TracingRun:
    """Each case traced once, in turn; a query's time is from sending to the answer read."""
    until = from_ms(population.end_ms)
    since = until - timedelta(days=query.days)
    latencies, visits, contacts, too_broad = [], [], [], 0
    for index in cases:
        body = {
            "person_ref": population.person_ref(index),
            "since": since.isoformat(),
            "until": until.isoformat(),
            "window_minutes": query.window_minutes,
            "depth": query.depth,
            "purpose": PURPOSE,
        }
        started = time.perf_counter()
        response = client.post("/tracing", json=body)  # read whole, not yet parsed
        latencies.append((time.perf_counter() - started) * 1000)
        answer = response.json()
        if response.status_code == 422 and answer.get("error") == "too-broad":
            too_broad += 1
            continue
        if response.status_code != 200:
            raise RuntimeError(f"tracing: {response.status_code} {response.text[:500]}")
        visits.append(answer["summary"]["visits"])
        contacts.append(answer["summary"]["contacts"])
    return TracingRun(
        query.name,
        population.checkins,
        backend,
        tuple(latencies),
        tuple(visits),
        tuple(contacts),
        too_broad,
    )


def measure_backend(
    backend: str, workdir: Path, *, db_url: str, checkins: int, queries: int, seed: int
) -> list[TracingRun]:
    """Populate a fresh database, serve it, and time every kind of query against it."""
    with fresh_database(backend, workdir, db_url) as database:
        storage = Database.parse(database).open()
        try:
            population = city(storage, backend, checkins, seed)
        finally:
            storage.close()
        host = start_host(workdir, database, workers=1)
        if isinstance(host, str):
            return [TracingRun(q.name, checkins, backend, not_measured=host) for q in QUERIES]
        rng = np.random.default_rng(seed + 1)
        try:
            with epidemiologist(host.admin.http) as client:
                warmup = rng.integers(0, population.people, WARMUP_QUERIES).tolist()
                time_queries(client, population, QUERIES[0], warmup, backend)
                return [
                    time_queries(
                        client,
                        population,
                        query,
                        rng.integers(0, population.people, queries).tolist(),
                        backend,
                    )
                    for query in QUERIES
                ]
        finally:
            host.process.stop()


def city(storage: Storage, backend: str, checkins: int, seed: int) -> Population:
    """`populate`'s city of `checkins` over DAYS days, saying how it goes on standard error."""
    started = time.perf_counter()
    population = populate(
        storage,
        checkins,
        venues=venues_for(checkins),
        days=DAYS,
        people=people_for(checkins),
        seed=seed,
        progress=lambda done: progress.update(
            f"{BACKEND_NAMES[backend]}: {done:,} of {checkins:,} check-ins stored"
        ),
    )
    progress.update(
        f"{BACKEND_NAMES[backend]}: {population.checkins:,} check-ins stored in "
        f"{time.perf_counter() - started:.0f} s"
    )
    return population


def measure(
    *,
    backends: Sequence[str] = BACKENDS,
    db_url: str = DEFAULT_DB_URL,
    checkins: int = FULL_CHECKINS,
    queries: int = FULL_QUERIES,
    seed: int = 2022,
) -> list[TracingRun]:
    """Every kind of query on each backend, in a temporary directory and scratch schemas."""
    runs: list[TracingRun] = []
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-tracing-") as temporary:
        for backend in backends:
            reason = postgres_unavailable(db_url) if backend == POSTGRESQL else None
            if reason is not None:
                runs += [
                    TracingRun(query.name, checkins, backend, not_measured=reason)
                    for query in QUERIES
                ]
                continue
            workdir = Path(temporary) / backend
            workdir.mkdir()
            runs += measure_backend(
                backend, workdir, db_url=db_url, checkins=checkins, queries=queries, seed=seed
            )
    return runs


def table(runs: Sequence[TracingRun]) -> list[str]:
    """The heading and the Markdown table of the runs."""
    checkins = max(run.checkins for run in runs)
    return [
        f"Tracing: `POST {API_PREFIX}/tracing` with an epidemiologist's token, one query at a "
        f"time, to `sentinel host serve` (one worker) holding {checkins:,} check-ins over "
        f"{DAYS} days ({venues_for(checkins):,} venues, {people_for(checkins):,} people); "
        "each case a person picked at random; a query ends at the end of the data\n",
        *markdown(runs),
    ]


def run(
    *,
    backends: Sequence[str] = BACKENDS,
    db_url: str = DEFAULT_DB_URL,
    quick: bool = False,
    checkins: int | None = None,
    queries: int | None = None,
    as_json: bool = False,
    seed: int = 2022,
) -> list[TracingRun]:
    """Measure (10 million check-ins, or 200,000 with `quick`) and print a table or JSON."""
    runs = measure(
        backends=backends,
        db_url=db_url,
        checkins=checkins or (QUICK_CHECKINS if quick else FULL_CHECKINS),
        queries=queries or (QUICK_QUERIES if quick else FULL_QUERIES),
        seed=seed,
    )
    if as_json:
        measured = datetime.now(UTC).isoformat()
        print(json.dumps({"measured": measured, "tracing": [r.as_json() for r in runs]}))
    else:
        print("\n".join(table(runs)))
    return runs
