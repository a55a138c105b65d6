"""The phone's venue-code check-in on both backends: sign-in, sessions, decisions, the record."""

from __future__ import annotations

import json
import re
import threading
import warnings
from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import quote

import httpx
import pytest

from hardware.voice.language import Language
from hardware.voice.prompts import prompt_for
from host.app import create_app
from host.core.config import Settings
from host.phone import PHONE_DEVICE, SESSION_COOKIE
from host.signing import HostKeys
from host.storage.base import CheckInSource, VenueRecord
from host.storage.sql import SqlStorage
from host.web.pages import GENERIC, REASONS
from shared.keys import SigningKey
from shared.messages import API_PREFIX, CheckIn
from shared.policy import Outcome, VenueCategory
from shared.uuid7 import uuid7
from shared.venuecode import Binding, BindingKind, VenueCode, issue_url
from tests.host.conftest import (
    ADMIN_TOKEN,
    OTHER_ID_NUMBER,
    PUBLIC_URL,
    START,
    Admin,
    Clock,
    Device,
    db_contents,
    db_rows,
)
from tests.host.test_checkins import post

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

THIRD_ID_NUMBER = "110105197701010039"
PHONE_ROWS = "SELECT device_id, person_ref, outcome, binding, source, kind FROM checkins"


def path_of(url: str) -> str:
    """A URL the host printed (under its public https origin), as the test client asks for it."""
    assert url.startswith(PUBLIC_URL)
    return url.removeprefix(PUBLIC_URL)


def sign_in(admin: Admin, person_ref: str, phone: httpx.Client) -> httpx.Response:
    """Open a fresh sign-in link for the person on the phone, which keeps the session cookie."""
    link = admin.ok("POST", f"/people/{person_ref}/sign-in")
    return phone.get(path_of(link["url"]), follow_redirects=False)


def page_fields(html: str) -> dict[str, str]:
    """The text of every element with an id (markup and spacing dropped), and the body's data."""
    elements = r'(?=<(dd|p|span|h1)\b[^>]*\bid="([a-z-]+)"[^>]*>(.*?)</\1>)'  # nested ones too
    fields = {
        name: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()
        for _, name, text in re.findall(elements, html, re.S)
    }
    body = re.search(r"<body([^>]*)>", html)
    assert body is not None
    for name, value in re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)):
        fields[f"data-{name}"] = value
    return fields


def checkins(settings: Settings) -> list[tuple]:
    return db_rows(settings, PHONE_ROWS + " ORDER BY scanned_at")


@pytest.fixture
def phone(client: TestClient) -> TestClient:
    """A phone's browser: a client of its own (its own cookies) on the same host."""
    return TestClient(client.app)


@pytest.fixture
def citizen(admin: Admin, phone: TestClient) -> str:
    """A green person with a negative test of 12 hours ago, signed in on the phone."""
    person_ref = admin.import_person()["person_ref"]
    assert sign_in(admin, person_ref, phone).status_code == 303
    return person_ref


# ---- the check-in -------------------------------------------------------------------------


def test_a_signed_in_phone_checks_in_once_per_window_and_sees_the_decision(
    phone: TestClient, venue: dict, citizen: str, settings: Settings, clock: Clock
):
    page = phone.get(path_of(venue["code_url"]))
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    shown = page_fields(page.text)
    assert (shown["data-page"], shown["data-outcome"], shown["data-colour"]) == (
        "checkin",
        "pass",
        "green",
    )
    assert shown["colour"] == "绿码 Green code"
    assert shown["venue"] == "Riverside Mall" and shown["address"] == "1 River Road"
    assert shown["time"] == "2022-05-01 16:30"  # the venue's time zone: Asia/Shanghai
    assert shown["test"] == (
        "05-01 04:30 采样 · 阴性 · 12 小时前 sampled 05-01 04:30 · negative · 12 h ago"
    )
    assert (shown["headline-zh"], shown["headline-en"]) == ("通过", "Pass")
    assert (shown["reason-zh"], shown["reason-en"]) == ("绿码，请通行", "Green code, please enter.")
    assert shown["data-say-zh"] == "Riverside Mall，绿码，请通行"
    assert shown["data-say-en"] == "Riverside Mall. Green code, please enter."
    assert "recorded" in shown and "repeat" not in shown
    assert checkins(settings) == [(PHONE_DEVICE, citizen, "pass", None, "phone", "health")]
    # The person's own page is never kept for others: without a session, the URL says how.
    assert phone.app.state.context.venue_pages.get(venue["code_url"]) == (False, None)
    anonymous = page_fields(TestClient(phone.app).get(path_of(venue["code_url"])).text)
    assert anonymous["data-notice"] == "sign-in-needed" and len(checkins(settings)) == 1

    # A reload, or the same code again, within the window: the earlier check-in, nothing new.
    clock.advance(9 * 60)
    again = page_fields(phone.get(path_of(venue["code_url"])).text)
    assert again["time"] == "2022-05-01 16:30" and again["data-outcome"] == "pass"
    assert again["repeat"].startswith("已于 2022-05-01 16:30 登记")
    assert "Already checked in at 2022-05-01 16:30: nothing new recorded" in again["repeat"]
    assert len(checkins(settings)) == 1

    clock.advance(60)  # ten minutes on: a new visit
    later = page_fields(phone.get(path_of(venue["code_url"])).text)
    assert later["time"] == "2022-05-01 16:40" and "recorded" in later
    assert len(checkins(settings)) == 2


