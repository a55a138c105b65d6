"""The dashboard's operator pages (venues, devices, enrollment, users, audit) on both backends."""

from __future__ import annotations

import re
import warnings
from datetime import timedelta
from html import unescape

import pytest

from host.core.config import Settings
from host.core.times import from_ms
from host.web.dashboard import operators
from tests.host.conftest import ADMIN_TOKEN, START, Admin, Clock, Device
from tests.host.test_users import lookups, tamper

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NOT_FOR_ROLE = "Not for your role"
READ_PAGES = ("/venues", "/venues/{venue}", "/devices", "/devices/{device}")
ADMIN_PAGES = ("/venues/new", "/venues/{venue}/edit", "/users", "/audit")
ADMIN_POSTS = (
    "/venues/new",
    "/venues/{venue}/edit",
    "/devices/{device}/revoke",
    "/devices/enroll",
    "/users",
    "/users/revoke",
)


class Dashboard:
    """A browser's session on the dashboard: its own cookies, and its forms' CSRF token."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.http = TestClient(client.app, follow_redirects=False)
        form = self.http.get("/dashboard/sign-in")
        secret = CSRF.search(form.text)
        assert secret is not None
        signed = self.http.post(
            "/dashboard/sign-in", data={"csrf": secret[1], "token": token, "then": ""}
        )
        assert signed.status_code == 303, signed.text
        page = self.http.get("/dashboard/venues")  # or the 403 page: both have the CSRF token
        found = CSRF.search(page.text)
        assert found is not None, page.text
        self.csrf = found[1]

    def get(self, path: str, **params: str) -> object:
        return self.http.get(f"/dashboard{path}", params=params)

    def post(self, path: str, data: dict | None = None, *, csrf: str | None = None) -> object:
        form = {"csrf": self.csrf if csrf is None else csrf, **(data or {})}
        return self.http.post(f"/dashboard{path}", data=form)


def text_of(html: str) -> str:
    """A page's words without its tags, spaces collapsed: what a reader sees."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture
def operator(client: TestClient) -> Dashboard:
    return Dashboard(client, ADMIN_TOKEN)


@pytest.fixture
def two_venues(admin: Admin) -> tuple[dict, dict]:
    """The manager's venue, and another one they do not manage."""
    return admin.venue("Riverside Mall"), admin.venue("Harbour Clinic", "medical")


def dashboard_of(client: TestClient, admin: Admin, role: str, venue_id: str) -> Dashboard:
    """A user of `role` signed in (a venue manager of `venue_id`, a screener of an org)."""
    scope = {"venue-manager": {"venues": [venue_id]}, "screener": {"org": "city-hospital"}}
    user = admin.user(f"user-{role}", role, **scope.get(role, {}))
    return Dashboard(client, user.headers["Authorization"].removeprefix("Bearer "))


def report(clock: Clock, **fields: object) -> dict:
    """A device's status report, as sent with its sync."""
    now = from_ms(clock.ms())
    return {
        "sent_at": now.isoformat(),
        "clock_trusted": True,
        "pending_checkins": 0,
        "denylist": None,
        "components": {},
    } | fields


# ---- who reaches what -----------------------------------------------------------------------


