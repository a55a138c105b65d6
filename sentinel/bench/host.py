"""`sentinel bench host`: the host's ingest and request rates on SQLite and PostgreSQL side by side.

- storage ingest: `Storage.add_checkins` called directly on a fresh database, full batches of
  new check-ins, then the same batches again (duplicates, which must not be stored twice);
- HTTP ingest: `sentinel host serve` with one worker and with two, a device enrolled through
  the real enrollment path, its backlog sent by its own Syncer (signed, gzipped batches), one
  batch in flight and a window of them;
- load: wrk at 64 connections against the same host: `GET /api/v1/health` as the floor, the
  signed `POST /api/v1/device/verify` of a real health code (each request signed beforehand,
  each nonce used once, as the host's replay protection demands), and the venue page phones open;
- peak RSS (VmHWM) of each of the host's processes after all of that.

A row that cannot be measured here says why (PostgreSQL not answering, a host that refused to
start); a wrk row whose answers were not all 2xx says so instead of giving a rate.
"""

from __future__ import annotations

import json
import math
import operator
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.sync import DEFAULT_WINDOW
from host.storage import Database
from host.storage.base import VenueRecord
from sentinel.bench.sync import BenchHost, SyncRun, sample_checkins, sync_backlog
from sentinel.demo import DEMO_PUBLIC_URL, Admin, HostProcess
from sentinel.progress import progress
from shared.auth import HEADER_DEVICE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIME, sign_request
from shared.messages import API_PREFIX, MAX_BATCH, VerifyRequest, VerifyResponse
from shared.policy import Outcome, VenueCategory

SQLITE, POSTGRESQL = "sqlite", "postgresql"
BACKENDS = (SQLITE, POSTGRESQL)
BACKEND_NAMES = {SQLITE: "SQLite", POSTGRESQL: "PostgreSQL"}
DEFAULT_DB_URL = "postgresql://127.0.0.1:5432/test"
WORKER_COUNTS = (1, 2)
WINDOWS = (1, DEFAULT_WINDOW)  # batches in flight
CHECKIN_PASSES = ("new", "duplicate")
HEALTH = f"GET {API_PREFIX}/health"
VERIFY = f"POST {API_PREFIX}/device/verify"
VENUE_PAGE = "GET /v/{venue}"
# The venue page and signed requests at once, half the connections each: phones keep opening
# venue codes while kiosks verify.
VENUE_PAGE_BESIDE = "GET /v/{venue} beside verify"
VERIFY_BESIDE = "POST /api/v1/device/verify beside the page"
ENDPOINTS = (HEALTH, VERIFY, VENUE_PAGE, VENUE_PAGE_BESIDE, VERIFY_BESIDE)
VERIFY_TARGET = f"{API_PREFIX}/device/verify"
WRK_THREADS = 2
# Verify requests signed beforehand per second of a wrk run: several times what a host answers.
PRESIGNED_PER_SECOND = 10_000
WRK_GRACE_SECONDS = 60  # beyond the run itself, for wrk to start, load its requests and report
POSTGRES_CONNECT_SECONDS = 3
BENCH_VENUE = "v_bench"
BENCH_DEVICE = "d_bench"
GREEN_ID_NUMBER = "110101199003071014"  # a right check character: the host checks
TEST_HOURS_AGO = 10  # a recent negative test: a public place lets the holder in
WRK_REPORT = "sentinel-bench-host: "  # starts the line the Lua `done` hook prints
MIB = 1024
BY_ORDER = operator.attrgetter("order")
KEY_HEADINGS = {"checkins": "check-ins", "window": "batches in flight"}

