"""`sentinel selftest` of the whole kiosk against a real host: enrolled or not, host up or down."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from sentinel.demo import Admin, HostProcess, Kiosk, camera_frame, enroll, free_port
from sentinel.demo import sentinel_command as command

pytestmark = pytest.mark.integration
WAIT_SECONDS = 60.0


def selftest(*options: str, path: str | None = None) -> tuple[int, dict[str, dict[str, str]]]:
    environment = os.environ | ({"PATH": path} if path else {})
    done = subprocess.run(
        command("selftest", "--json", *options),
        capture_output=True, text=True, timeout=120, check=False, env=environment,
    )  # fmt: skip
    report = json.loads(done.stdout)
    assert report["ok"] is (done.returncode == 0)
    return done.returncode, {item["item"]: item for item in report["items"]}


def enrolled_kiosk(host: HostProcess, admin: Admin, tmp_path: Path) -> Kiosk:
    venue = admin.venue("Station", "1 Rail Road", "public_place")
    return enroll(host.url, admin, venue, tmp_path, "selftest")


def test_an_enrolled_kiosk_reaches_its_host_and_its_screen(
    host: HostProcess, admin: Admin, tmp_path: Path
) -> None:
    kiosk = enrolled_kiosk(host, admin, tmp_path)
    port = free_port()
    screen = f"127.0.0.1:{port}"
    status, items = selftest("--state", str(kiosk.state), "--host", host.url, "--screen", screen)
    enrollment = items["enrollment"]
    assert enrollment["result"] == "pass"
    assert f"at venue {kiosk.venue.id} (Station), host {host.url}" in enrollment["detail"]
    assert items["host"]["result"] == "pass"
    assert "answered a signed request" in items["host"]["detail"]
    # No systemd here: the host's clock is the reference, and ours is within its tolerance.
    assert items["clock"]["result"] == "pass"
    assert "of the host's clock" in items["clock"]["detail"]
    assert items["disk"]["result"] in {"pass", "warn"}
    assert str(kiosk.state) in items["disk"]["detail"]
    # A screen is configured, but the agent that serves it is not running.
    assert items["screen"]["result"] == "fail"
    assert f"nothing answers at http://{screen}/state.json" in items["screen"]["detail"]
    assert "systemctl status sentinel-agent" in items["screen"]["remedy"]
    assert status == 1
    cv2.imwrite(str(kiosk.frames / "0.png"), camera_frame(None, np.random.default_rng(1)))
    with (tmp_path / "agent.log").open("w") as log:
        agent = subprocess.Popen(
            command("device", "run", "--state", str(kiosk.state), "--source", str(kiosk.frames),
                    "--loop", "--fps", "5", "--screen", screen),
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not answers(f"http://{screen}/state.json"):
            assert agent.poll() is None, (tmp_path / "agent.log").read_text()
            assert time.monotonic() < deadline, "the agent's screen never answered"
            time.sleep(0.1)
        status, items = selftest("--state", str(kiosk.state), "--screen", screen)
        assert items["screen"]["result"] == "pass"
        assert status == 0, items
    finally:
        agent.terminate()
        agent.wait(WAIT_SECONDS)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).is_success
    except httpx.HTTPError:
        return False


def test_a_kiosk_not_enrolled_is_told_how_to_enroll(tmp_path: Path) -> None:
    status, items = selftest("--state", str(tmp_path / "state"))
    assert status == 1
    assert items["enrollment"]["result"] == "fail"
    assert items["enrollment"]["detail"].startswith("not enrolled")
    assert "sentinel device enroll --state" in items["enrollment"]["remedy"]
    assert items["host"] == {
        "item": "host",
        "result": "absent",
        "detail": "not enrolled: no host to ask",
        "remedy": "",
    }


def test_a_host_that_is_down_is_said_in_words(
    host: HostProcess, admin: Admin, tmp_path: Path
) -> None:
    kiosk = enrolled_kiosk(host, admin, tmp_path)
    host.stop()
    status, items = selftest("--state", str(kiosk.state))
    assert status == 1
    assert items["enrollment"]["result"] == "pass"
    assert items["host"]["result"] == "fail"
    assert items["host"]["detail"] == (
        f"nothing answers at {host.url}: the host is down, or unreachable from here"
    )
    assert f"curl {host.url}/api/v1/health" in items["host"]["remedy"]


def test_a_revoked_kiosk_and_one_enrolled_elsewhere_fail_their_enrollment(
    host: HostProcess, admin: Admin, tmp_path: Path
) -> None:
    kiosk = enrolled_kiosk(host, admin, tmp_path)
    status, items = selftest("--state", str(kiosk.state), "--host", "https://elsewhere.example")
    assert status == 1
    assert items["enrollment"]["result"] == "fail"
    assert items["enrollment"]["detail"] == (
        f"enrolled with {host.url}, but the configuration names https://elsewhere.example"
    )
    assert items["host"]["result"] == "absent"
    [device] = admin.http.get("/admin/devices").json()
    admin.http.post(f"/admin/devices/{device['id']}/revoke").raise_for_status()
    status, items = selftest("--state", str(kiosk.state))
    assert status == 1
    assert items["host"]["detail"] == "the host has revoked this device"
    assert "enroll again" in items["host"]["remedy"]


@pytest.mark.parametrize(
    ("synchronised", "result"), [("yes", "pass"), ("no", "warn")], ids=["ntp", "no-ntp"]
)
def test_the_clock_is_ntp_s_when_systemd_can_say(
    host: HostProcess, admin: Admin, tmp_path: Path, synchronised: str, result: str
) -> None:
    """timedatectl needs systemd as PID 1, which this machine lacks: a stand-in answers."""
    kiosk = enrolled_kiosk(host, admin, tmp_path)
    tools = tmp_path / "bin"
    tools.mkdir()
    timedatectl = tools / "timedatectl"
    answer = f"NTPSynchronized={synchronised}"
    timedatectl.write_text(f'#!/bin/sh\n[ "$*" = "show -p NTPSynchronized" ] && echo {answer}\n')
    timedatectl.chmod(0o755)
    _, items = selftest("--state", str(kiosk.state), path=f"{tools}:{os.environ['PATH']}")
    assert items["clock"]["result"] == result
    if result == "pass":
        assert items["clock"]["detail"] == "NTP synchronised (timedatectl)"
    else:
        assert (
            items["clock"]["detail"] == "within 2 s of the host's clock, but NTP not synchronised"
        )
        assert "timedatectl set-ntp true" in items["clock"]["remedy"]


def test_the_table_says_what_to_do_under_each_failure(tmp_path: Path) -> None:
    done = subprocess.run(
        command("selftest", "--state", str(tmp_path / "state"),
                "--screen", f"127.0.0.1:{free_port()}"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    for item in ("enrollment", "screen"):
        [at] = [index for index, line in enumerate(lines) if line.startswith(f"{item} ")]
        assert lines[at].split()[1] == "fail"
        assert lines[at + 1].lstrip().startswith("→ ")
    assert [line.split()[1] for line in lines if line.startswith("camera ")] == ["absent"]
