"""A whole check-in cycle on one machine: a host, two enrolled kiosks, codes shown to their cameras.

The demo starts `sentinel host serve` on 127.0.0.1 with a fresh SQLite database (or, with
`--db postgresql://...`, a PostgreSQL schema of its own, dropped afterwards), registers a
public venue and a residential compound, imports people, enrolls one kiosk at each venue through
the real enrollment path, renders camera frames holding real codes issued by the host (and a
forged, a foreign and a plain-text one), runs `sentinel device run` over them as separate
processes, waits for the kiosks to sync, and prints what each kiosk decided and what the host holds.
Where headless Chromium is installed it also saves the kiosk screen idle and at a pass, a deny and
a referral (`sentinel.demo_browser`), and checks a citizen in with a phone through a venue code.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import cv2
import httpx
import numpy as np

from device.client import Verification, tls_verification
from hardware.thermometer.emulator import Emulator
from host.cli import TlsFiles
from sentinel.browser import chromium, unavailable
from sentinel.demo_browser import (
    CARDS,
    KIOSK_SIZE,
    PHONE_SIZE,
    REGISTERED,
    kiosk_screenshots,
    phone_check_in,
)
from sentinel.demo_dashboard import (
    SIZE as DASHBOARD_SIZE,
)
from sentinel.demo_dashboard import (
    DashboardUser,
    dashboard_screenshots,
    dashboard_users,
    print_dashboard,
    staff_list,
)
from sentinel.progress import progress
from shared import healthcode
from shared.envelope import base45, inflate, parse_cose, wrap
from shared.healthcode import CLAIM_KEY, CodeKind, Colour, NucleicTest, TestResult
from shared.keys import SigningKey
from shared.messages import (
    API_PREFIX,
    EnrollmentToken,
    HostStats,
    HourlyCount,
    IssuedCode,
    PeopleImported,
    SignInLink,
    Venue,
)
from shared.qrimage import qr_png

FRAME_SIZE = (1280, 720)
HOST_START_SECONDS = 30.0
# Printed in venue codes, which phones open; the demo's host itself listens on 127.0.0.1.
DEMO_PUBLIC_URL = "https://sentinel.example.org"
# The demo's people by their role in it: resident ID numbers with right check characters.
DEMO_ID_NUMBERS = {
    "green": "110101199003071014",
    "stale": "11010119851212102X",
    "yellow": "110101197001011035",
    "red": "110101200002021045",
}


@dataclass(frozen=True)
class Case:
    """One person at one entrance; `expect` is what a correct kiosk must decide."""

    name: str
    venue: str  # "public", "residential" or "clinic"
    expect: tuple[str, ...]


CASES = (
    Case("green", "public", ("pass",)),
    Case("stale-test", "public", ("deny", "refer")),
    Case("stale-test-residential", "residential", ("pass",)),
    Case("yellow", "public", ("deny", "refer")),
    Case("red", "public", ("deny", "refer")),
    Case("expired", "public", ("deny", "refer")),
    Case("forged", "public", ("deny", "refer")),
    Case("foreign-issuer", "public", ("deny", "refer")),
    Case("not-a-code", "public", ("ignored",)),
    Case("repeat", "public", ("ignored",)),
    Case("fever", "clinic", ("deny",)),
)
FEVER_CELSIUS = 38.2  # what the clinic's emulated forehead thermometer reads
# The order the kiosk sees them: the repeat comes right after the code it repeats.
SHOWN_ORDER = (
    "green",
    "repeat",
    "stale-test",
    "yellow",
    "red",
    "expired",
    "forged",
    "foreign-issuer",
    "not-a-code",
    "stale-test-residential",
    "fever",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of tables"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the host database, kiosk state and frames here (default: a temp dir)",
    )
    parser.add_argument(
        "--seed", type=int, default=2022, help="seed for the simulated camera noise"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="when done, keep the host serving (the dashboard, the API) until interrupted",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="run the host on PostgreSQL, in a schema of its own dropped afterwards, e.g. "
        "postgresql://127.0.0.1/test (default: a SQLite file in the work directory)",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sentinel_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sentinel", *args]


class HostProcess:
    """`sentinel host serve` as a child process on 127.0.0.1, which can be killed and restarted.

    With no admin token given, the host makes (or reuses) the token file beside its database.
    """

    def __init__(
        self,
        workdir: Path,
        port: int,
        admin_token: str | None,
        *,
        db: Path | str | None = None,
        workers: int = 1,
        tls: TlsFiles | None = None,
        ca_file: Path | None = None,
        options: tuple[str, ...] = (),
    ) -> None:
        """`tls`: serve https with these files, its certificate checked against `ca_file`.

        `options`: more options of `sentinel host serve`, such as `--body-timeout 1`.
        """
        self.workdir = workdir
        self.options = options
        self.tls = tls
        self.verify = tls_verification(ca_file)
        self.db = db or workdir / "host.db"  # a SQLite file, or a postgresql:// URL
        self.workers = workers
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.port = port
        self.log = workdir / "host.log"
        # A SQLite host makes its token file beside the database; a PostgreSQL host in workdir.
        self.token_file = (
            workdir / "admin-token" if admin_token or not isinstance(self.db, Path) else None
        )
        if self.token_file and admin_token:
            self.token_file.write_text(admin_token)
            self.token_file.chmod(0o600)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, log: Path | None = None) -> None:
        """Start the host and return once it answers its health check."""
        self.log = log or self.log
        command = sentinel_command(
            "host",
            "serve",
            "--db",
            str(self.db),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--public-url",
            DEMO_PUBLIC_URL,
            "--workers",
            str(self.workers),
        )
        if self.token_file:
            command += ["--admin-token-file", str(self.token_file)]
        if self.tls:
            command += ["--tls-cert", str(self.tls.certificate), "--tls-key", str(self.tls.key)]
        command += self.options
        with self.log.open("a") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + HOST_START_SECONDS
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"host exited with {self.process.returncode}; see {self.log}")
            try:
                health = f"{self.url}{API_PREFIX}/health"
                if httpx.get(health, timeout=1, verify=self.verify).is_success:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"host did not answer within {HOST_START_SECONDS:.0f} s")
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        """The worker processes uvicorn spawned for `--workers N` (not its resource tracker)."""
        if self.process is None:
            return []
        workers = []
        for process in Path("/proc").glob("[0-9]*"):
            try:
                # pid (comm) state ppid ...; comm may hold spaces and parentheses.
                parent = int((process / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (process / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            if parent == self.process.pid and b"multiprocessing.spawn" in command:
                workers.append(int(process.name))
        return sorted(workers)

    def kill(self) -> None:
        """SIGKILL: the host dies mid-whatever, as in a power cut."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextmanager
