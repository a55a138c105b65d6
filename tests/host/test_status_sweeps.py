"""Status lookups bound to real presentations: a sweep of ID numbers is slowed and alerted."""

from __future__ import annotations

from fastapi.testclient import TestClient

from host.ratelimit import Limits
from shared.idnumber import id_check_character
from tests.host.conftest import ADMIN_TOKEN, Admin, Clock, Device
from tests.host.test_identities import sealed_for

UNKNOWN = Limits().unknown_status
QUEUE_SECONDS = 3  # one person every 3 s: a busy entrance, and never a burst


def birth_date_numbers(count: int, birth_date: str = "19900307") -> list[str]:
    """Valid resident ID numbers of one district and birth date, as a sweep asks them."""
    first17 = [f"110101{birth_date}{serial:03d}" for serial in range(count)]
    return [number + id_check_character(number) for number in first17]


def ask(device: Device, clock: Clock, id_number: str):
    clock.advance(QUEUE_SECONDS)
    body = {"sealed_identity": sealed_for(device, id_number)}
    return device.request("POST", "/device/status", json_body=body, time_ms=clock.ms())


def alerts(client: TestClient) -> list[dict]:
    response = client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_sweep_of_unknown_numbers_is_refused_and_alerted_once_a_day(
    client: TestClient, admin: Admin, device: Device, clock: Clock
):
    numbers = birth_date_numbers(3 * UNKNOWN.hits)
    registered = admin.import_person(id_number=numbers[-1])
    for number in numbers[: UNKNOWN.hits]:
        answer = ask(device, clock, number)
        assert answer.status_code == 200, answer.text
        assert answer.json()["known"] is False
    refused = ask(device, clock, numbers[-1])
    assert (refused.status_code, refused.json()["error"]) == (429, "rate-limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= UNKNOWN.window_s
    (alert,) = alerts(client)
    assert alert["kind"] == "status-sweep"
    assert (alert["device_id"], alert["venue_id"]) == (device.device_id, device.venue_id)
    assert alert["count"] == UNKNOWN.hits
    # The next window: the sweep may go on at the same pace, and is not alerted again today.
    clock.advance(UNKNOWN.window_s)
    for number in numbers[UNKNOWN.hits : 2 * UNKNOWN.hits]:
        assert ask(device, clock, number).status_code == 200
    assert ask(device, clock, numbers[-1]).status_code == 429
    assert len(alerts(client)) == 1
    clock.advance(UNKNOWN.window_s)
    found = ask(device, clock, numbers[-1]).json()
    assert found == {
        "person_ref": registered["person_ref"],
        "known": True,
        "colour": registered["colour"],
        "test": registered["test"],
        "updated_at": None,
    }


def test_known_people_never_count_towards_a_sweep(
    client: TestClient, admin: Admin, device: Device, clock: Clock
):
    number = birth_date_numbers(1)[0]
    admin.import_person(id_number=number)
    for _ in range(2 * UNKNOWN.hits):
        answer = ask(device, clock, number)
        assert answer.status_code == 200, answer.text
        assert answer.json()["known"] is True
    assert alerts(client) == []


def test_a_sweep_alert_does_not_silence_the_venues_spike_alerts(
    client: TestClient, device: Device, clock: Clock
):
    for number in birth_date_numbers(UNKNOWN.hits):
        assert ask(device, clock, number).status_code == 200
    storage = client.app.state.context.storage
    assert storage.alerted_periods(0) == set()
