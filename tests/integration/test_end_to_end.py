"""Host and device as separate processes over HTTP on 127.0.0.1: kills, restarts, offline starts."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.clock import NTP_SYNCHRONISED_FLAG
from device.store import Store
from sentinel.demo import (
    Admin,
    HostProcess,
    Kiosk,
    camera_frame,
    device_run_command,
    enroll,
    kiosk_counts,
    sentinel_command,
)
from shared.idnumber import with_check_character

pytestmark = pytest.mark.integration
PEOPLE = 30


def kiosk_with_codes(host: HostProcess, admin: Admin, tmp_path: Path, people: int) -> Kiosk:
    venue = admin.venue("Station", "1 Rail Road", "public_place")
    kiosk = enroll(host.url, admin, venue, tmp_path, "gate")
    rng = np.random.default_rng(7)
    for index in range(people):
        person = admin.person(with_check_character(f"1101011990{index:07d}"), "green", 5)
        frame = camera_frame(admin.code_png(person), rng)
        cv2.imwrite(str(kiosk.frames / f"{index:03d}.png"), frame)
    return kiosk


def start_device(kiosk: Kiosk, tmp_path: Path, fps: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        device_run_command(kiosk, "--fps", str(fps), "--drain-timeout", "90"),
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "device.log").open("w"),
        text=True,
    )


def wait_for_first_contact(log: Path, timeout: float = 60.0) -> None:
    """Until the device has the host's configuration and time (it starts slower under load)."""
    deadline = time.monotonic() + timeout
    while "configuration loaded" not in log.read_text():
        assert time.monotonic() < deadline, "the device never reached the host"
        time.sleep(0.05)


def finish(device: subprocess.Popen[str]) -> list[dict]:
    stdout, _ = device.communicate(timeout=150)
    assert device.returncode == 0, "device did not drain its check-ins"
    return [json.loads(line) for line in stdout.splitlines()]


def test_every_checkin_arrives_exactly_once_across_a_host_kill(
    host: HostProcess, admin: Admin, tmp_path: Path
) -> None:
    kiosk = kiosk_with_codes(host, admin, tmp_path, PEOPLE)
    device = start_device(kiosk, tmp_path, fps=8)  # about 4 s of scanning
    wait_for_first_contact(tmp_path / "device.log")
    time.sleep(1.0)
    host.kill()  # mid-run: some check-ins synced, some in flight, some not yet made
    time.sleep(2.0)
    host.start()
    events = finish(device)
    recorded = [event["checkin_id"] for event in events if event["checkin_id"]]
    assert len(recorded) == PEOPLE
    not_passed = [event["reasons"] for event in events if event["decision"] != "pass"]
    assert not not_passed
    assert admin.stats().checkins == PEOPLE  # idempotent ingest: nothing doubled
    counts = admin.counts(kiosk.venue.id)
    assert sum(hour.total for hour in counts) == PEOPLE
    assert sum(hour.passed for hour in counts) == PEOPLE
    status = kiosk_counts(kiosk)
    assert status["recorded"] == status["acknowledged"] == PEOPLE
    log = (tmp_path / "device.log").read_text()
    assert "sync failed" in log  # the outage was really seen by the device


def test_device_scans_with_the_host_down_and_syncs_when_it_returns(
    host: HostProcess, admin: Admin, tmp_path: Path
) -> None:
    kiosk = kiosk_with_codes(host, admin, tmp_path, 5)
    host.kill()  # the kiosk starts offline, on the configuration cached at enrollment
    device = start_device(kiosk, tmp_path, fps=50)
    time.sleep(2.0)
    host.start()
    events = finish(device)
    # No host time seen since the agent started (and no NTP here): the clock is not trusted,
    # so the kiosk refers to staff rather than guessing whether the codes are still valid.
    expected = "pass" if NTP_SYNCHRONISED_FLAG.exists() else "refer"
    assert [event["decision"] for event in events] == [expected] * 5
    assert all("clock-untrusted" in " ".join(event["reasons"]) for event in events) == (
        expected == "refer"
    )
    assert admin.stats().checkins == 5


def test_a_revoked_device_stops_deciding_and_keeps_its_check_ins(
    host: HostProcess, admin: Admin, tmp_path: Path
) -> None:
    kiosk = kiosk_with_codes(host, admin, tmp_path, 1)  # a green code with a fresh test
    devices = admin.http.get("/admin/devices").json()
    response = admin.http.post(f"/admin/devices/{devices[0]['id']}/revoke")
    assert response.is_success
    device = start_device(kiosk, tmp_path, fps=50)
    stdout, _ = device.communicate(timeout=120)
    assert device.returncode == 3  # could not drain: the host refuses it
    log = (tmp_path / "device.log").read_text()
    assert "device-revoked" in log and "OUT OF SERVICE" in log
    (event,) = [json.loads(line) for line in stdout.splitlines()]
    assert event["decision"] == "refer", "a revoked kiosk lets no one through by itself"
    assert event["reasons"][0].startswith("out-of-service: ")
    assert admin.stats().checkins == 0

    # What the host gave is gone; the check-in stays for an operator; a restart stays out.
    store = Store(kiosk.state / "sentinel.db")
    assert store.load_config() is None and store.load_denylist() is None
    status = kiosk_counts(kiosk)
    assert status["pending"] == 1 and "device-revoked" in status["revoked"]
    again = start_device(kiosk, tmp_path, fps=50)
    stdout, _ = again.communicate(timeout=120)
    assert again.returncode == 3
    assert [json.loads(line)["decision"] for line in stdout.splitlines()] == ["refer"]
    assert "configuration loaded" not in (tmp_path / "device.log").read_text()
    assert kiosk_counts(kiosk)["pending"] == 2


def test_sigterm_stops_a_scanning_agent_cleanly(
    host: HostProcess, admin: Admin, tmp_path: Path
) -> None:
    kiosk = kiosk_with_codes(host, admin, tmp_path, 2)
    device = subprocess.Popen(
        sentinel_command("device", "run", "--state", str(kiosk.state), "--source",
                         str(kiosk.frames), "--loop", "--fps", "20"),
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(3)  # scanning the same two codes over and over
    assert device.poll() is None
    device.send_signal(signal.SIGTERM)
    _, log = device.communicate(timeout=20)
    assert device.returncode == 0
    assert "asked to stop" in log
    assert "2 check-ins recorded" in log  # a code held up is one check-in, however long