# Every wrk run: count the answers that are not 2xx, by status, and report the run as one line
# of JSON. wrk runs one Lua state per thread; `done` runs in the main one and collects theirs.
WRK_REPORTING = """
local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

not_2xx = 0
statuses = {}
ran_out = 0

function response(status, headers, body)
  if status < 200 or status > 299 then
    not_2xx = not_2xx + 1
    statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total_not_2xx, total_ran_out, by_status = 0, 0, {}
  for _, thread in ipairs(threads) do
    total_not_2xx = total_not_2xx + thread:get("not_2xx")
    total_ran_out = total_ran_out + thread:get("ran_out")
    for status, count in pairs(thread:get("statuses")) do
      by_status[status] = (by_status[status] or 0) + count
    end
  end
  local listed = {}
  for status, count in pairs(by_status) do
    table.insert(listed, string.format('"%s": %d', status, count))
  end
  local errors = summary.errors
  io.write(string.format(
    '$report{"requests": %d, "duration_us": %d, "not_2xx": %d, "threads_ran_out": %d, '
      .. '"socket_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d, "statuses": {%s}}\\n',
    summary.requests, summary.duration, total_not_2xx, total_ran_out,
    errors.connect + errors.read + errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(99), table.concat(listed, ", ")))
end
"""
# Signed requests: each thread reads its own file of (time, nonce, signature) lines, builds its
# requests before the run starts and hands each out once. Arguments: body file, requests folder.
WRK_SIGNED = """
local prepared, next_request = {}, 1

function init(args)
  local file = io.open(args[1], "rb")
  local body = file:read("*a")
  file:close()
  for line in io.lines(args[2] .. "/" .. thread_index .. ".txt") do
    local time, nonce, signature = line:match("^(%S+) (%S+) (%S+)$$")
    prepared[#prepared + 1] = wrk.format("POST", "$target", {
      ["$device_header"] = "$device_id",
      ["$time_header"] = time,
      ["$nonce_header"] = nonce,
      ["$signature_header"] = signature,
      ["Content-Type"] = "application/json",
    }, body)
  end
end

function request()
  if next_request > #prepared then
    ran_out = 1  -- a nonce used twice is a replay: stop, and the row is not measured
    wrk.thread:stop()
    return prepared[#prepared]
  end
  next_request = next_request + 1
  return prepared[next_request - 1]
end
"""


@dataclass(frozen=True)
class Sizes:
    checkins: int  # stored straight through Storage.add_checkins
    http_checkins: int  # synced over HTTP by each device
    seconds: float  # each wrk run


FULL = Sizes(checkins=100_000, http_checkins=20_000, seconds=10.0)
QUICK = Sizes(checkins=2000, http_checkins=2000, seconds=2.0)


class Row(ABC):
    """A table row: the columns that say what was measured, then its figures or why not."""

    KEY_COLUMNS: ClassVar[tuple[str, ...]]
    FIGURE_COLUMNS: ClassVar[tuple[str, ...]]
    backend: str
    not_measured: str | None

    def key_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.KEY_COLUMNS}

    def key_cells(self) -> list[str]:
        return [
            BACKEND_NAMES[self.backend] if name == "backend" else str(getattr(self, name))
            for name in self.KEY_COLUMNS
        ]

    @abstractmethod
    def figures_json(self) -> dict[str, Any]: ...

    @abstractmethod
    def figure_cells(self) -> list[str]: ...

    def as_json(self) -> dict[str, Any]:
        if self.not_measured is not None:
            return self.key_json() | {"not_measured": self.not_measured}
        return self.key_json() | self.figures_json()

    def cells(self) -> list[str]:
        if self.not_measured is not None:
            blanks = [""] * (len(self.FIGURE_COLUMNS) - 1)
            return [*self.key_cells(), f"not measured: {self.not_measured}", *blanks]
        return [*self.key_cells(), *self.figure_cells()]

    @property
    @abstractmethod
    def order(self) -> tuple[int, ...]:
        """Where the row stands: the same measurement on each backend next to each other."""


