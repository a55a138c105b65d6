"""Users and roles: who reaches what, scopes, revocation, the audit log and its hash chain."""

import re

import pytest

from host.core.config import Settings
from host.storage import Database
from host.storage.users import chain_problems
from sentinel.cli import main
from shared.messages import API_PREFIX
from tests.host.conftest import Admin, Clock, Device, User, db_rows


@pytest.fixture
def venues(admin: Admin) -> tuple[dict, dict]:
    return admin.venue("Riverside Mall"), admin.venue("Hilltop Market")


# 110101-1990-0307-1234 in full-width digits, as a Chinese keyboard may type it.
FULL_WIDTH_NUMBER = "110101-1990-0307-1234".translate(
    {ord(d): 0xFF10 + int(d) for d in "0123456789"}
)


def anonymous(admin: Admin, method: str, path: str, **kwargs) -> int:
    return admin.client.request(method, f"{API_PREFIX}{path}", **kwargs).status_code


# ---- making users -------------------------------------------------------------------------


def test_a_user_gets_a_token_once_and_only_its_hash_is_kept(admin: Admin, settings: Settings):
    made = admin.ok("POST", "/users", json={"name": "dr-li", "role": "epidemiologist"})
    assert made["token"].startswith("user_") and made["role"] == "epidemiologist"
    listed = admin.ok("GET", "/users")
    assert [user["name"] for user in listed] == ["dr-li"]
    assert "token" not in listed[0]
    stored = db_rows(settings, "SELECT token_hash FROM users")
    assert len(stored) == 1 and made["token"].encode() not in bytes(stored[0][0])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "m", "role": "venue-manager"}, 422),  # a venue manager needs venues
        ({"name": "m", "role": "venue-manager", "venues": ["v_nowhere"]}, 422),
        ({"name": "s", "role": "screener"}, 422),  # a screener needs an organisation
        ({"name": "e", "role": "epidemiologist", "org": "acme"}, 422),
        ({"name": "a", "role": "admin", "venues": ["v_x"]}, 422),
        ({"name": "has space", "role": "admin"}, 422),
        ({"name": "x", "role": "superuser"}, 422),
    ],
)
def test_a_role_gets_the_scope_it_needs_and_no_other(admin: Admin, body: dict, status: int):
    assert admin.request("POST", "/users", json=body).status_code == status


def test_names_are_unique_even_after_revocation(admin: Admin):
    admin.user("dr-li", "epidemiologist")
    admin.ok("POST", "/users/dr-li/revoke")
    again = admin.request("POST", "/users", json={"name": "dr-li", "role": "epidemiologist"})
    assert (again.status_code, again.json()["error"]) == (409, "user-exists")
    assert admin.request("POST", "/users/nobody/revoke").status_code == 404


def test_a_revoked_token_is_refused_at_once(admin: Admin, clock: Clock):
    doctor = admin.user("dr-li", "epidemiologist")
    assert doctor.request("GET", "/admin/venues").status_code == 200
    revoked = admin.ok("POST", "/users/dr-li/revoke")
    assert revoked["revoked_at"] is not None
    refused = doctor.request("GET", "/admin/venues")
    assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized")


# ---- what each role reaches ---------------------------------------------------------------


def test_a_venue_manager_sees_their_venues_only(
    admin: Admin, venues: tuple[dict, dict], client, clock: Clock
):
    mine, other = venues
    manager = admin.user("shop-wang", "venue-manager", venues=[mine["id"]])
    Device.enroll(client, admin.token(mine["id"]), name="mine-1")
    Device.enroll(client, admin.token(other["id"]), name="other-1")

    assert [venue["id"] for venue in manager.ok("GET", "/admin/venues")] == [mine["id"]]
    assert manager.ok("GET", f"/admin/venues/{mine['id']}")["name"] == "Riverside Mall"
    assert manager.request("GET", f"/admin/venues/{other['id']}").status_code == 404
    assert manager.request("GET", f"/admin/venues/{mine['id']}/counts").status_code == 200
    assert manager.request("GET", f"/admin/venues/{other['id']}/counts").status_code == 404
    assert [device["name"] for device in manager.ok("GET", "/admin/devices")] == ["mine-1"]
    png = manager.request("GET", f"/admin/venues/{mine['id']}/code.png", params={"room": "101"})
    assert png.headers["content-type"] == "image/png"
    assert manager.request("GET", f"/admin/venues/{other['id']}/code.png").status_code == 404
    room = manager.ok("POST", f"/admin/venues/{mine['id']}/codes", json={})
    assert room["venue_id"] == mine["id"]

    # Counts, not people, and nothing of the operators'.
    for method, path in [
        ("POST", "/admin/venues"),
        ("PATCH", f"/admin/venues/{mine['id']}"),
        ("POST", "/admin/people"),
        ("POST", "/admin/enrollment-tokens"),
        ("GET", "/admin/stats"),
        ("GET", "/admin/users"),
        ("GET", "/admin/audit"),
        ("GET", "/people/p_anyone?purpose=case+1"),
    ]:
        assert manager.request(method, path, json={}).status_code == 403, path