def host_database(workdir: Path, db: str | None) -> Iterator[Path | str]:
    """A fresh SQLite file in `workdir`, or a fresh schema in the PostgreSQL database at `db`.

    The schema is dropped afterwards, so the demo leaves the database as it found it.
    """
    if db is None:
        yield workdir / "host.db"
        return
    import psycopg

    from host.storage import Database
    from host.storage.postgres import scratch_schema

    database = Database.parse(db)
    if not database.is_postgres:
        raise ValueError(f"--db takes a postgresql:// URL (the default is SQLite): {db}")
    try:
        with scratch_schema(db, "sentinel_demo") as url:
            yield url
    except psycopg.OperationalError as error:
        raise RuntimeError(f"{database.describe()}: {error}") from None


@contextmanager
def running_host(workdir: Path, admin_token: str, db: str | None = None) -> Iterator[HostProcess]:
    with host_database(workdir, db) as database:
        host = HostProcess(workdir, free_port(), admin_token, db=database)
        host.start()
        try:
            yield host
        finally:
            host.stop()


class Admin:
    """The host operator's side of the demo, over the real admin API."""

    def __init__(self, url: str, token: str, verify: Verification = True) -> None:
        self.http = httpx.Client(
            base_url=url + API_PREFIX,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            verify=verify,
        )

    def _post(self, path: str, body: dict[str, Any], **params: str) -> httpx.Response:
        response = self.http.post(path, json=body, params=params)
        if not response.is_success:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        return response

    def venue(self, name: str, address: str, category: str) -> Venue:
        body = {"name": name, "address": address, "category": category}
        return Venue.model_validate_json(self._post("/admin/venues", body).content)

    def person(self, id_number: str, colour: str, test_hours_ago: float | None) -> str:
        person: dict[str, Any] = {"id_number": id_number, "colour": colour}
        if test_hours_ago is not None:
            sampled = datetime.now(UTC) - timedelta(hours=test_hours_ago)
            person["test"] = {"sampled_at": sampled.isoformat(), "result": "negative"}
        imported = PeopleImported.model_validate_json(
            self._post("/admin/people", {"people": [person]}).content
        )
        return imported.people[0].person_ref

    def code(self, person_ref: str, ttl_seconds: int | None = None) -> IssuedCode:
        body: dict[str, Any] = {"kind": "dynamic"}
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        return IssuedCode.model_validate_json(
            self._post(f"/admin/people/{person_ref}/codes", body).content
        )

    def code_png(self, person_ref: str) -> bytes:
        return self._post(
            f"/admin/people/{person_ref}/codes", {"kind": "dynamic"}, format="png"
        ).content

    def enrollment_token(self, venue_id: str) -> str:
        body = {"venue_id": venue_id, "ttl_seconds": 600}
        return EnrollmentToken.model_validate_json(
            self._post("/admin/enrollment-tokens", body).content
        ).token

    def user(self, name: str, role: str, **scope: Any) -> str:
        """Add a host user of `role` (venues=[...] for a venue manager, org=... for a screener).

        Their token, shown once, which signs them in to the dashboard.
        """
        return self._post("/admin/users", {"name": name, "role": role, **scope}).json()["token"]

    def sign_in(self, person_ref: str) -> SignInLink:
        """A one-time link that signs the person in on a phone, as the city app would."""
        return SignInLink.model_validate_json(
            self._post(f"/admin/people/{person_ref}/sign-in", {}).content
        )

    def stats(self) -> HostStats:
        return HostStats.model_validate_json(self.http.get("/admin/stats").content)

    def counts(self, venue_id: str) -> list[HourlyCount]:
        response = self.http.get(f"/admin/venues/{venue_id}/counts")
        return [HourlyCount.model_validate(item) for item in response.json()]


