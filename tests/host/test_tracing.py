"""Tracing through the API on both backends: the rule, second degree, CSV, audit and roles."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from host.core.config import Settings
from shared.idnumber import with_check_character
from shared.messages import API_PREFIX
from tests.host.conftest import ADMIN_TOKEN, START, Admin, Clock, Device, User, db_contents
from tests.host.test_checkins import post
from tests.host.test_identities import sealed_for

PURPOSE = "case 0501-07, order of the district CDC"


CASE_NUMBER = with_check_character("11010519850214002")
STRANGER_NUMBER = with_check_character("11010519920830003")


def at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


def z(minutes: float) -> str:
    """A time as the API answers it."""
    return at(minutes).replace("+00:00", "Z")


@dataclass
class Place:
    device: Device
    clock: Clock

    @property
    def id(self) -> str:
        return self.device.venue_id

    def check_in(self, person_ref: str | None, minutes: float, **fields: object) -> None:
        checkin = self.device.checkin(person_ref=person_ref, scanned_at=at(minutes), **fields)
        response = post(self.device, self.clock, [checkin])
        assert response.status_code == 200, response.text


@dataclass
class Places:
    mall: Place  # the venue of the `device` fixture: Riverside Mall
    hotel: Place
    market: Place


@pytest.fixture
def places(client, admin: Admin, device: Device, clock: Clock) -> Places:
    def place(name: str) -> Place:
        venue = admin.venue(name)
        return Place(Device.enroll(client, admin.token(venue["id"]), name.lower()), clock)

    return Places(Place(device, clock), place("Harbour Hotel"), place("Hilltop Market"))


@pytest.fixture
def doctor(admin: Admin) -> User:
    return admin.user("dr-li", "epidemiologist")


def person(admin: Admin, number: int, colour: str = "green") -> str:
    """A registered person's reference."""
    id_number = with_check_character(f"4401061975{number:07d}")
    return admin.import_person(id_number=id_number, colour=colour)["person_ref"]


def trace(user: User, headers: dict | None = None, **fields: object) -> httpx.Response:
    body = {"since": at(-12 * 60), "until": at(12 * 60), "purpose": PURPOSE} | fields
    return user.request("POST", "/tracing", json=body, headers=headers or {})


def traced(user: User, **fields: object) -> dict:
    response = trace(user, **fields)
    assert response.status_code == 200, response.text
    return response.json()


def rows(answer: dict) -> list[tuple]:
    return [
        (c["person_ref"], c["venue_id"], c["binding"], c["minutes_apart"])
        for c in answer["contacts"]
    ]


# ---- the rule -----------------------------------------------------------------------------


def test_contacts_are_the_same_place_within_the_window_nearest_first(
    admin: Admin, places: Places, doctor: User
):
    mall, hotel, market = places.mall, places.hotel, places.market
    alice, bob, dave = person(admin, 1), person(admin, 2, "yellow"), person(admin, 3)
    mall.check_in("p_case", 0)
    hotel.check_in("p_case", 120, binding="room:1203")
    mall.check_in(alice, 10)
    mall.check_in(bob, -29)
    mall.check_in(dave, 30)  # the window's edge is in it
    mall.check_in("p_carol", 31)  # just outside
    mall.check_in(None, 1, outcome="refer", kind="unknown")  # nobody identified
    market.check_in("p_harry", 1)  # another venue at the same time
    hotel.check_in("u_0123456789abcdef01234567", 125, binding="room:1203")  # a card holder
    hotel.check_in("p_frank", 121, binding="room:1205")  # another room
    hotel.check_in("p_gina", 122)  # the hotel's unbound code: not the room
    mall.check_in("p_ivy", 2, binding="room:1")  # bound: not the unbound visit

    answer = traced(doctor, person_ref="p_case")

    assert answer["visits"] == [
        {
            "venue_id": mall.id,
            "venue_name": "Riverside Mall",
            "binding": None,
            "scanned_at": z(0),
        },
        {
            "venue_id": hotel.id,
            "venue_name": "Harbour Hotel",
            "binding": "room:1203",
            "scanned_at": z(120),
        },
    ]
    assert rows(answer) == [
        ("u_0123456789abcdef01234567", hotel.id, "room:1203", 5.0),
        (alice, mall.id, None, 10.0),
        (bob, mall.id, None, 29.0),
        (dave, mall.id, None, 30.0),
    ]
    first, *_ = answer["contacts"]
    assert (first["case_scanned_at"], first["contact_scanned_at"]) == (z(120), z(125))
    assert (first["degree"], first["via"]) == (1, None)
    assert first["status"] == {"known": False, "colour": None, "test": None, "updated_at": None}
    by_ref = {c["person_ref"]: c["status"] for c in answer["contacts"]}
    assert (by_ref[bob]["known"], by_ref[bob]["colour"]) == (True, "yellow")
    assert by_ref[alice]["test"]["result"] == "negative"
    assert answer["summary"] | {"since": None, "until": None} == {
        "case_refs": ["p_case"],
        "since": None,
        "until": None,
        "window_minutes": 30,
        "depth": 1,
        "visits": 2,
        "contacts": 4,
        "people": 4,
        "second_degree_people": None,
    }
    narrow = traced(doctor, person_ref="p_case", window_minutes=10)
    assert [c["person_ref"] for c in narrow["contacts"]] == ["u_0123456789abcdef01234567", alice]