def test_signed_out_is_sent_to_sign_in_and_back(client: TestClient, device: Device):
    for template in READ_PAGES + ADMIN_PAGES:
        path = template.format(venue=device.venue_id, device=device.device_id)
        answer = client.get(f"/dashboard{path}", follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/dashboard/sign-in?then=/dashboard/"), path


@pytest.mark.parametrize("role", ["epidemiologist", "screener"])
def test_other_roles_get_the_403_page_everywhere(
    client: TestClient, admin: Admin, device: Device, role: str
):
    user = dashboard_of(client, admin, role, device.venue_id)
    for template in READ_PAGES + ADMIN_PAGES:
        answer = user.get(template.format(venue=device.venue_id, device=device.device_id))
        assert answer.status_code == 403 and NOT_FOR_ROLE in answer.text, template
    for template in ADMIN_POSTS:
        answer = user.post(template.format(venue=device.venue_id, device=device.device_id))
        assert answer.status_code == 403, template
    assert admin.ok("GET", "/devices")[0]["revoked"] is False


def test_a_venue_manager_sees_their_venues_only_and_changes_nothing(
    client: TestClient, admin: Admin, two_venues: tuple[dict, dict]
):
    mine, other = two_venues
    my_device = Device.enroll(client, admin.token(mine["id"]), name="mall-gate")
    other_device = Device.enroll(client, admin.token(other["id"]), name="clinic-door")
    manager = dashboard_of(client, admin, "venue-manager", mine["id"])

    venues = manager.get("/venues")
    assert venues.status_code == 200
    assert "Riverside Mall" in venues.text and "Harbour Clinic" not in venues.text
    assert "/venues/new" not in venues.text, "no creating for a manager"
    devices = manager.get("/devices").text
    assert "mall-gate" in devices and "clinic-door" not in devices
    assert "/devices/enroll" not in devices, "no enrollment form for a manager"
    page = manager.get(f"/venues/{mine['id']}")
    assert page.status_code == 200 and "mall-gate" in page.text
    assert f"/venues/{mine['id']}/edit" not in page.text
    assert "/revoke" not in manager.get(f"/devices/{my_device.device_id}").text

    for path in (f"/venues/{other['id']}", f"/devices/{other_device.device_id}", "/venues/v_x"):
        assert manager.get(path).status_code == 404, path
    assert manager.get(f"/venues/{other['id']}/poster.pdf").status_code == 404
    posted = manager.post(f"/venues/{other['id']}/posters", {"kind": "room", "items": "101"})
    assert posted.status_code == 404
    for template in ADMIN_PAGES:
        answer = manager.get(template.format(venue=mine["id"], device=my_device.device_id))
        assert answer.status_code == 403 and NOT_FOR_ROLE in answer.text, template
    for template in ADMIN_POSTS:
        answer = manager.post(template.format(venue=mine["id"], device=my_device.device_id))
        assert answer.status_code == 403, template
    assert not any(device["revoked"] for device in admin.ok("GET", "/devices"))


def test_a_form_without_this_sessions_csrf_token_changes_nothing(
    client: TestClient, operator: Dashboard, admin: Admin, device: Device
):
    other = Dashboard(client, ADMIN_TOKEN)
    venue = {"name": "Sneaky", "address": "x", "category": "office", "timezone": "Asia/Shanghai"}
    for csrf in ("", "forged", other.csrf):
        assert operator.post("/venues/new", venue, csrf=csrf).status_code == 400
        revoke = operator.post(f"/devices/{device.device_id}/revoke", csrf=csrf)
        assert revoke.status_code == 400
        made = operator.post("/users", {"name": "eve", "role": "admin"}, csrf=csrf)
        assert made.status_code == 400
        token = operator.post("/devices/enroll", {"venue_id": device.venue_id}, csrf=csrf)
        assert token.status_code == 400 and "enroll_" not in token.text
    assert [venue["name"] for venue in admin.ok("GET", "/venues")] == ["Riverside Mall"]
    assert admin.ok("GET", "/devices")[0]["revoked"] is False
    assert admin.ok("GET", "/users") == []


# ---- venues ---------------------------------------------------------------------------------


def test_an_admin_creates_and_edits_a_venue(operator: Dashboard, admin: Admin):
    form = operator.get("/venues/new")
    assert form.status_code == 200 and 'name="category"' in form.text
    made = operator.post(
        "/venues/new",
        {
            "name": "市图书馆 City Library",
            "address": "8 Book Street",
            "category": "public_place",
            "district": "海淀区",
            "street": "中关村街道",
            "timezone": "Asia/Shanghai",
        },
    )
    assert made.status_code == 303
    venue_id = made.headers["location"].rsplit("/", 1)[1]
    stored = admin.ok("GET", f"/venues/{venue_id}")
    assert (stored["name"], stored["district"], stored["street"]) == (
        "市图书馆 City Library",
        "海淀区",
        "中关村街道",
    )
    code_url = stored["code_url"]
    listed = text_of(operator.get("/venues").text)
    assert "市图书馆 City Library 公共场所 Public place 海淀区 中关村街道 Asia/Shanghai 0" in listed

    edited = operator.post(
        f"/venues/{venue_id}/edit",
        {"name": "市图书馆", "address": "9 Book Street", "district": "", "street": "学院路",
         "timezone": "Asia/Urumqi"},
    )  # fmt: skip
    assert edited.status_code == 303 and edited.headers["location"].endswith(venue_id)
    stored = admin.ok("GET", f"/venues/{venue_id}")
    assert (stored["name"], stored["address"], stored["district"], stored["timezone"]) == (
        "市图书馆",
        "9 Book Street",
        "",
        "Asia/Urumqi",
    )
    assert (stored["category"], stored["code_url"]) == ("public_place", code_url), "they stay"
    page = text_of(operator.get(f"/venues/{venue_id}").text)
    assert "9 Book Street" in page and "Asia/Urumqi" in page


def test_a_bad_venue_form_says_why_and_keeps_what_was_typed(operator: Dashboard, admin: Admin):
    refused = operator.post(
        "/venues/new",
        {"name": "Night Market", "address": "", "category": "office", "timezone": "Mars/Olympus"},
    )
    assert refused.status_code == 422
    assert "unknown time zone 'Mars/Olympus'" in unescape(refused.text)
    assert 'value="Night Market"' in refused.text and 'value="Mars/Olympus"' in refused.text
    assert 'aria-invalid="true" aria-describedby="address-problem"' in refused.text
    assert admin.ok("GET", "/venues") == []


def test_a_venue_page_shows_its_rules_counts_devices_and_posters(
    operator: Dashboard, admin: Admin, device: Device, clock: Clock
):
    today = START  # 16:30 in Shanghai
    checkins = [device.checkin(scanned_at=today.isoformat()) for _ in range(3)]
    checkins.append(device.checkin(scanned_at=today.isoformat(), outcome="deny", reasons=["red"]))
    two_days_ago = (today - timedelta(days=2)).isoformat()
    checkins.append(device.checkin(scanned_at=two_days_ago, outcome="refer", reasons=["x"]))
    body = {"checkins": checkins}
    sent = device.request("POST", "/device/checkins", json_body=body, time_ms=clock.ms())
    assert sent.is_success, sent.text

    page = operator.get(f"/venues/{device.venue_id}")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Today : 4" in text
    assert "2022-05-01 4 3 1 0" in text and "2022-04-29 1 0 0 1" in text
    assert "2022-04-30 0 0 0 0" in text and "2022-04-25" in text and "2022-04-24" not in text
    rules = admin.ok("GET", f"/venues/{device.venue_id}/rules")
    for rule in rules["rules"]:
        assert rule["id"] in text and rule["description"] in text
    assert f"Version {rules['version']}" in text
    assert "gate-1" in text
    assert f"/venues/{device.venue_id}/poster.pdf?size=a5" in page.text


def test_posters_download_as_the_api_makes_them(client: TestClient, admin: Admin, device: Device):
    manager = dashboard_of(client, admin, "venue-manager", device.venue_id)
    single = manager.get(f"/venues/{device.venue_id}/poster.pdf", size="a5")
    assert single.status_code == 200 and single.content.startswith(b"%PDF")
    assert single.headers["content-disposition"].startswith("attachment;")
    assert single.headers["x-poster-pages"] == "1"
    svg = manager.get(f"/venues/{device.venue_id}/poster.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")

    rooms = manager.post(
        f"/venues/{device.venue_id}/posters", {"kind": "room", "items": "101-105,B01", "size": "a4"}
    )
    assert rooms.status_code == 200 and rooms.content.startswith(b"%PDF")
    assert rooms.headers["x-poster-pages"] == "6"
    plates = manager.post(
        f"/venues/{device.venue_id}/posters", {"kind": "plate", "items": "京A12345，苏A67890"}
    )
    assert plates.status_code == 200 and plates.headers["x-poster-pages"] == "2"

    backwards = manager.post(
        f"/venues/{device.venue_id}/posters", {"kind": "room", "items": "120-101", "size": "a5"}
    )
    assert backwards.status_code == 422
    assert "room range 120-101 runs backwards" in backwards.text
    assert "120-101</textarea>" in backwards.text, "what was typed stays"
    assert '<option value="a5" selected>' in backwards.text


# ---- devices --------------------------------------------------------------------------------


def test_the_device_table_shows_each_report(
    operator: Dashboard, admin: Admin, device: Device, clock: Clock
):
    assert "No report yet" in text_of(operator.get("/devices").text)
    refreshed = from_ms(clock.ms()) - timedelta(minutes=90)
    failing_since = from_ms(clock.ms()) - timedelta(minutes=5)
    sent = report(
        clock,
        pending_checkins=17,
        software_version="1.4.2",
        denylist={
            "version": 3,
            "issued_at": refreshed.isoformat(),
            "refreshed_at": refreshed.isoformat(),
            "entries": 12,
        },
        components={
            "camera": {"state": "failing", "since": failing_since.isoformat(),
                       "detail": "no frame for 30 s: /dev/video0 gone"},
            "denylist": {"state": "ok", "since": refreshed.isoformat()},
            "thermometer": {"state": "absent", "since": refreshed.isoformat()},
        },
    )  # fmt: skip
    posted = device.request("POST", "/device/report", json_body=sent, time_ms=clock.ms())
    assert posted.status_code == 204, posted.text

    for path in ("/devices", f"/devices/{device.device_id}", f"/venues/{device.venue_id}"):
        text = text_of(operator.get(path).text)
        assert "1.4.2" in text and " 17 " in text and "90 min" in text, path
        assert "camera : 故障 failing 2022-05-01 16:25 +08:00 — no frame for 30 s" in text, path
        assert "denylist : 正常 ok" in text and "thermometer : 未安装 absent" in text, path
    details = text_of(operator.get(f"/devices/{device.device_id}").text)
    assert "v3 · 12 条 entries · 90 min" in details and "trusted" in details
    assert "最近自检 Last self-test —" in details  # this device never sent one


def test_the_device_page_shows_the_last_self_test(
    operator: Dashboard, device: Device, clock: Clock
):
    ran_at = from_ms(clock.ms()) - timedelta(hours=2)
    selftest = {"ran_at": ran_at.isoformat(), "failed": ["voice", "green"], "warned": ["clock"],
                "passed": 9}  # fmt: skip
    sent = report(clock, last_selftest=selftest)
    posted = device.request("POST", "/device/report", json_body=sent, time_ms=clock.ms())
    assert posted.status_code == 204, posted.text
    details = text_of(operator.get(f"/devices/{device.device_id}").text)
    assert (
        "Last self-test 2022-05-01 14:30 +08:00 · 未通过 failed : voice, green"
        " · 警告 warnings : clock · 9 项通过 passed" in details
    ), details


def test_devices_needing_attention_come_first_a_page_at_a_time(
    client: TestClient,
    operator: Dashboard,
    admin: Admin,
    venue: dict,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(operators, "DEVICE_PAGE", 2)
    enrolled = []
    for name in ("healthy", "failing", "silent", "gone"):  # the newest last
        enrolled.append(Device.enroll(client, admin.token(venue["id"]), name=name))
        clock.advance(60)
    healthy, failing, _, gone = enrolled
    since = from_ms(clock.ms()).isoformat()
    broken = {"camera": {"state": "failing", "since": since, "detail": "no frames"}}
    for device, components in ((healthy, {}), (failing, broken), (gone, {})):
        sent = report(clock, components=components)
        device.request("POST", "/device/report", json_body=sent, time_ms=clock.ms())
    admin.ok("POST", f"/devices/{gone.device_id}/revoke")

    def names(page: str) -> list[str]:
        html = operator.get("/devices", page=page).text
        return re.findall(r'<a href="/dashboard/devices/d_[^"]+">([^<]+)</a>', html)

    first = operator.get("/devices").text
    assert "4 devices" in first and 'href="/dashboard/devices?page=2" rel="next"' in first
    assert names("1") == ["silent", "failing"]
    assert names("2") == ["healthy", "gone"]
    assert names("9") == names("2"), "a page beyond the last shows the last"


def test_an_admin_revokes_a_device(operator: Dashboard, admin: Admin, device: Device, clock):
    page = operator.get(f"/devices/{device.device_id}")
    assert 'data-confirm="' in page.text and "Revoke device" in page.text
    revoked = operator.post(f"/devices/{device.device_id}/revoke")
    assert revoked.status_code == 303
    assert admin.ok("GET", "/devices")[0]["revoked"] is True
    refused = device.request("GET", "/device/config", time_ms=clock.ms())
    assert refused.status_code == 403
    after = text_of(operator.get(f"/devices/{device.device_id}").text)
    assert "已撤销 Revoked" in after and "Revoke device" not in after
    assert operator.post("/devices/d_nobody/revoke").status_code == 404


def test_an_enrollment_token_is_shown_once_and_enrolls_a_device(
    client: TestClient, operator: Dashboard, admin: Admin, venue: dict, settings: Settings
):
    made = operator.post("/devices/enroll", {"venue_id": venue["id"], "ttl_seconds": "3600"})
    assert made.status_code == 201
    token = re.search(r'id="enrollment-token"[^>]*>([^<]+)<', made.text)
    assert token is not None
    assert "<svg" in made.text and 'class="qr"' in made.text
    command = f"sentinel device enroll --host {settings.public_url} --token {token[1]}"
    assert command in unescape(made.text)
    assert "2022-05-01 17:30 +08:00" in made.text, "an hour from now, in the venue's time"
    assert token[1] not in operator.get("/devices").text
    enrolled = Device.enroll(client, token[1], name="new-kiosk")
    assert enrolled.venue_id == venue["id"]

    refused = operator.post("/devices/enroll", {"venue_id": "", "ttl_seconds": "3600"})
    assert refused.status_code == 422 and "choose a venue" in refused.text
    too_long = operator.post("/devices/enroll", {"venue_id": venue["id"], "ttl_seconds": "999999"})
    assert too_long.status_code == 422 and "less than or equal to 86400" in too_long.text


# ---- users ----------------------------------------------------------------------------------


def test_an_admin_adds_a_user_whose_token_signs_in_then_revokes_them(
    client: TestClient, operator: Dashboard, admin: Admin, venue: dict
):
    added = operator.post(
        "/users", {"name": "mia", "role": "venue-manager", "venues": venue["id"], "org": ""}
    )
    assert added.status_code == 201
    token = re.search(r'id="user-token"[^>]*>([^<]+)<', added.text)
    assert token is not None and "Riverside Mall" in added.text
    manager = Dashboard(client, token[1])
    assert manager.get("/venues").status_code == 200

    listed = text_of(operator.get("/users").text)
    assert "mia 场所管理 Venue manager Riverside Mall 2022-05-01 08:30 —" in listed
    assert token[1] not in operator.get("/users").text, "a token is shown once"
    assert operator.post("/users/revoke", {"name": "mia"}).status_code == 303
    (user,) = admin.ok("GET", "/users")
    assert user["revoked_at"] is not None
    assert manager.get("/venues").status_code == 303, "a revoked user's session ends"
    assert "mia 场所管理 Venue manager Riverside Mall 2022-05-01 08:30 2022-05-01 08:30" in (
        text_of(operator.get("/users").text)
    )


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"name": "eric", "role": "venue-manager"}, "venues are given for a venue-manager"),
        ({"name": "sam", "role": "screener"}, "an organisation is given for a screener"),
        ({"name": "two words", "role": "admin"}, "String should match pattern"),
        ({"name": "ghost", "role": "venue-manager", "venues": "v_nowhere"}, "no venue v_nowhere"),
        ({"name": "taken", "role": "admin"}, "a user named 'taken' exists already"),
    ],
)
def test_a_user_is_refused_with_the_reason_and_the_form_kept(
    operator: Dashboard, admin: Admin, form: dict, problem: str
):
    admin.user("taken", "admin")
    refused = operator.post("/users", form)
    assert refused.status_code == 422
    assert problem in unescape(refused.text)
    assert f'value="{form["name"]}"' in refused.text
    assert "user_" not in refused.text, "no token was made"
    assert [user["name"] for user in admin.ok("GET", "/users")] == ["taken"]


