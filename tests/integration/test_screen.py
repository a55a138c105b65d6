"""The kiosk screen of a real agent, with a real host, in headless Chromium at both kiosk sizes."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from hardware.idcard.sam_emulator import SAMPLE_TEXT, SamEmulator
from sentinel.browser import SCREEN_SIZES, colour_name, shown
from sentinel.demo import Admin, HostProcess, enroll, free_port, sentinel_command
from sentinel.demo_browser import wait_until_online
from shared.idnumber import id_check_character, mask_id_number
from tests.hardware.idcard.conftest import OTHER_TEXT

pytestmark = pytest.mark.integration
HOLD_SECONDS = 3  # how long each decision stays up: the pages are read well within it
VENUE = "市图书馆 City Library"
# A third holder, whom the host has never heard of.
UNKNOWN_TEXT = dataclasses.replace(
    OTHER_TEXT, id_number="11010119850101001" + id_check_character("11010119850101001")
)


def test_the_kiosk_screen_shows_each_decision_then_idle_at_both_sizes(
    host: HostProcess, admin: Admin, tmp_path: Path, open_page, screenshot
) -> None:
    venue = admin.venue(VENUE, "2 Book Street", "public_place")
    kiosk = enroll(host.url, admin, venue, tmp_path, "screen")
    cv2.imwrite(str(kiosk.frames / "empty.png"), np.full((480, 640), 128, np.uint8))
    admin.person(SAMPLE_TEXT.id_number, "green", 5)
    admin.person(OTHER_TEXT.id_number, "red", 5)
    url = f"http://127.0.0.1:{free_port()}/"
    log = tmp_path / "device.log"
    with SamEmulator(link=tmp_path / "ttyUSB-sam") as module:
        device = subprocess.Popen(
            sentinel_command(
                "device", "run", "--state", str(kiosk.state), "--source", str(kiosk.frames),
                "--loop", "--fps", "5", "--sam", module.port,
                "--screen", url.removeprefix("http://").rstrip("/"),
                "--screen-hold", str(HOLD_SECONDS),
            ),
            stderr=log.open("w"),
        )  # fmt: skip
        try:
            wait_until_online(url, log)
            pages = {size: open_page(*size) for size in SCREEN_SIZES}
            fetched: list[str] = []
            for page in pages.values():
                page.on("request", lambda request: fetched.append(request.url))
                page.goto(url)

            def read_all(outcome: str, label: str) -> dict[tuple[int, int], dict]:
                seen = {size: shown(page, outcome) for size, page in pages.items()}
                for (width, height), page in pages.items():
                    screenshot(page, f"{label}-{width}x{height}")
                return seen

            idle = read_all("idle", "idle")
            module.insert(SAMPLE_TEXT)
            passed = read_all("pass", "pass")
            module.remove()
            module.insert(OTHER_TEXT)
            denied = read_all("deny", "deny")
            module.remove()
            module.insert(UNKNOWN_TEXT)
            referred = read_all("refer", "refer")
            module.remove()
            back = read_all("idle", "idle-again")  # once HOLD_SECONDS have passed
            html = {size: page.content() for size, page in pages.items()}
        finally:
            device.send_signal(signal.SIGTERM)
            device.wait(timeout=30)

    for size in SCREEN_SIZES:
        assert colour_name(idle[size]["colour"]) == "blue"
        assert "请出示健康码或将身份证放在此处" in idle[size]["text"]
        assert "Show your code or lay your ID card here" in idle[size]["text"]
        assert VENUE in idle[size]["text"] and VENUE in idle[size]["bar"]
        assert idle[size]["online"] == "yes"
        assert "warn-clock" not in idle[size]["warnings"]  # the host's time was seen

        assert colour_name(passed[size]["colour"]) == "green"
        assert "绿码，请通行" in passed[size]["text"]
        assert "Green code, please enter." in passed[size]["text"]
        assert mask_id_number(SAMPLE_TEXT.id_number) in passed[size]["text"]
        assert "阴性" in passed[size]["text"] and "5 h ago" in passed[size]["text"]

        assert colour_name(denied[size]["colour"]) == "red"
        assert "红码，请勿通行" in denied[size]["text"]
        assert "Red code, please do not enter." in denied[size]["text"]
        assert mask_id_number(OTHER_TEXT.id_number) in denied[size]["text"]

        assert colour_name(referred[size]["colour"]) == "amber"
        assert "未查到健康信息，请稍候" in referred[size]["text"]
        assert "No health record found, please wait for staff." in referred[size]["text"]
        assert mask_id_number(UNKNOWN_TEXT.id_number) in referred[size]["text"]

        assert back[size]["text"] == idle[size]["text"]
        for state in (idle, passed, denied, referred, back):
            assert state[size]["cut_off"] == [], f"cut off at {size}"
    for card in (SAMPLE_TEXT, OTHER_TEXT, UNKNOWN_TEXT):
        assert all(card.id_number not in page for page in html.values())
        assert card.id_number not in log.read_text()
    assert fetched and all(address.startswith(url) for address in fetched)  # nothing from outside