def test_a_person_is_listed_once_per_visit_at_their_nearest_check_in(
    admin: Admin, places: Places, doctor: User
):
    mall = places.mall
    mall.check_in("p_case", 0)
    mall.check_in("p_case", 300)  # a second visit the same day
    mall.check_in("p_alice", 20)
    mall.check_in("p_alice", -4)  # scanned again: the nearer one stands for both
    mall.check_in("p_alice", 306)
    mall.check_in("p_bob", 4)

    answer = traced(doctor, person_ref="p_case")

    listed = [
        (c["person_ref"], c["case_scanned_at"], c["minutes_apart"]) for c in answer["contacts"]
    ]
    assert listed == [
        ("p_alice", z(0), 4.0),  # a tie: the earlier visit first, then by reference
        ("p_bob", z(0), 4.0),
        ("p_alice", z(300), 6.0),
    ]
    assert (answer["summary"]["contacts"], answer["summary"]["people"]) == (3, 2)


def test_the_span_bounds_the_visits_and_the_window_reaches_past_it(places: Places, doctor: User):
    mall = places.mall
    mall.check_in("p_case", -100)  # before since
    mall.check_in("p_early", -95)
    mall.check_in("p_case", 58)  # the last visit before until
    mall.check_in("p_late", 70)  # after until, within the window of that visit

    answer = traced(doctor, person_ref="p_case", since=at(0), until=at(60))

    assert [v["scanned_at"] for v in answer["visits"]] == [z(58)]
    assert rows(answer) == [("p_late", mall.id, None, 12.0)]
    assert traced(doctor, person_ref="p_nobody")["visits"] == []


def test_a_case_by_id_number_is_traced_under_their_reference_and_their_card(
    admin: Admin, places: Places, doctor: User, settings: Settings
):
    hotel, mall = places.hotel, places.mall
    # Checked in by their card before they were registered: under the card's pseudonym.
    hotel.check_in(None, 0, kind="idcard", sealed_identity=sealed_for(hotel.device, CASE_NUMBER))
    case = admin.import_person(id_number=CASE_NUMBER)["person_ref"]
    mall.check_in(case, 60)
    hotel.check_in("p_alice", 5)
    mall.check_in("p_bob", 70)
    hotel.check_in(
        None, 0, kind="idcard", sealed_identity=sealed_for(hotel.device, STRANGER_NUMBER)
    )

    spaced = f"{CASE_NUMBER[:6]} {CASE_NUMBER[6:14]} {CASE_NUMBER[14:]}"  # as typed
    answer = traced(doctor, id_number=spaced)

    refs = answer["summary"]["case_refs"]
    assert refs[0] == case and refs[1].startswith("u_") and len(refs) == 2
    assert [v["venue_id"] for v in answer["visits"]] == [hotel.id, mall.id]
    stranger = traced(doctor, id_number=STRANGER_NUMBER)  # not registered: the card only
    (card,) = stranger["summary"]["case_refs"]
    assert card.startswith("u_") and card not in refs
    assert [c["person_ref"] for c in answer["contacts"]] == [card, "p_alice", "p_bob"]
    assert [c["person_ref"] for c in stranger["contacts"]] == [refs[1], "p_alice"]

    by_ref = traced(doctor, person_ref=case)  # the register keeps what finds the card
    assert (by_ref["summary"]["case_refs"], by_ref["contacts"]) == (refs, answer["contacts"])
    _by_ref, _stranger, record = admin.ok("GET", "/audit", params={"action": "tracing"})
    assert record["subject"]["case"] == ",".join(refs)  # by reference, never by number
    everything = db_contents(settings).decode("latin-1")
    for number in (CASE_NUMBER, STRANGER_NUMBER):
        assert number not in everything
        assert number not in repr(admin.ok("GET", "/audit"))


