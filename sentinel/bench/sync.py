"""`sentinel bench sync`: check-in commits per synchronous level, and a backlog synced to a host.

- commit rate: the device store's `record` (one durable commit per check-in, WAL) with
  synchronous=FULL, as the kiosk runs, against NORMAL and OFF in the same run;
- backlog: `sentinel host serve` on 127.0.0.1 with a fresh database, a device enrolled through
  the real enrollment path, its store filled with a backlog, then synced by the device's own
  Syncer (gzipped batches, a window of batches in flight) until the host has acknowledged it
  all; once directly and once through sentinel.chaos.proxy adding latency to every chunk each
  way.
"""

from __future__ import annotations

import gzip
import os
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.client import GZIP_LEVEL, HostClient, enroll
from device.clock import DeviceClock
from device.store import Store
from device.sync import Syncer
from sentinel.chaos.proxy import FaultProxy, Faults
from sentinel.demo import Admin, HostProcess, free_port
from shared.messages import MAX_BATCH, CheckIn, CheckInBatch, DeviceForm
from shared.policy import Outcome
from shared.uuid7 import uuid7
from shared.verification import CredentialKind

LEVELS = ("FULL", "NORMAL", "OFF")
SYNC_TIMEOUT_SECONDS = 600
REF_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # as the host's random ids
DENIALS = (
    "colour-not-accepted: yellow; the health status must be green [HC-COLOUR]",
    "test-too-old: the test must be sampled within 48 h [HC-TEST-AGE]",
    "fever: the temperature must be below 37.3 °C [FEVER]",
)
REFERRALS = (
    "untrusted-signer: no health key with id 9be3d9902c5bb158",
    "paper-code: staff check the paper code against the ID card [HC-PAPER]",
)


