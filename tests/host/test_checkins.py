"""Check-in ingest (idempotent, plain or gzipped), hourly counts, status and verify endpoints."""

import gzip
import json
from datetime import timedelta
from uuid import UUID

import httpx
import pytest

from host.core.config import Settings
from shared.auth import HEADER_SERVER_TIME
from shared.messages import API_PREFIX
from tests.host.conftest import ID_NUMBER, START, Admin, Clock, Device, db_rows


def stored_checkins(settings: Settings) -> int:
    return db_rows(settings, "SELECT COUNT(*) FROM checkins")[0][0]


def post(device: Device, clock: Clock, checkins: list[dict]):
    return device.request(
        "POST", "/device/checkins", json_body={"checkins": checkins}, time_ms=clock.ms()
    )


# ---- ingest -------------------------------------------------------------------------------


def test_a_batch_sent_twice_is_stored_once(device: Device, clock: Clock, settings: Settings):
    batch = [device.checkin(person_ref=f"p_{i}") for i in range(50)]
    first = post(device, clock, batch)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "acknowledged": [c["id"] for c in batch],
        "inserted": 50,
        "duplicates": 0,
    }
    again = post(device, clock, batch)
    assert again.json() == {
        "acknowledged": [c["id"] for c in batch],
        "inserted": 0,
        "duplicates": 50,
    }
    assert stored_checkins(settings) == 50

    overlapping = batch[25:] + [device.checkin() for _ in range(10)]
    third = post(device, clock, overlapping).json()
    assert (third["inserted"], third["duplicates"]) == (10, 25)
    assert stored_checkins(settings) == 60


def test_an_id_repeated_in_one_batch_is_acknowledged_once(device: Device, clock: Clock):
    checkin = device.checkin()
    ack = post(device, clock, [checkin, checkin]).json()
    assert ack == {"acknowledged": [checkin["id"]], "inserted": 1, "duplicates": 1}


def test_check_ins_are_stored_as_sent(device: Device, clock: Clock, settings: Settings):
    checkin = device.checkin(
        person_ref="p_abc",
        outcome="deny",
        reasons=["fever: 37.9 °C, limit 37.3 °C"],
        temperature_c=37.9,
        clock_trusted=False,
        scanned_at="2022-05-01T16:30:00.250+08:00",
    )
    clock.advance(3)
    post(device, clock, [checkin])
    (row,) = db_rows(
        settings,
        "SELECT id, device_id, venue_id, scanned_at, person_ref, kind, outcome, reasons,"
        " temperature_c, clock_trusted, received_at FROM checkins",
    )
    assert row == (
        UUID(checkin["id"]).bytes,
        device.device_id,
        device.venue_id,
        int(START.timestamp() * 1000) + 250,
        "p_abc",
        "health",
        "deny",
        '["fever: 37.9 °C, limit 37.3 °C"]',
        37.9,
        0,
        clock.ms(),
    )


FEVER_READINGS = {
    "outcome": "fever",
    "threshold": 37.3,
    "offset": 0.3,
    "raw": [37.4, 37.6],
    "implausible_raw": [24.1],
}


def test_the_thermometer_readings_are_stored_with_the_check_in(
    device: Device, clock: Clock, settings: Settings
):
    measured = device.checkin(outcome="deny", temperature_c=37.9, thermometer=FEVER_READINGS)
    unmeasured = device.checkin(temperature_c=None)
    assert post(device, clock, [measured, unmeasured]).status_code == 200
    rows = dict(db_rows(settings, "SELECT id, thermometer FROM checkins"))
    assert json.loads(rows[UUID(measured["id"]).bytes]) == FEVER_READINGS
    assert rows[UUID(unmeasured["id"]).bytes] is None


