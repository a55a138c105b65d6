"""Sync: backoff with jitter, windows of batches, re-sending what was not acked, purge, health."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from device.client import HostError
from device.store import Store, StoreError
from device.sync import Backoff, Syncer
from shared.messages import CheckIn, CheckInAck, CheckInBatch, ComponentHealth, DeviceReport
from tests.device.test_store import checkin

WAIT_SECONDS = 10.0
FAST_BACKOFF = Backoff(base_seconds=0.005, cap_seconds=0.02)


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    backoff = Backoff(base_seconds=0.5, cap_seconds=60)
    rng = random.Random(1)
    for failures in range(1, 40):
        ceiling = min(60, 0.5 * 2**failures)
        delays = [backoff.delay(failures, rng) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 40  # jitter: devices that failed together retry apart


def test_backoff_survives_a_huge_failure_count() -> None:
    assert Backoff(cap_seconds=60).delay(10**6, random.Random(0)) <= 60


class StubHost:
    """The host as the syncer sees it; batches may come on several threads at once.

    `plan` says what to do the first time a batch starts with a given id: "fail" (the
    connection is cut), or "half" (only its first half is acknowledged); else all is stored.
    """

    def __init__(self, plan: dict[UUID, str] | None = None) -> None:
        self.plan = plan or {}
        self.batches: list[list[UUID]] = []
        self.stored: set[UUID] = set()
        self.reports: list[DeviceReport] = []
        self.lock = threading.Lock()

    def send_checkins(self, batch: CheckInBatch) -> CheckInAck:
        ids = [item.id for item in batch.checkins]
        with self.lock:
            self.batches.append(ids)
            answer = self.plan.pop(ids[0], "ok")
        if answer == "fail":
            raise HostError("POST /device/checkins: RemoteProtocolError: cut")
        acknowledged = ids[: len(ids) // 2] if answer == "half" else ids
        with self.lock:
            new = set(acknowledged) - self.stored
            self.stored |= new
        return CheckInAck(
            acknowledged=acknowledged, inserted=len(new), duplicates=len(acknowledged) - len(new)
        )

    def send_report(self, report: DeviceReport) -> None:
        with self.lock:
            self.reports.append(report)


def syncer_for(store: Store, host: StubHost, **options: Any) -> Syncer:
    syncer = Syncer(store, host, on_config=lambda _config: None, **options)  # type: ignore[arg-type]
    syncer.refresh_config = lambda: None  # type: ignore[method-assign]  # no config to fetch
    return syncer


def filled(tmp_path: Path, count: int) -> tuple[Store, list[CheckIn]]:
    store = Store(tmp_path / "s.db")
    items = [checkin() for _ in range(count)]
    for item in items:
        store.record(item)
    return store, items


def test_a_backlog_goes_up_in_windows_of_batches_oldest_first(tmp_path: Path) -> None:
    store, items = filled(tmp_path, 95)
    host = StubHost()
    syncer = syncer_for(store, host, batch_size=10, window=3, batches_per_round=4)
    assert syncer.sync_once() == 40  # one round: four batches
    assert syncer.sync_once() == 40
    assert syncer.sync_once() == 15
    assert syncer.sync_once() == 0
    ids = [item.id for item in items]
    assert sorted(host.batches) == [ids[start : start + 10] for start in range(0, 95, 10)]
    assert store.counts() == (95, 95)


def test_what_the_host_did_not_acknowledge_is_sent_again(tmp_path: Path) -> None:
    store, items = filled(tmp_path, 30)
    host = StubHost({items[10].id: "fail", items[20].id: "half"})
    syncer = syncer_for(store, host, batch_size=10, window=3)
    with pytest.raises(HostError, match="cut"):
        syncer.sync_once()
    # The batches in flight beside the failed one were acknowledged (the last one half).
    assert store.counts() == (30, 15)
    assert syncer.sync_once() == 15
    assert host.batches[3:] == [
        [item.id for item in items[10:20]],
        [item.id for item in items[25:30]],
    ]
    assert host.stored == {item.id for item in items}
    assert store.counts() == (30, 30)


class FlakyStore(Store):
    """A store whose disk fails the first `failures` times the syncer marks check-ins acked."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    def mark_acked(self, ids: Sequence[UUID]) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("marking check-ins acknowledged: disk I/O error")
        super().mark_acked(ids)


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_sync_thread_rides_out_host_and_store_failures_and_reports_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="device.sync")
    store = FlakyStore(tmp_path / "s.db", failures=1)
    items = [checkin() for _ in range(25)]
    for item in items:
        store.record(item)
    host = StubHost({items[0].id: "fail", items[10].id: "fail"})

    def report() -> DeviceReport:
        components = {"sync": syncer.component(), "store": store.component()}
        return DeviceReport(
            sent_at=datetime.now(UTC),
            clock_trusted=True,
            pending_checkins=0,
            denylist=None,
            components=components,
        )

    syncer = syncer_for(
        store,
        host,
        batch_size=10,
        window=1,
        idle_seconds=0.01,
        backoff=FAST_BACKOFF,
        report=report,
        report_every_seconds=0.0,
    )
    syncer.start()
    try:
        wait_for(lambda: store.counts() == (25, 25))
        wait_for(lambda: syncer.component().state is ComponentHealth.OK)
    finally:
        syncer.stop()
    sync = [report.components["sync"] for report in host.reports]
    failing = [state for state in sync if state.state is ComponentHealth.FAILING]
    assert failing and "cut" in (failing[0].detail or "")
    assert any("disk I/O error" in (state.detail or "") for state in failing)
    assert len({state.since for state in failing}) == 1  # one spell of failure
    assert sync[-1].state is ComponentHealth.OK
    assert syncer.failures == 0 and syncer.refused is None
    assert "sync failed (3 in a row)" in caplog.text
    assert "sync works again after 3 failures" in caplog.text


