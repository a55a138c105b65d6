"""A device's report with its camera and software version, and an older device's without them."""

from __future__ import annotations

from tests.host.conftest import START, Admin, Clock, Device


def report(**fields: object) -> dict:
    """A report as an older agent sends it: no software version, no camera."""
    return {
        "sent_at": START.isoformat(),
        "clock_trusted": True,
        "pending_checkins": 0,
        "denylist": None,
        "components": {"denylist": {"state": "ok", "since": START.isoformat()}},
    } | fields


def latest(admin: Admin) -> dict:
    [info] = admin.ok("GET", "/devices")
    return info["report"]


def test_a_report_with_camera_and_version_is_kept_and_listed(
    admin: Admin, device: Device, clock: Clock
):
    camera = {
        "state": "failing",
        "since": START.isoformat(),
        "detail": "cannot open it: no such device",
    }
    sent = report(components={"camera": camera}, software_version="0.1.0")
    response = device.request("POST", "/device/report", json_body=sent, time_ms=clock.ms())
    assert response.status_code == 204, response.text
    shown = latest(admin)
    assert shown["software_version"] == "0.1.0"
    assert shown["components"]["camera"]["state"] == "failing"
    assert shown["components"]["camera"]["detail"] == "cannot open it: no such device"


def test_an_older_device_s_report_is_still_taken(admin: Admin, device: Device, clock: Clock):
    response = device.request("POST", "/device/report", json_body=report(), time_ms=clock.ms())
    assert response.status_code == 204, response.text
    shown = latest(admin)
    assert shown["software_version"] is None
    assert "camera" not in shown["components"]


def test_a_version_too_long_is_refused(device: Device, clock: Clock):
    sent = report(software_version="1" * 65)
    response = device.request("POST", "/device/report", json_body=sent, time_ms=clock.ms())
    assert response.status_code == 422
