"""The deny list between a real host process and the real device client, syncer and agent."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from device.agent import DATABASE_FILE, Agent, RunOptions
from device.client import HostClient
from device.clock import DeviceClock
from device.denylist import DenyListHolder, stored_trust
from device.identity import load_enrollment, load_or_create_key
from device.report import StatusReporter
from device.store import Store
from device.sync import Syncer
from sentinel.demo import Admin, HostProcess, enroll
from shared.denylist import HashKind
from shared.messages import ComponentHealth, DenyListAdded, DeviceInfo
from shared.sealed import CardIdentity, DocumentType

pytestmark = pytest.mark.integration
LISTED_ID = "110101199003071233"
WAIT_SECONDS = 15.0


class NoCodes:
    """A decoder that sees nothing: these tests scan no frames."""

    def decode(self, image: np.ndarray) -> list[str]:
        return []


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def deny(admin: Admin, entry: dict) -> DenyListAdded:
    response = admin.http.post(
        "/admin/denylist", json={"reason": "forged code", "entries": [entry]}
    )
    assert response.is_success, response.text
    return DenyListAdded.model_validate_json(response.content)


def device_info(admin: Admin) -> DeviceInfo:
    [info] = admin.http.get("/admin/devices").json()
    return DeviceInfo.model_validate(info)


def reported_version(admin: Admin) -> int | None:
    report = device_info(admin).report
    return None if report is None or report.denylist is None else report.denylist.version


def held_version(holder: DenyListHolder) -> int | None:
    held = holder.current()
    return None if held is None else held.version


def test_a_listed_person_stays_listed_offline_and_the_host_sees_the_lists_age(
    host: HostProcess, admin: Admin, tmp_path: Path
) -> None:
    venue = admin.venue("Station", "1 Rail Road", "public_place")
    kiosk = enroll(host.url, admin, venue, tmp_path, "gate")
    listed = admin.person(LISTED_ID, "green", 5)
    other = admin.person("11010119851212102X", "green", 5)
    deny(admin, {"id_number": LISTED_ID})

    enrollment = load_enrollment(kiosk.state)
    store = Store(kiosk.state / DATABASE_FILE)
    clock = DeviceClock()
    client = HostClient(
        enrollment.host_url, enrollment.device_id, load_or_create_key(kiosk.state), clock
    )
    holder = DenyListHolder(store, clock.now, trust=lambda: stored_trust(store))
    syncer = Syncer(
        store,
        client,
        on_config=lambda _config: None,
        denylist=holder,
        report=StatusReporter(store, clock, holder).report,
        idle_seconds=0.05,
        denylist_every_seconds=0.2,
        report_every_seconds=0.2,
    )
    syncer.start()
    try:
        wait_for(lambda: held_version(holder) == 1, "the first deny list")
        first = holder.current()
        assert first is not None and first.contains_person(listed) is HashKind.PERSON
        assert first.contains_person(other) is None
        card = CardIdentity.of(DocumentType.CN_ID, "CHN", LISTED_ID)  # refused offline too
        assert first.contains_identity(card) is HashKind.IDENTITY

        changed = deny(admin, {"person_ref": other})  # while the device runs
        wait_for(lambda: held_version(holder) == changed.version == 2, "the refreshed list")
        wait_for(lambda: reported_version(admin) == changed.version, "the report of it")
    finally:
        syncer.stop()
        client.close()

    info = device_info(admin)
    assert info.report is not None and info.report.denylist is not None
    assert info.report.denylist.issued_at == changed.changed_at  # its age: sent_at - issued_at
    assert info.report.denylist.entries == 3  # the listed card, its holder, and `other`
    assert info.report.pending_checkins == 0
    assert info.report.components["denylist"].state is ComponentHealth.OK

    host.stop()
    agent = Agent(kiosk.state, NoCodes(), options=RunOptions())  # a restart, with no host
    try:
        offline = agent.denylist.current()
        assert offline is not None and offline.version == changed.version
        assert offline.contains_person(listed) is HashKind.PERSON
        assert offline.contains_person(other) is HashKind.PERSON
        assert offline.contains_person("p_someone_else") is None
    finally:
        agent.client.close()
