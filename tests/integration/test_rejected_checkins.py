"""Check-ins the host refuses for good, with the device's real store against a real host.

A check-in scanned at a time no clock could give (before 2020, or over a day ahead of the
host's clock) is acknowledged as rejected: the device drops it from its queue and logs why,
and the staff decisions on it are dropped too, so they hold back no decision after them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from device.agent import DATABASE_FILE
from device.client import HostClient, HostError
from device.clock import DeviceClock
from device.identity import load_enrollment, load_or_create_key
from device.store import Store
from device.sync import Syncer
from sentinel.demo import Admin, HostProcess, enroll
from shared.messages import CheckIn, StaffAction, StaffDecision, StaffReason
from shared.policy import Outcome
from shared.uuid7 import uuid7
from shared.verification import CredentialKind

pytestmark = pytest.mark.integration
PERSON_REF = "p_0123456789abcdef"
LONG_AGO = datetime(2019, 6, 1, 9, 0, tzinfo=UTC)  # a Pi's clock before its first sync


class Kiosk:
    """An enrolled device's store and syncer, driven a round at a time by the test."""

    def __init__(self, store: Store, syncer: Syncer, venue_id: str, device_id: str) -> None:
        self.store = store
        self.syncer = syncer
        self.venue_id = venue_id
        self.device_id = device_id

    def checkin(self, scanned_at: datetime, outcome: Outcome = Outcome.REFER) -> CheckIn:
        checkin = CheckIn(
            id=uuid7(),
            venue_id=self.venue_id,
            scanned_at=scanned_at,
            person_ref=PERSON_REF,
            kind=CredentialKind.HEALTH,
            outcome=outcome,
            reasons=["test sampled over 48 h ago"],
            clock_trusted=False,
        )
        self.store.record(checkin)
        return checkin

    def decide(self, checkin: CheckIn, action: StaffAction = StaffAction.LET_THROUGH) -> None:
        self.store.record_staff_decision(
            StaffDecision(
                id=uuid7(),
                checkin_id=checkin.id,
                venue_id=self.venue_id,
                staff_id="s1",
                action=action,
                reason=StaffReason.IDENTITY_CHECKED,
                decided_at=datetime.now(UTC),
                clock_trusted=True,
            )
        )


@pytest.fixture
def kiosk(host: HostProcess, admin: Admin, tmp_path: Path) -> Iterator[Kiosk]:
    venue = admin.venue("Station", "1 Rail Road", "public_place")
    state = enroll(host.url, admin, venue, tmp_path, "gate").state
    enrollment = load_enrollment(state)
    client = HostClient(
        enrollment.host_url, enrollment.device_id, load_or_create_key(state), DeviceClock()
    )
    store = Store(state / DATABASE_FILE)
    syncer = Syncer(store, client, on_config=lambda _config: None, batch_size=50)
    yield Kiosk(store, syncer, venue.id, enrollment.device_id)
    syncer.stop()
    store.close()


def host_counts(admin: Admin, venue_id: str) -> tuple[int, int, int]:
    """(check-ins, let through, refused by staff) the host holds for the venue."""
    counts = admin.counts(venue_id)
    return (
        sum(count.total for count in counts),
        sum(count.staff_let_through for count in counts),
        sum(count.staff_refused for count in counts),
    )


def test_rejected_checkins_leave_the_queue_and_their_decisions_hold_back_none(
    kiosk: Kiosk, admin: Admin, caplog: pytest.LogCaptureFixture
):
    now = datetime.now(UTC)
    referral = kiosk.checkin(now)
    kiosk.checkin(now, Outcome.PASS)  # stored: nothing for staff to decide
    too_early = kiosk.checkin(LONG_AGO)
    too_late = kiosk.checkin(now + timedelta(days=3))
    # Decided before the sync: the early referral's decision sits between two good ones.
    kiosk.decide(referral)
    kiosk.decide(too_early, StaffAction.REFUSE)

    with caplog.at_level(logging.DEBUG, logger="device.sync"):
        assert kiosk.syncer.sync_once() == 4
        assert kiosk.store.pending(100) == []
        assert kiosk.store.counts() == (4, 4)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(
            "refused 2 check-ins for good" in line and "scan-time-implausible" in line
            for line in warnings
        ), warnings
        # Decided after the sync: staff settle a referral the host has already refused.
        kiosk.decide(too_late)
        later = kiosk.checkin(datetime.now(UTC))
        assert kiosk.syncer.sync_once() == 1
        kiosk.decide(later, StaffAction.REFUSE)

        assert kiosk.syncer.sync_staff_decisions() == 2
    assert kiosk.store.staff_counts() == (4, 4)
    assert kiosk.store.pending_staff_decisions(100) == []
    assert host_counts(admin, kiosk.venue_id) == (3, 1, 1)
    dropped = [
        r.getMessage() for r in caplog.records if "dropped: the host refuses" in r.getMessage()
    ]
    assert len(dropped) == 2 and all("unknown-checkin" in line for line in dropped)
    for checkin in (too_early, too_late):
        assert any(str(checkin.id) in line for line in dropped)
    assert all(PERSON_REF not in record.getMessage() for record in caplog.records)

    # Nothing is left to hold the queue: the next decision goes at once.
    kiosk.decide(kiosk.checkin(datetime.now(UTC)))
    assert kiosk.syncer.sync_once() == 1
    assert kiosk.syncer.sync_staff_decisions() == 1
    assert host_counts(admin, kiosk.venue_id) == (4, 2, 1)


def test_a_decision_refused_for_another_reason_is_kept(kiosk: Kiosk, admin: Admin):
    kiosk.decide(kiosk.checkin(datetime.now(UTC)))
    assert kiosk.syncer.sync_once() == 1
    admin.http.post(f"/admin/devices/{kiosk.device_id}/revoke").raise_for_status()
    with pytest.raises(HostError) as refused:
        kiosk.syncer.sync_staff_decisions()
    assert refused.value.status == 403
    assert kiosk.store.staff_counts() == (1, 0), "kept: only a refusal for good drops one"
