"""The agent as a systemd service: READY=1, WATCHDOG=1 and STATUS= read from a real socket.

The agent runs as `sentinel device run` over replayed pictures, with NOTIFY_SOCKET and
WATCHDOG_USEC set as systemd sets them; in-process, its scan loop is made to hang (the pings
stop) and its camera to fail (the agent is up, says so, and the camera recovers).
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.agent import Agent, RunOptions
from device.report import CAMERA_COMPONENT, software_version
from hardware.frames import CameraFailure, CameraSettings, LiveCamera, ReplaySource
from hardware.qr import LiveQrDecoder
from sentinel.demo import Admin, HostProcess, Kiosk, camera_frame, device_run_command, enroll
from shared.idnumber import id_check_character
from shared.messages import ComponentHealth, DeviceInfo, DeviceReport

pytestmark = pytest.mark.integration
WAIT_SECONDS = 60.0  # bounds every wait; what is awaited comes in a second or two
WATCHDOG_USEC = 400_000  # pings at most every 0.2 s


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(tmp_path / "notify"))
    yield receiver, str(tmp_path / "notify")
    receiver.close()


@pytest.fixture
def receiver(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> socket.socket:
    """The notify socket, named to an agent in this process as systemd would, watchdog on."""
    receiver, named = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", named)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    return receiver


def kiosk_with_codes(host: HostProcess, admin: Admin, tmp_path: Path, people: int) -> Kiosk:
    venue = admin.venue("Station", "1 Rail Road", "public_place")
    kiosk = enroll(host.url, admin, venue, tmp_path, "service")
    rng = np.random.default_rng(3)
    for index in range(people):
        first17 = f"1101011990{index:07d}"
        person = admin.person(first17 + id_check_character(first17), "green", 5)
        cv2.imwrite(
            str(kiosk.frames / f"{index:02d}.png"), camera_frame(admin.code_png(person), rng)
        )
    return kiosk


def collect(
    receiver: socket.socket, until: Callable[[list[str]], bool], seconds: float = WAIT_SECONDS
) -> list[str]:
    """Assignments received until `until(all so far)` holds; fails past `seconds`."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while not until(seen):
        left = deadline - time.monotonic()
        assert left > 0, f"not received in {seconds:g} s; got {seen[-10:]}"
        receiver.settimeout(left)
        seen += receiver.recv(4096).decode().split("\n")
    return seen


def statuses(seen: list[str]) -> list[str]:
    return [line.removeprefix("STATUS=") for line in seen if line.startswith("STATUS=")]


