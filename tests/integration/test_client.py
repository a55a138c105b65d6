"""The device's HTTP client against a real host: clock correction, status, idempotent acks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from device.client import HostClient, HostError
from device.clock import DeviceClock
from device.identity import load_enrollment, load_or_create_key
from sentinel.demo import Admin, HostProcess, Kiosk, enroll
from shared.messages import CheckIn, CheckInBatch, StatusRequest
from shared.policy import Outcome
from shared.uuid7 import uuid7
from shared.verification import CredentialKind

pytestmark = pytest.mark.integration
HOUR_MS = 3_600_000


@pytest.fixture
def kiosk(host: HostProcess, admin: Admin, tmp_path: Path) -> Kiosk:
    venue = admin.venue("Clinic", "5 Health Street", "medical")
    return enroll(host.url, admin, venue, tmp_path, "clinic")


def client_for(kiosk: Kiosk, clock: DeviceClock) -> HostClient:
    enrollment = load_enrollment(kiosk.state)
    return HostClient(
        enrollment.host_url, enrollment.device_id, load_or_create_key(kiosk.state), clock
    )


def test_a_device_an_hour_off_corrects_its_clock_from_the_host(
    kiosk: Kiosk, tmp_path: Path
) -> None:
    clock = DeviceClock(ntp_flag=tmp_path / "no-ntp")
    local = clock.now_ms()
    clock.observe_host_time(local - HOUR_MS, local, local)  # a clock an hour slow
    assert abs(clock.now_ms() - (local - HOUR_MS)) < 1000
    client = client_for(kiosk, clock)
    config = client.config()  # refused for skew, corrected from the host's time, signed again
    assert config.venue.category.value == "medical"
    assert abs(clock.now_ms() - datetime.now(UTC).timestamp() * 1000) < 2000
    assert clock.trusted


def test_status_lookup_behind_a_person_reference(
    kiosk: Kiosk, admin: Admin, tmp_path: Path
) -> None:
    person = admin.person("320102198001011238", "yellow", 30)
    client = client_for(kiosk, DeviceClock(ntp_flag=tmp_path / "no-ntp"))
    status = client.status(StatusRequest(person_ref=person))
    assert status.known
    assert status.colour is not None and status.colour.value == "yellow"
    assert status.test is not None
    assert not client.status(StatusRequest(person_ref="p_nobody")).known


def test_a_batch_sent_twice_is_acknowledged_twice_and_stored_once(
    kiosk: Kiosk, admin: Admin, tmp_path: Path
) -> None:
    clock = DeviceClock(ntp_flag=tmp_path / "no-ntp")
    client = client_for(kiosk, clock)
    venue_id = load_enrollment(kiosk.state).venue_id
    batch = CheckInBatch(
        checkins=[
            CheckIn(id=uuid7(), venue_id=venue_id, scanned_at=clock.now(),
                    kind=CredentialKind.HEALTH, outcome=Outcome.PASS, reasons=["ok"],
                    clock_trusted=True)
            for _ in range(25)
        ]
    )  # fmt: skip
    first = client.send_checkins(batch)
    again = client.send_checkins(batch)
    expected = [checkin.id for checkin in batch.checkins]
    assert (first.acknowledged, first.inserted, first.duplicates) == (expected, 25, 0)
    assert (again.acknowledged, again.inserted, again.duplicates) == (expected, 0, 25)
    assert admin.stats().checkins == 25


def test_an_unreachable_host_is_a_retryable_error(
    tmp_path: Path, kiosk: Kiosk, host: HostProcess
) -> None:
    host.kill()
    client = client_for(kiosk, DeviceClock(ntp_flag=tmp_path / "no-ntp"))
    with pytest.raises(HostError) as caught:
        client.config()
    assert caught.value.retryable
    assert caught.value.status is None