@pytest.mark.parametrize(
    "readings",
    [
        FEVER_READINGS | {"raw": [37.6]},  # one reading cannot confirm a fever
        FEVER_READINGS | {"outcome": "no-reading"},  # yet readings are given
        FEVER_READINGS | {"raw": [37.4, 37.6, 37.8]},  # more than the re-measure takes
        FEVER_READINGS | {"implausible_raw": [99999.0]},
        FEVER_READINGS | {"offset": 12.0},
        FEVER_READINGS | {"implausible_raw": [20.0] * 17},
        FEVER_READINGS | {"celsius": 37.9},  # a field the message does not have
    ],
)
def test_thermometer_readings_that_cannot_be_refuse_the_batch(
    device: Device, clock: Clock, settings: Settings, readings: dict
):
    batch = [device.checkin(), device.checkin(thermometer=readings)]
    response = post(device, clock, batch)
    assert (response.status_code, response.json()["error"]) == (422, "invalid-request")
    assert stored_checkins(settings) == 0


def test_a_check_in_for_another_venue_refuses_the_whole_batch(
    admin: Admin, device: Device, clock: Clock, settings: Settings
):
    other = admin.venue("Elsewhere")
    batch = [device.checkin(), device.checkin(venue_id=other["id"])]
    response = post(device, clock, batch)
    assert (response.status_code, response.json()["error"]) == (422, "venue-mismatch")
    assert stored_checkins(settings) == 0


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b'{"checkins": []}', 422, "invalid-request"),
        (b'{"checkins": [{"id": "not-a-uuid"}]}', 422, "invalid-request"),
        (b'{"checkins": ', 400, "bad-json"),
        (b"", 400, "bad-json"),
    ],
)
def test_a_malformed_batch_is_an_error_body(
    device: Device, clock: Clock, body: bytes, status: int, error: str
):
    response = device.request("POST", "/device/checkins", content=body, time_ms=clock.ms())
    assert response.status_code == status
    assert response.json().keys() == {"error", "detail"}
    assert response.json()["error"] == error


def test_a_naive_scan_time_is_refused(device: Device, clock: Clock):
    response = post(device, clock, [device.checkin(scanned_at="2022-05-01T08:30:00")])
    assert (response.status_code, response.json()["error"]) == (422, "invalid-request")
    assert "scanned_at" in response.json()["detail"]


# ---- compressed batches -------------------------------------------------------------------


def post_encoded(
    device: Device,
    clock: Clock,
    body: bytes,
    *,
    encoding: str = "gzip",
    signed_body: bytes | None = None,
) -> httpx.Response:
    """A batch sent with a Content-Encoding; signed over `signed_body` if given, else `body`."""
    target = API_PREFIX + "/device/checkins"
    headers = device.headers(
        "POST", target, body if signed_body is None else signed_body, clock.ms()
    )
    headers |= {"Content-Type": "application/json", "Content-Encoding": encoding}
    return device.client.post(target, content=body, headers=headers)


def batch_json(checkins: list[dict]) -> bytes:
    return json.dumps({"checkins": checkins}).encode()


def test_a_gzipped_batch_is_stored_and_is_the_same_batch_as_a_plain_one(
    device: Device, clock: Clock, settings: Settings
):
    batch = [device.checkin(person_ref=f"p_{i}") for i in range(40)]
    response = post_encoded(device, clock, gzip.compress(batch_json(batch)))
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == 40
    assert int(response.headers[HEADER_SERVER_TIME]) == clock.ms()
    again = post(device, clock, batch)  # plain, as an older device sends it
    assert (again.json()["inserted"], again.json()["duplicates"]) == (0, 40)
    assert stored_checkins(settings) == 40


def test_a_body_inflating_beyond_the_limit_is_refused(
    device: Device, clock: Clock, settings: Settings
):
    limit = settings.max_device_body_bytes
    bomb = gzip.compress(b'{"checkins": [' + b" " * (limit * 4) + b"]}")
    assert len(bomb) < limit // 100
    response = post_encoded(device, clock, bomb)
    assert (response.status_code, response.json()["error"]) == (413, "too-large")
    assert f"inflates to at most {limit} bytes" in response.json()["detail"]
    assert HEADER_SERVER_TIME in response.headers
    assert stored_checkins(settings) == 0


