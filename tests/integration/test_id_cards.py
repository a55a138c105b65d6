"""An ID card on an emulated GA 467 module, read by a real agent, decided with a real host."""

from __future__ import annotations

import json
import queue
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from hardware.idcard.sam_emulator import SAMPLE_TEXT, SamEmulator
from sentinel.demo import Admin, HostProcess, enroll, sentinel_command
from tests.hardware.idcard.conftest import OTHER_TEXT

pytestmark = pytest.mark.integration


def events_of(device: subprocess.Popen[str]) -> queue.Queue[dict]:
    """The agent's JSON events as they come, read on a thread so waits stay bounded."""
    lines: queue.Queue[dict] = queue.Queue()

    def read() -> None:
        assert device.stdout is not None
        for line in device.stdout:
            lines.put(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    return lines


def next_card_event(events: queue.Queue[dict], timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = events.get(timeout=left)
        except queue.Empty:
            break
        if event["kind"] == "idcard":
            return event
    raise AssertionError("no ID-card decision within the time")


def test_a_card_alone_is_decided_by_its_holders_status_and_stored_by_reference(
    host: HostProcess, admin: Admin, tmp_path: Path
) -> None:
    venue = admin.venue("Library", "2 Book Street", "public_place")
    kiosk = enroll(host.url, admin, venue, tmp_path, "library")
    cv2.imwrite(str(kiosk.frames / "empty.png"), np.full((480, 640), 128, np.uint8))
    person_ref = admin.person(SAMPLE_TEXT.id_number, "green", 5)
    with SamEmulator(link=tmp_path / "ttyUSB-sam") as module:
        log = tmp_path / "device.log"
        device = subprocess.Popen(
            sentinel_command(
                "device", "run", "--state", str(kiosk.state), "--source", str(kiosk.frames),
                "--loop", "--fps", "5", "--events", "json", "--sam", module.port,
            ),
            stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
        )  # fmt: skip
        try:
            events = events_of(device)
            deadline = time.monotonic() + 60
            while "configuration loaded" not in log.read_text():
                assert time.monotonic() < deadline, "the device never reached the host"
                time.sleep(0.05)
            module.insert(SAMPLE_TEXT)
            known = next_card_event(events)
            module.remove()
            module.insert(OTHER_TEXT)
            unknown = next_card_event(events)
            while admin.stats().checkins < 2:  # synced in the background
                assert time.monotonic() < deadline + 30, "the check-ins never reached the host"
                time.sleep(0.1)
        finally:
            device.send_signal(signal.SIGTERM)
            device.wait(timeout=30)
    number = SAMPLE_TEXT.id_number
    assert (known["decision"], known["holder"]) == ("pass", number[:4] + "*" * 10 + number[-4:])
    assert known["origin"] == f"sam:{module.port}"
    assert unknown["decision"] == "refer"
    assert unknown["reasons"][0].startswith("id-card-unknown")
    written = log.read_text()
    for text in (SAMPLE_TEXT.id_number, OTHER_TEXT.id_number, SAMPLE_TEXT.name):
        assert text not in written
    with sqlite3.connect(host.db) as db:
        stored = db.execute("SELECT kind, person_ref FROM checkins ORDER BY scanned_at").fetchall()
    assert stored[0] == ("idcard", person_ref)
    assert stored[1][1].startswith("u_")
