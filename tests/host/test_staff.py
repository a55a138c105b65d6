"""Staff decisions on the host, on both backends: stored once, linked, counted; others refused."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from host.app import Retention, purge_expired
from host.core.config import Settings
from shared.uuid7 import uuid7
from tests.host.conftest import START, Admin, Clock, Device, db_rows


def send(device: Device, clock: Clock, path: str, key: str, items: list[dict]):
    return device.request("POST", path, json_body={key: items}, time_ms=clock.ms())


def checkins(device: Device, clock: Clock, items: list[dict]) -> None:
    response = send(device, clock, "/device/checkins", "checkins", items)
    assert response.status_code == 200, response.text


def decisions(device: Device, clock: Clock, items: list[dict]):
    return send(device, clock, "/device/staff-decisions", "decisions", items)


def decision(device: Device, checkin: dict, **fields) -> dict:
    """A staff decision as the device records it; `fields` override the defaults."""
    return {
        "id": str(uuid7()),
        "checkin_id": checkin["id"],
        "venue_id": device.venue_id,
        "staff_id": "S01",
        "action": "let-through",
        "reason": "emergency",
        "decided_at": (START + timedelta(minutes=2)).isoformat(),
        "clock_trusted": True,
    } | fields


def referral(device: Device, **fields) -> dict:
    return device.checkin(outcome="refer", reasons=["id-card-offline: no host"], **fields)


def counts(admin: Admin, venue_id: str) -> list[tuple]:
    """(hour, referred, staff let through, staff refused) of the venue's hours around START."""
    since, until = START - timedelta(hours=1), START + timedelta(hours=3)
    got = admin.ok(
        "GET",
        f"/venues/{venue_id}/counts",
        params={"since": since.isoformat(), "until": until.isoformat()},
    )
    return [(c["hour"], c["referred"], c["staff_let_through"], c["staff_refused"]) for c in got]


def test_a_decision_is_stored_linked_to_its_referral_and_counted_once(
    device: Device, clock: Clock, admin: Admin, settings: Settings
) -> None:
    first, second = referral(device), referral(device)
    later = referral(device, scanned_at=(START + timedelta(hours=1)).isoformat())
    checkins(device, clock, [first, second, later])
    batch = [
        decision(device, first),
        decision(device, second, action="refuse", reason="identity-checked", staff_id="S02"),
        decision(device, later, reason="other"),
    ]
    sent = decisions(device, clock, batch)
    assert sent.status_code == 200, sent.text
    assert sent.json() == {
        "acknowledged": [item["id"] for item in batch],
        "inserted": 3,
        "duplicates": 0,
    }
    again = decisions(device, clock, batch)  # re-sent, as after a lost answer
    assert again.json()["inserted"] == 0 and again.json()["duplicates"] == 3
    rows = db_rows(
        settings,
        "SELECT checkin_id, device_id, venue_id, staff_id, action, reason, decided_at"
        " FROM staff_decisions",
    )
    at = int((START + timedelta(minutes=2)).timestamp() * 1000)
    mine = (device.device_id, device.venue_id)
    assert sorted(rows) == sorted(
        [
            (first["id"], *mine, "S01", "let-through", "emergency", at),
            (second["id"], *mine, "S02", "refuse", "identity-checked", at),
            (later["id"], *mine, "S01", "let-through", "other", at),
        ]
    )
    assert counts(admin, device.venue_id) == [
        ("2022-05-01T08:00:00Z", 2, 1, 1),  # counted in the hour of the referral
        ("2022-05-01T09:00:00Z", 1, 1, 0),
    ]


def test_a_check_in_is_settled_once(device: Device, clock: Clock, admin: Admin) -> None:
    checkin = referral(device)
    checkins(device, clock, [checkin])
    assert decisions(device, clock, [decision(device, checkin)]).json()["inserted"] == 1
    other = decision(device, checkin, action="refuse")  # a second decision on it: skipped
    assert decisions(device, clock, [other]).json() == {
        "acknowledged": [other["id"]],
        "inserted": 0,
        "duplicates": 1,
    }
    assert counts(admin, device.venue_id) == [("2022-05-01T08:00:00Z", 1, 1, 0)]