@pytest.mark.parametrize(
    ("body", "encoding", "status", "error"),
    [
        (b"not gzip at all", "gzip", 400, "bad-encoding"),
        (gzip.compress(b'{"checkins": []}')[:-4], "gzip", 400, "bad-encoding"),  # cut short
        (gzip.compress(b'{"checkins": []}') + b"more", "gzip", 400, "bad-encoding"),
        (gzip.compress(b'{"checkins": []}'), "br", 415, "unsupported-encoding"),
        (gzip.compress(b'{"checkins": []}'), "identity", 400, "bad-json"),
    ],
    ids=["not-gzip", "cut-short", "trailing-bytes", "brotli", "gzip-sent-as-plain"],
)
def test_a_body_not_as_its_encoding_says_is_refused(
    device: Device, clock: Clock, body: bytes, encoding: str, status: int, error: str
):
    response = post_encoded(device, clock, body, encoding=encoding)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert HEADER_SERVER_TIME in response.headers


def test_the_signature_covers_the_compressed_body_as_sent(device: Device, clock: Clock):
    plain = batch_json([device.checkin()])
    response = post_encoded(device, clock, gzip.compress(plain), signed_body=plain)
    assert (response.status_code, response.json()["error"]) == (401, "bad-signature")


# ---- hourly counts ------------------------------------------------------------------------


def test_hourly_counts_per_outcome(admin: Admin, device: Device, clock: Clock):
    def at(minutes: int, outcome: str) -> dict:
        return device.checkin(
            scanned_at=(START + timedelta(minutes=minutes)).isoformat(), outcome=outcome
        )

    # START is 08:30 UTC: 08:xx, 09:xx, 11:xx; none at 10:xx.
    batch = [
        at(0, "pass"),
        at(10, "pass"),
        at(29, "deny"),
        at(30, "refer"),
        at(45, "pass"),
        at(150, "refer"),
        at(-600, "pass"),  # the evening before
    ]
    post(device, clock, batch)
    other = Device.enroll(admin.client, admin.token(admin.venue("Elsewhere")["id"]))
    post(other, clock, [other.checkin()])

    venue_id = device.venue_id
    since, until = START - timedelta(minutes=30), START + timedelta(hours=3)
    counts = admin.ok(
        "GET",
        f"/venues/{venue_id}/counts",
        params={"since": since.isoformat(), "until": until.isoformat()},
    )
    assert {c["venue_id"] for c in counts} == {venue_id}
    # hour, total, passed, denied, referred; staff let through, refused
    assert [tuple(c.values())[1:] for c in counts] == [
        ("2022-05-01T08:00:00Z", 3, 2, 1, 0, 0, 0),
        ("2022-05-01T09:00:00Z", 2, 1, 0, 1, 0, 0),
        ("2022-05-01T11:00:00Z", 1, 0, 0, 1, 0, 0),
    ]
    # The default window is the last 24 hours up to now.
    clock.advance(3 * 3600)
    default = admin.ok("GET", f"/venues/{venue_id}/counts")
    assert [c["hour"] for c in default] == [
        "2022-04-30T22:00:00Z",
        "2022-05-01T08:00:00Z",
        "2022-05-01T09:00:00Z",
        "2022-05-01T11:00:00Z",
    ]
    assert admin.ok("GET", "/stats")["checkins"] == 8

    backwards = admin.request(
        "GET",
        f"/venues/{venue_id}/counts",
        params={"since": until.isoformat(), "until": since.isoformat()},
    )
    assert (backwards.status_code, backwards.json()["error"]) == (422, "bad-window")
    naive = admin.request(
        "GET", f"/venues/{venue_id}/counts", params={"since": "2022-05-01T08:00:00"}
    )
    assert (naive.status_code, naive.json()["error"]) == (422, "invalid-request")
    assert admin.request("GET", "/venues/v_nowhere/counts").status_code == 404


