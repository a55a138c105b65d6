"""`sentinel bench host`: small runs on each backend, checking what it reports, not how fast."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest

from sentinel.bench import host
from sentinel.demo import free_port
from tests.sentinel.test_bench import bench_json

SECTIONS = ("storage_ingest", "http_ingest", "load", "peak_rss")


def table_rows(text: str) -> list[str]:
    """The data rows of the Markdown tables in a bench's output: not headings, not |---|."""
    lines = text.splitlines()
    headings = [line for line, below in pairwise(lines) if below.startswith("|---")]
    assert len(headings) == len(SECTIONS)
    return [line for line in lines if line.startswith("| ") and line not in headings]


@pytest.mark.integration
@pytest.mark.parametrize("backend", host.BACKENDS)
def test_host_bench_measures_every_row_of_a_backend(backend: str):
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (scripts/test installs it when run as root)")
    if backend == host.POSTGRESQL:
        silent = host.postgres_not_answering(host.DEFAULT_DB_URL)
        if silent is not None:
            pytest.skip(silent)
    sizes = replace(host.QUICK, checkins=2500, seconds=1.0)  # 2500: a last batch not full
    bench = host.measure(backends=[backend], db_url=host.DEFAULT_DB_URL, sizes=sizes, connections=8)
    report = json.loads(json.dumps(bench.as_json()))

    new, again = report["storage_ingest"]
    assert (new["checkins"], new["rows"], new["inserted"], new["held"]) == ("new", 2500, 2500, 2500)
    assert (again["checkins"], again["inserted"], again["held"]) == ("duplicate", 0, 2500)
    assert new["per_second"] > 0 and again["per_second"] > 0

    synced = [
        (run["workers"], run["window"], run["host_checkins"]) for run in report["http_ingest"]
    ]
    # Each host starts empty and holds exactly what its devices sent: one run, then two.
    assert synced == [(1, 1, 2000), (1, 4, 4000), (2, 1, 2000), (2, 4, 4000)]
    assert all(run["checkins"] == 2000 and run["per_second"] > 0 for run in report["http_ingest"])

    loads = report["load"]
    assert [(run["endpoint"], run["workers"]) for run in loads] == [
        (endpoint, workers) for endpoint in host.ENDPOINTS for workers in (1, 2)
    ]
    for run in loads:
        assert run["failed"] is None, run
        assert run["requests"] > 0 and run["per_second"] > 0
        assert (run["not_2xx"], run["socket_errors"], run["timeouts"]) == (0, 0, 0)
        assert 0 < run["p50_ms"] <= run["p99_ms"]

    processes = [(rss["workers"], rss["process"]) for rss in report["peak_rss"]]
    assert processes == [(1, "worker"), (2, "supervisor"), (2, "worker"), (2, "worker")]
    assert all(rss["peak_kib"] > 10 * 1024 for rss in report["peak_rss"])  # Python alone: more

    rows = table_rows("\n".join(bench.tables()))
    assert len(rows) == sum(len(report[section]) for section in SECTIONS)
    assert not [row for row in rows if "not measured" in row or "failed" in row]
    assert all(row.count(f"| {host.BACKEND_NAMES[backend]} |") == 1 for row in rows)


def test_unreachable_postgresql_rows_say_not_measured_in_tables_and_json():
    port = free_port()  # nothing listens there
    closed = f"postgresql://127.0.0.1:{port}/test"
    arguments = ("host", "--quick", "--parts", "requests", "--backends", "postgresql",
                 "--db-url", closed)  # fmt: skip
    report = bench_json(*arguments)
    text = subprocess.run(
        [sys.executable, "-m", "sentinel", "bench", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    expected = {"storage_ingest": 2, "http_ingest": 4, "load": 10, "peak_rss": 2}
    assert {section: len(report[section]) for section in SECTIONS} == expected
    reasons = {row["not_measured"] for section in SECTIONS for row in report[section]}
    assert len(reasons) == 1
    assert reasons.pop().startswith(f"PostgreSQL at 127.0.0.1:{port} does not answer")
    rows = table_rows(text)
    assert len(rows) == sum(expected.values())
    reason = f"| not measured: PostgreSQL at 127.0.0.1:{port} does not answer"
    assert all("| PostgreSQL |" in row and reason in row for row in rows)


def test_a_load_row_whose_answers_were_not_all_2xx_gives_no_rate():
    run = host.WrkRun(
        requests=500, seconds=1.0, not_2xx=20, statuses={"401": 20}, socket_errors=0,
        timeouts=0, threads_ran_out=0, p50_ms=1.0, p99_ms=2.0,
    )  # fmt: skip
    row = host.LoadRun(host.VERIFY, 1, host.SQLITE, run)
    assert row.as_json()["per_second"] is None
    assert row.as_json()["failed"] == "20 of 500 answers not 2xx (20 x 401)"
    assert "| failed: 20 of 500 answers not 2xx (20 x 401) |" in "| " + " | ".join(row.cells())
    used_up = host.LoadRun(host.VERIFY, 1, host.SQLITE, replace(run, not_2xx=0, threads_ran_out=1))
    assert used_up.as_json()["failed"].startswith("ran out of pre-signed requests")
    assert host.LoadRun(host.HEALTH, 1, host.SQLITE, replace(run, not_2xx=0)).as_json()[
        "per_second"
    ] == pytest.approx(500)


@pytest.mark.integration
def test_a_host_that_refuses_its_arguments_gives_a_refused_row(tmp_path: Path):
    assert host.start_host(tmp_path, tmp_path / "host.db", 0) == (
        "refused: --workers must be at least 1"
    )


def test_the_epidemiology_part_says_not_measured_for_an_unreachable_postgresql():
    closed = f"postgresql://127.0.0.1:{free_port()}/test"
    report = bench_json(
        "host", "--quick", "--parts", "epidemiology", "--backends", "postgresql", "--db-url", closed
    )
    parts = ("tracing", "spike_detector", "flows", "screening")
    assert set(report) == {"measured", *parts}
    rows = [row for part in parts for row in report[part]]
    assert rows and all(row["not_measured"].startswith("PostgreSQL at 127.0.0.1") for row in rows)