# ---- the audit log --------------------------------------------------------------------------


def test_the_audit_log_pages_newest_first_and_filters(
    client: TestClient, admin: Admin, clock: Clock
):
    lookups(admin, admin.user("dr-li", "epidemiologist"), 55)
    clock.advance(2 * 86_400)
    lookups(admin, admin.user("dr-wu", "epidemiologist"), 2)

    operator = Dashboard(client, ADMIN_TOKEN)  # signed in after the days went by
    first = operator.get("/audit")
    seqs = [int(seq) for seq in re.findall(r'data-seq="(\d+)"', first.text)]
    assert seqs == list(range(57, 7, -1))
    assert "intact" not in first.text  # the chain is walked when asked to
    verified = operator.get("/audit", verify="true")
    assert "The hash chain is intact" in verified.text and "57 条记录" in verified.text
    older = re.search(r'href="/dashboard/audit\?([^"]+)" rel="next"', first.text)
    assert older is not None and unescape(older[1]) == "before=8"
    second = operator.get("/audit", before="8")
    assert [int(s) for s in re.findall(r'data-seq="(\d+)"', second.text)] == list(range(7, 0, -1))
    assert 'rel="next"' not in second.text

    def shown(**filters: str) -> list[int]:
        page = operator.get("/audit", **filters)
        assert page.status_code == 200
        return [int(seq) for seq in re.findall(r'data-seq="(\d+)"', page.text)]

    assert shown(user="dr-wu") == [57, 56]
    assert shown(user="dr-li", action="person-lookup", until="2022-05-01")[:2] == [55, 54]
    assert shown(since="2022-05-03") == [57, 56]
    assert shown(action="tracing") == []
    bad = operator.get("/audit", since="yesterday")
    assert bad.status_code == 422 and "since" in bad.text and 'value="yesterday"' in bad.text


def test_the_audit_page_says_which_records_changed(
    operator: Dashboard, admin: Admin, settings: Settings
):
    lookups(admin, admin.user("dr-li", "epidemiologist"), 3)
    tamper(settings.database, "UPDATE audit_log SET purpose = 'routine' WHERE seq = 2")
    page = operator.get("/audit", verify="true")
    assert "The hash chain is broken" in page.text
    assert "record 2: its contents do not match its hash" in page.text
    assert "intact" not in page.text
