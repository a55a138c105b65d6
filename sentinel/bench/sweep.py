"""A sweep of one birth date's 1,000 ID numbers through /device/status, without and with limits.

Run: `sentinel bench sweep [--db URL] [--quick] [--json]`.
The host runs in this process on a clock the bench moves: a refused lookup waits its
Retry-After on that clock (as a patient attacker would), so "attacker's time" is what the sweep
would take, and "ms per status" is real time. It imports the host tests' helpers (a signed
device, the admin calls): run it from a source checkout.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from host.app import create_app
from host.core.config import Settings
from host.ratelimit import Limit, Limits, RateLimiter
from shared.idnumber import with_check_character
from tests.host.conftest import ADMIN_TOKEN, PUBLIC_URL, Admin, Clock, Device
from tests.host.test_identities import sealed_for

NUMBERS = 1000
COST_LOOKUPS = 500
QUICK_NUMBERS, QUICK_COST_LOOKUPS = 100, 50
UNLIMITED = Limit("unlimited", 10**9, 60)


@dataclass(frozen=True)
class SweepResult:
    found: bool
    lookups: int
    refused: int
    attacker_seconds: float  # waits out each Retry-After, plus the lookups' own time
    wall_seconds: float
    ms_per_status: float  # a real queue's lookup

    def as_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def sweep(
    database: str | Path,
    limited: bool,
    numbers: int = NUMBERS,
    cost_lookups: int = COST_LOOKUPS,
) -> SweepResult:
    """Ask every number of one birth date, waiting out each 429, until the registered one."""
    clock = Clock()
    settings = Settings(database, PUBLIC_URL, ADMIN_TOKEN, clock=clock)
    with TestClient(create_app(settings)) as client:
        context = client.app.state.context
        if not limited:
            context.limits = Limits(
                status_burst=UNLIMITED, status_sustained=UNLIMITED, unknown_status=UNLIMITED
            )
            context.limiter = RateLimiter(context.storage, context.limits)
        admin = Admin(client)
        venue = admin.venue()
        device = Device.enroll(client, admin.token(venue["id"]))
        first17 = [f"11010119900307{serial:03d}" for serial in range(numbers)]
        asked = [with_check_character(number) for number in first17]
        admin.import_person(id_number=asked[-1])
        started_at, wall = clock.now, time.perf_counter()
        refused = lookups = 0
        found = False
        for number in asked:
            while True:
                body = {"sealed_identity": sealed_for(device, number)}
                answer = device.request(
                    "POST", "/device/status", json_body=body, time_ms=clock.ms()
                )
                lookups += 1
                if answer.status_code != 429:
                    found = found or answer.json()["known"]
                    break
                refused += 1
                clock.advance(int(answer.headers["Retry-After"]))
        wall = time.perf_counter() - wall
        attacker_seconds = clock.now - started_at + wall
        cost = _cost_per_lookup(device, clock, asked[-1], cost_lookups)
        return SweepResult(found, lookups, refused, attacker_seconds, wall, cost)


def _cost_per_lookup(device: Device, clock: Clock, registered: str, lookups: int) -> float:
    """Mean ms of a lookup of a registered person, one every 3 s (no limit is met)."""
    clock.advance(3600)
    body = {"sealed_identity": sealed_for(device, registered)}
    started = time.perf_counter()
    for _ in range(lookups):
        clock.advance(3)
        answer = device.request("POST", "/device/status", json_body=body, time_ms=clock.ms())
        assert answer.status_code == 200, answer.text
    return 1000 * (time.perf_counter() - started) / lookups


def measure(
    db_url: str | None, numbers: int = NUMBERS, cost_lookups: int = COST_LOOKUPS
) -> dict[str, SweepResult]:
    """The sweep without limits and with the host's, by "off" and "on"; SQLite unless `db_url`."""
    with tempfile.TemporaryDirectory() as workdir:
        return {
            "on" if limited else "off": sweep(
                db_url or Path(workdir) / f"sweep-{limited}.db", limited, numbers, cost_lookups
            )
            for limited in (False, True)
        }


def table(results: dict[str, SweepResult]) -> list[str]:
    rows = [
        "| limits | found | requests | refused (429) | attacker's time | ms per status |",
        "|---|---|---|---|---|---|",
    ]
    for limits, result in results.items():
        hours = result.attacker_seconds / 3600
        rows.append(
            f"| {limits} | {result.found} | {result.lookups:,}"
            f" | {result.refused:,} | {hours:.2f} h ({result.attacker_seconds:,.0f} s)"
            f" | {result.ms_per_status:.2f} |"
        )
    return rows
