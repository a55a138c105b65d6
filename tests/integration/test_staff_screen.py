"""Staff at the screen in headless Chromium: a referral settled with the PIN; a handheld's vehicle.

A real host, a real agent process with the emulated ID-card module (and a replayed camera for
the handheld), and the page driven as staff would: by its buttons and keypads.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hardware.idcard.sam_emulator import SAMPLE_TEXT, SamEmulator
from sentinel.browser import SCREEN_SIZES, colour_name, shown
from sentinel.demo import Admin, HostProcess, Kiosk, camera_frame, free_port, sentinel_command
from sentinel.demo_browser import CARDS, UNKNOWN_NUMBER, wait_until_online
from shared.idnumber import mask_id_number
from shared.messages import Venue

pytestmark = pytest.mark.integration
PIN = "482916"
HOLD_SECONDS = 3  # how long each decision stays up
WAIT_SECONDS = 30.0  # every wait for the agent or the host is bounded by this
KIOSK_SIZE = SCREEN_SIZES[0]  # the Raspberry Pi touch display, 800x480
UNKNOWN_CARD = CARDS["refer"]  # a valid number of no one the host knows


def enroll_as(host: HostProcess, admin: Admin, venue: Venue, workdir: Path, form: str) -> Kiosk:
    """`sentinel device enroll --form FORM`, then a staff PIN (S01) read from standard input."""
    state, frames = workdir / f"{form}-state", workdir / f"{form}-frames"
    frames.mkdir()
    for command, stdin in (
        (["enroll", "--host", host.url, "--token", admin.enrollment_token(venue.id),
          "--name", form, "--form", form], None),
        (["staff", "add", "S01"], PIN + "\n"),
    ):  # fmt: skip
        subprocess.run(
            sentinel_command("device", *command, "--state", str(state)),
            input=stdin, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
    return Kiosk(venue, state, frames)


@contextmanager
def running_agent(
    kiosk: Kiosk, module: SamEmulator, log: Path, *options: str
) -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    """The agent with its screen, the module, and a gate on a mock pin; (its URL, its events)."""
    url = f"http://127.0.0.1:{free_port()}/"
    device = subprocess.Popen(
        sentinel_command(
            "device", "run", "--state", str(kiosk.state), "--source", str(kiosk.frames),
            "--loop", "--fps", "5", "--sam", module.port, "--events", "json",
            "--screen", url.removeprefix("http://").rstrip("/"),
            "--screen-hold", str(HOLD_SECONDS), "--gate-pin", "23", *options,
        ),
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
        env=os.environ | {"GPIOZERO_PIN_FACTORY": "mock"},
    )  # fmt: skip
    events: queue.Queue[dict[str, Any]] = queue.Queue()

    def read() -> None:
        assert device.stdout is not None
        for line in device.stdout:
            events.put(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_until_online(url, log)
        yield url, events
    finally:
        device.send_signal(signal.SIGTERM)
        device.wait(timeout=60)


def next_event(events: queue.Queue[dict[str, Any]], wanted: Callable[[dict], bool]) -> dict:
    """The next event the agent printed that is `wanted` (bounded)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        event = events.get(timeout=max(0.1, deadline - time.monotonic()))
        if wanted(event):
            return event


