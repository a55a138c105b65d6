"""The host purge job: check-ins past the retention period go, in the background; no others."""

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

from host.app import Retention, create_app
from host.cli import add_arguments
from host.core.config import Settings
from tests.host.conftest import Admin, Clock, Device, TestClient
from tests.host.test_checkins import post, stored_checkins

DAY_SECONDS = 24 * 3600
WAIT_SECONDS = 10.0


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_purge_job_deletes_check_ins_past_retention_while_the_host_runs(
    settings: Settings, clock: Clock
):
    retention = Retention(checkin_days=28, purge_every_seconds=0.02)
    with TestClient(create_app(settings, retention)) as client:
        admin = Admin(client)
        device = Device.enroll(client, admin.token(admin.venue()["id"]))
        post(device, clock, [device.checkin() for _ in range(3)])  # scanned at START
        clock.advance(27 * DAY_SECONDS)
        fresh = device.checkin(scanned_at=datetime.fromtimestamp(clock.now, UTC).isoformat())
        assert post(device, clock, [fresh]).status_code == 200
        time.sleep(0.1)  # a few purges: nothing is old enough yet
        assert stored_checkins(settings) == 4
        clock.advance(2 * DAY_SECONDS)
        wait_until(lambda: stored_checkins(settings) == 1)  # the three from START went
        time.sleep(0.1)
        assert stored_checkins(settings) == 1


def test_retention_days_on_the_command_line():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    common = ["serve", "--db", "/srv/host.db", "--public-url", "https://s.example.org"]
    assert parser.parse_args(common).retention_days == Retention.checkin_days == 28
    assert parser.parse_args([*common, "--retention-days", "14"]).retention_days == 14