def test_a_bound_code_keeps_its_room_and_is_a_place_of_its_own(
    admin: Admin, phone: TestClient, venue: dict, citizen: str, settings: Settings
):
    room = admin.ok(
        "POST", f"/venues/{venue['id']}/codes", json={"binding": {"kind": "room", "value": "1203"}}
    )
    shown = page_fields(phone.get(path_of(room["url"])).text)
    assert shown["binding"] == "1203" and shown["data-say-zh"].startswith("Riverside Mall 1203，")
    phone.get(path_of(room["url"]))  # a repeat in the same room
    phone.get(path_of(venue["code_url"]))  # the lobby's code: another place
    assert [(row[3], row[4]) for row in checkins(settings)] == [
        ("room:1203", "phone"),
        (None, "phone"),
    ]


@pytest.mark.parametrize(
    ("colour", "hours_ago", "category", "outcome", "words"),
    [
        ("red", 12, "public_place", "deny", "红码，请勿通行"),
        ("yellow", 12, "public_place", "deny", "黄码，请勿通行"),
        ("green", 60, "public_place", "deny", "核酸检测已过期，请勿通行"),
        ("green", None, "public_place", "deny", "无核酸检测记录，请勿通行"),
        ("green", 60, "residential", "pass", "绿码，请通行"),
        ("green", 12, "medical", "refer", "请测量体温"),  # a clinic takes every temperature
    ],
)
def test_the_phone_is_decided_by_the_venues_rules_as_a_kiosk_is(
    client: TestClient,
    admin: Admin,
    phone: TestClient,
    clock: Clock,
    settings: Settings,
    colour: str,
    hours_ago: int | None,
    category: str,
    outcome: str,
    words: str,
):
    venue = admin.venue("Harbour Hotel", category)
    kiosk = Device.enroll(client, admin.token(venue["id"]))
    person_ref = admin.import_person(colour=colour, hours_ago=hours_ago)["person_ref"]
    sign_in(admin, person_ref, phone)
    shown = page_fields(phone.get(path_of(venue["code_url"])).text)
    assert (shown["data-outcome"], shown["reason-zh"]) == (outcome, words)

    # What the kiosk is told for the same person's code, asking the host online.
    code = admin.ok("POST", f"/people/{person_ref}/codes", json={"kind": "dynamic"})["text"]
    verified = kiosk.request(
        "POST", "/device/verify", json_body={"text": code}, time_ms=clock.ms()
    ).json()
    ((reasons,),) = db_rows(settings, "SELECT reasons FROM checkins WHERE source = 'phone'")
    assert (verified["outcome"], verified["reasons"]) == (outcome, json.loads(reasons))


def test_a_deny_listed_person_is_refused_on_the_phone_too(
    admin: Admin, phone: TestClient, venue: dict, citizen: str, settings: Settings
):
    entry = {"person_ref": citizen}
    listed = admin.ok("POST", "/denylist", json={"reason": "case 0501-07", "entries": [entry]})
    assert listed["added"] == 1
    shown = page_fields(phone.get(path_of(venue["code_url"])).text)
    assert (shown["data-outcome"], shown["reason-en"]) == (
        "deny",
        "Check failed, please do not enter.",  # as the kiosk says it: the queue hears it too
    )
    assert checkins(settings)[0][2] == "deny"


# ---- refused, or not signed in: nothing recorded ------------------------------------------