@dataclass(frozen=True)
class StorageIngest(Row):
    KEY_COLUMNS: ClassVar = ("checkins", "backend")
    FIGURE_COLUMNS: ClassVar = ("rows", "inserted", "seconds", "rows/s", "held afterwards")
    checkins: str  # "new" or "duplicate"
    backend: str
    rows: int = 0
    inserted: int = 0
    seconds: float = 0.0
    held: int = 0  # check-ins the storage holds after this pass
    not_measured: str | None = None

    def figures_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "inserted": self.inserted,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.rows / self.seconds, 1),
            "held": self.held,
        }

    def figure_cells(self) -> list[str]:
        return [
            f"{self.rows:,}",
            f"{self.inserted:,}",
            f"{self.seconds:.2f}",
            f"{self.rows / self.seconds:,.0f}",
            f"{self.held:,}",
        ]

    @property
    def order(self) -> tuple[int, ...]:
        return CHECKIN_PASSES.index(self.checkins), BACKENDS.index(self.backend)


@dataclass(frozen=True)
class HttpIngest(Row):
    KEY_COLUMNS: ClassVar = ("workers", "window", "backend")
    FIGURE_COLUMNS: ClassVar = ("check-ins", "seconds", "check-ins/s", "host holds")
    workers: int
    window: int
    backend: str
    run: SyncRun | None = None
    not_measured: str | None = None

    def figures_json(self) -> dict[str, Any]:
        assert self.run is not None
        return {
            "checkins": self.run.checkins,
            "seconds": round(self.run.seconds, 3),
            "per_second": round(self.run.per_second, 1),
            "host_checkins": self.run.host_checkins,
        }

    def figure_cells(self) -> list[str]:
        assert self.run is not None
        return [
            f"{self.run.checkins:,}",
            f"{self.run.seconds:.2f}",
            f"{self.run.per_second:,.0f}",
            f"{self.run.host_checkins:,}",
        ]

    @property
    def order(self) -> tuple[int, ...]:
        return self.workers, self.window, BACKENDS.index(self.backend)


@dataclass(frozen=True)
class WrkRun:
    """What wrk's `done` hook reported of one run."""

    requests: int
    seconds: float
    not_2xx: int
    statuses: dict[str, int]  # the answers that were not 2xx, by status
    socket_errors: int  # connect, read and write errors
    timeouts: int
    threads_ran_out: int  # threads that used up their pre-signed requests before the end
    p50_ms: float
    p99_ms: float

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> WrkRun:
        return cls(
            requests=report["requests"],
            seconds=report["duration_us"] / 1e6,
            not_2xx=report["not_2xx"],
            statuses=report["statuses"],
            socket_errors=report["socket_errors"],
            timeouts=report["timeouts"],
            threads_ran_out=report["threads_ran_out"],
            p50_ms=report["p50_us"] / 1000,
            p99_ms=report["p99_us"] / 1000,
        )

    @property
    def failure(self) -> str | None:
        """Why the rate is not to be believed, or None when every request was answered 2xx."""
        if self.threads_ran_out:
            return "ran out of pre-signed requests (raise PRESIGNED_PER_SECOND)"
        if self.not_2xx:
            statuses = ", ".join(f"{count:,} x {status}" for status, count in self.statuses.items())
            return f"{self.not_2xx:,} of {self.requests:,} answers not 2xx ({statuses})"
        if self.socket_errors:
            return f"{self.socket_errors:,} socket errors"
        if self.timeouts:
            return f"{self.timeouts:,} requests timed out"
        if not self.requests:
            return "no request answered"
        return None


@dataclass(frozen=True)
class LoadRun(Row):
    KEY_COLUMNS: ClassVar = ("endpoint", "workers", "backend")
    FIGURE_COLUMNS: ClassVar = (
        "requests",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "not 2xx",
        "socket errors / timeouts",
    )
    endpoint: str
    workers: int
    backend: str
    wrk: WrkRun | None = None
    not_measured: str | None = None

    def figures_json(self) -> dict[str, Any]:
        assert self.wrk is not None
        run = self.wrk
        return {
            "requests": run.requests,
            "seconds": round(run.seconds, 3),
            "per_second": None if run.failure else round(run.requests / run.seconds, 1),
            "p50_ms": run.p50_ms,
            "p99_ms": run.p99_ms,
            "not_2xx": run.not_2xx,
            "statuses": run.statuses,
            "socket_errors": run.socket_errors,
            "timeouts": run.timeouts,
            "failed": run.failure,
        }

    def figure_cells(self) -> list[str]:
        assert self.wrk is not None
        run = self.wrk
        rate = f"failed: {run.failure}" if run.failure else f"{run.requests / run.seconds:,.0f}"
        return [
            f"{run.requests:,}",
            rate,
            f"{run.p50_ms:.2f}",
            f"{run.p99_ms:.2f}",
            f"{run.not_2xx:,}",
            f"{run.socket_errors:,} / {run.timeouts:,}",
        ]

    @property
    def order(self) -> tuple[int, ...]:
        return ENDPOINTS.index(self.endpoint), self.workers, BACKENDS.index(self.backend)