# ---- online status and verification --------------------------------------------------------


def test_status_behind_a_person_ref(admin: Admin, device: Device, clock: Clock):
    person = admin.import_person(colour="yellow")
    known = device.request(
        "POST", "/device/status", json_body={"person_ref": person["person_ref"]}, time_ms=clock.ms()
    )
    assert known.status_code == 200, known.text
    # Only what the kiosk's rules need: not when the register last changed the person.
    assert known.json() == {"known": True} | person | {"updated_at": None}
    unknown = device.request(
        "POST", "/device/status", json_body={"person_ref": "p_x"}, time_ms=clock.ms()
    )
    assert unknown.json() == {
        "person_ref": "p_x",
        "known": False,
        "colour": None,
        "test": None,
        "updated_at": None,
    }


def verify(device: Device, clock: Clock, text: str, temperature_c: float | None = None) -> dict:
    body = {"text": text, "temperature_c": temperature_c}
    response = device.request("POST", "/device/verify", json_body=body, time_ms=clock.ms())
    assert response.status_code == 200, response.text
    return response.json()


def test_online_verification_applies_the_venue_policy(admin: Admin, device: Device, clock: Clock):
    ref = admin.import_person()["person_ref"]
    code = admin.ok("POST", f"/people/{ref}/codes", json={})["text"]
    assert verify(device, clock, code) == {
        "kind": "health",
        "outcome": "pass",
        "reasons": ["ok"],
        "person_ref": ref,
    }
    fever = verify(device, clock, code, temperature_c=38.2)
    assert fever["outcome"] == "deny" and fever["reasons"][0].startswith("fever")

    paper = admin.ok("POST", f"/people/{ref}/codes", json={"kind": "paper", "id_number": ID_NUMBER})
    assert verify(device, clock, paper["text"])["outcome"] == "refer"

    venue_code = admin.ok("GET", f"/venues/{device.venue_id}")["code_url"]
    assert verify(device, clock, venue_code)["kind"] == "venue"
    assert verify(device, clock, "hello")["outcome"] == "ignored"
    assert verify(device, clock, code[:-5] + "AAAAA")["outcome"] in {"deny", "refer"}

    clock.advance(10 * 60)
    expired = verify(device, clock, code)
    assert expired["outcome"] == "deny" and expired["reasons"][0].startswith("expired")

    admin.import_person(colour="red")
    red = admin.ok("POST", f"/people/{ref}/codes", json={})["text"]
    assert verify(device, clock, red)["outcome"] == "deny"


def test_counts_leave_out_scan_times_before_1970(admin: Admin, device: Device, clock: Clock):
    # A Raspberry Pi without a real-time clock may stamp anything, down to year 1.
    odd_times = ["0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z"]
    post(device, clock, [device.checkin(scanned_at=time) for time in odd_times])
    counts = admin.ok("GET", f"/venues/{device.venue_id}/counts", params={"since": odd_times[0]})
    # Refused at ingest (a scan before 2020 is no entrance's): no count holds them.
    assert [(c["hour"], c["total"]) for c in counts] == []
    too_early = admin.request(
        "GET",
        f"/venues/{device.venue_id}/counts",
        params={"since": odd_times[0], "until": odd_times[1]},
    )
    assert (too_early.status_code, too_early.json()["error"]) == (422, "bad-window")


def test_an_ignored_scan_is_not_a_checkin(device: Device, clock: Clock):
    response = device.request(
        "POST",
        "/device/checkins",
        json_body={"checkins": [device.checkin(outcome="ignored")]},
        time_ms=clock.ms(),
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("body.checkins.0.outcome: Input should be")
    assert all(f"'{outcome}'" in detail for outcome in ("pass", "deny", "refer"))
    assert "'ignored'" not in detail