def test_a_forged_or_altered_code_is_refused_and_records_nothing(
    admin: Admin, phone: TestClient, venue: dict, citizen: str, settings: Settings
):
    url = venue["code_url"]
    other = admin.venue("Hilltop Market")
    forged = issue_url(VenueCode(venue["id"]), PUBLIC_URL, SigningKey.generate())
    altered = [
        url.replace("s=", "s=AAAA"),  # the signature damaged
        url.replace(venue["id"], other["id"]),  # another venue under this one's signature
        url.replace("?k=", f"?b={quote('room:1203', safe=':')}&k="),  # a room it was not for
        url.split("&s=")[0],  # no signature at all
        forged,  # signed by a key the host never had
    ]
    for wrong in altered:
        page = phone.get(path_of(wrong))
        assert page.status_code == 400, wrong
        shown = page_fields(page.text)
        assert shown["data-notice"] == "invalid-code"
        assert "Nothing was recorded" in shown["text-en"]
    assert checkins(settings) == []
    assert db_rows(settings, "SELECT COUNT(*) FROM phone_visits") == [(0,)]


def test_without_a_session_the_page_says_how_to_check_in_and_records_nothing(
    phone: TestClient, admin: Admin, venue: dict, settings: Settings, clock: Clock
):
    path = path_of(venue["code_url"])
    page = phone.get(path)
    assert page.status_code == 200
    shown = page_fields(page.text)
    assert shown["data-notice"] == "sign-in-needed"
    assert shown["venue"] == "Riverside Mall" and shown["address"] == "1 River Road"
    assert "Open your personal page in the city health app first" in shown["text-en"]
    assert "扫描此场所码" in shown["text-zh"]

    # A cookie of no session, or of one that has ended: the same page, and the cookie goes.
    sign_in(admin, admin.import_person(id_number=OTHER_ID_NUMBER)["person_ref"], phone)
    ended = phone.cookies[SESSION_COOKIE]
    for token, days in (("session_made-up", 0), (ended, 7)):
        clock.advance(days * 24 * 3600)
        phone.cookies.set(SESSION_COOKIE, token)
        answer = phone.get(path)
        assert page_fields(answer.text)["data-notice"] == "sign-in-needed"
        cookie = SimpleCookie(answer.headers["set-cookie"])[SESSION_COOKIE]
        assert cookie.value == "" and cookie["max-age"] == "0"
    assert checkins(settings) == []


# ---- the record: counts, flows and tracing, as a kiosk's ----------------------------------


def test_phone_check_ins_are_counted_and_traced_as_kiosk_check_ins_are(
    admin: Admin, phone: TestClient, device: Device, citizen: str, settings: Settings, clock: Clock
):
    venue_id = device.venue_id
    phone.get(path_of(admin.ok("GET", f"/venues/{venue_id}")["code_url"]))
    kiosk_at = (START + timedelta(minutes=5)).isoformat()
    kiosk = device.checkin(person_ref="p_kiosk", scanned_at=kiosk_at)
    # A kiosk cannot pass its check-ins off as a phone's: the source is the host's to say.
    assert post(device, clock, [kiosk | {"source": "phone"}]).status_code == 422
    assert post(device, clock, [kiosk]).is_success
    assert sorted(row[4] for row in checkins(settings)) == ["device", "phone"]

    (hour,) = admin.ok("GET", f"/venues/{venue_id}/counts")
    assert (hour["total"], hour["passed"], hour["denied"], hour["referred"]) == (2, 2, 0, 0)
    doctor = admin.user("dr-li", "epidemiologist")
    (flow,) = doctor.ok("GET", "/flows", params={"venue": venue_id})["counts"]
    assert flow["total"] == 2

    window = {
        "since": (START - timedelta(hours=1)).isoformat(),
        "until": (START + timedelta(hours=1)).isoformat(),
        "purpose": "case 0501-07",
    }
    case = doctor.ok("POST", "/tracing", json={"person_ref": citizen, **window})
    assert [(v["venue_id"], v["scanned_at"]) for v in case["visits"]] == [
        (venue_id, "2022-05-01T08:30:00Z")
    ]
    assert [c["person_ref"] for c in case["contacts"]] == ["p_kiosk"]
    other = doctor.ok("POST", "/tracing", json={"person_ref": "p_kiosk", **window})
    assert [(c["person_ref"], c["minutes_apart"]) for c in other["contacts"]] == [(citizen, 5.0)]