def test_second_degree_follows_contacts_from_their_meeting_within_its_bounds(
    admin: Admin, places: Places, doctor: User, monkeypatch: pytest.MonkeyPatch
):
    mall, hotel, market = places.mall, places.hotel, places.market
    mall.check_in("p_case", 0)
    mall.check_in("p_alice", 10)
    mall.check_in("p_bob", 20)
    market.check_in("p_alice", -120)  # before alice met the case
    market.check_in("p_yuri", -115)
    hotel.check_in("p_alice", 60)
    hotel.check_in("p_zoe", 75)
    hotel.check_in("p_zoe", 64)  # zoe's nearer meeting with alice
    hotel.check_in("p_bob", 90)  # near alice, but first degree already
    market.check_in("p_bob", 180)
    market.check_in("p_xavier", 181)
    market.check_in("p_alice", 185)  # xavier met bob nearer

    answer = traced(doctor, person_ref="p_case", depth=2)

    degrees = [
        (c["degree"], c["person_ref"], c["via"], c["minutes_apart"]) for c in answer["contacts"]
    ]
    assert degrees[:2] == [(1, "p_alice", None, 10.0), (1, "p_bob", None, 20.0)]
    assert sorted(degrees[2:]) == [(2, "p_xavier", "p_bob", 1.0), (2, "p_zoe", "p_alice", 4.0)]
    assert degrees[2:] == sorted(degrees[2:], key=lambda row: row[3])
    assert (answer["summary"]["people"], answer["summary"]["second_degree_people"]) == (2, 2)
    assert "p_yuri" not in str(answer)
    assert {c["person_ref"] for c in traced(doctor, person_ref="p_case")["contacts"]} == {
        "p_alice",
        "p_bob",
    }

    for bounds in ({"window_minutes": 61}, {"since": at(-15 * 24 * 60)}):
        refused = trace(doctor, person_ref="p_case", depth=2, **bounds)
        assert refused.status_code == 422, bounds
    before = len(admin.ok("GET", "/audit", params={"action": "tracing"}))
    monkeypatch.setattr("host.tracing.SECOND_DEGREE_MAX_SOURCES", 1)
    too_many = trace(doctor, person_ref="p_case", depth=2)
    assert (too_many.status_code, too_many.json()["error"]) == (422, "too-broad")
    assert "2 people met the case" in too_many.json()["detail"]
    assert len(admin.ok("GET", "/audit", params={"action": "tracing"})) == before


# ---- CSV ----------------------------------------------------------------------------------


def test_csv_holds_the_same_visits_and_contacts(admin: Admin, places: Places, doctor: User):
    formula = admin.venue('=HYPERLINK("http://x")')
    gate = Device.enroll(places.mall.device.client, admin.token(formula["id"]), "odd")
    odd = Place(gate, places.mall.clock)
    odd.check_in("p_case", 0, binding="plate:京A12345")
    odd.check_in("p_alice", 3, binding="plate:京A12345")
    places.mall.check_in("p_case", 60)

    answer = traced(doctor, person_ref="p_case")
    response = trace(doctor, headers={"Accept": "text/csv"}, person_ref="p_case")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["record"] for row in table] == ["visit", "visit", "contact"]
    assert table[0]["venue_name"] == '\'=HYPERLINK("http://x")'  # kept as text
    assert table[0]["binding"] == "plate:京A12345"
    assert table[1]["case_scanned_at"] == answer["visits"][1]["scanned_at"]
    contact = table[2]
    assert (contact["person_ref"], contact["degree"], contact["minutes_apart"]) == (
        "p_alice",
        "1",
        "3.0",
    )
    assert contact["contact_scanned_at"] == answer["contacts"][0]["contact_scanned_at"]
    assert contact["colour"] == ""  # not registered
    audits = admin.ok("GET", "/audit", params={"action": "tracing"})
    assert [record["records"] for record in audits] == [3, 3]  # the CSV is audited alike