def test_a_decision_on_anything_but_this_devices_referral_is_refused_whole(
    client: TestClient,
    device: Device,
    clock: Clock,
    admin: Admin,
    venue: dict,
    settings: Settings,
) -> None:
    mine, passed = referral(device), device.checkin()
    checkins(device, clock, [mine, passed])
    neighbour = Device.enroll(client, admin.token(venue["id"]), name="gate-2")
    theirs = referral(neighbour)
    checkins(neighbour, clock, [theirs])
    elsewhere = Device.enroll(client, admin.token(admin.venue("Elsewhere")["id"]), name="far")
    far = referral(elsewhere)
    checkins(elsewhere, clock, [far])

    cases = [
        (decision(device, theirs), "unknown-checkin"),  # same venue, another device's
        (decision(device, far), "unknown-checkin"),  # another venue's check-in
        (decision(device, passed), "not-a-referral"),
        (decision(device, {"id": str(uuid7())}), "unknown-checkin"),  # never sent
        (decision(device, mine, venue_id=elsewhere.venue_id), "venue-mismatch"),
    ]
    for refused, code in cases:
        answer = decisions(device, clock, [decision(device, mine), refused])
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == code
    assert db_rows(settings, "SELECT COUNT(*) FROM staff_decisions") == [(0,)]  # not even mine
    # Two referrals at the venue (mine, the neighbour's), neither settled.
    assert counts(admin, device.venue_id) == [("2022-05-01T08:00:00Z", 2, 0, 0)]


def test_flows_carry_the_staff_decisions(device: Device, clock: Clock, admin: Admin) -> None:
    first, second = referral(device), referral(device)
    checkins(device, clock, [first, second])
    decisions(device, clock, [decision(device, first), decision(device, second, action="refuse")])
    got = admin.client.get(
        "/api/v1/flows",
        params={
            "venue": device.venue_id,
            "since": START.isoformat(),
            "until": (START + timedelta(hours=1)).isoformat(),
        },
        headers=admin.headers,
    ).json()["counts"]
    assert [(c["referred"], c["staff_let_through"], c["staff_refused"]) for c in got] == [(2, 1, 1)]


def test_a_vehicles_check_ins_keep_their_plate_and_group(
    device: Device, clock: Clock, settings: Settings
) -> None:
    group = str(uuid7())
    occupants = [device.checkin(binding="plate:京A12345", group_id=group) for _ in range(3)]
    checkins(device, clock, [*occupants, device.checkin()])
    rows = db_rows(settings, "SELECT binding, group_id FROM checkins ORDER BY id")
    assert rows == [("plate:京A12345", group)] * 3 + [(None, None)]


def test_decisions_go_with_their_check_ins_after_the_retention_period(
    device: Device, clock: Clock, admin: Admin, settings: Settings
) -> None:
    checkin = referral(device)
    checkins(device, clock, [checkin])
    decisions(device, clock, [decision(device, checkin)])
    context = admin.client.app.state.context  # type: ignore[attr-defined]
    retention = Retention(checkin_days=7)
    clock.advance(6 * 24 * 3600)
    purge_expired(context, retention)
    assert db_rows(settings, "SELECT COUNT(*) FROM staff_decisions") == [(1,)]
    clock.advance(2 * 24 * 3600)
    purge_expired(context, retention)
    assert db_rows(settings, "SELECT COUNT(*) FROM staff_decisions") == [(0,)]
    assert db_rows(settings, "SELECT COUNT(*) FROM checkins") == [(0,)]
    assert counts(admin, device.venue_id) == [("2022-05-01T08:00:00Z", 1, 1, 0)]  # counts stay