def forge(text: str) -> str:
    """A red code turned green by editing its claims: the signature no longer matches."""
    cose = parse_cose(inflate(base45(text[len(healthcode.PREFIX) :])))
    claims = cbor2.loads(cose.payload)
    claims[CLAIM_KEY]["c"] = Colour.GREEN.value
    forged = [cose.protected, cose.unprotected, cbor2.dumps(claims), cose.signature]
    return wrap(healthcode.PREFIX, cbor2.dumps(cbor2.CBORTag(18, forged)))


def foreign_code(person_ref: str) -> str:
    """A well-formed green code signed by a key that no kiosk trusts."""
    now = datetime.now(UTC)
    test = NucleicTest(now - timedelta(hours=5), TestResult.NEGATIVE)
    code = healthcode.new_code(
        person_ref=person_ref,
        kind=CodeKind.DYNAMIC,
        colour=Colour.GREEN,
        test=test,
        now=now,
        issuer="elsewhere",
    )
    return healthcode.issue(code, SigningKey.generate())


def camera_frame(png: bytes | None, rng: np.random.Generator) -> np.ndarray:
    """A 1280x720 camera view: a phone screen held up with a code on it, blur and sensor noise."""
    width, height = FRAME_SIZE
    frame = np.full((height, width, 3), (92, 84, 78), np.uint8)
    if png is not None:
        code = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
        side = 400
        code = cv2.resize(code, (side, side), interpolation=cv2.INTER_NEAREST)
        left = width // 2 - 230 + int(rng.integers(-40, 40))
        top = height // 2 - 250 + int(rng.integers(-20, 20))
        cv2.rectangle(
            frame, (left - 40, top - 80), (left + side + 40, top + side + 120), (25, 25, 25), -1
        )
        frame[top : top + side, left : left + side] = code[:, :, None]
    frame = cv2.GaussianBlur(frame, (3, 3), 0.8)
    noise = rng.normal(0, 4, frame.shape)
    return np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8)


@dataclass
class Kiosk:
    venue: Venue
    state: Path
    frames: Path


def enroll(host_url: str, admin: Admin, venue: Venue, workdir: Path, label: str) -> Kiosk:
    state = workdir / f"kiosk-{label}"
    token = admin.enrollment_token(venue.id)
    subprocess.run(
        sentinel_command(
            "device",
            "enroll",
            "--host",
            host_url,
            "--token",
            token,
            "--state",
            str(state),
            "--name",
            f"demo-{label}",
        ),
        check=True,
        capture_output=True,
        text=True,
    )
    frames = workdir / f"frames-{label}"
    frames.mkdir()
    return Kiosk(venue, state, frames)


