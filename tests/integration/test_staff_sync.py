"""A staff decision made while the host is down reaches it later, with its check-in, and counts."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from device.agent import DATABASE_FILE, Agent, RunOptions
from device.client import HostError
from device.identity import load_enrollment
from device.pins import StaffPins
from device.store import Store
from sentinel.demo import Admin, HostProcess, enroll
from shared.idnumber import id_check_character
from shared.messages import StaffAction, StaffReason
from shared.policy import Outcome
from shared.sealed import CardIdentity, DocumentType

pytestmark = pytest.mark.integration
PIN = "482916"
STRANGER = CardIdentity.of(
    DocumentType.CN_ID, "CHN", "11010119850101001" + id_check_character("11010119850101001")
)


def test_a_decision_made_offline_is_synced_after_its_check_in_and_counted(
    host: HostProcess, admin: Admin, tmp_path: Path
) -> None:
    venue = admin.venue("市图书馆 City Library", "2 Book Street", "public_place")
    kiosk = enroll(host.url, admin, venue, tmp_path, "staff")
    agent = Agent(kiosk.state, decoder=None, options=RunOptions())  # type: ignore[arg-type]
    try:
        StaffPins(agent.store).add("S01", PIN)
        agent.syncer.refresh_config()  # the host's sealing key: ID cards are looked up online
        referred = agent.pipeline.present_id(STRANGER, "sam")
        assert referred.decision.outcome is Outcome.REFER  # the host knows no such person
        assert referred.decision.reasons[0].startswith("id-card-unknown")
        assert referred.checkin_id is not None

        host.stop()
        settled = agent.desk.decide(
            referred.checkin_id, StaffAction.LET_THROUGH, StaffReason.IDENTITY_CHECKED, PIN
        )
        assert settled.decision.outcome is Outcome.PASS
        with pytest.raises(HostError):
            agent.syncer.sync_once()
        assert Store(kiosk.state / DATABASE_FILE).staff_counts() == (1, 0)  # kept on disk

        host.start()
        assert agent.syncer.sync_staff_decisions() == 0  # its check-in first
        assert agent.syncer.sync_once() == 1
        assert agent.syncer.sync_staff_decisions() == 1
        assert agent.drain(10)
    finally:
        agent.client.close()

    with closing(sqlite3.connect(host.db)) as db:
        stored = db.execute(
            "SELECT d.staff_id, d.action, d.reason, c.outcome, c.device_id"
            " FROM staff_decisions d JOIN checkins c ON d.checkin_id = ?"
            " AND c.id = ?",
            (referred.checkin_id, bytes.fromhex(referred.checkin_id.replace("-", ""))),
        ).fetchall()
    device_id = load_enrollment(kiosk.state).device_id
    assert stored == [("S01", "let-through", "identity-checked", "refer", device_id)]
    [hour] = admin.counts(venue.id)
    assert (hour.total, hour.referred, hour.staff_let_through, hour.staff_refused) == (1, 1, 1, 0)
