"""`sentinel host trace` against a real host: tables, CSV, a case by ID number, refusals."""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.client import HostClient, enroll
from device.clock import DeviceClock
from sentinel.cli import main
from sentinel.demo import Admin, HostProcess
from shared.idnumber import id_check_character
from shared.messages import CheckIn, CheckInBatch, DeviceForm
from shared.uuid7 import uuid7

pytestmark = pytest.mark.integration

CASE_NUMBER = "11010519850214002" + id_check_character("11010519850214002")
NOW = datetime.now(UTC).replace(microsecond=0)


def checkin(venue_id: str, person_ref: str, minutes_ago: int, now: datetime = NOW) -> CheckIn:
    """A pass at the venue, `minutes_ago` before `now`, as a kiosk records it."""
    return CheckIn(
        id=uuid7(),
        venue_id=venue_id,
        scanned_at=now - timedelta(minutes=minutes_ago),
        person_ref=person_ref,
        kind="health",
        outcome="pass",
        reasons=["ok"],
        clock_trusted=True,
    )


@pytest.fixture
def case(host: HostProcess, admin: Admin) -> str:
    """A registered case, who visited the mall with alice near and bob long after."""
    venue = admin.venue("Riverside Mall", "1 River Road", "public_place")
    key = Ed25519PrivateKey.generate()
    enrolled = enroll(
        host.url, admin.enrollment_token(venue.id), key, name="gate", form=DeviceForm.KIOSK
    )
    person_ref = admin.person(CASE_NUMBER, "green", 5)
    device = HostClient(host.url, enrolled.device_id, key, DeviceClock())
    try:
        visits = [
            checkin(venue.id, person_ref, 60),
            checkin(venue.id, "p_alice", 50),
            checkin(venue.id, "p_bob", 5),
        ]
        assert device.send_checkins(CheckInBatch(checkins=visits)).inserted == 3
    finally:
        device.close()
    return person_ref


def token_of(admin: Admin, name: str, role: str, **scope: object) -> str:
    made = admin.http.post("/admin/users", json={"name": name, "role": role, **scope})
    assert made.status_code == 201, made.text
    return made.json()["token"]


def trace(host: HostProcess, token: str, *case: str) -> list[str]:
    since = (NOW - timedelta(days=1)).isoformat()
    return [
        *("host", "trace", "--host", host.url, "--token", token, "--since", since),
        *("--purpose", "case 17 of the district CDC", *case),
    ]


def test_trace_prints_the_visits_and_contacts(
    host: HostProcess, admin: Admin, case: str, capsys: pytest.CaptureFixture[str]
):
    doctor = token_of(admin, "dr-li", "epidemiologist")

    assert main(trace(host, doctor, "--person-ref", case)) == 0

    out = capsys.readouterr().out
    assert f"case {case}, u_" in out  # and under their card's pseudonym
    assert ": 1 visits, 1 people met them (1 contacts)" in out
    assert "Riverside Mall" in out
    (contact,) = [line for line in out.splitlines() if "p_alice" in line]
    assert contact.split()[0] == "1" and " 10 " in contact and contact.endswith("unknown")
    assert "p_bob" not in out


def test_a_case_by_id_number_is_read_from_stdin_and_written_as_csv(
    host: HostProcess,
    admin: Admin,
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    doctor = token_of(admin, "dr-li", "epidemiologist")
    monkeypatch.setattr(sys, "stdin", io.StringIO(CASE_NUMBER + "\n"))
    table = tmp_path / "trace.csv"

    assert main(trace(host, doctor, "--id-number", "--csv", str(table))) == 0

    rows = list(csv.DictReader(io.StringIO(table.read_text(encoding="utf-8"))))
    assert [(row["record"], row["person_ref"]) for row in rows] == [
        ("visit", ""),
        ("contact", "p_alice"),
    ]
    captured = capsys.readouterr()
    for shown in (captured.out, captured.err, table.read_text(encoding="utf-8")):
        assert CASE_NUMBER not in shown
    audit = admin.http.get("/admin/audit", params={"action": "tracing"}).json()
    assert audit[0]["subject"]["case"].startswith(case + ",u_")
    assert CASE_NUMBER not in str(audit)


def test_a_refused_trace_says_why(
    host: HostProcess, admin: Admin, case: str, capsys: pytest.CaptureFixture[str]
):
    screener = token_of(admin, "hr", "screener", org="acme")
    assert main(trace(host, screener, "--person-ref", case)) == 1
    assert "forbidden" in capsys.readouterr().err
    doctor = token_of(admin, "dr-li", "epidemiologist")
    assert main([*trace(host, doctor, "--person-ref", case), "--window-minutes", "999"]) == 1
    assert "window_minutes" in capsys.readouterr().err
    assert main(trace(host, "", "--person-ref", case)) == 2  # no token
    assert "--token" in capsys.readouterr().err
