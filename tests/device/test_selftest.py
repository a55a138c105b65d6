"""`sentinel selftest` against emulated parts: a pty thermometer and SAM module, mock GPIO pins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.clock import DeviceClock
from device.denylist import DenyListHolder
from device.report import SELFTEST_FILE, StatusReporter, last_selftest
from device.store import Store
from hardware.idcard.sam_emulator import SamEmulator
from hardware.thermometer.emulator import Emulator


def selftest(*options: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "sentinel", "selftest", "--json", *options],
        capture_output=True, text=True, timeout=120, check=False,
        env=os.environ | (env or {}),
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def results(report: dict) -> dict[str, tuple[str, str]]:
    return {item["item"]: (item["result"], item["detail"]) for item in report["items"]}


@pytest.fixture
def thermometer() -> Iterator[Emulator]:
    with Emulator("stream", celsius=36.6) as emulator:
        yield emulator


@pytest.fixture
def sam(tmp_path: Path) -> Iterator[SamEmulator]:
    with SamEmulator(link=tmp_path / "ttyUSB-sam") as emulator:
        yield emulator


def test_nothing_fitted_is_absent_and_the_decoder_still_checked() -> None:
    status, report = selftest()
    assert status == 0 and report["ok"] is True
    found = results(report)
    assert found["decoder"][0] == "pass"
    for item in ("camera", "card reader", "thermometer", "lights and gate", "trigger", "voice"):
        assert found[item][0] == "absent"


def test_every_fitted_part_is_exercised(
    thermometer: Emulator, sam: SamEmulator, tmp_path: Path
) -> None:
    image = tmp_path / "camera.png"
    cv2.imwrite(str(image), np.full((720, 1280), 128, np.uint8))
    status, report = selftest(
        "--source", str(image), "--sam", sam.port,
        "--thermometer", thermometer.port, "--thermometer-protocol", "stream",
        "--green-pin", "17", "--red-pin", "27", "--gate-pin", "23", "--trigger-pin", "5",
        env={"GPIOZERO_PIN_FACTORY": "mock"},
    )  # fmt: skip
    found = results(report)
    assert found["camera"] == ("pass", f"frame 1280x720 from {image}")
    assert found["card reader"][0] == "pass" and "no card on it" in found["card reader"][1]
    assert found["thermometer"] == ("pass", "36.6 °C")
    assert {name: found[name][0] for name in ("green", "red", "gate")} == dict.fromkeys(
        ("green", "red", "gate"), "pass"
    )
    assert "buzzer" not in found  # not fitted, so not toggled
    assert found["trigger"] == ("pass", "button on pin 5 set up, pulled up")
    assert (status, report["ok"]) == (0, True)


def test_a_silent_thermometer_and_a_missing_module_fail_with_their_reason(
    thermometer: Emulator, tmp_path: Path
) -> None:
    thermometer.go_silent()
    status, report = selftest(
        "--thermometer", thermometer.port, "--sam", str(tmp_path / "no-such-port")
    )
    found = results(report)
    assert found["thermometer"][0] == "fail" and found["thermometer"][1]
    assert found["card reader"][0] == "fail" and "no-such-port" in found["card reader"][1]
    assert (status, report["ok"]) == (1, False)


def test_a_thermometer_offset_beyond_reason_fails_rather_than_crash(thermometer: Emulator) -> None:
    status, report = selftest("--thermometer", thermometer.port, "--thermometer-offset", "15")
    result, detail = results(report)["thermometer"]
    assert (result, status) == ("fail", 1)
    assert "calibration offset 15.0 °C is beyond ±10 °C" in detail


def test_pins_without_a_gpio_library_fail_rather_than_crash() -> None:
    status, report = selftest("--gate-pin", "23", env={"GPIOZERO_PIN_FACTORY": "lgpio"})
    assert status == 1
    result, detail = results(report)["gate"]
    assert result == "fail" and detail


@pytest.mark.skipif(not Path("/usr/bin/espeak-ng").exists(), reason="espeak-ng is not installed")
def test_the_voice_renders_a_prompt_and_plays_it_with_the_player_given(tmp_path: Path) -> None:
    status, report = selftest(
        "--voice", "zh", "--voice-cache", str(tmp_path / "voice"), "--voice-player", "true"
    )
    assert results(report)["voice"][0] == "pass", report
    assert status == 0


def test_the_summary_is_kept_in_the_state_and_goes_out_with_the_next_report(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    status, report = selftest("--state", str(state), "--sam", str(tmp_path / "no-such-port"))
    assert status == 1
    found = results(report)
    summary = last_selftest(state)
    assert summary is not None
    assert summary.failed == [item for item, (result, _) in found.items() if result == "fail"]
    assert "card reader" in summary.failed and "enrollment" in summary.failed
    assert summary.passed == sum(result == "pass" for result, _ in found.values())
    assert (state / SELFTEST_FILE).stat().st_mode & 0o077 == 0

    store = Store(state / "device.db")
    try:
        clock = DeviceClock()
        holder = DenyListHolder(store, clock.now, trust=lambda: None)
        sent = StatusReporter(store, clock, holder, state).report()
    finally:
        store.close()
    assert sent.last_selftest == summary
    (state / SELFTEST_FILE).write_text("{not json")  # a damaged file is no summary, not a crash
    assert last_selftest(state) is None