def test_an_epidemiologist_reads_venues_and_people_but_runs_nothing(
    admin: Admin, venues: tuple[dict, dict]
):
    doctor = admin.user("dr-li", "epidemiologist")
    assert len(doctor.ok("GET", "/admin/venues")) == 2
    ref = admin.import_person()["person_ref"]
    person = doctor.ok("GET", f"/people/{ref}", params={"purpose": "case 2022-0417"})
    assert person["person_ref"] == ref and person["colour"] == "green"
    for method, path in [
        ("POST", f"/admin/venues/{venues[0]['id']}/codes"),
        ("GET", "/admin/devices"),
        ("POST", "/admin/people"),
        ("GET", "/admin/audit"),
        ("POST", "/admin/users"),
        ("POST", f"/admin/people/{ref}/codes"),
    ]:
        assert doctor.request(method, path, json={}).status_code == 403, path


def test_a_screener_reaches_no_venue_and_no_person(admin: Admin, venues: tuple[dict, dict]):
    screener = admin.user("hr-acme", "screener", org="acme")
    for path in ["/admin/venues", f"/admin/venues/{venues[0]['id']}/counts", "/people/p_x"]:
        assert screener.request("GET", path, params={"purpose": "x" * 5}).status_code == 403


def test_no_token_or_a_wrong_one_is_401(admin: Admin):
    assert anonymous(admin, "GET", "/admin/venues") == 401
    wrong = {"Authorization": "Bearer user_not-a-real-token"}
    assert anonymous(admin, "GET", "/people/p_x?purpose=case+1", headers=wrong) == 401


# ---- the audit log ------------------------------------------------------------------------


def test_a_person_lookup_needs_a_purpose_and_is_recorded(admin: Admin, clock: Clock):
    doctor = admin.user("dr-li", "epidemiologist")
    ref = admin.import_person()["person_ref"]
    assert doctor.request("GET", f"/people/{ref}").status_code == 422
    assert doctor.request("GET", f"/people/{ref}", params={"purpose": "x"}).status_code == 422
    # A purpose is kept: one that holds an ID number, however written, is refused.
    for purpose in ["case of 110101199003071234", f"id {FULL_WIDTH_NUMBER} check"]:
        refused = doctor.request("GET", f"/people/{ref}", params={"purpose": purpose})
        assert refused.status_code == 422, purpose
    assert admin.ok("GET", "/audit") == []

    doctor.ok("GET", f"/people/{ref}", params={"purpose": "case 2022-0417"})
    clock.advance(60)
    missing = doctor.request("GET", "/people/p_nobody", params={"purpose": "case 2022-0418"})
    assert missing.status_code == 404

    newest, first = admin.ok("GET", "/audit")
    assert first["seq"] == 1 and newest["seq"] == 2
    assert first["user_name"] == "dr-li" and first["role"] == "epidemiologist"
    assert first["action"] == "person-lookup" and first["subject"] == {"person": ref}
    assert (first["purpose"], first["records"]) == ("case 2022-0417", 1)
    assert newest["records"] == 0, "a look that found nobody is recorded too"
    assert newest["at"] > first["at"]
    assert admin.ok("GET", "/audit", params={"user": "nobody"}) == []
    assert [r["seq"] for r in admin.ok("GET", "/audit", params={"before": 2})] == [1]


def test_the_admin_token_is_an_admin_in_the_audit_log(admin: Admin):
    ref = admin.import_person()["person_ref"]
    admin.client.get(
        f"{API_PREFIX}/people/{ref}", params={"purpose": "ops check"}, headers=admin.headers
    )
    (record,) = admin.ok("GET", "/audit")
    assert (record["user_id"], record["role"]) == ("admin-token", "admin")


def lookups(admin: Admin, doctor: User, count: int) -> None:
    ref = admin.import_person()["person_ref"]
    for number in range(count):
        doctor.ok("GET", f"/people/{ref}", params={"purpose": f"case {number:04d}"})


def test_the_audit_log_refuses_changes_from_anyone(admin: Admin, settings: Settings):
    lookups(admin, admin.user("dr-li", "epidemiologist"), 3)
    storage = settings.database.open()
    try:
        with storage._write() as conn, pytest.raises(Exception, match="append-only"):
            storage._run(conn, "UPDATE audit_log SET purpose = 'nothing to see'")
        with storage._write() as conn, pytest.raises(Exception, match="append-only"):
            storage._run(conn, "DELETE FROM audit_log WHERE seq = 2")
        count, _, problems = chain_problems(storage.audit_chain())
    finally:
        storage.close()
    assert (count, problems) == (3, [])


