"""Flows on both backends: hourly counts kept at ingest, local hours and days, levels and roles."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from host.core.config import Settings
from host.core.times import HOUR_MS, to_ms
from host.storage import Database
from host.storage.base import Storage
from host.storage.postgres import SCHEMA as POSTGRES_V3
from host.storage.sql import SqlStorage
from shared.messages import API_PREFIX, CheckIn
from shared.policy import Outcome
from shared.uuid7 import uuid7
from tests.host.conftest import START, Admin, Clock, Device, db_rows
from tests.host.test_checkins import post
from tests.host.test_storage import SCHEMA_V1, add_venue


def scans(
    venue_id: str, times: Iterable[datetime], outcome: Outcome = Outcome.PASS
) -> list[CheckIn]:
    """Check-ins at a venue at these times, as a device would send them."""
    return [
        CheckIn(
            id=uuid7(),
            venue_id=venue_id,
            scanned_at=moment,
            kind="health",
            outcome=outcome,
            clock_trusted=True,
        )
        for moment in times
    ]


def store(storage: Storage, venue_id: str, checkins: list[CheckIn]) -> int:
    """Ingest in batches of at most 1000, as devices send them; how many were new."""
    return sum(
        storage.add_checkins(f"d_{venue_id}", venue_id, to_ms(START), checkins[i : i + 1000])
        for i in range(0, len(checkins), 1000)
    )


def counts(settings: Settings) -> list[tuple]:
    return db_rows(
        settings,
        "SELECT venue_id, hour, total, passed, denied, referred FROM checkin_counts"
        " ORDER BY venue_id, hour",
    )


def host_storage(client: TestClient) -> SqlStorage:
    return client.app.state.context.storage  # type: ignore[attr-defined]


# ---- counts kept at ingest ----------------------------------------------------------------


def test_only_new_check_ins_are_counted(device: Device, clock: Clock, settings: Settings):
    def at(minutes: int, outcome: str = "pass") -> dict:
        return device.checkin(
            scanned_at=(START + timedelta(minutes=minutes)).isoformat(), outcome=outcome
        )

    batch = [at(0), at(5, "deny"), at(40, "refer"), at(-31)]  # 08:30, 08:35, 09:10, 07:59
    assert post(device, clock, [*batch, batch[0]]).json()["inserted"] == 4  # one id twice
    assert post(device, clock, batch).json()["inserted"] == 0  # all sent again
    assert post(device, clock, [batch[1], at(1)]).json()["inserted"] == 1  # one of them new
    hour = to_ms(START.replace(minute=0))
    assert counts(settings) == [
        (device.venue_id, hour - HOUR_MS, 1, 1, 0, 0),
        (device.venue_id, hour, 3, 2, 1, 0),
        (device.venue_id, hour + HOUR_MS, 1, 0, 0, 1),
    ]


def test_scans_before_1970_count_in_the_hour_they_fall_in(database: Path | str):
    storage = Database.parse(database).open()
    try:
        add_venue(storage)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        moments = [epoch - timedelta(milliseconds=1), epoch - timedelta(hours=1), epoch]
        assert store(storage, "v_one", scans("v_one", moments)) == 3
        hours = storage.hourly_counts("v_one", -2 * HOUR_MS, HOUR_MS)
        assert [(count.hour_ms, count.total) for count in hours] == [(-HOUR_MS, 2), (0, 1)]
    finally:
        storage.close()


def test_counts_outlive_the_check_ins(database: Path | str):
    storage = Database.parse(database).open()
    try:
        add_venue(storage)
        store(storage, "v_one", scans("v_one", [START, START + timedelta(hours=1)]))
        assert storage.purge_checkins(to_ms(START) + 10 * 24 * HOUR_MS) == 2
        assert storage.stats().checkins == 0
        hours = storage.hourly_counts("v_one", to_ms(START) - HOUR_MS, to_ms(START) + 2 * HOUR_MS)
        assert [count.total for count in hours] == [1, 1]
    finally:
        storage.close()


def test_check_ins_stored_before_version_4_are_counted_by_the_migration(
    database: Path | str,
):
    scanned = [to_ms(START), to_ms(START) + 1, to_ms(START) + HOUR_MS, -1]
    outcomes = ["pass", "deny", "refer", "pass"]
    if isinstance(database, Path):
        with closing(sqlite3.connect(database)) as db, db:
            db.executescript(SCHEMA_V1)
            db.execute("INSERT INTO venues VALUES ('v_old', 'V', 'R', 'office', 'u', NULL, 0)")
            db.executemany(
                "INSERT INTO checkins VALUES (?, 'd', 'v_old', ?, NULL, 'health', ?, '[]',"
                " NULL, 1, 0)",
                [
                    (uuid7().bytes, at, outcome)
                    for at, outcome in zip(scanned, outcomes, strict=True)
                ],
            )
    else:
        import psycopg

        with psycopg.connect(database) as db:
            for statement in POSTGRES_V3:
                db.execute(statement)
            db.execute("INSERT INTO schema_version VALUES (3)")
            db.execute("INSERT INTO venues VALUES ('v_old', 'V', 'R', 'office', 'u', NULL, 0)")
            for at, outcome in zip(scanned, outcomes, strict=True):
                db.execute(
                    "INSERT INTO checkins (venue_id, id, device_id, scanned_at, kind, outcome,"
                    " reasons, clock_trusted, received_at)"
                    " VALUES ('v_old', %s, 'd', %s, 'health', %s, '[]', true, 0)",
                    (uuid7(), at, outcome),
                )
    storage = Database.parse(database).open()
    try:
        hours = storage.hourly_counts("v_old", -HOUR_MS, to_ms(START) + 2 * HOUR_MS)
        start_hour = to_ms(START.replace(minute=0))
        assert [(c.hour_ms, c.total, c.passed, c.denied, c.referred) for c in hours] == [
            (-HOUR_MS, 1, 1, 0, 0),
            (start_hour, 2, 1, 1, 0),
            (start_hour + HOUR_MS, 1, 0, 0, 1),
        ]
    finally:
        storage.close()


# ---- flows through the API ----------------------------------------------------------------

EPOCH_DAY = datetime(2022, 5, 1, tzinfo=UTC)


def venue(admin: Admin, name: str, **place: Any) -> str:
    body = {"name": name, "address": "1 Road", "category": "public_place", **place}
    return admin.ok("POST", "/venues", json=body)["id"]


@pytest.fixture
def city(client: TestClient, admin: Admin) -> dict[str, str]:
    """Four venues in two districts, one of them in New York; check-ins around two midnights.

    Times are UTC: 15:30 is 23:30 in Shanghai (the same day), 16:30 is 00:30 the next day;
    in New York (UTC-4 in May) both are the afternoon of the first.
    """
    ids = {
        "market": venue(admin, "Market", district="Xuhui", street="Tianping"),
        "mall": venue(admin, "Mall", district="Xuhui", street="Tianping"),
        "clinic": venue(admin, "Clinic", district="Xuhui", street="Hunan", category="medical"),
        "far": venue(admin, "Far", district="Queens", street="Main", timezone="America/New_York"),
    }
    storage = host_storage(client)
    hours = {"market": [15.5, 15.6, 16.5], "mall": [16.5], "clinic": [15.5], "far": [15.5, 16.5]}
    for name, at_hours in hours.items():
        moments = [EPOCH_DAY + timedelta(hours=hour) for hour in at_hours]
        store(storage, ids[name], scans(ids[name], moments))
    store(
        storage, ids["mall"], scans(ids["mall"], [EPOCH_DAY + timedelta(hours=16.7)], Outcome.DENY)
    )
    return ids


def flows(user: Any, **params: str) -> list[dict]:
    """The counts of GET /flows, each without its null fields."""
    response = user.client.get(f"{API_PREFIX}/flows", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return [{k: v for k, v in c.items() if v is not None} for c in response.json()["counts"]]


WINDOW = {"since": "2022-05-01T15:00:00Z", "until": "2022-05-01T18:00:00Z"}


def test_flows_per_venue_by_local_hour(admin: Admin, city: dict[str, str]):
    got = flows(admin, level="venue", bucket="hour", **WINDOW)
    market = [c for c in got if c["venue_id"] == city["market"]]
    assert market == [
        {
            "venue_id": city["market"],
            "district": "Xuhui",
            "street": "Tianping",
            "category": "public_place",
            "period": "2022-05-01T23:00:00+08:00",
            "total": 2,
            "passed": 2,
            "denied": 0,
            "referred": 0,
            "staff_let_through": 0,
            "staff_refused": 0,
        },
        {
            "venue_id": city["market"],
            "district": "Xuhui",
            "street": "Tianping",
            "category": "public_place",
            "period": "2022-05-02T00:00:00+08:00",
            "total": 1,
            "passed": 1,
            "denied": 0,
            "referred": 0,
            "staff_let_through": 0,
            "staff_refused": 0,
        },
    ]
    far = [(c["period"], c["total"]) for c in got if c["venue_id"] == city["far"]]
    assert far == [("2022-05-01T11:00:00-04:00", 1), ("2022-05-01T12:00:00-04:00", 1)]
    mall = [(c["period"], c["total"], c["denied"]) for c in got if c["venue_id"] == city["mall"]]
    assert mall == [("2022-05-02T00:00:00+08:00", 2, 1)]


def test_flows_per_street_district_and_category_by_local_day(admin: Admin, city: dict[str, str]):
    def totals(level: str) -> list[tuple]:
        got = flows(admin, level=level, bucket="day", **WINDOW)
        outcomes = ("passed", "denied", "referred", "staff_let_through", "staff_refused")
        return [(*(c[k] for k in c if k not in outcomes),) for c in got]

    assert totals("district") == [
        ("Queens", "2022-05-01", 2),
        ("Xuhui", "2022-05-01", 3),  # 23:30 in Shanghai: the market's two, the clinic's one
        ("Xuhui", "2022-05-02", 3),  # 00:30: the market's one, the mall's two
    ]
    assert totals("street") == [
        ("Queens", "Main", "2022-05-01", 2),
        ("Xuhui", "Hunan", "2022-05-01", 1),
        ("Xuhui", "Tianping", "2022-05-01", 2),
        ("Xuhui", "Tianping", "2022-05-02", 3),
    ]
    assert totals("category") == [
        ("medical", "2022-05-01", 1),
        ("public_place", "2022-05-01", 4),
        ("public_place", "2022-05-02", 3),
    ]


def test_day_counts_are_whole_local_days(admin: Admin, city: dict[str, str]):
    # A window that only touches 2 May in Shanghai (from 00:45) counts all of that day.
    got = flows(
        admin,
        level="district",
        bucket="day",
        since="2022-05-01T16:45:00Z",
        until="2022-05-01T17:00:00Z",
    )
    assert [(c["district"], c["period"], c["total"]) for c in got] == [
        ("Queens", "2022-05-01", 2),
        ("Xuhui", "2022-05-02", 3),
    ]


def test_a_day_when_the_clocks_go_back_has_25_hours(client: TestClient, admin: Admin):
    new_york = venue(admin, "Deli", district="Queens", timezone="America/New_York")
    # 2022-11-06: 02:00 EDT (06:00Z) becomes 01:00 EST; the day runs 04:00Z to 05:00Z next day.
    utc = ["03:30", "04:30", "05:30", "06:30"]
    moments = [datetime.fromisoformat(f"2022-11-06T{t}:00+00:00") for t in utc]
    moments += [datetime(2022, 11, 7, 4, 30, tzinfo=UTC), datetime(2022, 11, 7, 5, 30, tzinfo=UTC)]
    store(host_storage(client), new_york, scans(new_york, moments))
    window = {"since": "2022-11-06T03:00:00Z", "until": "2022-11-07T06:00:00Z"}
    days = flows(admin, level="venue", bucket="day", **window)
    assert [(c["period"], c["total"]) for c in days] == [
        ("2022-11-05", 1),  # 23:30 EDT
        ("2022-11-06", 4),  # 00:30 EDT, 01:30 EDT, 01:30 EST, 23:30 EST
        ("2022-11-07", 1),  # 00:30 EST
    ]
    hours = flows(admin, level="venue", bucket="hour", **window)
    assert [c["period"] for c in hours][1:4] == [
        "2022-11-06T00:00:00-04:00",
        "2022-11-06T01:00:00-04:00",
        "2022-11-06T01:00:00-05:00",
    ]


def test_flows_filter_by_place(admin: Admin, city: dict[str, str]):
    def ids(**params: str) -> set[str]:
        return {c["venue_id"] for c in flows(admin, level="venue", **WINDOW, **params)}

    assert ids(district="Xuhui") == {city["market"], city["mall"], city["clinic"]}
    assert ids(district="Xuhui", street="Hunan") == {city["clinic"]}
    assert ids(category="medical") == {city["clinic"]}
    assert ids(venue=city["far"]) == {city["far"]}
    assert ids(district="Nowhere") == set()


def test_the_default_window_is_the_last_day_of_hours(
    admin: Admin, city: dict[str, str], clock: Clock
):
    clock.now = (EPOCH_DAY + timedelta(hours=17)).timestamp()
    got = flows(admin, level="district")
    assert {c["period"] for c in got} == {
        "2022-05-01T23:00:00+08:00",
        "2022-05-02T00:00:00+08:00",
        "2022-05-01T11:00:00-04:00",
        "2022-05-01T12:00:00-04:00",
    }
    clock.now = (EPOCH_DAY + timedelta(days=2)).timestamp()
    assert flows(admin, level="district") == []


def test_who_sees_which_flows(client: TestClient, admin: Admin, city: dict[str, str]):
    epidemiologist = admin.user("epi", "epidemiologist")
    manager = admin.user("manager", "venue-manager", venues=[city["market"], city["clinic"]])
    screener = admin.user("screener", "screener", org="Acme")
    everything = flows(admin, level="district", bucket="day", **WINDOW)
    assert flows(epidemiologist, level="district", bucket="day", **WINDOW) == everything
    # A manager's district counts hold only their venues: the market's and the clinic's.
    own = flows(manager, level="district", bucket="day", **WINDOW)
    assert [(c["district"], c["period"], c["total"]) for c in own] == [
        ("Xuhui", "2022-05-01", 3),
        ("Xuhui", "2022-05-02", 1),
    ]
    venues = {c["venue_id"] for c in flows(manager, level="venue", **WINDOW)}
    assert venues == {city["market"], city["clinic"]}
    other = manager.request("GET", "/flows", params={"venue": city["mall"], **WINDOW})
    assert (other.status_code, other.json()["error"]) == (404, "unknown-venue")
    refused = screener.request("GET", "/flows", params=WINDOW)
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    anonymous = client.get(f"{API_PREFIX}/flows", params=WINDOW)
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")
    bad_token = client.get(
        f"{API_PREFIX}/flows", params=WINDOW, headers={"Authorization": "Bearer nope"}
    )
    assert bad_token.status_code == 401


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"since": "2022-05-02T00:00:00Z", "until": "2022-05-01T00:00:00Z"}, "bad-window"),
        ({"since": "1960-01-01T00:00:00Z", "until": "1969-01-01T00:00:00Z"}, "bad-window"),
        ({"since": "2022-01-01T00:00:00Z", "until": "2022-05-01T00:00:00Z"}, "window-too-long"),
        ({"bucket": "day", "since": "2020-01-01T00:00:00Z"}, "window-too-long"),
        ({"until": "0001-01-01T00:00:00Z"}, "bad-window"),
        ({"since": "0001-01-01T00:00:00+14:00"}, "window-too-long"),  # from 1970, in hours
        ({"since": "2022-05-01T00:00:00"}, "invalid-request"),  # no offset
        ({"level": "city"}, "invalid-request"),
        ({"bucket": "week"}, "invalid-request"),
        ({"category": "zoo"}, "invalid-request"),
        ({"district": "x" * 101}, "invalid-request"),
    ],
)
def test_bad_flow_queries_are_refused(admin: Admin, params: dict[str, str], error: str):
    response = admin.client.get(f"{API_PREFIX}/flows", params=params, headers=admin.headers)
    assert (response.status_code, response.json()["error"]) == (422, error)


def test_an_unknown_venue_is_not_found(admin: Admin):
    response = admin.client.get(
        f"{API_PREFIX}/flows", params={"venue": "v_nowhere"}, headers=admin.headers
    )
    assert (response.status_code, response.json()["error"]) == (404, "unknown-venue")


def test_far_future_device_clocks_do_not_break_local_days(
    client: TestClient, admin: Admin, city: dict[str, str]
):
    late = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
    store(host_storage(client), city["market"], scans(city["market"], [late]))
    got = flows(
        admin,
        level="venue",
        bucket="day",
        since="9999-12-01T00:00:00Z",
        until="9999-12-31T23:59:00Z",
    )
    assert got == []  # beyond what every zone's local time can hold: clamped away