# ---- audit, roles and input ---------------------------------------------------------------


def test_every_trace_is_audited_with_its_purpose_and_count(
    admin: Admin, places: Places, doctor: User
):
    places.mall.check_in("p_case", 0)
    places.mall.check_in("p_alice", 1)
    places.mall.check_in("p_bob", 2)
    traced(doctor, person_ref="p_case", since=at(-60), until=at(60))
    traced(doctor, person_ref="p_nobody", purpose="order 17: source search")

    nobody, case = admin.ok("GET", "/audit", params={"action": "tracing"})
    assert (case["user_name"], case["role"], case["purpose"], case["records"]) == (
        "dr-li",
        "epidemiologist",
        PURPOSE,
        3,  # one visit, two contacts
    )
    assert case["subject"] == {
        "case": "p_case",
        "since": at(-60),
        "until": at(60),
        "depth": "1",
    }
    assert (nobody["purpose"], nobody["records"]) == ("order 17: source search", 0)


@pytest.mark.parametrize("role", ["admin", "venue-manager", "screener"])
def test_every_other_role_is_refused(admin: Admin, places: Places, doctor: User, role: str):
    places.mall.check_in("p_case", 0)
    scope = {"venue-manager": {"venues": [places.mall.id]}, "screener": {"org": "acme"}}
    user = admin.user(f"someone-{role}", role, **scope.get(role, {}))
    refused = trace(user, person_ref="p_case")
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert admin.ok("GET", "/audit", params={"action": "tracing"}) == []
    assert traced(doctor, person_ref="p_case")["summary"]["visits"] == 1


def test_the_admin_token_and_no_token_are_refused(admin: Admin):
    as_admin = trace(User(admin.client, ADMIN_TOKEN, "admin"), person_ref="p_case")
    assert (as_admin.status_code, as_admin.json()["error"]) == (403, "forbidden")
    for headers in ({}, {"Authorization": "Bearer user_not-a-token"}):
        anonymous = admin.client.post(
            f"{API_PREFIX}/tracing", json={"person_ref": "p_case"}, headers=headers
        )
        assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")
    assert admin.ok("GET", "/audit", params={"action": "tracing"}) == []


@pytest.mark.parametrize(
    "fields",
    [
        {},  # no case
        {"person_ref": "p_case", "id_number": CASE_NUMBER},
        {"person_ref": "p case"},
        {"id_number": CASE_NUMBER[:-1] + ("0" if CASE_NUMBER[-1] != "0" else "1")},
        {"id_number": "E12345678"},
        {"person_ref": "p_case", "until": at(-12 * 60)},  # until before since
        {"person_ref": "p_case", "since": at(-30 * 24 * 60)},  # beyond 28 days
        {"person_ref": "p_case", "since": "2022-05-01T08:00:00"},  # no time zone
        {"person_ref": "p_case", "window_minutes": 0},
        {"person_ref": "p_case", "window_minutes": 241},
        {"person_ref": "p_case", "depth": 3},
        {"person_ref": "p_case", "purpose": "x"},
        {"person_ref": "p_case", "purpose": f"case of {CASE_NUMBER}"},
        {"person_ref": "p_case", "purpose": None},
        {"person_ref": "p_case", "purpose": "case\x00 17"},  # PostgreSQL text holds no NUL
        {"person_ref": "p_case", "extra": 1},
    ],
)
def test_bad_requests_are_refused_without_echoing_numbers(admin: Admin, doctor: User, fields: dict):
    body = {"since": at(-12 * 60), "until": at(12 * 60), "purpose": PURPOSE} | fields
    response = doctor.request(
        "POST", "/tracing", json={k: v for k, v in body.items() if v is not None}
    )
    assert (response.status_code, response.json()["error"]) == (422, "invalid-request")
    assert CASE_NUMBER[:-1] not in response.text
    assert admin.ok("GET", "/audit", params={"action": "tracing"}) == []
