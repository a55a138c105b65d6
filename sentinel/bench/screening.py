"""A staff list screened end to end through the host's API, timed on SQLite and PostgreSQL.

For each backend: `sentinel host serve` (one worker) on a fresh database, the register filled
through the admin API with people of every kind, a screener made; then, timed, as a screener
would do it: the upload (`POST /screenings`: the CSV parsed, its numbers checked and hashed,
names sealed, rows stored), the job (from the upload's answer until `GET /screenings/{id}`
says done, polled every 20 ms), and the result CSV with the names put back. The summary must
match the flags the list was made to get, or the run is refused.
"""

from __future__ import annotations

import csv
import io
import random
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from host.screening import KEY_HEADER
from sentinel.bench.host import (
    BACKENDS,
    BY_ORDER,
    DEFAULT_DB_URL,
    POSTGRESQL,
    Row,
    fresh_database,
    markdown,
    postgres_unavailable,
    start_host,
)
from sentinel.bench.sync import BenchHost
from shared.idnumber import id_check_character
from shared.messages import MAX_BATCH

ROWS = 10_000
TEST_AGE_HOURS = 48
POLL_SECONDS = 0.02
JOB_TIMEOUT_SECONDS = 600.0
PURPOSE = "bench: reopening notice"
IMPORT_BATCH = MAX_BATCH  # people per admin import, within its limit of 10,000
# The share of the list that gets each flag, and how its people are registered.
MIX = (
    ("ok", 0.70),
    ("no-recent-test", 0.10),
    ("not-green", 0.05),
    ("not-registered", 0.10),
    ("invalid-id-number", 0.05),
)


@dataclass(frozen=True)
class ScreeningRun(Row):
    KEY_COLUMNS: ClassVar = ("backend",)
    FIGURE_COLUMNS: ClassVar = (
        "rows",
        "upload s",
        "job s",
        "download s",
        "end to end s",
        "rows/s",
    )
    backend: str
    rows: int = 0
    upload_s: float = 0.0
    job_s: float = 0.0
    download_s: float = 0.0
    summary: dict[str, int] = field(default_factory=dict)
    not_measured: str | None = None

    @property
    def seconds(self) -> float:
        return self.upload_s + self.job_s + self.download_s

    def figures_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "upload_seconds": round(self.upload_s, 3),
            "job_seconds": round(self.job_s, 3),
            "download_seconds": round(self.download_s, 3),
            "seconds": round(self.seconds, 3),
            "per_second": round(self.rows / self.seconds, 1),
            "summary": self.summary,
        }

    def figure_cells(self) -> list[str]:
        return [
            f"{self.rows:,}",
            f"{self.upload_s:.2f}",
            f"{self.job_s:.2f}",
            f"{self.download_s:.2f}",
            f"{self.seconds:.2f}",
            f"{self.rows / self.seconds:,.0f}",
        ]

    @property
    def order(self) -> tuple[int, ...]:
        return (BACKENDS.index(self.backend),)


def id_number(serial: int) -> str:
    first17 = f"4403051992{serial:07d}"
    return first17 + id_check_character(first17)


