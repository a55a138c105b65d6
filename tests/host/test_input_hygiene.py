"""Input hygiene: body sizes and deadlines on every endpoint, scan times a clock could give."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from host.api.bodies import API_BODY_BYTES, PAGE_FORM_BYTES
from host.api.routes.devices import IMPLAUSIBLE_SCAN_TIME
from sentinel.demo import HostProcess, free_port
from shared.idnumber import id_check_character
from shared.messages import API_PREFIX
from tests.host.conftest import Admin, Clock, Device

SOCKET_SECONDS = 15.0  # every wait on the raw socket is bounded by this


def test_an_admin_body_over_the_limit_is_refused_before_it_is_read(admin: Admin):
    declared = admin.request(
        "POST",
        "/people",
        content=b"{" + b" " * API_BODY_BYTES + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert declared.status_code == 413
    assert declared.json()["error"] == "too-large"
    assert declared.headers["connection"] == "close"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(API_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    streamed = admin.request(
        "POST", "/people", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert (streamed.status_code, streamed.json()["error"]) == (413, "too-large")


def test_enrollment_and_page_forms_have_limits_too(client: TestClient):
    enroll = client.post(
        f"{API_PREFIX}/devices/enroll",
        content=b" " * (API_BODY_BYTES + 1),
        headers={"Content-Type": "application/json"},
    )
    assert (enroll.status_code, enroll.json()["error"]) == (413, "too-large")
    form = client.post("/dashboard/sign-in", content=b"a" * (PAGE_FORM_BYTES + 1))
    assert (form.status_code, form.json()["error"]) == (413, "too-large")


def test_bodies_within_limits_are_served(admin: Admin):
    numbers = [f"11010119900307{i:03d}" for i in range(1000)]
    people = [{"id_number": n + id_check_character(n), "colour": "green"} for n in numbers]
    assert admin.request("POST", "/people", json={"people": people}).status_code == 200


@pytest.mark.parametrize(
    "scanned_at", ["9999-12-31T23:59:59Z", "2019-12-31T23:59:59Z", "2022-05-02T08:31:00Z"]
)
def test_scan_times_no_clock_could_give_are_refused_for_good(
    admin: Admin, device: Device, clock: Clock, scanned_at: str
):
    odd, fine = device.checkin(scanned_at=scanned_at), device.checkin()
    sent = device.request(
        "POST", "/device/checkins", json_body={"checkins": [odd, fine]}, time_ms=clock.ms()
    )
    assert sent.status_code == 200, sent.text
    # Acknowledged, so the device lets it go (device.sync marks every acknowledged id), and
    # refused with the reason: never stored, never counted.
    assert sent.json() == {
        "acknowledged": [odd["id"], fine["id"]],
        "inserted": 1,
        "duplicates": 0,
        "rejected": [{"id": odd["id"], "reason": IMPLAUSIBLE_SCAN_TIME}],
    }
    assert admin.ok("GET", "/stats")["checkins"] == 1


def test_a_scan_up_to_a_day_ahead_of_the_host_is_kept(admin: Admin, device: Device, clock: Clock):
    ahead = device.checkin(scanned_at="2022-05-02T08:29:00Z")
    sent = device.request(
        "POST", "/device/checkins", json_body={"checkins": [ahead]}, time_ms=clock.ms()
    )
    assert sent.json() == {"acknowledged": [ahead["id"]], "inserted": 1, "duplicates": 0}


@pytest.fixture
def slow_body_host(tmp_path: Path) -> Iterator[HostProcess]:
    """A real host process whose bodies must arrive within 1 s."""
    options = ("--body-timeout", "1")
    process = HostProcess(tmp_path, free_port(), os.urandom(16).hex(), options=options)
    process.start()
    yield process
    process.stop()


def test_a_body_that_never_finishes_gets_408_and_the_connection_closed(
    slow_body_host: HostProcess,
):
    with socket.create_connection(("127.0.0.1", slow_body_host.port), SOCKET_SECONDS) as sock:
        sock.settimeout(SOCKET_SECONDS)
        sock.sendall(
            b"POST /api/v1/devices/enroll HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"token": '
        )
        received = b""
        while chunk := sock.recv(65536):  # until the host closes the connection
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), received
    assert b"connection: close" in head.lower()
    assert b'"error":"body-timeout"' in body
