"""Several host processes on one PostgreSQL: nothing consistent lives in a worker's memory."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.client import HostClient, HostError, enroll
from device.clock import DeviceClock
from device.store import Store
from device.sync import Syncer
from sentinel.bench.sync import sample_checkins
from sentinel.chaos.proxy import FaultProxy
from sentinel.demo import Admin, HostProcess, free_port
from shared.auth import public_key_bytes, sign_request
from shared.keys import b64url
from shared.messages import API_PREFIX, DeviceForm

pytestmark = pytest.mark.integration

WAIT_SECONDS = 60.0


@pytest.fixture
def start_host(tmp_path: Path, postgres_url: str) -> Iterator[Callable[..., HostProcess]]:
    """Start hosts on one PostgreSQL schema, each on a port and in a directory of its own."""
    token = os.urandom(24).hex()
    hosts: list[HostProcess] = []

    def start(workers: int = 1) -> HostProcess:
        workdir = tmp_path / f"host-{len(hosts)}"
        workdir.mkdir()
        host = HostProcess(workdir, free_port(), token, db=postgres_url, workers=workers)
        hosts.append(host)
        host.start()
        return host

    try:
        yield start
    finally:
        for host in hosts:
            host.stop()


def admin_of(host: HostProcess) -> Admin:
    assert host.token_file is not None
    return Admin(host.url, host.token_file.read_text())


def enrolled_device(host: HostProcess) -> tuple[str, str, Ed25519PrivateKey]:
    """(device id, venue id, key) of a device enrolled through `host`."""
    admin = admin_of(host)
    venue = admin.venue("Riverside Market", "1 River Road", "public_place")
    key = Ed25519PrivateKey.generate()
    response = enroll(
        host.url, admin.enrollment_token(venue.id), key, name="gate-1", form=DeviceForm.GATE
    )
    return response.device_id, venue.id, key


def at_once(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Make the calls from threads released together, so that they reach the hosts together."""
    barrier = threading.Barrier(len(calls))

    def call_when_all_ready(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(call_when_all_ready, calls))


def test_one_signed_request_sent_to_two_hosts_is_accepted_once(start_host):
    first, second = start_host(), start_host()
    device_id, _venue_id, key = enrolled_device(first)
    target = f"{API_PREFIX}/device/config"
    with httpx.Client(base_url=first.url) as one, httpx.Client(base_url=second.url) as other:
        for attempt in range(5):
            now_ms = time.time_ns() // 10**6
            headers = sign_request(
                key, device_id, method="GET", target=target, body=b"", time_ms=now_ms
            )
            answers = at_once(*(partial(client.get, target, headers=headers)
                                for client in (one, other)))  # fmt: skip
            codes = sorted(answer.status_code for answer in answers)
            assert codes == [200, 401], (attempt, [answer.text for answer in answers])
            refused = next(answer for answer in answers if answer.status_code == 401)
            assert refused.json()["error"] == "replay"


def enroll_body(token: str, name: str) -> dict[str, str]:
    key = Ed25519PrivateKey.generate()
    return {"token": token, "public_key": b64url(public_key_bytes(key.public_key())), "name": name}


def test_one_enrollment_token_used_at_once_on_two_hosts_enrolls_one_device(start_host):
    first, second = start_host(), start_host()
    admin = admin_of(first)
    venue = admin.venue("Riverside Market", "1 River Road", "public_place")
    path = f"{API_PREFIX}/devices/enroll"
    with httpx.Client(base_url=first.url) as one, httpx.Client(base_url=second.url) as other:
        for attempt in range(5):
            token = admin.enrollment_token(venue.id)
            bodies = [enroll_body(token, f"gate-{attempt}") for _ in range(2)]
            answers = at_once(
                partial(one.post, path, json=bodies[0]), partial(other.post, path, json=bodies[1])
            )
            codes = sorted(answer.status_code for answer in answers)
            assert codes == [201, 401], (attempt, [answer.text for answer in answers])
            refused = next(answer for answer in answers if answer.status_code == 401)
            assert refused.json()["error"] == "token-used"
    listed = admin.http.get("/admin/devices").json()
    assert sorted(device["name"] for device in listed) == [f"gate-{n}" for n in range(5)]


def test_a_device_whose_host_dies_mid_sync_finishes_on_another_losing_and_doubling_nothing(
    start_host, tmp_path: Path, postgres_url: str
):
    first, second = start_host(), start_host()
    device_id, venue_id, key = enrolled_device(first)
    backlog = 12_000
    store = Store(tmp_path / "device.db", synchronous="OFF")  # filling it is not the test
    made = []
    for checkin in sample_checkins(venue_id, backlog, seed=5):
        store.record(checkin)
        made.append(checkin.id)
    store.close()
    store = Store(tmp_path / "device.db")
    # The device knows one address, a reverse proxy's, which fails over to the other host.
    proxy = FaultProxy("127.0.0.1", first.port).start()
    client = HostClient(proxy.url, device_id, key, DeviceClock())
    syncer = Syncer(store, client, on_config=lambda _config: None, window=4)

    def on_host() -> int:
        with psycopg.connect(postgres_url) as db:
            return db.execute("SELECT count(*) FROM checkins").fetchone()[0]

    try:
        syncing = ThreadPoolExecutor(1).submit(syncer.sync_once)
        deadline = time.monotonic() + WAIT_SECONDS
        while on_host() == 0:  # kill the first host once it has stored a batch or more
            assert time.monotonic() < deadline, "the first host stored nothing"
            time.sleep(0.005)
        first.kill()
        with pytest.raises(HostError):
            syncing.result(WAIT_SECONDS)
        # Stored on the host but not all acknowledged: what the second host gets again.
        assert store.counts()[1] < backlog
        proxy.target_port = second.port
        while store.counts()[1] < backlog:
            assert time.monotonic() < deadline, f"synced {store.counts()[1]} of {backlog}"
            try:
                syncer.sync_once()
            except HostError:
                time.sleep(0.1)
    finally:
        syncer.stop()
        client.close()
        proxy.stop()
    assert store.counts() == (backlog, backlog)
    with psycopg.connect(postgres_url) as db:
        stored = [row[0] for row in db.execute("SELECT id FROM checkins").fetchall()]
    assert len(stored) == backlog  # nothing doubled
    assert set(stored) == set(made)  # nothing lost


def test_workers_serve_one_database_and_stop_together(start_host):
    host = start_host(workers=2)
    deadline = time.monotonic() + WAIT_SECONDS
    while len(host.worker_pids()) < 2:
        assert time.monotonic() < deadline, "two workers did not start"
        time.sleep(0.1)
    workers = host.worker_pids()
    admin = admin_of(host)
    venue = admin.venue("Riverside Market", "1 River Road", "public_place")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: admin.http.get(f"/admin/venues/{venue.id}"), range(64)))
    assert {answer.status_code for answer in answers} == {200}
    host.stop()
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]