def test_the_agent_tells_systemd_it_is_ready_alive_and_what_it_does(
    host: HostProcess, admin: Admin, tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    receiver, named = notify_socket
    kiosk = kiosk_with_codes(host, admin, tmp_path, people=3)
    environment = os.environ | {"NOTIFY_SOCKET": named, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    with (tmp_path / "device.log").open("w") as log:
        device = subprocess.Popen(
            device_run_command(kiosk, "--fps", "10", "--loop"),
            stdout=subprocess.DEVNULL, stderr=log, env=environment,
        )  # fmt: skip
    try:

        def counted(seen: list[str]) -> bool:
            return any(
                line.startswith("scanning · 3 check-ins today · 0 unsynced · host reachable")
                for line in statuses(seen)
            )

        seen = collect(receiver, counted)
        assert seen.count("READY=1") == 1
        ready_at = seen.index("READY=1")
        assert seen[ready_at + 1].startswith("STATUS=")  # READY=1 comes with a status line
        assert seen.count("WATCHDOG=1") >= 2
        device.terminate()  # as systemd stops it
        collect(receiver, lambda seen: "STOPPING=1" in seen)
        assert device.wait(WAIT_SECONDS) == 0
    finally:
        if device.poll() is None:
            device.kill()
            device.wait()


class HangingDecoder:
    """The real decoder, until `hang` is set: then the next frame's decode waits for `release`."""

    def __init__(self) -> None:
        self.decoder = LiveQrDecoder()
        self.hang = threading.Event()
        self.hanging = threading.Event()
        self.release = threading.Event()

    def decode(self, image: np.ndarray) -> list[str]:
        if self.hang.is_set() and not self.release.is_set():
            self.hanging.set()
            self.release.wait(WAIT_SECONDS)
        return self.decoder.decode(image)


def drain(receiver: socket.socket) -> list[str]:
    """Whatever has been sent so far, without waiting."""
    receiver.setblocking(False)
    seen = []
    try:
        while True:
            seen += receiver.recv(4096).decode().split("\n")
    except BlockingIOError:
        return seen


def test_a_hung_scan_loop_stops_the_watchdog_pings(
    host: HostProcess, admin: Admin, tmp_path: Path, receiver: socket.socket
) -> None:
    kiosk = kiosk_with_codes(host, admin, tmp_path, people=1)
    decoder = HangingDecoder()
    agent = Agent(kiosk.state, decoder, options=RunOptions())
    source = ReplaySource(kiosk.frames, fps=20, loop=True)
    running = threading.Thread(target=agent.run, args=(source,))
    running.start()
    try:
        collect(receiver, lambda seen: seen.count("WATCHDOG=1") >= 2)
        decoder.hang.set()
        assert decoder.hanging.wait(WAIT_SECONDS)
        drain(receiver)  # the ping of the frame that hangs was sent before its decode
        time.sleep(10 * WATCHDOG_USEC / 1e6)  # ten watchdog timeouts with the loop hung
        assert "WATCHDOG=1" not in drain(receiver)
        decoder.release.set()
        collect(receiver, lambda seen: "WATCHDOG=1" in seen)  # the loop turns again
    finally:
        decoder.release.set()
        source.close()
        running.join(WAIT_SECONDS)
    assert not running.is_alive()


class PluggableCamera(LiveCamera):
    """A camera that can be unplugged and plugged back in (the test's switch): real pictures."""

    def __init__(self, picture: np.ndarray) -> None:
        super().__init__(
            "camera:test", CameraSettings(), reopen_after=0.05, max_failures=None, stall_timeout=1
        )
        self.picture = picture
        self.plugged = threading.Event()
        self.opened = False

    def _capture(self) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.plugged.is_set():
            if self.opened:
                raise CameraFailure("read no frame (unplugged or stalled)")
            raise CameraFailure("cannot open it: no such device")
        self.opened = True
        time.sleep(0.02)  # a camera's frame rate: 50 a second
        return self.picture, None

    def _close_camera(self) -> None:
        pass


def listed_report(admin: Admin) -> DeviceReport:
    """The device's latest report, as the host's device listing returns it."""
    [info] = admin.http.get("/admin/devices").json()
    report = DeviceInfo.model_validate(info).report
    assert report is not None
    return report


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT_SECONDS:g} s"
        time.sleep(0.02)


def test_a_failing_camera_is_reported_and_its_recovery_too(
    host: HostProcess, admin: Admin, tmp_path: Path, receiver: socket.socket
) -> None:
    kiosk = kiosk_with_codes(host, admin, tmp_path, people=1)
    camera = PluggableCamera(cv2.imread(str(next(kiosk.frames.iterdir()))))
    agent = Agent(kiosk.state, LiveQrDecoder(), options=RunOptions())
    running = threading.Thread(target=agent.run, args=(camera,))
    running.start()
    try:
        # It never opened: the agent is up all the same, says why, and is kept alive.
        seen = collect(receiver, lambda seen: seen.count("WATCHDOG=1") >= 2)
        assert "READY=1" in seen
        assert any(line.startswith("camera failing: cannot open it") for line in statuses(seen))
        agent.client.send_report(agent.reporter.report())
        report = listed_report(admin)
        failing = report.components[CAMERA_COMPONENT]
        assert failing.state is ComponentHealth.FAILING
        assert failing.detail == "cannot open it: no such device"
        assert report.software_version == software_version() is not None
        camera.plugged.set()
        wait_for(lambda: camera.status.state == "ok", "frames")
        collect(receiver, lambda seen: any(s.startswith("scanning") for s in statuses(seen)))
        camera.plugged.clear()  # unplugged while in use
        wait_for(lambda: camera.status.state == "failing", "the outage")
        agent.client.send_report(agent.reporter.report())
        unplugged = listed_report(admin).components[CAMERA_COMPONENT]
        assert (unplugged.state, unplugged.detail) == (
            ComponentHealth.FAILING,
            "read no frame (unplugged or stalled)",
        )
        camera.plugged.set()
        wait_for(lambda: camera.status.state == "ok", "frames again")
        agent.client.send_report(agent.reporter.report())
        recovered = listed_report(admin).components[CAMERA_COMPONENT]
        assert recovered.state is ComponentHealth.OK
        assert recovered.since > unplugged.since
        assert (
            recovered.detail == "frames again; last failure: read no frame (unplugged or stalled)"
        )
    finally:
        camera.close()
        running.join(WAIT_SECONDS)
    assert not running.is_alive()