@dataclass(frozen=True)
class PeakRss(Row):
    KEY_COLUMNS: ClassVar = ("workers", "backend", "process")
    FIGURE_COLUMNS: ClassVar = ("peak RSS MiB",)
    workers: int
    backend: str
    process: str = "worker"  # "worker", or "supervisor" (uvicorn's, with several workers)
    peak_kib: int = 0
    not_measured: str | None = None

    def figures_json(self) -> dict[str, Any]:
        return {"peak_kib": self.peak_kib}

    def figure_cells(self) -> list[str]:
        return [f"{self.peak_kib / MIB:.1f}"]

    @property
    def order(self) -> tuple[int, ...]:
        return self.workers, BACKENDS.index(self.backend)


def markdown(rows: Sequence[Row]) -> list[str]:
    """The rows as a Markdown table, each measurement's backends one under the other."""
    kind = type(rows[0])
    columns = [KEY_HEADINGS.get(name, name) for name in kind.KEY_COLUMNS]
    columns += kind.FIGURE_COLUMNS
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in sorted(rows, key=BY_ORDER)]
    return lines


@dataclass
class HostBench:
    sizes: Sizes
    connections: int
    storage: list[StorageIngest] = field(default_factory=list)
    http: list[HttpIngest] = field(default_factory=list)
    load: list[LoadRun] = field(default_factory=list)
    rss: list[PeakRss] = field(default_factory=list)

    def host_not_measured(self, backend: str, workers: int, reason: str) -> None:
        """Every row a host with `workers` workers would have given, as not measured."""
        self.http += [HttpIngest(workers, window, backend, None, reason) for window in WINDOWS]
        self.load += [LoadRun(endpoint, workers, backend, None, reason) for endpoint in ENDPOINTS]
        self.rss.append(PeakRss(workers, backend, not_measured=reason))

    def backend_not_measured(self, backend: str, reason: str) -> None:
        self.storage += [
            StorageIngest(kind, backend, not_measured=reason) for kind in CHECKIN_PASSES
        ]
        for workers in WORKER_COUNTS:
            self.host_not_measured(backend, workers, reason)

    def tables(self) -> list[str]:
        sizes = self.sizes
        return [
            f"Storage ingest: `Storage.add_checkins` straight, {sizes.checkins:,} check-ins in "
            f"batches of {MAX_BATCH:,} on a fresh database, then the same batches again\n",
            *markdown(self.storage),
            f"\nHTTP ingest: {sizes.http_checkins:,} check-ins a run, sent by the device's own "
            "Syncer (signed, gzipped batches) to `sentinel host serve` on 127.0.0.1\n",
            *markdown(self.http),
            f"\nRequests: wrk, {WRK_THREADS} threads, {self.connections} connections, "
            f"{sizes.seconds:g} s a row; verify: a real health code, each request signed once\n",
            *markdown(self.load),
            "\nPeak RSS (VmHWM) of each process of `sentinel host serve`, after all of the above\n",
            *markdown(self.rss),
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "sizes": {
                "checkins": self.sizes.checkins,
                "http_checkins": self.sizes.http_checkins,
                "seconds": self.sizes.seconds,
                "connections": self.connections,
            },
            "storage_ingest": [row.as_json() for row in sorted(self.storage, key=BY_ORDER)],
            "http_ingest": [row.as_json() for row in sorted(self.http, key=BY_ORDER)],
            "load": [row.as_json() for row in sorted(self.load, key=BY_ORDER)],
            "peak_rss": [row.as_json() for row in sorted(self.rss, key=BY_ORDER)],
        }


