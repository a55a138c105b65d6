"""The host as a real process (`sentinel host serve` on 127.0.0.1), driven over HTTP."""

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.auth import HEADER_SERVER_TIME, MAX_SKEW_MS
from shared.messages import API_PREFIX
from tests.host.conftest import PUBLIC_URL, Admin, Device

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    url: str
    log: Path
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    """Start the host on a free port and wait for its health check; stop it afterwards."""
    servers: list[Server] = []

    def start(db: Path, log: Path) -> Server:
        port = free_port()
        command = [sys.executable, "-m", "sentinel", "host", "serve", "--db", str(db)]
        command += ["--host", "127.0.0.1", "--port", str(port), "--public-url", PUBLIC_URL]
        env = os.environ | {"PYTHONPATH": str(REPO)}
        with log.open("wb") as output:
            process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=output)
        server = Server(f"http://127.0.0.1:{port}", log, process)
        servers.append(server)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"host exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{server.url}{API_PREFIX}/health", timeout=1).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(f"host did not answer within {STARTUP_TIMEOUT_S} s:\n{log.read_text()}")

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
        page = client.get(venue["code_url"].removeprefix(PUBLIC_URL))
        assert "Checked in at Riverside Mall" in page.text

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
