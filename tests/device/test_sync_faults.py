"""Sync against a real host on 127.0.0.1 that is down, answers 503, or cuts a stored reply."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from device.client import HostClient, HostError, enroll
from device.clock import DeviceClock
from device.store import Store
from device.sync import Backoff, Syncer
from host.app import create_app
from host.core.config import Settings
from sentinel.demo import Admin, free_port
from shared.messages import CheckIn, ComponentHealth, DeviceForm
from shared.policy import Outcome
from shared.uuid7 import uuid7
from shared.verification import CredentialKind
from tests.host.conftest import PUBLIC_URL

WAIT_SECONDS = 15.0
CHECKINS = 45


class Faults:
    """ASGI middleware before the host: each check-in request takes the next planned fault.

    "503": answered at once, the batch never reaches the host. "cut": the host stores the
    batch, then the connection drops halfway through the reply.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.plan: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and scope["path"].endswith("/checkins") and self.plan):
            await self.app(scope, receive, send)
            return
        fault = self.plan.pop(0)
        if fault == "503":
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        start, body = held
        await send(start)
        await send({"type": "http.response.body", "body": body["body"][:20], "more_body": True})
        raise ConnectionAbortedError("cut halfway through the reply")


class Host:
    """The host app under uvicorn in a thread, behind `Faults`; it can be stopped and started."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = os.urandom(16).hex()
        settings = Settings(
            database=tmp_path / "host.db", public_url=PUBLIC_URL, admin_token=self.token
        )
        self.settings = settings
        self.faults: Faults | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.faults = Faults(create_app(self.settings))
        config = uvicorn.Config(self.faults, host="127.0.0.1", port=self.port, log_level="critical")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_for(lambda: self._server is not None and self._server.started)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(WAIT_SECONDS)
        self._server = self._thread = None

    def stored(self) -> int:
        return Admin(self.url, self.token).stats().checkins


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    server = Host(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Device:
    """An enrolled device: its client to the host, and its store holding CHECKINS check-ins."""

    client: HostClient
    store: Store
    device_id: str
    key: Ed25519PrivateKey


@pytest.fixture
def device(host: Host, tmp_path: Path) -> Iterator[Device]:
    admin = Admin(host.url, host.token)
    venue = admin.venue("Market", "2 Market Street", "public_place")
    key = Ed25519PrivateKey.generate()
    enrolled = enroll(
        host.url, admin.enrollment_token(venue.id), key, name="gate", form=DeviceForm.GATE
    )
    clock = DeviceClock(ntp_flag=tmp_path / "no-ntp")
    store = Store(tmp_path / "device.db")
    for _ in range(CHECKINS):
        store.record(
            CheckIn(
                id=uuid7(),
                venue_id=venue.id,
                scanned_at=clock.now(),
                kind=CredentialKind.HEALTH,
                outcome=Outcome.PASS,
                reasons=["ok"],
                clock_trusted=True,
            )
        )
    client = HostClient(host.url, enrolled.device_id, key, clock)
    try:
        yield Device(client, store, enrolled.device_id, key)
    finally:
        client.close()


def test_a_batch_stored_but_whose_reply_was_cut_is_sent_again_and_stored_once(
    host: Host, device: Device
) -> None:
    store = device.store
    syncer = Syncer(store, device.client, on_config=lambda _config: None, batch_size=10, window=1)
    assert host.faults is not None
    host.faults.plan = ["cut"]
    with pytest.raises(HostError, match="RemoteProtocolError") as cut:
        syncer.sync_once()
    assert cut.value.retryable
    assert host.stored() == 10  # the host has the batch; the device does not know it
    assert store.counts() == (CHECKINS, 0)
    assert syncer.sync_once() == CHECKINS  # the first batch again: acknowledged as duplicates
    assert host.stored() == CHECKINS
    assert store.counts() == (CHECKINS, CHECKINS)


def test_the_syncer_gets_everything_through_a_host_down_failing_and_cutting_replies(
    host: Host, device: Device
) -> None:
    store = device.store
    host.stop()
    syncer = Syncer(
        store,
        device.client,
        on_config=lambda _config: None,
        batch_size=10,
        window=2,
        idle_seconds=0.05,
        backoff=Backoff(base_seconds=0.02, cap_seconds=0.2),
    )
    syncer.start()
    try:
        wait_for(lambda: syncer.failures >= 2)  # the host is down
        assert syncer.component().state is ComponentHealth.FAILING
        assert "ConnectError" in (syncer.component().detail or "")
        host.start()
        assert host.faults is not None
        host.faults.plan = ["503", "cut", "503", "cut"]
        wait_for(lambda: store.counts() == (CHECKINS, CHECKINS))
        wait_for(lambda: syncer.component().state is ComponentHealth.OK)
    finally:
        syncer.stop()
    assert host.faults.plan == []
    assert host.stored() == CHECKINS
    assert syncer.refused is None


# A device process syncing a batch of one per round, saying so after each round.
SYNC_WORKER = """
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.client import HostClient
from device.clock import DeviceClock
from device.store import Store
from device.sync import Syncer

url, device_id, key, db = sys.argv[1:]
client = HostClient(
    url, device_id, Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key)), DeviceClock()
)
syncer = Syncer(Store(Path(db)), client, on_config=print, batch_size=1, batches_per_round=1)
while syncer.sync_once():
    print("round", flush=True)
"""


def test_a_device_killed_while_syncing_loses_and_doubles_nothing(
    host: Host, device: Device
) -> None:
    key = device.key.private_bytes_raw().hex()
    command = [sys.executable, "-c", SYNC_WORKER, host.url, device.device_id, key]
    worker = subprocess.Popen(
        [*command, str(device.store.path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert worker.stdout is not None
    try:
        assert worker.stdout.readline() == "round\n"  # some acknowledged, some in flight
    finally:
        worker.kill()  # SIGKILL, as by a power cut
        worker.wait(WAIT_SECONDS)
        worker.stdout.close()
    held, acknowledged = device.store.counts()
    assert held == CHECKINS and 1 <= acknowledged < CHECKINS
    syncer = Syncer(device.store, device.client, on_config=lambda _config: None)
    try:
        assert syncer.sync_once() == CHECKINS - acknowledged  # the rest, from where it stopped
    finally:
        syncer.stop()
    assert host.stored() == CHECKINS
    assert device.store.counts() == (CHECKINS, CHECKINS)