def device_run_command(kiosk: Kiosk, *options: str) -> list[str]:
    """`sentinel device run` over the kiosk's frames, printing events, exiting once synced."""
    return sentinel_command(
        "device", "run", "--state", str(kiosk.state), "--source", str(kiosk.frames),
        "--events", "json", "--exit-when-done", *options,
    )  # fmt: skip


def run_kiosk(kiosk: Kiosk, workdir: Path, label: str, *options: str) -> list[dict[str, Any]]:
    progress.update(f"kiosk {label}: scanning its frames, then syncing")
    with (workdir / f"kiosk-{label}.log").open("w") as log:
        result = subprocess.run(
            device_run_command(kiosk, "--drain-timeout", "30", *options),
            stdout=subprocess.PIPE, stderr=log, text=True, timeout=120, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"kiosk {label} exited {result.returncode}; see kiosk-{label}.log")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def kiosk_counts(kiosk: Kiosk) -> dict[str, int]:
    result = subprocess.run(
        sentinel_command("device", "status", "--state", str(kiosk.state), "--json"),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout)


def on_host(url: str, host_url: str) -> str:
    """A URL the host printed under its public origin, at the address the demo's host listens on."""
    return host_url + url.removeprefix(DEMO_PUBLIC_URL)


def browser_parts(
    host: HostProcess,
    admin: Admin,
    kiosk: Kiosk,
    person_ref: str,
    workdir: Path,
    *,
    shots: Path | None,
    users: list[DashboardUser],
    case_ref: str,
) -> dict[str, Any]:
    """The kiosk screen's screenshots, a phone check-in and the dashboard, with headless Chromium.

    The kiosk runs again, with its screen and an ID-card module; the phone is the person's; the
    dashboard is seen by its `users`, tracing `case_ref`. Screenshots go to `shots`, or to a new
    temporary directory that is kept.
    """
    reason = unavailable()
    if reason is not None:
        return {"skipped": reason, "screen": None, "phone": None, "dashboard_pages": None}
    from playwright.sync_api import Error as BrowserError

    for outcome, colour in REGISTERED.items():
        admin.person(CARDS[outcome].id_number, colour, 5)
    shots = shots or Path(tempfile.mkdtemp(prefix="sentinel-demo-screenshots-"))
    shots.mkdir(parents=True, exist_ok=True)
    frames = workdir / "frames-screen"
    frames.mkdir()
    cv2.imwrite(str(frames / "empty.png"), np.full((480, 640), 128, np.uint8))
    agent = device_run_command(
        Kiosk(kiosk.venue, kiosk.state, frames), "--loop", "--fps", "5", "--drain-timeout", "30"
    )
    try:
        with chromium() as browser:
            screen = kiosk_screenshots(browser, agent, free_port(), workdir, shots)
            link = admin.sign_in(person_ref)
            phone = phone_check_in(
                browser,
                on_host(link.url, host.url),
                on_host(kiosk.venue.code_url, host.url),
                shots,
            )
            pages = dashboard_screenshots(
                browser,
                host.url,
                users,
                shots,
                case_ref=case_ref,
                staff_csv=staff_list(DEMO_ID_NUMBERS, workdir / "staff.csv"),
            )
    except BrowserError as error:
        raise RuntimeError(f"headless Chromium: {error}") from None
    return {"skipped": None, "screen": screen, "phone": phone, "dashboard_pages": pages}