def postgres_not_answering(url: str) -> str | None:
    """Why nothing answers at this PostgreSQL URL's host and port, or None if something does."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 5432)
    try:
        socket.create_connection(address, timeout=POSTGRES_CONNECT_SECONDS).close()
    except OSError as error:
        return f"PostgreSQL at {address[0]}:{address[1]} does not answer ({error})"
    return None


def postgres_unavailable(url: str) -> str | None:
    """Why PostgreSQL cannot be measured here (not answering, no backend module), or None."""
    silent = postgres_not_answering(url)
    if silent is not None:
        return silent
    try:
        import host.storage.postgres  # noqa: F401
    except ImportError as error:
        return f"the PostgreSQL backend cannot be loaded ({error})"
    return None


@contextmanager
def fresh_database(backend: str, workdir: Path, db_url: str) -> Iterator[Path | str]:
    """An empty database: a SQLite file in `workdir`, or a scratch schema in `db_url`'s database."""
    if backend == SQLITE:
        yield workdir / "host.db"
        return
    from host.storage.postgres import scratch_schema

    with scratch_schema(db_url) as url:
        yield url


def storage_ingest(
    backend: str, database: Path | str, count: int, seed: int
) -> list[StorageIngest]:
    """`Storage.add_checkins` timed alone: `count` new check-ins in full batches, then again."""
    checkins = list(sample_checkins(BENCH_VENUE, count, seed))
    batches = [checkins[start : start + MAX_BATCH] for start in range(0, count, MAX_BATCH)]
    storage = Database.parse(database).open()
    try:
        storage.add_venue(
            VenueRecord(
                BENCH_VENUE,
                "Bench",
                "127.0.0.1",
                VenueCategory.PUBLIC_PLACE,
                f"{DEMO_PUBLIC_URL}/v/{BENCH_VENUE}",
                None,
                0,
            )
        )
        received_at_ms = time.time_ns() // 1_000_000
        passes = []
        for kind in CHECKIN_PASSES:
            inserted = 0
            started = time.perf_counter()
            for batch in batches:
                inserted += storage.add_checkins(BENCH_DEVICE, BENCH_VENUE, received_at_ms, batch)
            seconds = time.perf_counter() - started
            held = storage.stats().checkins
            passes.append(StorageIngest(kind, backend, count, inserted, seconds, held))
        return passes
    finally:
        storage.close()


def start_host(workdir: Path, database: Path | str, workers: int) -> BenchHost | str:
    """A running `sentinel host serve`, or what it said when it refused to start (exit 2)."""
    host = BenchHost(workdir, db=database, workers=workers)
    try:
        host.process.start()
    except RuntimeError:
        host.process.stop()
        refusal = refusal_of(host.process)
        if refusal is None:
            raise
        return f"refused: {refusal}"
    return host


def refusal_of(process: HostProcess) -> str | None:
    """The message of a `sentinel host serve` that refused its arguments, from its log."""
    prefix = "sentinel host serve: "
    lines = process.log.read_text(encoding="utf-8").splitlines()
    if lines and lines[-1].startswith(prefix):
        return lines[-1].removeprefix(prefix)
    return None


def http_ingest(
    host: BenchHost, backend: str, workers: int, count: int, seed: int
) -> list[HttpIngest]:
    """A new device's backlog of `count` synced by its Syncer, for each window of batches."""
    return [
        HttpIngest(
            workers,
            window,
            backend,
            sync_backlog(
                host, count, seed + window, window=window, latency_ms=None, name=f"window-{window}"
            ),
        )
        for window in WINDOWS
    ]


def verify_body(admin: Admin) -> bytes:
    """A `VerifyRequest` holding a green health code the host issued just now."""
    person = admin.person(GREEN_ID_NUMBER, "green", TEST_HOURS_AGO)
    return VerifyRequest(text=admin.code(person).text).model_dump_json().encode()


