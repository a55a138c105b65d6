"""The tracing bench: `populate`'s city (deterministic, batched as devices send) and its rows."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from host.storage.sqlite import SqliteStorage
from sentinel.bench import tracing
from sentinel.bench.host import BACKENDS, DEFAULT_DB_URL, POSTGRESQL, postgres_not_answering
from sentinel.demo import free_port

DAY_MS = 24 * 3600 * 1000


def populated(path: Path, count: int = 6000, seed: int = 7) -> tracing.Population:
    storage = SqliteStorage(path)
    try:
        return tracing.populate(
            storage, count, venues=30, days=9, people=400, seed=seed, end_ms=1_700_000_000_000
        )
    finally:
        storage.close()


def rows(path: Path, query: str) -> list[tuple]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(query).fetchall()


def test_populate_stores_a_deterministic_city_in_device_batches(tmp_path: Path):
    population = populated(tmp_path / "a.db")
    again = populated(tmp_path / "b.db")

    assert population == again
    assert population.checkins == 6000 and len(population.venues) == 30
    assert population.end_ms - population.start_ms == 9 * DAY_MS
    everything = "SELECT * FROM checkins ORDER BY id"
    assert rows(tmp_path / "a.db", everything) == rows(tmp_path / "b.db", everything)
    populated(tmp_path / "c.db", seed=8)
    assert rows(tmp_path / "c.db", everything) != rows(tmp_path / "a.db", everything)

    db = tmp_path / "a.db"
    ((first, last),) = rows(db, "SELECT MIN(scanned_at), MAX(scanned_at) FROM checkins")
    assert population.start_ms <= first and last < population.end_ms
    batches = rows(db, "SELECT COUNT(*) FROM checkins GROUP BY venue_id, received_at")
    assert max(size for (size,) in batches) <= 1000
    late = "SELECT MAX(received_at - scanned_at) FROM checkins"
    assert rows(db, late)[0][0] <= (tracing.HOLD_DAYS + 1) * DAY_MS
    ((nobody, bound, cards, registered),) = rows(
        db,
        "SELECT SUM(person_ref IS NULL), SUM(binding IS NOT NULL),"
        " SUM(person_ref LIKE 'u\\_%' ESCAPE '\\'), (SELECT COUNT(*) FROM people) FROM checkins",
    )
    assert 0 < nobody < 6000 * 0.06 and bound > 0 and cards > 0
    assert registered == tracing.registered_people(400)
    # People come back to their favourite places: far fewer (person, venue) pairs than visits.
    ((pairs,),) = rows(db, "SELECT COUNT(DISTINCT person_ref || venue_id) FROM checkins")
    assert pairs < 0.8 * (6000 - nobody)


@pytest.mark.integration
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_bench_times_every_query_through_a_real_host(
    backend: str, capsys: pytest.CaptureFixture[str]
):
    if backend == POSTGRESQL and (silent := postgres_not_answering(DEFAULT_DB_URL)) is not None:
        pytest.skip(silent)

    runs = tracing.run(backends=[backend], checkins=5000, queries=5, as_json=True)

    report = json.loads(capsys.readouterr().out)["tracing"]
    assert [row["query"] for row in report] == [query.name for query in tracing.QUERIES]
    assert [run.backend for run in runs] == [backend] * len(tracing.QUERIES)
    for row in report:
        assert row["checkins"] == 5000 and row["queries"] == 5, row
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["contacts_p50"] <= row["contacts_p95"] <= row["contacts_max"]
    assert report[0]["visits_p50"] > 0 and report[1]["contacts_max"] > 0


def test_an_unreachable_postgresql_gives_rows_that_say_why():
    nowhere = f"postgresql://127.0.0.1:{free_port()}/test"
    runs = tracing.measure(backends=[POSTGRESQL], db_url=nowhere, checkins=100, queries=1)
    assert [run.query for run in runs] == [query.name for query in tracing.QUERIES]
    assert all("not measured: PostgreSQL at 127.0.0.1" in line for line in tracing.table(runs)[3:])
    assert runs[0].as_json().keys() == {"query", "checkins", "backend", "not_measured"}