def staff_list(rows: int, seed: int) -> tuple[bytes, list[dict[str, Any]], Counter[str]]:
    """(the CSV, the people to register first, the flags the list must get), in `MIX` shares."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    flags = rng.choices([flag for flag, _ in MIX], [share for _, share in MIX], k=rows)
    people: list[dict[str, Any]] = []
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(["id_number", "name", "staff_id"])
    for serial, flag in enumerate(flags, 1):
        number = id_number(serial)
        if flag == "invalid-id-number":
            number = number[:17] + ("0" if number[17] != "0" else "1")
        elif flag != "not-registered":
            hours_ago = rng.uniform(80, 200) if flag == "no-recent-test" else rng.uniform(1, 40)
            sampled = (now - timedelta(hours=hours_ago)).isoformat()
            people.append(
                {
                    "id_number": number,
                    "colour": "yellow" if flag == "not-green" else "green",
                    "test": {"sampled_at": sampled, "result": "negative"},
                }
            )
        writer.writerow([number, f"员工{serial:05d}", f"E{serial:06d}"])
    return text.getvalue().encode(), people, Counter(flags)


def screening_token(host: BenchHost) -> str:
    made = host.admin.http.post(
        "/admin/users", json={"name": "bench-hr", "role": "screener", "org": "Bench Co"}
    )
    if made.status_code != 201:
        raise RuntimeError(f"screener not made: {made.status_code} {made.text}")
    return made.json()["token"]


def screen_once(host: BenchHost, backend: str, rows: int, seed: int) -> ScreeningRun:
    """Register the list's people, then time its screening through the API as a screener."""
    body, people, expected = staff_list(rows, seed)
    for start in range(0, len(people), IMPORT_BATCH):
        imported = host.admin.http.post(
            "/admin/people", json={"people": people[start : start + IMPORT_BATCH]}, timeout=120
        )
        if not imported.is_success:
            raise RuntimeError(f"people not imported: {imported.status_code} {imported.text}")
    http = host.admin.http
    auth = {"Authorization": f"Bearer {screening_token(host)}"}
    started = time.perf_counter()
    created = http.post(
        "/screenings",
        params={"max_test_age_hours": TEST_AGE_HOURS, "purpose": PURPOSE},
        content=body,
        headers=auth | {"Content-Type": "text/csv"},
        timeout=120,
    )
    uploaded = time.perf_counter()
    if created.status_code != 202:
        raise RuntimeError(f"upload refused: {created.status_code} {created.text}")
    job = created.json()
    deadline = uploaded + JOB_TIMEOUT_SECONDS
    while job["status"] not in ("done", "failed"):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"screening still {job['status']} after {JOB_TIMEOUT_SECONDS} s")
        time.sleep(POLL_SECONDS)
        job = http.get(f"/screenings/{job['id']}", headers=auth).json()
    done = time.perf_counter()
    result = http.get(
        f"/screenings/{job['id']}/result.csv",
        params={"purpose": PURPOSE},
        headers=auth | {KEY_HEADER: created.json()["key"]},
        timeout=120,
    )
    downloaded = time.perf_counter()
    if job["status"] != "done" or not result.is_success:
        raise RuntimeError(f"screening {job['status']}; result: {result.status_code}")
    flags = Counter(
        row["flag"] for row in csv.DictReader(io.StringIO(result.content.decode("utf-8-sig")))
    )
    if flags != expected:
        raise RuntimeError(f"the screening flagged {dict(flags)}, not {dict(expected)}")
    return ScreeningRun(
        backend, rows, uploaded - started, done - uploaded, downloaded - done, dict(flags)
    )


def run(
    *,
    backends: Sequence[str] = BACKENDS,
    db_url: str = DEFAULT_DB_URL,
    rows: int = ROWS,
    seed: int = 2022,
) -> list[ScreeningRun]:
    """A `rows`-row screening on each backend, each on a fresh database and host process."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-screening-") as temporary:
        for backend in backends:
            reason = postgres_unavailable(db_url) if backend == POSTGRESQL else None
            if reason is not None:
                runs.append(ScreeningRun(backend, not_measured=reason))
                continue
            workdir = Path(temporary) / backend
            workdir.mkdir()
            with fresh_database(backend, workdir, db_url) as database:
                host = start_host(workdir, database, workers=1)
                if isinstance(host, str):
                    runs.append(ScreeningRun(backend, not_measured=host))
                    continue
                try:
                    runs.append(screen_once(host, backend, rows, seed))
                finally:
                    host.process.stop()
    return sorted(runs, key=BY_ORDER)


def table(runs: Sequence[ScreeningRun]) -> list[str]:
    """The runs as a Markdown table under a line saying what was timed."""
    rows = max((run.rows for run in runs), default=ROWS)
    return [
        f"Screening: a {rows:,}-row staff list (names and staff ids) through the API, one "
        f"worker: upload, job until done (polled every {POLL_SECONDS * 1000:.0f} ms), result "
        "CSV with the names put back\n",
        *markdown(runs),
    ]