def run_demo(
    workdir: Path,
    seed: int,
    db: str | None = None,
    screenshots: Path | None = None,
    *,
    keep: bool = False,
) -> dict[str, Any]:
    """The whole cycle; with `keep`, its tables are printed and the host serves on until Ctrl-C."""
    rng = np.random.default_rng(seed)
    admin_token = os.urandom(24).hex()
    progress.update("starting the host")
    with running_host(workdir, admin_token, db) as host:
        url = host.url
        admin = Admin(url, admin_token)
        progress.update("venues, people and kiosks")
        public = admin.venue("Central Library", "1 Library Road", "public_place")
        residential = admin.venue("Riverside Compound", "88 River Street", "residential")
        clinic = admin.venue("Community Clinic", "5 Health Road", "medical")
        people = {
            "green": admin.person(DEMO_ID_NUMBERS["green"], "green", 10),
            "stale": admin.person(DEMO_ID_NUMBERS["stale"], "green", 60),
            "yellow": admin.person(DEMO_ID_NUMBERS["yellow"], "yellow", 10),
            "red": admin.person(DEMO_ID_NUMBERS["red"], "red", 10),
        }
        kiosks = {
            "public": enroll(url, admin, public, workdir, "public"),
            "residential": enroll(url, admin, residential, workdir, "residential"),
            "clinic": enroll(url, admin, clinic, workdir, "clinic"),
        }
        expired = admin.code(people["green"], ttl_seconds=1)
        green_png = admin.code_png(people["green"])
        pictures: dict[str, bytes | None] = {
            "green": green_png,
            "repeat": green_png,
            "stale-test": admin.code_png(people["stale"]),
            "stale-test-residential": admin.code_png(people["stale"]),
            "yellow": admin.code_png(people["yellow"]),
            "red": admin.code_png(people["red"]),
            "expired": qr_png(expired.text),
            "forged": qr_png(forge(admin.code(people["red"]).text)),
            "foreign-issuer": qr_png(foreign_code(people["green"])),
            "not-a-code": qr_png("Welcome to Central Library. Wi-Fi: library-guest"),
            "fever": green_png,
        }
        venue_of = {case.name: case.venue for case in CASES}
        cv2.imwrite(str(kiosks["public"].frames / "00-nobody.png"), camera_frame(None, rng))
        for position, name in enumerate(SHOWN_ORDER, start=1):
            path = kiosks[venue_of[name]].frames / f"{position:02d}-{name}.png"
            cv2.imwrite(str(path), camera_frame(pictures[name], rng))
        # The expired case is a real code whose few seconds of life have run out.
        time.sleep(max(0.0, (expired.expires_at - datetime.now(UTC)).total_seconds() + 0.2))
        # The clinic's kiosk takes temperatures with a forehead module: ours, on a pty.
        with Emulator("stream", celsius=FEVER_CELSIUS) as thermometer:
            fitted = {"clinic": ("--thermometer", thermometer.port)}
            events = {
                label: run_kiosk(kiosk, workdir, label, *fitted.get(label, ()))
                for label, kiosk in kiosks.items()
            }
        users = dashboard_users(admin, public.id, public.name)
        progress.update("the kiosk screen, a phone check-in and the dashboard, in Chromium")
        shown = browser_parts(
            host,
            admin,
            kiosks["public"],
            people["green"],
            workdir,
            shots=screenshots,
            users=users,
            case_ref=people["red"],
        )
        stats = admin.stats()
        counts = {label: admin.counts(kiosk.venue.id) for label, kiosk in kiosks.items()}
        result = summary(events, device_counts=[kiosk_counts(kiosk) for kiosk in kiosks.values()])
        result.update(
            host_checkins=stats.checkins,
            phone_checkins=int(shown["phone"] is not None and shown["phone"]["new"]),
            **shown,
            hourly={
                label: [count.model_dump(mode="json") for count in venue_counts]
                for label, venue_counts in counts.items()
            },
            dashboard={"url": url, "users": [user.as_json() for user in users]},
        )
        if keep:
            progress.clear()
            print_tables(result, keep=True)
            serve_until_interrupted(host)
    return result