def test_opening_one_code_at_once_from_many_workers_records_it_once(database, settings: Settings):
    """Storage straight, as two worker processes would share it: one claim wins."""
    create_app(settings)  # makes the schema
    storages = [settings.database.open(), settings.database.open()]
    try:
        storages[0].add_venue(
            VenueRecord("v_1", "Mall", "", VenueCategory.PUBLIC_PLACE, "https://x/v/v_1", None, 0)
        )
        now_ms = int(START.timestamp() * 1000)
        made = [
            CheckIn(
                id=uuid7(now_ms),
                venue_id="v_1",
                scanned_at=START,
                person_ref="p_1",
                kind="health",
                outcome=Outcome.PASS,
                clock_trusted=True,
            )
            for _ in range(8)
        ]
        visits: list = []
        barrier = threading.Barrier(len(made))

        def open_code(index: int) -> None:
            storage: SqlStorage = storages[index % 2]
            barrier.wait()
            visit = storage.claim_phone_visit(made[index], now_ms, 600_000)
            storage.add_checkins(
                PHONE_DEVICE, "v_1", now_ms, [visit.checkin], source=CheckInSource.PHONE
            )
            visits.append(visit)

        threads = [threading.Thread(target=open_code, args=(i,)) for i in range(len(made))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(visits) == len(made)
        assert sum(visit.new for visit in visits) == 1
        assert len({visit.checkin.id for visit in visits}) == 1
        assert storages[0].stats().checkins == 1
    finally:
        for storage in storages:
            storage.close()


# ---- sign-in links and sessions -----------------------------------------------------------


def test_the_session_cookie_is_http_only_lax_expiring_and_secure_over_https(
    settings: Settings, admin: Admin, phone: TestClient
):
    person_ref = admin.import_person()["person_ref"]
    over_http = sign_in(admin, person_ref, phone)
    assert (over_http.status_code, over_http.headers["location"]) == (303, "/me")
    header = over_http.headers["set-cookie"]
    cookie = SimpleCookie(header)[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/" and int(cookie["max-age"]) == 7 * 24 * 3600
    assert not cookie["secure"]
    https = TestClient(phone.app, base_url="https://sentinel.example.org")
    over_https = sign_in(admin, person_ref, https)
    assert SimpleCookie(over_https.headers["set-cookie"])[SESSION_COOKIE]["secure"]
    # The database keeps hashes only: neither the session nor the link is in it.
    assert cookie.value.encode() not in db_contents(settings)


def test_a_sign_in_link_works_once_and_only_for_minutes(
    client: TestClient, admin: Admin, settings: Settings, clock: Clock
):
    person_ref = admin.import_person()["person_ref"]
    link = admin.ok("POST", f"/people/{person_ref}/sign-in")
    assert link["url"].startswith(f"{PUBLIC_URL}/sign-in?token=signin_")
    assert link["expires_at"] == "2022-05-01T08:40:00Z"
    token = link["url"].split("token=")[1]
    assert token.encode() not in db_contents(settings)

    assert client.get(path_of(link["url"]), follow_redirects=False).status_code == 303
    used = client.get(path_of(link["url"]), follow_redirects=False)
    assert used.status_code == 410 and "set-cookie" not in used.headers
    assert page_fields(used.text)["data-notice"] == "sign-in-used"

    late = admin.ok("POST", f"/people/{person_ref}/sign-in")
    clock.advance(10 * 60)
    expired = client.get(path_of(late["url"]), follow_redirects=False)
    assert expired.status_code == 410 and "set-cookie" not in expired.headers
    assert page_fields(expired.text)["data-notice"] == "sign-in-expired"

    for wrong in ("/sign-in?token=signin_made-up", "/sign-in"):
        unknown = client.get(wrong, follow_redirects=False)
        assert unknown.status_code == 400 and "set-cookie" not in unknown.headers
        assert page_fields(unknown.text)["data-notice"] == "sign-in-unknown"


def test_only_an_admin_issues_sign_in_links(client: TestClient, admin: Admin, venue: dict):
    person_ref = admin.import_person()["person_ref"]
    path = f"{API_PREFIX}/admin/people/{person_ref}/sign-in"
    assert client.post(path).status_code == 401
    for role, scope in (
        ("epidemiologist", {}),
        ("venue-manager", {"venues": [venue["id"]]}),
        ("screener", {"org": "Riverside Mall staff"}),
    ):
        user = admin.user(f"someone-{role}", role, **scope)
        assert client.post(path, headers=user.headers).status_code == 403, role
    missing = admin.request("POST", "/people/p_nobody/sign-in")
    assert (missing.status_code, missing.json()["error"]) == (404, "unknown-person")


# ---- the personal page --------------------------------------------------------------------


def test_the_personal_page_shows_a_fresh_code_framed_in_its_colour(
    client: TestClient, phone: TestClient, citizen: str
):
    page = phone.get("/me")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "http" not in csp
    shown = page_fields(page.text)
    assert (shown["data-page"], shown["data-colour"]) == ("me", "green")
    assert (shown["colour-zh"], shown["colour-en"]) == ("绿码", "Green code")
    assert shown["valid-until"] == "16:33:00"  # a dynamic code lives three minutes
    assert shown["data-renew-in-ms"] == "150000"  # renewed half a minute before that
    assert '<noscript><meta http-equiv="refresh" content="150"></noscript>' in page.text
    assert re.search(r'id="code"><svg viewBox="0 0 \d+ \d+" class="qr">', page.text)
    renewed = phone.get("/me/code.json")
    assert renewed.headers["cache-control"] == "no-store"
    assert renewed.json()["colour"] == "green" and renewed.json()["svg"].startswith("<svg")

    signed_out = client.get("/me")
    assert signed_out.status_code == 401
    assert page_fields(signed_out.text)["data-notice"] == "not-signed-in"
    assert client.get("/me/code.json").json()["error"] == "not-signed-in"


def test_the_assets_are_served_by_the_host_itself(client: TestClient):
    for asset, kind in (("phone.css", "text/css"), ("phone.js", "text/javascript")):
        answer = client.get(f"/assets/{asset}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
        assert "http" not in answer.text  # nothing fetched from elsewhere
    icon = client.get("/assets/icon.svg")  # so that no browser asks for /favicon.ico
    assert icon.headers["content-type"] == "image/svg+xml"


# ---- words and housekeeping ---------------------------------------------------------------


def test_the_phone_words_each_decision_as_the_kiosk_does():
    """The host may not import the kiosk's prompts: this keeps the two tables alike."""
    for outcome, words in GENERIC.items():
        assert words == written(outcome, [])
    for key, (outcome, words) in REASONS.items():
        code, _, shown = key.partition("/")
        assert words == written(outcome, [f"{code}: {shown}; why [RULE]"]), key


def written(outcome: Outcome, reasons: list[str]) -> tuple[str, str]:
    zh = prompt_for(outcome, reasons, None, Language.MANDARIN)
    en = prompt_for(outcome, reasons, None, Language.ENGLISH)
    assert zh is not None and en is not None
    return zh.written, en.written


def test_ended_sign_ins_sessions_and_visits_past_the_window_are_purged(
    admin: Admin, phone: TestClient, venue: dict, citizen: str, settings: Settings, clock: Clock
):
    from host.app import Retention, purge_expired

    phone.get(path_of(venue["code_url"]))
    admin.ok("POST", f"/people/{citizen}/sign-in")  # a link never opened
    context = admin.client.app.state.context
    tables = ("citizen_sign_ins", "citizen_sessions", "phone_visits")

    def held() -> list[int]:
        return [db_rows(settings, f"SELECT COUNT(*) FROM {table}")[0][0] for table in tables]

    purge_expired(context, Retention())
    assert held() == [2, 1, 1]
    clock.advance(10 * 60 + 1)  # the links expire; the visit leaves the repeat window
    purge_expired(context, Retention())
    assert held() == [0, 1, 0]
    clock.advance(7 * 24 * 3600)
    purge_expired(context, Retention())
    assert held() == [0, 0, 0]
    assert len(checkins(settings)) == 1  # the check-in itself stays for its retention


def test_a_venue_unknown_to_the_host_is_said_so(
    phone: TestClient, citizen: str, settings: Settings
):
    storage = settings.database.open()
    try:
        keys = HostKeys.load(storage)
    finally:
        storage.close()
    gone = issue_url(VenueCode("v_gone", Binding(BindingKind.ROOM, "1")), PUBLIC_URL, keys.venue)
    page = phone.get(path_of(gone))
    assert page.status_code == 404 and page_fields(page.text)["data-notice"] == "unknown-venue"
    assert checkins(settings) == []


def test_settings_take_the_repeat_window(database, clock: Clock):
    settings = Settings(
        database=database,
        public_url=PUBLIC_URL,
        admin_token=ADMIN_TOKEN,
        clock=clock,
        phone_repeat_minutes=1,
    )
    assert settings.phone_repeat_ms == 60_000
    person = THIRD_ID_NUMBER
    with TestClient(create_app(settings)) as client:
        admin = Admin(client)
        venue = admin.venue()
        phone = TestClient(client.app)
        sign_in(admin, admin.import_person(id_number=person)["person_ref"], phone)
        for _ in range(2):
            phone.get(path_of(venue["code_url"]))
            clock.advance(61)
        assert len(checkins(settings)) == 2