def sign_verify(key: Ed25519PrivateKey, device_id: str, body: bytes) -> dict[str, str]:
    return sign_request(
        key,
        device_id,
        method="POST",
        target=VERIFY_TARGET,
        body=body,
        time_ms=time.time_ns() // 1_000_000,
    )


def check_verify(url: str, key: Ed25519PrivateKey, device_id: str, body: bytes) -> None:
    """One verify request as wrk will send them: it must pass, or the load would measure less."""
    headers = sign_verify(key, device_id, body) | {"Content-Type": "application/json"}
    response = httpx.post(url + VERIFY_TARGET, content=body, headers=headers, timeout=10)
    if not response.is_success:
        raise RuntimeError(f"verify: {response.status_code} {response.text}")
    answer = VerifyResponse.model_validate_json(response.content)
    if answer.outcome is not Outcome.PASS:
        raise RuntimeError(f"verify: the bench's green code was answered {answer}")


def presign(folder: Path, key: Ed25519PrivateKey, device_id: str, body: bytes, count: int) -> None:
    """`count` verify requests signed now, a file for each wrk thread: time, nonce, signature."""
    folder.mkdir()
    for thread in range(WRK_THREADS):
        lines = []
        for _ in range(math.ceil(count / WRK_THREADS)):
            headers = sign_verify(key, device_id, body)
            lines.append(
                f"{headers[HEADER_TIME]} {headers[HEADER_NONCE]} {headers[HEADER_SIGNATURE]}\n"
            )
        (folder / f"{thread}.txt").write_text("".join(lines), encoding="ascii")


def run_wrk(
    url: str,
    script: str,
    arguments: Sequence[str],
    *,
    seconds: float,
    connections: int,
    workdir: Path,
    name: str = "wrk",
) -> WrkRun:
    """One wrk run of `seconds` with the reporting hooks and `script`, given `arguments`.

    Its script is `workdir/NAME.lua`: runs at the same time need names of their own.
    """
    script_file = workdir / f"{name}.lua"
    script_file.write_text(Template(WRK_REPORTING).substitute(report=WRK_REPORT) + script)
    command = [
        "wrk",
        f"--threads={WRK_THREADS}",
        f"--connections={connections}",
        f"--duration={seconds:g}s",
        f"--script={script_file}",
        url,
        "--",
        *arguments,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + WRK_GRACE_SECONDS, check=False
    )
    reports = [line for line in result.stdout.splitlines() if line.startswith(WRK_REPORT)]
    if result.returncode != 0 or not reports:
        raise RuntimeError(f"wrk {url} exited {result.returncode}: {result.stderr[-2000:]}")
    return WrkRun.from_report(json.loads(reports[-1].removeprefix(WRK_REPORT)))