def tamper(database: Database, *statements: str) -> None:
    """Change the log as someone with the database's own rights would: triggers off first."""
    if database.path is not None:
        import sqlite3

        with sqlite3.connect(database.path) as db:
            db.execute("DROP TRIGGER audit_log_no_update")
            db.execute("DROP TRIGGER audit_log_no_delete")
            for statement in statements:
                db.execute(statement)
        return
    import psycopg

    with psycopg.connect(database.url) as db:
        db.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        for statement in statements:
            db.execute(statement)


@pytest.mark.parametrize(
    ("statements", "found"),
    [
        (["UPDATE audit_log SET purpose = 'routine' WHERE seq = 2"], r"record 2: its contents"),
        (["DELETE FROM audit_log WHERE seq = 2"], r"record 3: expected sequence number 2"),
        (["UPDATE audit_log SET records = 0 WHERE seq = 1"], r"record 1: its contents"),
    ],
)
def test_audit_verify_finds_what_was_changed(
    admin: Admin,
    settings: Settings,
    database,
    statements: list[str],
    found: str,
    capsys: pytest.CaptureFixture[str],
):
    lookups(admin, admin.user("dr-li", "epidemiologist"), 3)
    db = str(database)
    assert main(["host", "audit", "verify", "--db", db]) == 0
    assert "audit log intact: 3 records" in capsys.readouterr().out
    tamper(settings.database, *statements)
    assert main(["host", "audit", "verify", "--db", db]) == 1
    out = capsys.readouterr().out
    assert re.search(found, out) and "audit log BROKEN" in out


# ---- the command line ---------------------------------------------------------------------


def test_users_are_made_listed_and_revoked_on_the_command_line(
    database, admin: Admin, venues: tuple[dict, dict], capsys: pytest.CaptureFixture[str]
):
    db = str(database)
    mine = venues[0]["id"]
    assert main(["host", "user", "add", "shop-wang", "--role", "venue-manager",
                 "--venue", mine, "--db", db]) == 0  # fmt: skip
    token = capsys.readouterr().out.strip().splitlines()[-1]
    manager = User(admin.client, token, "venue-manager")
    assert [venue["id"] for venue in manager.ok("GET", "/admin/venues")] == [mine]

    assert main(["host", "user", "add", "hr", "--role", "screener", "--db", db]) == 2
    assert "organisation is given for a screener" in capsys.readouterr().err
    assert main(["host", "user", "add", "x", "--role", "venue-manager",
                 "--venue", "v_nowhere", "--db", db]) == 2  # fmt: skip
    assert "no venue v_nowhere" in capsys.readouterr().err

    assert main(["host", "user", "list", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert re.search(rf"shop-wang\s+venue-manager\s+{mine}\s", listing)
    assert token not in listing

    assert main(["host", "user", "revoke", "shop-wang", "--db", db]) == 0
    assert manager.request("GET", "/admin/venues").status_code == 401
    assert main(["host", "user", "revoke", "nobody", "--db", db]) == 2


# ---- venues' places and check-ins' bindings -----------------------------------------------


def test_a_venue_has_a_district_street_and_time_zone(admin: Admin):
    venue = admin.ok(
        "POST",
        "/venues",
        json={
            "name": "Xinjiekou Market",
            "address": "1 Zhongshan Rd",
            "category": "public_place",
            "district": "玄武区",
            "street": "新街口街道",
        },
    )
    assert (venue["district"], venue["street"], venue["timezone"]) == (
        "玄武区",
        "新街口街道",
        "Asia/Shanghai",
    )
    changed = admin.ok("PATCH", f"/venues/{venue['id']}", json={"street": "梅园新村街道"})
    assert (changed["street"], changed["district"], changed["code_url"]) == (
        "梅园新村街道",
        "玄武区",
        venue["code_url"],
    )
    assert admin.ok("GET", f"/venues/{venue['id']}")["street"] == "梅园新村街道"
    bad = admin.request("PATCH", f"/venues/{venue['id']}", json={"timezone": "Mars/Olympus"})
    assert bad.status_code == 422 and "unknown time zone" in bad.json()["detail"]
    assert admin.request("PATCH", "/venues/v_nowhere", json={}).status_code == 404


def test_a_check_in_keeps_its_room_or_plate(device: Device, clock: Clock, settings: Settings):
    bound = device.checkin(binding="room:1203")
    response = device.request(
        "POST", "/device/checkins", json_body={"checkins": [bound]}, time_ms=clock.ms()
    )
    assert response.status_code == 200, response.text
    assert db_rows(settings, "SELECT binding FROM checkins") == [("room:1203",)]
    for binding in ["seat:3", "room:", "room:a:b", "plate:" + "X" * 33]:
        refused = device.request(
            "POST",
            "/device/checkins",
            json_body={"checkins": [device.checkin(binding=binding)]},
            time_ms=clock.ms(),
        )
        assert refused.status_code == 422, binding
