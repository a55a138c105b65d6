"""The host as a real process (`sentinel host serve` on 127.0.0.1), driven over HTTP."""

import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sentinel.demo import DEMO_PUBLIC_URL, HostProcess, free_port
from shared.auth import HEADER_SERVER_TIME, MAX_SKEW_MS
from shared.messages import API_PREFIX
from tests.host.conftest import Admin, Device

pytestmark = pytest.mark.integration


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    """Start the host on a free port with no admin token given; stop it afterwards."""
    servers: list[HostProcess] = []

    def start(db: Path, log: Path) -> HostProcess:
        server = HostProcess(tmp_path, free_port(), None, db=db)
        servers.append(server)
        server.start(log)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_a_real_host_process_serves_devices(start_server, tmp_path: Path):
    db = tmp_path / "data" / "host.db"
    server = start_server(db, tmp_path / "first.log")

    token_file = db.parent / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 32

    with httpx.Client(base_url=server.url, timeout=10) as client:
        health = client.get(f"{API_PREFIX}/health")
        assert health.json()["ok"] is True
        assert abs(int(health.headers[HEADER_SERVER_TIME]) - now_ms()) < 5000

        admin = Admin(client, token)
        assert (
            admin.request("GET", "/stats", headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        venue = admin.venue()
        device = Device.enroll(client, admin.token(venue["id"]))

        skewed = device.request("GET", "/device/config", time_ms=now_ms() - 2 * MAX_SKEW_MS)
        assert (skewed.status_code, skewed.json()["error"]) == (401, "clock-skew")
        server_ms = int(skewed.headers[HEADER_SERVER_TIME])
        assert device.request("GET", "/device/config", time_ms=server_ms).status_code == 200

        batch = [device.checkin() for _ in range(20)]
        for inserted in (20, 0):
            ack = device.request(
                "POST", "/device/checkins", json_body={"checkins": batch}, time_ms=now_ms()
            ).json()
            assert (ack["inserted"], ack["duplicates"]) == (inserted, 20 - inserted)
        page = client.get(venue["code_url"].removeprefix(DEMO_PUBLIC_URL))
        assert "Riverside Mall" in page.text and "Sign in first" in page.text

    server.stop()
    log = server.log.read_text()
    assert "Application shutdown complete" in log  # uvicorn then re-raises SIGTERM
    assert str(token_file) in log
    assert token not in log

    # A restart on the same database reuses its token file, keys and data.
    again = start_server(db, tmp_path / "second.log")
    with httpx.Client(base_url=again.url, timeout=10) as client:
        admin = Admin(client, token)
        assert admin.ok("GET", "/stats") == {"venues": 1, "people": 0, "devices": 1, "checkins": 20}
        device.client = client
        fresh = device.request("GET", "/device/config", time_ms=now_ms()).json()
        assert fresh["keys"] == device.config["keys"]
    assert token not in again.log.read_text()