def serve_until_interrupted(host: HostProcess) -> None:
    """Wait while the host serves, until Ctrl-C or SIGTERM (or the host ends by itself)."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and host.process is not None and host.process.poll() is None:
            stop.wait(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def summary(
    events: dict[str, list[dict[str, Any]]], device_counts: list[dict[str, int]]
) -> dict[str, Any]:
    """Each case's decision against what was expected, and the kiosks' counts."""
    by_case = {
        Path(event["origin"]).stem.split("-", 1)[1]: event
        for label_events in events.values()
        for event in label_events
    }
    decisions = []
    for case in CASES:
        event = by_case.get(case.name)
        decision = event["decision"] if event else "unseen"
        decisions.append(
            {
                "case": case.name,
                "venue": case.venue,
                "decision": decision,
                "reasons": event["reasons"] if event else ["the kiosk did not read this frame"],
                "as_expected": decision in case.expect,
            }
        )
    return {
        "decisions": decisions,
        "recorded": sum(item["recorded"] for item in device_counts),
        "synced": sum(item["acknowledged"] for item in device_counts),
    }


def expectations_met(result: dict[str, Any]) -> bool:
    browser = result["skipped"] is not None or (
        set(result["screen"]) == {"idle", "pass", "deny", "refer"}
        and result["phone"]["decision"] == "pass"
    )
    return (
        all(item["as_expected"] for item in result["decisions"])
        and result["recorded"] == result["synced"] > 0
        and result["host_checkins"] == result["synced"] + result["phone_checkins"]
        and browser
    )


def print_tables(result: dict[str, Any], *, keep: bool = False) -> None:
    rows = [("case", "venue", "decision", "reasons")]
    rows += [
        (
            item["case"] + ("" if item["as_expected"] else "  (UNEXPECTED)"),
            item["venue"],
            item["decision"],
            "; ".join(item["reasons"]),
        )
        for item in result["decisions"]
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]
        )
    print()
    phones = result["phone_checkins"]
    print(
        f"kiosks recorded {result['recorded']} check-ins, the host acknowledged "
        f"{result['synced']}, the host holds {result['host_checkins']}"
        + (f" ({phones} from a phone)" if phones else "")
    )
    print()
    print_browser_parts(result)
    print("host: check-ins per venue and hour (UTC)")
    print(f"  {'venue':<12} {'hour':<26} {'total':>5} {'pass':>5} {'deny':>5} {'refer':>5}")
    for label, hours in result["hourly"].items():
        for hour in hours:
            print(
                f"  {label:<12} {hour['hour']:<26} {hour['total']:>5} {hour['passed']:>5} "
                f"{hour['denied']:>5} {hour['referred']:>5}"
            )
    print()
    print_dashboard(result["dashboard"]["url"], result["dashboard"]["users"], keep)


def print_browser_parts(result: dict[str, Any]) -> None:
    """The kiosk screen's screenshots, and what the phone's page showed; or why there are none."""
    if result["skipped"] is not None:
        print(f"kiosk screen and phone check-in skipped: {result['skipped']}")
        print()
        return
    width, height = KIOSK_SIZE
    print(f"kiosk screen ({width}x{height}), with an ID-card reader: saved")
    for state, seen in result["screen"].items():
        print(f"  {state:<6} {seen['screenshot']}  ({' · '.join(seen['text'][:3])})")
    print()
    phone = result["phone"]
    width, height = PHONE_SIZE
    print(f"phone check-in ({width}x{height}): signed in, then opened the venue code")
    for label, key in (
        ("code colour", "colour"),
        ("venue", "venue"),
        ("address", "address"),
        ("time", "time"),
        ("test", "test"),
        ("decision", "headline"),
        ("says", "reason"),
        ("recorded", "recorded"),
    ):
        print(f"  {label:<12} {phone[key]}")
    for position, path in enumerate(phone["screenshots"]):
        print(f"  {'saved' if position == 0 else '':<12} {path}")
    print()
    width, height = DASHBOARD_SIZE
    print(f"dashboard ({width}x{height}), each page as its user sees it: saved")
    for name, path in result["dashboard_pages"].items():
        print(f"  {name:<12} {path}")
    print()


@contextmanager
def demo_workdir(keep: Path | None) -> Iterator[Path]:
    """The given directory, emptied first and kept; otherwise a temporary one."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="sentinel-demo-") as temporary:
            yield Path(temporary)
        return
    if keep.exists():
        shutil.rmtree(keep)
    keep.mkdir(parents=True)
    yield keep


def run(args: argparse.Namespace) -> int:
    with demo_workdir(args.workdir) as workdir:
        try:
            screenshots = workdir / "screenshots" if args.workdir else None
            with progress:
                result = run_demo(workdir, args.seed, args.db, screenshots, keep=args.keep)
        except (
            RuntimeError,
            ValueError,
            OSError,
            subprocess.SubprocessError,
            httpx.HTTPError,
        ) as error:
            hint = (
                f"logs are in {workdir}" if args.workdir else "run with --workdir DIR to keep logs"
            )
            print(f"sentinel demo failed: {error} ({hint})", file=sys.stderr)
            return 1
    if args.json:
        keys = (
            "decisions",
            "recorded",
            "synced",
            "host_checkins",
            "phone_checkins",
            "screen",
            "phone",
            "skipped",
            "dashboard",
            "dashboard_pages",
        )
        print(json.dumps({key: result[key] for key in keys}))
    elif not args.keep:  # with --keep, printed while the host was serving
        print_tables(result)
    return 0 if expectations_met(result) else 1
