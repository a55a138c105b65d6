"""`sentinel bench dashboard`: operator pages timed against a large audit log and many devices.

The audit page's newest records, and the chain's verdict when asked for (it walks the whole
hash chain, as `sentinel host audit verify` does); the devices page lists every device with
its latest report; both grow with the city. Each page is asked through the app in-process
(FastAPI's TestClient, signed in as the admin), and the median and slowest of `RUNS`
answers are kept.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from host.app import create_app
from host.core.config import Settings
from host.core.security import token_hash
from host.storage import Database
from host.storage.base import VenueRecord
from host.storage.sql import SqlStorage
from host.storage.users import AuditDraft, Role
from sentinel.bench.host import BACKEND_NAMES, fresh_database
from shared.messages import ComponentHealth, ComponentState, DeviceForm, DeviceReport
from shared.policy import VenueCategory

RUNS = 5
Run = TypeVar("Run")
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
START = datetime(2022, 5, 1, 8, tzinfo=UTC)
QUICK = (10_000, 500)  # audit records, devices
FULL = (200_000, 5_000)
DEVICES_PER_VENUE = 5
AUDIT_CHUNK = 5_000  # records appended per transaction while seeding


def device_id(number: int) -> str:
    return f"d_bench{number:06d}"


FIRST_DEVICE = device_id(0)


@dataclass(frozen=True)
class PageRun:
    backend: str
    audit_records: int
    devices: int
    page: str
    median_ms: float
    slowest_ms: float


def seed(storage: SqlStorage, audit_records: int, devices: int) -> str:
    """Venues with their devices (each with a report), and an audit log; the first venue's id."""
    now_ms = int(START.timestamp() * 1000)
    venue_ids = [f"v_bench{number:05d}" for number in range(devices // DEVICES_PER_VENUE)]
    for venue_id in venue_ids:
        storage.add_venue(
            VenueRecord(
                venue_id, venue_id, "1 Bench Road", VenueCategory.OFFICE, "https://x", None, now_ms
            )
        )
    since = START - timedelta(minutes=30)
    for number in range(devices):
        secret = f"bench-token-{number}".encode()
        venue_id = venue_ids[number % len(venue_ids)]
        storage.add_enrollment_token(token_hash(secret.decode()), venue_id, now_ms, now_ms + 60_000)
        device = storage.enroll_device(
            token_hash(secret.decode()),
            device_id=device_id(number),
            name=f"door-{number}",
            form=DeviceForm.KIOSK,
            public_key="A" * 43,
            now_ms=now_ms,
        )
        report = DeviceReport(
            sent_at=START,
            clock_trusted=True,
            pending_checkins=number % 7,
            denylist=None,
            components={
                "camera": ComponentState(state=ComponentHealth.OK, since=since),
                "thermometer": ComponentState(
                    state=ComponentHealth.FAILING, since=since, detail="no answer on /dev/ttyUSB0"
                ),
            },
            software_version="1.0.0",
        )
        storage.save_device_report(device.id, now_ms, report)
    draft = AuditDraft("usr_bench", "dr-bench", Role.EPIDEMIOLOGIST, "tracing", "case 0001")
    for first in range(0, audit_records, AUDIT_CHUNK):
        with storage._write() as conn:  # seeding many records in few commits
            for offset in range(min(AUDIT_CHUNK, audit_records - first)):
                storage._append_audit(conn, draft, now_ms + first + offset, 3)
    return venue_ids[0]


def measure_backend(
    backend: str, database: Path | str, audit_records: int, devices: int
) -> list[PageRun]:

    storage = Database.parse(database).open()
    try:
        venue_id = seed(storage, audit_records, devices)
    finally:
        storage.close()
    cases = [
        ("audit log, newest page", "/dashboard/audit"),
        ("audit log, the whole chain verified", "/dashboard/audit?verify=true"),
        ("audit log, one user's", "/dashboard/audit?user=dr-bench&since=2022-05-01"),
        ("devices, all", "/dashboard/devices"),
        ("venues, all", "/dashboard/venues"),
        ("one venue", f"/dashboard/venues/{venue_id}"),
        ("one device", f"/dashboard/devices/{FIRST_DEVICE}"),
    ]
    timed = time_pages(database, lambda: START.timestamp() + 3600, cases, RUNS)
    return [PageRun(backend, audit_records, devices, *page) for page in timed]


def time_pages(
    database: Path | str, clock: Callable[[], float], cases: Sequence[tuple[str, str]], runs: int
) -> list[tuple[str, float, float]]:
    """(name, median ms, slowest ms) of each (name, path) asked `runs` times, as the admin.

    The host runs in this process (FastAPI's TestClient) on `database`, at `clock`'s time.
    """
    from fastapi.testclient import TestClient

    settings = Settings(
        database=database,
        public_url="https://sentinel.example.org",
        admin_token=ADMIN_TOKEN,
        clock=clock,
    )
    timed = []
    with TestClient(create_app(settings)) as client:
        client.get("/dashboard/sign-in")
        secret = client.cookies.get("sentinel_dashboard_sign_in")
        client.post("/dashboard/sign-in", data={"csrf": secret, "token": ADMIN_TOKEN})
        for name, path in cases:
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code}")
            timed.append((name, statistics.median(times), max(times)))
    return timed


def table(runs: Sequence[PageRun]) -> list[str]:
    lines = [
        "| backend | audit records | devices | page | median ms | slowest ms |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {BACKEND_NAMES[r.backend]} | {r.audit_records:,} | {r.devices:,} | {r.page} |"
        f" {r.median_ms:.1f} | {r.slowest_ms:.1f} |"
        for r in runs
    ]
    return lines


def measure(
    audit_records: int, devices: int, backends: Sequence[str], db_url: str
) -> list[PageRun]:
    """Each page timed on each backend, over a database seeded afresh."""
    return on_fresh_databases(
        backends,
        db_url,
        lambda backend, database: measure_backend(backend, database, audit_records, devices),
    )


def on_fresh_databases(
    backends: Sequence[str], db_url: str, measure_one: Callable[[str, Path | str], list[Run]]
) -> list[Run]:
    """`measure_one(backend, database)` on a fresh database of each backend, runs in order."""
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as workdir:
        for backend in backends:
            with fresh_database(backend, Path(workdir), db_url) as database:
                runs += measure_one(backend, database)
    return runs