def load_runs(
    host: BenchHost, backend: str, workers: int, seconds: float, connections: int
) -> list[LoadRun]:
    """Health, signed verify requests and a venue page under wrk in turn, then page and verify."""
    device_id, _venue_id, key = host.device("verify")
    body = verify_body(host.admin)
    check_verify(host.process.url, key, device_id, body)
    body_file = host.workdir / "verify-body.json"
    body_file.write_bytes(body)
    signed, signed_beside = host.workdir / "signed", host.workdir / "signed-beside"
    count = max(connections, math.ceil(seconds * PRESIGNED_PER_SECOND))
    for folder in (signed, signed_beside):  # a nonce is good once: a set for each verify run
        presign(folder, key, device_id, body, count)
    signing = Template(WRK_SIGNED).substitute(
        target=VERIFY_TARGET,
        device_id=device_id,
        device_header=HEADER_DEVICE,
        time_header=HEADER_TIME,
        nonce_header=HEADER_NONCE,
        signature_header=HEADER_SIGNATURE,
    )
    code_url = urlsplit(host.admin.venue("Bench page", "127.0.0.1", "public_place").code_url)
    local = urlsplit(host.process.url)
    venue_page = urlunsplit(code_url._replace(scheme=local.scheme, netloc=local.netloc))
    runs = {
        HEALTH: (f"{host.process.url}{API_PREFIX}/health", "", ()),
        VERIFY: (host.process.url + VERIFY_TARGET, signing, (str(body_file), str(signed))),
        VENUE_PAGE: (venue_page, "", ()),
    }
    alone = [
        LoadRun(
            endpoint,
            workers,
            backend,
            run_wrk(
                url,
                script,
                arguments,
                seconds=seconds,
                connections=connections,
                workdir=host.workdir,
            ),
        )
        for endpoint, (url, script, arguments) in runs.items()
    ]
    beside = {
        VENUE_PAGE_BESIDE: (venue_page, "", ()),
        VERIFY_BESIDE: (
            host.process.url + VERIFY_TARGET, signing, (str(body_file), str(signed_beside))
        ),
    }
    with ThreadPoolExecutor(len(beside)) as pool:
        together = {
            endpoint: pool.submit(
                run_wrk,
                url,
                script,
                arguments,
                seconds=seconds,
                connections=max(1, connections // 2),
                workdir=host.workdir,
                name=f"beside-{index}",
            )
            for index, (endpoint, (url, script, arguments)) in enumerate(beside.items())
        }
        return alone + [
            LoadRun(endpoint, workers, backend, run.result()) for endpoint, run in together.items()
        ]


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def served_processes(host: HostProcess, workers: int) -> list[tuple[str, int]]:
    """(role, pid) of each process of `sentinel host serve`.

    With one worker the process itself; with more, uvicorn's supervisor and its workers.
    """
    assert host.process is not None
    if workers == 1:
        return [("worker", host.process.pid)]
    spawned = host.worker_pids()
    if len(spawned) != workers:
        raise RuntimeError(f"`sentinel host serve --workers {workers}` has {len(spawned)} workers")
    return [("supervisor", host.process.pid)] + [("worker", child) for child in spawned]


def peak_rss(host: BenchHost, backend: str, workers: int) -> list[PeakRss]:
    return [
        PeakRss(workers, backend, role, peak_rss_kib(pid))
        for role, pid in served_processes(host.process, workers)
    ]


def measure_backend(bench: HostBench, backend: str, workdir: Path, db_url: str, seed: int) -> None:
    """Every row of one backend: storage ingest, then a host with each number of workers."""
    name = BACKEND_NAMES[backend]
    progress.update(f"{name}: storage ingest")
    with fresh_database(backend, workdir / "storage", db_url) as database:
        bench.storage += storage_ingest(backend, database, bench.sizes.checkins, seed)
    for workers in WORKER_COUNTS:
        folder = workdir / f"host-{workers}-workers"
        folder.mkdir()
        with fresh_database(backend, folder, db_url) as database:
            host = start_host(folder, database, workers)
            if isinstance(host, str):
                bench.host_not_measured(backend, workers, host)
                continue
            try:
                progress.update(f"{name}, {workers} workers: HTTP ingest, then request rates")
                bench.http += http_ingest(host, backend, workers, bench.sizes.http_checkins, seed)
                bench.load += load_runs(
                    host, backend, workers, bench.sizes.seconds, bench.connections
                )
                bench.rss += peak_rss(host, backend, workers)
            finally:
                host.process.stop()


def measure(
    *, backends: Sequence[str], db_url: str, sizes: Sizes, connections: int, seed: int = 2022
) -> HostBench:
    """Every row of each backend, in a temporary directory and scratch schemas removed after."""
    bench = HostBench(sizes, connections)
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-host-") as temporary:
        for backend in backends:
            reason = postgres_unavailable(db_url) if backend == POSTGRESQL else None
            if reason is not None:
                bench.backend_not_measured(backend, reason)
                continue
            workdir = Path(temporary) / backend
            (workdir / "storage").mkdir(parents=True)
            measure_backend(bench, backend, workdir, db_url, seed)
    return bench