def test_the_sync_thread_purges_acknowledged_check_ins_after_retention(tmp_path: Path) -> None:
    store, _ = filled(tmp_path, 5)
    syncer = syncer_for(
        store, StubHost(), idle_seconds=0.01, retention_days=0, purge_every_seconds=0.01
    )
    damaged = tmp_path / "s.db.corrupt-20260101T000000.000000Z"
    damaged.write_bytes(b"a database moved aside as damaged, long ago")
    syncer.start()
    try:
        wait_for(lambda: store.counts() == (0, 0))
        wait_for(lambda: not damaged.exists())
        store.record(checkin())  # not acknowledged yet: it waits for the host
        wait_for(lambda: store.counts() == (0, 0))
    finally:
        syncer.stop()


class SwitchedHost(StubHost):
    """A host that cuts every connection while `down` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = threading.Event()

    def send_checkins(self, batch: CheckInBatch) -> CheckInAck:
        if self.down.is_set():
            raise HostError("POST /device/checkins: ConnectError: refused")
        return super().send_checkins(batch)


def test_online_says_whether_the_host_answered_the_last_round(tmp_path: Path) -> None:
    store, _ = filled(tmp_path, 1)
    host = SwitchedHost()
    syncer = syncer_for(store, host, idle_seconds=0.01, backoff=FAST_BACKOFF)
    assert not syncer.online  # before any answer
    syncer.start()
    try:
        wait_for(lambda: syncer.online)
        host.down.set()
        store.record(checkin())
        syncer.nudge()
        wait_for(lambda: not syncer.online)
        host.down.clear()
        wait_for(lambda: syncer.online)
    finally:
        syncer.stop()
    assert store.counts() == (2, 2)


class RevokingHost(StubHost):
    """A host that has revoked this device: every call is refused with 403 device-revoked."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def send_checkins(self, batch: CheckInBatch) -> CheckInAck:
        self.calls += 1
        raise HostError("host answered 403 device-revoked", status=403, code="device-revoked")


def test_a_revocation_is_said_once_and_the_sync_thread_asks_nothing_more(tmp_path: Path) -> None:
    store, _ = filled(tmp_path, 3)
    host = RevokingHost()
    revocations: list[str] = []
    syncer = syncer_for(store, host, on_revoked=revocations.append, idle_seconds=0.01)
    syncer.start()
    deadline = time.monotonic() + 10
    while not syncer.revoked and time.monotonic() < deadline:
        time.sleep(0.01)
    syncer.nudge()
    time.sleep(0.2)  # time enough for many more rounds, had the thread gone on
    syncer.stop()
    assert revocations == ["host answered 403 device-revoked"]
    assert host.calls == 1
    assert syncer.component().state is ComponentHealth.FAILING
    assert store.counts() == (3, 0), "nothing is deleted: an operator may still want them"
