"""The fault-injection suite: a scan storm into real kiosks while host, kiosk and network fail."""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, astuple, dataclass
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import cv2
import httpx
import numpy as np

from sentinel.chaos.proxy import FaultProxy, Faults, ProxyCounts
from sentinel.demo import (
    Admin,
    HostProcess,
    Kiosk,
    camera_frame,
    demo_workdir,
    device_run_command,
    enroll,
    free_port,
    kiosk_counts,
    sentinel_command,
)
from sentinel.progress import progress
from shared.idnumber import with_check_character
from shared.messages import Venue
from shared.qrimage import qr_png

log = logging.getLogger(__name__)
DESCRIPTION = """\
A scan storm into real kiosks while host, kiosk and network fail.

Two hosts (`sentinel host serve`) and one enrolled kiosk per fault, each kiosk replaying camera
frames of valid health codes in a loop with the repeat filter off, so every frame shown is a new
check-in. The faults, one row each: the kiosk SIGKILLed and restarted at random moments; the
host SIGKILLed and restarted (the second host, so no other fault is touched); and, through a TCP
proxy of ours between kiosk and host, connections dropped (black-holed), delayed, reset and
truncated. After its fault each kiosk runs once more without faults until the host has
acknowledged everything it recorded (`--exit-when-done`).

A check-in counts as acknowledged when the kiosk printed its event with a check-in id, which it
does only after the commit, when it tells the person. Then the hosts' databases are read: `on
host` are the acknowledged ids a host holds, `lost` those it lacks, `doubled` the rows beyond
one per check-in the kiosk recorded (an id told or held twice, or rows the kiosk never made).
`runs` is how often the fault struck: kills, or connections dropped, chunks delayed,
connections reset, responses truncated.

Exit status: 0 when nothing was lost or doubled and every fault struck while the kiosk told
check-ins, 1 otherwise, 2 when the suite itself could not run.
"""
PEOPLE = 4  # distinct codes on camera; with the repeat filter off each frame is a check-in
CODE_TTL_SECONDS = 600  # the longest a dynamic code lives
FPS = 8.0
DRAIN_SECONDS = 60.0  # the final run's --drain-timeout
FINAL_RUN_SECONDS = DRAIN_SECONDS + 60.0
STOP_SECONDS = 20.0  # for a kiosk to stop on SIGTERM before it is killed
DOWN_SECONDS = 1.5  # a killed host stays down up to this long
STARTUP_GUESS_SECONDS = 3.0  # from start to first check-in, until a kiosk is timed
START_SECONDS = 60.0  # the longest a kiosk may take from start to first check-in
POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Plan:
    """How much of each fault: the quick version for the test suite, the full one on demand."""

    device_kills: int
    host_kills: int
    proxy_seconds: float  # scanning through each proxy fault
    up_seconds: float  # a host lives up to this long between kills; a kiosk, once scanning


QUICK = Plan(device_kills=6, host_kills=3, proxy_seconds=10.0, up_seconds=2.0)
FULL = Plan(device_kills=100, host_kills=15, proxy_seconds=120.0, up_seconds=2.0)

# Each proxy fault, and the counter of the proxy that says how often it struck.
PROXY_FAULTS: dict[str, tuple[Faults, Callable[[ProxyCounts], int]]] = {
    "proxy-drop": (Faults(drop_rate=0.1), lambda counts: counts.dropped),
    "proxy-delay": (Faults(latency_ms=100, jitter_ms=400), lambda counts: counts.delayed),
    "proxy-reset": (Faults(reset_rate=0.2), lambda counts: counts.reset),
    "proxy-truncate": (Faults(truncate_rate=0.3), lambda counts: counts.truncated),
}
FAULTS = ("device-kill", "host-kill", *PROXY_FAULTS)


class ChaosError(Exception):
    """The suite could not run as planned (a process would not start, or died on its own)."""


@dataclass(frozen=True)
class Row:
    """One fault's line of the table."""

    fault: str
    runs: int
    acknowledged: int
    on_host: int
    lost: int
    doubled: int

    @property
    def sound(self) -> bool:
        """Nothing lost or doubled, and the fault really struck while check-ins were made."""
        return self.lost == self.doubled == 0 and self.runs > 0 and self.acknowledged > 0