def sample_checkins(venue_id: str, count: int, seed: int) -> Iterator[CheckIn]:
    """Check-ins as a busy entrance makes them: one a second, mostly passes, some refused."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(seconds=count)
    for number in range(count):
        roll = rng.random()
        if roll < 0.85:
            outcome, reasons = Outcome.PASS, ["ok"]
        elif roll < 0.93:
            outcome, reasons = Outcome.DENY, [rng.choice(DENIALS)]
        else:
            outcome, reasons = Outcome.REFER, [rng.choice(REFERRALS)]
        yield CheckIn(
            id=uuid7(),
            venue_id=venue_id,
            scanned_at=start + timedelta(seconds=number, milliseconds=rng.randrange(1000)),
            person_ref="p_" + "".join(rng.choices(REF_ALPHABET, k=16)),
            kind=CredentialKind.DCC if rng.random() < 0.05 else CredentialKind.HEALTH,
            outcome=outcome,
            reasons=reasons,
            temperature_c=round(rng.gauss(36.5, 0.25), 1),
            clock_trusted=True,
        )


@dataclass(frozen=True)
class CommitRate:
    synchronous: str
    checkins: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.checkins / self.seconds


def commit_rates(workdir: Path, count: int, seed: int) -> list[CommitRate]:
    """`Store.record` timed for `count` check-ins at each synchronous level, on fresh files."""
    checkins = list(sample_checkins("v_bench", count * len(LEVELS), seed))
    rates = []
    for index, level in enumerate(LEVELS):
        store = Store(workdir / f"commit-{level.lower()}.db", synchronous=level)
        started = time.perf_counter()
        for checkin in checkins[index * count : (index + 1) * count]:
            store.record(checkin)
        rates.append(CommitRate(level, count, time.perf_counter() - started))
        store.close()
    return rates


@dataclass(frozen=True)
class BatchSize:
    checkins: int
    json_bytes: int
    gzip_bytes: int


def batch_size(venue_id: str, seed: int) -> BatchSize:
    """What one full batch weighs on the wire, as JSON and as the device sends it (gzip)."""
    batch = CheckInBatch(checkins=list(sample_checkins(venue_id, MAX_BATCH, seed)))
    body = batch.model_dump_json().encode()
    gzipped = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
    return BatchSize(MAX_BATCH, len(body), len(gzipped))


@dataclass(frozen=True)
class SyncRun:
    path: str
    latency_ms: float
    window: int
    checkins: int
    seconds: float
    host_checkins: int  # what the host holds afterwards, from this and any earlier run

    @property
    def per_second(self) -> float:
        return self.checkins / self.seconds


class BenchHost:
    """A real host process, and devices enrolled at venues of their own through the real path.

    By default on a new SQLite file in `workdir`; `db` names another (a PostgreSQL URL).
    """

    def __init__(self, workdir: Path, *, db: Path | str | None = None, workers: int = 1) -> None:
        self.workdir = workdir
        token = os.urandom(24).hex()
        self.process = HostProcess(workdir, free_port(), token, db=db, workers=workers)
        self.admin = Admin(self.process.url, token)

    def __enter__(self) -> BenchHost:
        self.process.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.process.stop()

    def device(self, name: str) -> tuple[str, str, Ed25519PrivateKey]:
        """(device id, venue id, key) of a newly enrolled device."""
        venue = self.admin.venue(f"Bench {name}", "127.0.0.1", "public_place")
        key = Ed25519PrivateKey.generate()
        enrolled = enroll(
            self.process.url,
            self.admin.enrollment_token(venue.id),
            key,
            name=name,
            form=DeviceForm.KIOSK,
        )
        return enrolled.device_id, venue.id, key

    def checkins(self) -> int:
        return self.admin.stats().checkins


def sync_backlog(
    host: BenchHost,
    backlog: int,
    seed: int,
    *,
    window: int,
    latency_ms: float | None,
    name: str | None = None,
) -> SyncRun:
    """Fill a new device's store with `backlog` check-ins, then time the Syncer sending them all.

    With `latency_ms`, the device reaches the host through a FaultProxy adding that much to
    every chunk each way; without, directly. `name` names the device (and its files).
    """
    name = name or ("direct" if latency_ms is None else f"proxy-{latency_ms:g}ms")
    device_id, venue_id, key = host.device(name)
    path = host.workdir / f"device-{name}.db"
    filling = Store(path, synchronous="OFF")  # setting up: fast, and not what is measured
    for checkin in sample_checkins(venue_id, backlog, seed):
        filling.record(checkin)
    filling.close()
    store = Store(path)
    url = host.process.url
    proxy = None
    if latency_ms is not None:
        proxy = FaultProxy("127.0.0.1", host.process.port, seed=seed).start()
        proxy.set_faults(Faults(latency_ms=latency_ms))
        url = proxy.url
    client = HostClient(url, device_id, key, DeviceClock())
    syncer = Syncer(store, client, on_config=lambda _config: None, window=window)
    try:
        started = time.perf_counter()
        deadline = time.monotonic() + SYNC_TIMEOUT_SECONDS
        acknowledged = 0
        while acknowledged < backlog and time.monotonic() < deadline:
            sent = syncer.sync_once()
            acknowledged += sent
            if not sent:
                break
        seconds = time.perf_counter() - started
    finally:
        syncer.stop()
        client.close()
        if proxy is not None:
            proxy.stop()
    if store.counts() != (backlog, backlog):
        raise RuntimeError(f"{name}: the host acknowledged {store.counts()[1]} of {backlog}")
    latency = 0.0 if latency_ms is None else latency_ms
    return SyncRun(name, latency, window, backlog, seconds, host.checkins())


@dataclass(frozen=True)
class SyncBench:
    commits: list[CommitRate]
    batch: BatchSize
    runs: list[SyncRun]

    def tables(self) -> list[str]:
        full = self.commits[0]
        lines = [
            "| synchronous | check-ins | commits/s | ms per commit | vs FULL |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {rate.synchronous} | {rate.checkins} | {rate.per_second:,.0f} | "
            f"{1000 / rate.per_second:.3f} | {rate.per_second / full.per_second:.1f}x |"
            for rate in self.commits
        ]
        batch = self.batch
        lines += [
            "",
            "| one batch | check-ins | JSON bytes | gzip bytes | ratio |",
            "|---|---|---|---|---|",
            f"| as sent | {batch.checkins} | {batch.json_bytes:,} | {batch.gzip_bytes:,} | "
            f"{batch.json_bytes / batch.gzip_bytes:.1f}x |",
            "",
            "| backlog synced | latency added each way | batches in flight | check-ins | "
            "seconds | check-ins/s |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {run.path} | {run.latency_ms:g} ms | {run.window} | {run.checkins:,} | "
            f"{run.seconds:.2f} | {run.per_second:,.0f} |"
            for run in self.runs
        ]
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "commits": [
                {
                    "synchronous": rate.synchronous,
                    "checkins": rate.checkins,
                    "per_second": round(rate.per_second, 1),
                    "vs_full": round(rate.per_second / self.commits[0].per_second, 2),
                }
                for rate in self.commits
            ],
            "batch": {
                "checkins": self.batch.checkins,
                "json_bytes": self.batch.json_bytes,
                "gzip_bytes": self.batch.gzip_bytes,
                "ratio": round(self.batch.json_bytes / self.batch.gzip_bytes, 2),
            },
            "sync": [
                {
                    "path": run.path,
                    "latency_ms": run.latency_ms,
                    "window": run.window,
                    "checkins": run.checkins,
                    "seconds": round(run.seconds, 3),
                    "per_second": round(run.per_second, 1),
                    "host_checkins": run.host_checkins,
                }
                for run in self.runs
            ],
        }


def measure(
    *, commits: int, backlog: int, latency_ms: float, window: int, seed: int = 2022
) -> SyncBench:
    """All three measurements in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-sync-") as temporary:
        workdir = Path(temporary)
        rates = commit_rates(workdir, commits, seed)
        with BenchHost(workdir) as host:
            runs = [
                sync_backlog(host, backlog, seed, window=window, latency_ms=None),
                sync_backlog(host, backlog, seed + 1, window=window, latency_ms=latency_ms),
            ]
        return SyncBench(rates, batch_size("v_bench", seed), runs)