def host_rows(host: HostProcess, query: str, count: int) -> list[tuple]:
    """Rows of the host's database once there are `count` of them (bounded)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with closing(sqlite3.connect(host.db)) as db:
            rows = db.execute(query).fetchall()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def press(page: Any, *keys: str, pad: str) -> None:
    for key in keys:
        page.click(f'#{pad} [data-key="{key}"]')


def test_staff_let_a_referral_through_at_the_kiosk_with_their_pin(
    host: HostProcess, admin: Admin, tmp_path: Path, open_page, screenshot
) -> None:
    venue = admin.venue("市图书馆 City Library", "2 Book Street", "public_place")
    kiosk = enroll_as(host, admin, venue, tmp_path, "kiosk")
    cv2.imwrite(str(kiosk.frames / "empty.png"), np.full((480, 640), 128, np.uint8))
    log = tmp_path / "device.log"
    with (
        SamEmulator(link=tmp_path / "ttyUSB-sam") as module,
        running_agent(kiosk, module, log) as (url, events),
    ):
        page = open_page(*KIOSK_SIZE)
        page.goto(url)
        shown(page, "idle")
        module.insert(UNKNOWN_CARD)  # a holder the host does not know: staff are asked
        referred = shown(page, "refer")
        screenshot(page, "kiosk-referral")
        checkin_id = next_event(events, lambda e: e["decision"] == "refer")["checkin_id"]
        page.wait_for_function("() => document.getElementById('waiting').textContent === '1'")

        page.click("#staff-open")
        page.wait_for_selector(f'.referral[data-id="{checkin_id}"][aria-pressed="true"]')
        page.click('[data-action="let-through"]')
        page.click('[data-reason="emergency"]')
        press(page, *"000000", pad="pin-pad")
        panel = shown(page, "refer")  # the staff panel over the referral: nothing cut off
        screenshot(page, "kiosk-staff-pin")
        page.click("#staff-confirm")
        page.wait_for_function("() => document.getElementById('staff-error').textContent !== ''")
        wrong = page.inner_text("#staff-error")
        press(page, *PIN, pad="pin-pad")
        page.click("#staff-confirm")
        page.wait_for_selector("#staff", state="hidden")  # settled: the panel closes
        passed = shown(page, "pass")
        screenshot(page, "kiosk-let-through")
        settled = next_event(events, lambda e: e["staff_id"] is not None)
        page_html = page.content()
        rows = host_rows(
            host,
            "SELECT checkin_id, staff_id, action, reason FROM staff_decisions",
            count=1,
        )

    assert "未查到健康信息，请稍候" in referred["text"]
    assert mask_id_number(UNKNOWN_NUMBER) in referred["text"]
    assert panel["cut_off"] == []
    assert wrong == "wrong PIN (4 tries left)"
    assert colour_name(passed["colour"]) == "green"
    assert "工作人员已核验，请通行" in passed["text"]
    assert "Checked by staff, please enter." in passed["text"]
    assert "工作人员 S01 · 紧急就医" in passed["text"]
    assert "Staff S01 · Emergency medical care" in passed["text"]
    assert passed["cut_off"] == []
    assert (settled["decision"], settled["checkin_id"], settled["reasons"]) == (
        "pass",
        checkin_id,
        ["staff-let-through: emergency"],
    )
    assert rows == [(checkin_id, "S01", "let-through", "emergency")]
    [hour] = admin.counts(venue.id)
    assert (hour.referred, hour.staff_let_through, hour.staff_refused) == (1, 1, 0)
    assert UNKNOWN_NUMBER not in page_html and UNKNOWN_NUMBER not in log.read_text()
    assert PIN not in log.read_text()


def test_a_handheld_checks_a_vehicles_occupants_and_registers_one_by_hand(
    host: HostProcess, admin: Admin, tmp_path: Path, open_page, screenshot
) -> None:
    venue = admin.venue("检查站 Checkpoint 3", "G4 Exit 12", "public_place")
    kiosk = enroll_as(host, admin, venue, tmp_path, "handheld")
    driver = admin.person("110101199003071233", "green", 5)  # the first occupant: a phone code
    png = admin.code_png(driver)
    cv2.imwrite(str(kiosk.frames / "phone.png"), camera_frame(png, np.random.default_rng(1)))
    admin.person(SAMPLE_TEXT.id_number, "green", 5)  # the second: an ID card
    log = tmp_path / "device.log"
    with (
        SamEmulator(link=tmp_path / "ttyUSB-sam") as module,
        running_agent(kiosk, module, log) as (url, events),
    ):
        page = open_page(*KIOSK_SIZE)
        page.goto(url)
        page.wait_for_selector("#handheld", state="visible")
        screenshot(page, "handheld-idle")
        page.fill("#plate", "京A 12345")
        page.click("#vehicle-start")
        page.wait_for_function(
            "() => document.getElementById('vehicle-plate').textContent === '京A12345'"
        )

        page.click("#scan")  # the camera has shown the driver's code all along: now it is read
        first = shown(page, "pass")
        page.click("#decision")  # staff tap the result away
        module.insert(SAMPLE_TEXT)
        holder = mask_id_number(SAMPLE_TEXT.id_number)
        page.wait_for_function(
            "(h) => document.getElementById('holder').textContent === h", arg=holder
        )
        second = shown(page, "pass")
        page.click("#decision")
        module.remove()

        page.click("#tab-manual-button")
        press(page, *UNKNOWN_NUMBER, pad="manual-pad")
        typed = page.inner_text("#manual-shown")
        screenshot(page, "handheld-typed")
        page.click("#manual-submit")
        third = shown(page, "refer")
        page.click("#decision")
        page.click("#tab-vehicle-button")
        page.wait_for_function("() => document.querySelectorAll('#occupants li').length === 3")
        occupants = page.inner_text("#occupants")
        listed = shown(page, "refer")  # what the staff see: the list, nothing cut off
        screenshot(page, "handheld-vehicle")
        page.click("#vehicle-end")
        page.wait_for_selector("#vehicle-closed", state="visible")
        origins = [next_event(events, lambda e: e["checkin_id"])["origin"] for _ in range(3)]
        page_html = page.content()
        rows = host_rows(host, "SELECT binding, group_id, kind FROM checkins ORDER BY id", 3)

    assert "绿码，请通行" in first["text"] and "绿码，请通行" in second["text"]
    assert mask_id_number(SAMPLE_TEXT.id_number) in second["text"]
    assert typed == UNKNOWN_NUMBER[:4] + "*" * 14  # masked as it was typed
    assert mask_id_number(UNKNOWN_NUMBER) in third["text"]
    assert origins[0].startswith(str(kiosk.frames)) and origins[2] == "manual"
    assert occupants.count("通过 Pass") == 2 and occupants.count("请稍候 Staff check") == 1
    assert mask_id_number(UNKNOWN_NUMBER) in occupants
    assert listed["cut_off"] == []
    assert [(binding, kind) for binding, _, kind in rows] == [
        ("plate:京A12345", "health"),
        ("plate:京A12345", "idcard"),
        ("plate:京A12345", "idcard"),
    ]
    assert len({group for _, group, _ in rows}) == 1 and rows[0][1] is not None
    for number in (UNKNOWN_NUMBER, SAMPLE_TEXT.id_number):
        assert number not in page_html and number not in log.read_text()