class Children:
    """Every kiosk process the suite starts, so that none outlives it; and its waits, cut short."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: list[subprocess.Popen[bytes]] = []
        self._closed = threading.Event()

    def start(
        self, command: list[str], stdout: IO[bytes], log_file: IO[bytes]
    ) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._closed.is_set():
                raise ChaosError("stopping: no new processes")
            process = subprocess.Popen(command, stdout=stdout, stderr=log_file)
            self._started.append(process)
            return process

    def pause(self, seconds: float) -> None:
        """Sleep, unless the suite is stopping."""
        if self._closed.wait(seconds):
            raise ChaosError("stopping")

    def kill_all(self) -> None:
        """SIGKILL whatever still runs (a kiosk is one process with no children)."""
        with self._lock:
            self._closed.set()
            for process in self._started:
                if process.poll() is None:
                    process.kill()
                    process.wait()


class Subject:
    """One enrolled kiosk under one fault, and every run it made."""

    def __init__(self, fault: str, kiosk: Kiosk, workdir: Path, children: Children) -> None:
        self.fault = fault
        self.kiosk = kiosk
        self.runs_dir = workdir / f"runs-{fault}"
        self.runs_dir.mkdir()
        self.children = children
        self.starts = 0

    @property
    def events(self) -> Path:
        """Where the latest run prints its events."""
        return self.runs_dir / f"{self.starts:03d}.events"

    def _launch(self, command: list[str]) -> subprocess.Popen[bytes]:
        self.starts += 1
        with self.events.open("wb") as stdout, self.events.with_suffix(".log").open("wb") as log:
            return self.children.start(command, stdout, log)

    def scan_storm(self) -> subprocess.Popen[bytes]:
        """The kiosk replaying its frames for ever, every frame a new check-in."""
        command = sentinel_command(
            "device", "run", "--state", str(self.kiosk.state), "--source", str(self.kiosk.frames),
            "--loop", "--fps", str(FPS), "--repeat-window", "0", "--events", "json",
        )  # fmt: skip
        return self._launch(command)

    def first_checkin(self, process: subprocess.Popen[bytes]) -> float:
        """Wait until the kiosk just started has told its first check-in; how long that took."""
        started = time.monotonic()
        while self.events.stat().st_size == 0:
            self.expect_running(process)
            if time.monotonic() - started > START_SECONDS:
                raise ChaosError(f"{self.fault}: no check-in within {START_SECONDS:.0f} s")
            self.children.pause(POLL_SECONDS)
        return time.monotonic() - started

    def expect_running(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            raise ChaosError(
                f"{self.fault}: the kiosk exited on its own with {process.returncode}; "
                f"see {self.events.with_suffix('.log')}"
            )

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM, as systemd stops it; SIGKILL if it does not stop in time."""
        self.expect_running(process)
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise ChaosError(f"{self.fault}: the kiosk did not stop on SIGTERM") from None

    def finish(self) -> None:
        """One last pass over the frames with no fault, exiting once the host has everything."""
        progress.update(f"{self.fault}: final run", part=self.fault)
        process = self._launch(
            device_run_command(
                self.kiosk, "--repeat-window", "0", "--drain-timeout", str(DRAIN_SECONDS)
            )
        )
        try:
            status = process.wait(FINAL_RUN_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            status = None
        progress.update(f"{self.fault}: done", part=self.fault)
        if status != 0:
            log.warning(
                "%s: the final run did not drain (status %s); see %s",
                self.fault, status, self.events.with_suffix(".log"),
            )  # fmt: skip

    def acknowledged(self) -> list[str]:
        """The check-in ids of every event the kiosk printed, in every run."""
        ids = []
        for events in sorted(self.runs_dir.glob("*.events")):
            for line in events.read_text().splitlines():
                checkin_id = json.loads(line)["checkin_id"]
                if checkin_id is not None:
                    ids.append(checkin_id)
        return ids


def device_kills(subject: Subject, plan: Plan, rng: random.Random) -> int:
    """SIGKILL the kiosk at random moments (starting up, scanning, syncing) and restart it."""
    startup = STARTUP_GUESS_SECONDS
    for kill in range(plan.device_kills):
        process = subject.scan_storm()
        if kill % 2:  # while it scans and syncs
            startup = subject.first_checkin(process)
            subject.children.pause(rng.uniform(0, plan.up_seconds))
        else:  # anywhere in its life: loading, first contact, backlog sync, scanning
            subject.children.pause(rng.uniform(0, startup + plan.up_seconds))
        subject.expect_running(process)
        process.kill()
        process.wait()
        progress.update(f"device-kill: {kill + 1} of {plan.device_kills}", part="device-kill")
    subject.finish()
    return plan.device_kills


def host_kills(subject: Subject, host: HostProcess, plan: Plan, rng: random.Random) -> int:
    """SIGKILL the host at random moments while the kiosk scans, and start it again."""
    process = subject.scan_storm()
    for kill in range(plan.host_kills):
        progress.update(f"host-kill: {kill + 1} of {plan.host_kills}", part="host-kill")
        subject.children.pause(rng.uniform(0, plan.up_seconds))
        host.kill()
        subject.children.pause(rng.uniform(0, DOWN_SECONDS))
        host.start()
        subject.expect_running(process)
    subject.children.pause(plan.up_seconds)
    subject.stop(process)
    subject.finish()
    return plan.host_kills


def proxy_fault(subject: Subject, proxy: FaultProxy, plan: Plan) -> int:
    """Scan through the proxy while it misbehaves; then heal it."""
    faults, struck = PROXY_FAULTS[subject.fault]
    process = subject.scan_storm()
    proxy.set_faults(faults)
    progress.update(f"{subject.fault}: {plan.proxy_seconds:g} s", part=subject.fault)
    subject.children.pause(plan.proxy_seconds)
    proxy.set_faults(Faults())
    subject.stop(process)
    subject.finish()
    return struck(proxy.counts)


def make_frames(admin: Admin, frames: Path, seed: int) -> None:
    """Camera frames of valid health codes, one person each, issued by the host."""
    rng = np.random.default_rng(seed)
    for index in range(PEOPLE):
        person = admin.person(with_check_character(f"1101011990{index:07d}"), "green", 5)
        code = admin.code(person, ttl_seconds=CODE_TTL_SECONDS)
        cv2.imwrite(str(frames / f"{index:02d}.png"), camera_frame(qr_png(code.text), rng))


def host_rows(database: Path) -> dict[str, Counter[UUID]]:
    """Check-in rows the host holds, counted per id, per device."""
    rows: dict[str, Counter[UUID]] = {}
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        for device_id, checkin_id, count in connection.execute(
            "SELECT device_id, id, COUNT(*) FROM checkins GROUP BY device_id, id"
        ):
            rows.setdefault(device_id, Counter())[UUID(bytes=checkin_id)] = count
    return rows


def tally(
    subject: Subject, runs: int, status: dict[str, Any], rows: dict[str, Counter[UUID]]
) -> Row:
    """Compare what the kiosk acknowledged, and recorded (`device status`), with the host's rows."""
    told = Counter(UUID(checkin_id) for checkin_id in subject.acknowledged())
    held = rows.get(status["device_id"], Counter())
    on_host = sum(1 for checkin_id in told if held[checkin_id] > 0)
    # One id told twice, one id stored twice, or more rows than check-ins the kiosk recorded
    # (those told, and at most one per run cut short between commit and telling).
    doubled = (
        sum(told.values()) - len(told)
        + sum(held.values()) - len(held)
        + max(0, len(held) - status["recorded"])
    )  # fmt: skip
    return Row(subject.fault, runs, len(told), on_host, len(told) - on_host, doubled)


@dataclass(frozen=True)
class Site:
    """A host with a venue, and camera frames of codes it issued."""

    host: HostProcess
    admin: Admin
    venue: Venue
    frames: Path


def open_site(host: HostProcess, seed: int) -> Site:
    host.start()
    assert host.token_file is not None
    admin = Admin(host.url, host.token_file.read_text())
    venue = admin.venue("Chaos Station", "1 Fault Line", "public_place")
    frames = host.workdir / "frames"
    frames.mkdir()
    make_frames(admin, frames, seed)
    return Site(host, admin, venue, frames)


def new_host(directory: Path) -> HostProcess:
    directory.mkdir()
    return HostProcess(directory, free_port(), os.urandom(24).hex())


def run_chaos(workdir: Path, plan: Plan, seed: int) -> list[Row]:
    """Start the hosts, enroll a kiosk per fault, run the faults at once, read what hosts hold.

    The host-kill fault has a host of its own, so that its kills touch no other fault.
    """
    rng = random.Random(seed)
    seeds = {fault: rng.randrange(2**32) for fault in FAULTS}
    children = Children()
    host, doomed_host = new_host(workdir / "host"), new_host(workdir / "host-kill")
    proxies = {
        fault: FaultProxy("127.0.0.1", host.port, seed=seeds[fault]) for fault in PROXY_FAULTS
    }
    pool = ThreadPoolExecutor(len(FAULTS))
    try:
        site, doomed_site = pool.map(open_site, (host, doomed_host), (seed, seed + 1))
        for proxy in proxies.values():
            proxy.start()

        def enrolled(fault: str) -> Subject:
            at = doomed_site if fault == "host-kill" else site
            url = proxies[fault].url if fault in proxies else at.host.url
            kiosk = enroll(url, at.admin, at.venue, workdir, fault)
            for frame in sorted(at.frames.iterdir()):
                os.link(frame, kiosk.frames / frame.name)
            return Subject(fault, kiosk, workdir, children)

        subjects = dict(zip(FAULTS, pool.map(enrolled, FAULTS), strict=True))
        log.info("%d kiosks enrolled; the faults begin", len(subjects))
        runs = {
            "device-kill": pool.submit(
                device_kills, subjects["device-kill"], plan, random.Random(seeds["device-kill"])
            ),
            "host-kill": pool.submit(
                host_kills,
                subjects["host-kill"],
                doomed_host,
                plan,
                random.Random(seeds["host-kill"]),
            ),
        }
        for fault, proxy in proxies.items():
            runs[fault] = pool.submit(proxy_fault, subjects[fault], proxy, plan)
        counts = {fault: future.result() for fault, future in runs.items()}
        kiosks = [subjects[fault].kiosk for fault in FAULTS]
        statuses = dict(zip(FAULTS, pool.map(kiosk_counts, kiosks), strict=True))
    finally:
        children.kill_all()
        pool.shutdown(cancel_futures=True)
        for proxy in proxies.values():
            proxy.stop()
        host.stop()
        doomed_host.stop()
    rows = host_rows(host.db) | host_rows(doomed_host.db)
    return [tally(subjects[fault], counts[fault], statuses[fault], rows) for fault in FAULTS]


def print_table(rows: list[Row]) -> None:
    header = ("fault", "runs", "acknowledged", "on host", "lost", "doubled")
    lines = [header] + [tuple(str(value) for value in astuple(row)) for row in rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    for line in lines:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        print("  ".join(cells))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"the short version: {QUICK.device_kills} kiosk kills, {QUICK.host_kills} host "
        f"kills, {QUICK.proxy_seconds:.0f} s per proxy fault (under a minute); the full one has "
        f"{FULL.device_kills}, {FULL.host_kills} and {FULL.proxy_seconds:.0f} s",
    )
    parser.add_argument("--json", action="store_true", help='print {"faults": [...]}')
    parser.add_argument(
        "--seed", type=int, default=None, help="seed for the kill moments and the proxy's dice"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the host database, kiosk states, events and logs here (default: a temp dir)",
    )


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """Leave through the `finally` blocks, which stop every process the suite started."""
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    log.info("seed %d (--seed %d runs the same dice again)", seed, seed)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    with demo_workdir(args.workdir) as workdir:
        try:
            with progress:
                rows = run_chaos(workdir, QUICK if args.quick else FULL, seed)
        except (ChaosError, RuntimeError, OSError, ValueError, subprocess.SubprocessError,
                httpx.HTTPError, sqlite3.Error) as error:  # fmt: skip
            hint = f"logs are in {workdir}" if args.workdir else "--workdir DIR keeps the logs"
            print(f"scripts/chaos: {error} ({hint})", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps({"faults": [asdict(row) for row in rows]}))
    else:
        print_table(rows)
    for row in rows:
        if not row.sound:
            print(
                f"scripts/chaos: {row.fault}: {row.lost} lost, {row.doubled} doubled, "
                f"{row.runs} runs, {row.acknowledged} acknowledged",
                file=sys.stderr,
            )
    return 0 if all(row.sound for row in rows) else 1
