"""The device's deny list: kept in the store, checked again at load, refreshed and reported."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from device.client import HostError
from device.clock import DeviceClock
from device.denylist import DenyListHolder
from device.report import StatusReporter
from device.store import Store
from device.sync import Syncer
from shared.denylist import DenyList, HashKind, person_hash
from shared.envelope import CredentialError
from shared.keys import SigningKey, TrustStore
from shared.messages import (
    CheckInAck,
    CheckInBatch,
    ComponentHealth,
    DenyListUnchanged,
    DeviceReport,
)
from tests.device.test_store import checkin

NOW = datetime(2022, 5, 1, 9, 0, tzinfo=UTC)
WAIT_SECONDS = 5.0


def signed(key: SigningKey, version: int, *people: str) -> bytes:
    digests = [(HashKind.PERSON, person_hash(person)) for person in people]
    return DenyList.of(version, NOW - timedelta(minutes=version), digests).sign(key)


class StubHost:
    """The host as the syncer sees it: deny-list answers given in turn, reports and acks kept."""

    def __init__(self, *answers: bytes | DenyListUnchanged | HostError) -> None:
        self.answers = list(answers)
        self.asked: list[int | None] = []
        self.reports: list[DeviceReport] = []
        self.acked = 0

    def denylist(self, have: int | None) -> bytes | DenyListUnchanged:
        self.asked.append(have)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, HostError):
            raise answer
        return answer

    def send_report(self, report: DeviceReport) -> None:
        self.reports.append(report)

    def send_checkins(self, batch: CheckInBatch) -> CheckInAck:
        self.acked += len(batch.checkins)
        ids = [item.id for item in batch.checkins]
        return CheckInAck(acknowledged=ids, inserted=len(ids), duplicates=0)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "device.db")


@pytest.fixture
def holder(store: Store, trust: TrustStore) -> DenyListHolder:
    return DenyListHolder(store, lambda: NOW, lambda: trust)


def test_a_refreshed_list_is_kept_and_restored_after_a_restart(
    store: Store, holder: DenyListHolder, policy_key: SigningKey, trust: TrustStore
):
    host = StubHost(signed(policy_key, 2, "p_listed"))
    holder.refresh(host)  # type: ignore[arg-type]
    current = holder.current()
    assert current is not None and current.contains_person("p_listed")
    assert host.asked == [None]  # a device holding nothing gets the whole list
    later = NOW + timedelta(hours=5)
    restarted = DenyListHolder(Store(store.path), lambda: later, lambda: trust)
    assert restarted.current() is None
    restarted.restore()
    assert restarted.current() == current
    assert restarted.component().state is ComponentHealth.OK
    status = restarted.status()
    assert status is not None
    assert (status.version, status.entries) == (2, 1)
    assert status.refreshed_at == restarted.refreshed_at() == NOW  # as kept, not the restart


def test_a_tampered_stored_list_is_refused_at_load(
    store: Store, holder: DenyListHolder, policy_key: SigningKey, trust: TrustStore
):
    holder.refresh(StubHost(signed(policy_key, 2, "p_listed")))  # type: ignore[arg-type]
    [document, _refreshed_at_ms] = store.load_denylist() or (b"", 0)
    document = bytearray(document)
    document[document.index(person_hash("p_listed"))] ^= 0x80
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE denylist SET document = ?", (bytes(document),))
    restarted = DenyListHolder(Store(store.path), lambda: NOW, lambda: trust)
    restarted.restore()
    assert restarted.current() is None
    state = restarted.component()
    assert state.state is ComponentHealth.FAILING
    assert state.detail is not None and state.detail.startswith("stored list refused: signature")


def test_unchanged_answers_and_newer_versions(
    store: Store, policy_key: SigningKey, trust: TrustStore
):
    now = [NOW]
    holder = DenyListHolder(store, lambda: now[0], lambda: trust)
    host = StubHost(
        signed(policy_key, 2, "p_a"),
        DenyListUnchanged(version=2),
        signed(policy_key, 3, "p_a", "p_b"),
    )

    def refresh_at(minutes: int) -> tuple[int, datetime | None]:
        now[0] = NOW + timedelta(minutes=minutes)
        holder.refresh(host)  # type: ignore[arg-type]
        status = holder.status()
        assert status is not None
        return status.version, status.refreshed_at

    assert refresh_at(0) == (2, NOW)
    assert refresh_at(10) == (2, NOW + timedelta(minutes=10))  # confirmed current: fresher
    restarted = DenyListHolder(Store(store.path), lambda: NOW, lambda: trust)
    restarted.restore()
    assert restarted.refreshed_at() == NOW + timedelta(minutes=10)  # kept across restarts
    assert refresh_at(20) == (3, NOW + timedelta(minutes=20))
    assert host.asked == [None, 2, 2]
    current = holder.current()
    assert current is not None and current.contains_person("p_b")
    assert holder.component().since == NOW  # ok all along


def test_an_older_or_foreign_list_is_refused_and_the_held_one_kept(
    holder: DenyListHolder, policy_key: SigningKey, trust: TrustStore
):
    holder.refresh(StubHost(signed(policy_key, 5, "p_a")))  # type: ignore[arg-type]
    for answer in (signed(policy_key, 4), signed(policy_key, 5), signed(SigningKey.generate(), 9)):
        with pytest.raises(CredentialError):
            holder.refresh(StubHost(answer))  # type: ignore[arg-type]
    current = holder.current()
    assert current is not None and current.version == 5 and current.contains_person("p_a")


def test_the_report_carries_the_backlog_and_the_list_state(
    store: Store, holder: DenyListHolder, tmp_path: Path
):
    for _ in range(3):
        store.record(checkin())
    store.mark_acked([store.pending(1)[0].id])
    reporter = StatusReporter(store, DeviceClock(ntp_flag=tmp_path / "no-ntp"), holder)
    report = reporter.report()
    assert report.pending_checkins == 2
    assert report.clock_trusted is False
    assert report.denylist is None
    assert report.components["denylist"].state is ComponentHealth.ABSENT


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_syncer_backs_off_a_failing_refresh_without_holding_up_checkins(
    store: Store, holder: DenyListHolder, policy_key: SigningKey
):
    host = StubHost(HostError("GET /device/denylist: ConnectError"), signed(policy_key, 1, "p_a"))
    store.record(checkin())
    syncer = Syncer(
        store,
        host,  # type: ignore[arg-type]
        on_config=lambda _config: None,
        denylist=holder,
        report=StatusReporter(store, DeviceClock(), holder).report,
        idle_seconds=0.01,
    )
    syncer.refresh_config = lambda: None  # type: ignore[method-assign]  # no config to fetch
    syncer.start()
    try:
        wait_for(lambda: holder.current() is not None and len(host.reports) >= 2)
    finally:
        syncer.stop()
    assert host.acked == 1  # the check-in went up while the deny list was failing
    first, *_, last = host.reports
    assert first.components["denylist"].state is ComponentHealth.FAILING
    assert "ConnectError" in (first.components["denylist"].detail or "")
    assert last.denylist is not None and last.denylist.version == 1
    assert last.components["denylist"].state is ComponentHealth.OK
    assert host.asked == [None, None]  # tried again after a backoff, and only once more
