"""Staff-list screening through the API, on both backends: flags, jobs, keys, audit, roles."""

from __future__ import annotations

import csv
import io
import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from host.api.deps import Principal
from host.app import Retention, create_app, purge_expired
from host.core.config import Settings
from host.screening import (
    COLUMN_SPELLINGS,
    DAY_MS,
    KEY_HEADER,
    LEASE_MS,
    MAX_CSV_BYTES,
    MAX_ROWS,
    RETENTION_DAYS,
    LeaseLost,
    ScreeningRunner,
    StaffListError,
    parse_staff_list,
    submit_screening,
)
from host.storage import Database
from host.storage.screening import ScreeningStatus
from host.storage.users import Role
from shared.idnumber import id_check_character
from shared.keys import b64url_decode
from shared.messages import API_PREFIX
from tests.host.conftest import START, Admin, Clock, TestClient, User, db_contents, db_rows

PURPOSE = "reopening notice 2022-118"
WAIT_SECONDS = 30.0
HOUR = 3600


def id_number(serial: int) -> str:
    """A resident ID number with a right MOD 11-2 check character, one per serial."""
    first17 = f"1101011990{serial:07d}"
    return first17 + id_check_character(first17)


def id_number_ending_in_x() -> str:
    for serial in range(100, 1100):  # clear of the serials the tests use
        number = id_number(serial)
        if number.endswith("X"):
            return number
    raise AssertionError("no check character X among a thousand serials")


def with_wrong_check(number: str) -> str:
    return number[:17] + ("0" if number[17] != "0" else "1")


def staff_csv(rows: list[tuple[str, ...]], header: str = "id_number,name,staff_id") -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(header.split(","))
    writer.writerows(rows)
    return text.getvalue().encode()


def upload(
    user: User | Admin,
    body: bytes,
    *,
    hours: int = 48,
    purpose: str = PURPOSE,
    content_type: str = "text/csv",
) -> Any:
    params = {"max_test_age_hours": hours, "purpose": purpose}
    return user.request(
        "POST",
        "/screenings",
        params=params,
        content=body,
        headers={"Content-Type": content_type},
    )


def screen(user: User, body: bytes, **options: Any) -> dict:
    response = upload(user, body, **options)
    assert response.status_code == 202, response.text
    return response.json()


def wait_until_finished(user: User, screening_id: str) -> dict:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        job = user.ok("GET", f"/screenings/{screening_id}")
        if job["status"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"screening still {job['status']}"
        time.sleep(0.05)


def results(user: User, screening_id: str, key: str | None = None, **params: Any) -> dict:
    headers = {} if key is None else {KEY_HEADER: key}
    return user.ok(
        "GET",
        f"/screenings/{screening_id}",
        params={"purpose": PURPOSE, **params},
        headers=headers,
    )


def import_people(admin: Admin, people: list[dict]) -> None:
    admin.ok("POST", "/people", json={"people": people})


def person(
    number: str, colour: str = "green", hours_ago: float | None = 12, result: str = "negative"
) -> dict:
    entry: dict = {"id_number": number, "colour": colour}
    if hours_ago is not None:
        sampled = START - timedelta(hours=hours_ago)
        entry["test"] = {"sampled_at": sampled.isoformat(), "result": result}
    return entry


def audit(admin: Admin, action: str) -> list[dict]:
    return admin.ok("GET", "/audit", params={"action": action})


@pytest.fixture
def hr(admin: Admin) -> User:
    return admin.user("hr-acme", "screener", org="Acme Logistics")


# ---- flags ------------------------------------------------------------------------------------


def test_every_flag_with_hours_only_where_the_test_is_too_old(admin: Admin, hr: User):
    ending_in_x = id_number_ending_in_x()
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in id_number(9))
    import_people(
        admin,
        [
            person(id_number(1), hours_ago=12),
            person(id_number(2), hours_ago=60),
            person(id_number(3), hours_ago=None),
            person(id_number(4), colour="yellow"),
            person(id_number(5), result="positive"),
            person(id_number(6), hours_ago=48),  # exactly the age asked: still recent
            person(id_number(7), hours_ago=48 + 1 / 60),  # a minute more: 49 hours, rounded up
            person(ending_in_x),
            person(id_number(9), colour="red", hours_ago=None),
        ],
    )
    rows = [
        (id_number(1),),
        (id_number(2),),
        (id_number(3),),
        (id_number(4),),
        (id_number(5),),
        (id_number(6),),
        (id_number(7),),
        (id_number(8),),  # valid, not in the register
        (with_wrong_check(id_number(1)),),
        ("",),  # an empty number in a row that is not blank
        (ending_in_x.lower(),),  # a lower-case x is the same number
        (fullwidth,),  # so are full-width digits
        (id_number(1)[:15],),  # a first-generation number has no check character
    ]
    listed = [(*row, f"S{n}") for n, row in enumerate(rows)]
    job = screen(hr, staff_csv(listed, "id_number,staff_id"))
    assert wait_until_finished(hr, job["id"])["status"] == "done"
    answer = results(hr, job["id"])
    assert [(row["row"], row["flag"], row["hours_since_test"]) for row in answer["rows"]] == [
        (1, "ok", None),
        (2, "no-recent-test", 60),
        (3, "no-recent-test", None),
        (4, "not-green", None),
        (5, "not-green", None),
        (6, "ok", None),
        (7, "no-recent-test", 49),
        (8, "not-registered", None),
        (9, "invalid-id-number", None),
        (10, "invalid-id-number", None),
        (11, "ok", None),
        (12, "not-green", None),
        (13, "invalid-id-number", None),
    ]
    assert answer["summary"] == {
        "ok": 3,
        "no-recent-test": 3,
        "not-green": 3,
        "not-registered": 1,
        "invalid-id-number": 3,
    }
    # Flags only: no colour, no test date, no person reference.
    assert {key for row in answer["rows"] for key in row} == {
        "row", "flag", "hours_since_test", "name", "staff_id"
    }  # fmt: skip
    assert all(row["name"] is None and row["staff_id"] is None for row in answer["rows"])
    assert results(hr, job["id"], job["key"])["rows"][9]["staff_id"] == "S9"


def test_rows_are_read_a_page_at_a_time_and_by_flag(admin: Admin, hr: User):
    import_people(admin, [person(id_number(1)), person(id_number(2), colour="red")])
    rows = [(id_number(n),) for n in (1, 2, 3, 1, 2)] + [("nonsense",)]
    job = screen(hr, staff_csv(rows, "id_number"))
    assert job["key"] is None and job["columns"] == [], "no names, no key"
    wait_until_finished(hr, job["id"])
    pages, after = [], 0
    for _ in range(len(rows)):  # bounded: one page per row at most
        page = results(hr, job["id"], after=after, limit=4)
        pages.append([row["row"] for row in page["rows"]])
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert pages == [[1, 2, 3, 4], [5, 6]]
    flagged = results(hr, job["id"], flag=["not-green", "invalid-id-number"])
    assert [(row["row"], row["flag"]) for row in flagged["rows"]] == [
        (2, "not-green"),
        (5, "not-green"),
        (6, "invalid-id-number"),
    ]
    assert results(hr, job["id"], limit=0)["rows"] == []


# ---- jobs -------------------------------------------------------------------------------------


def test_the_upload_answers_at_once_and_the_job_finishes_in_the_background(
    admin: Admin, hr: User
):
    import_people(admin, [person(id_number(n)) for n in range(1, 301)])
    rows = [(id_number(n), f"员工{n}", f"E{n:04d}") for n in range(1, 601)] + [("bad", "x", "y")]
    response = upload(hr, staff_csv(rows))
    assert response.status_code == 202, response.text
    created = response.json()
    assert response.headers["location"] == f"/api/v1/screenings/{created['id']}"
    assert created["status"] == "queued"
    assert (created["total"], created["processed"]) == (601, 1), "invalid ones: flagged at once"
    assert created["columns"] == ["name", "staff_id"]
    assert created["expires_at"] > created["created_at"]
    job = wait_until_finished(hr, created["id"])
    assert (job["status"], job["processed"], job["total"]) == ("done", 601, 601)
    assert job["summary"] is None and job["rows"] is None, "progress alone, without a purpose"
    listed = hr.ok("GET", "/screenings")
    assert [item["id"] for item in listed] == [created["id"]]
    assert "summary" not in listed[0] and "rows" not in listed[0]


def test_a_job_no_request_started_is_run_by_the_workers_background_task(
    client: TestClient, hr: User, settings: Settings
):
    context = client.app.state.context
    screener = Principal("usr_hr", "hr-acme", Role.SCREENER, org="Acme Logistics")
    staff = parse_staff_list(staff_csv([(id_number(1),)], "id_number"))
    screening, _key = submit_screening(
        context, screener, staff, purpose=PURPOSE, max_test_age_hours=48
    )
    assert screening.status is ScreeningStatus.QUEUED
    job = wait_until_finished(hr, screening.id)
    assert job["status"] == "done"
    assert results(hr, screening.id)["rows"][0]["flag"] == "not-registered"


def test_a_job_left_by_a_dead_worker_is_finished_by_another_once_its_lease_ran_out(
    settings: Settings, clock: Clock
):
    app = create_app(settings)
    context = app.state.context
    assert isinstance(settings.database, Database)
    other_storage = settings.database.open()
    try:
        client = TestClient(app)  # no lifespan: only the two runners below run jobs
        admin = Admin(client)
        hr = admin.user("hr-acme", "screener", org="Acme Logistics")
        import_people(admin, [person(id_number(1)), person(id_number(3), hours_ago=100)])
        rows = [(id_number(n), f"name {n}", f"S{n}") for n in range(1, 7)] + [("0", "z", "z")]
        screener = Principal("usr_hr", "hr-acme", Role.SCREENER, org="Acme Logistics")
        screening, key = submit_screening(
            context, screener, parse_staff_list(staff_csv(rows)), purpose=PURPOSE,
            max_test_age_hours=48,
        )  # fmt: skip
        first = ScreeningRunner(context.storage, context.settings.now_ms, chunk_rows=2)
        second = ScreeningRunner(other_storage, context.settings.now_ms, chunk_rows=2)
        lease = first.claim()
        assert lease is not None and lease.screening.id == screening.id
        assert first.step(lease, 0) == 2
        progress = hr.ok("GET", f"/screenings/{screening.id}")
        assert (progress["status"], progress["processed"], progress["total"]) == ("running", 3, 7)
        early = hr.request(
            "GET", f"/screenings/{screening.id}/result.csv", params={"purpose": PURPOSE}
        )
        assert early.status_code == 409 and early.json()["error"] == "screening-not-done"
        assert results(hr, screening.id)["rows"] is None
        # The first worker stops here, as if dead. Its lease holds until it runs out; then the
        # second takes the job over and finishes it from where the first left it.
        assert second.claim() is None
        clock.advance(LEASE_MS / 1000 + 1)
        taken = second.claim()
        assert taken is not None and taken.screening.id == screening.id
        with pytest.raises(LeaseLost):
            first.step(lease, 2)  # a worker that was only slow writes nothing more
        assert second.run(taken)
        assert not first.run(lease), "nor does it finish the job"
        answer = results(hr, screening.id, key)
        assert (answer["status"], answer["processed"]) == ("done", 7)
        assert [(row["row"], row["flag"], row["name"]) for row in answer["rows"]] == [
            (1, "ok", "name 1"),
            (2, "not-registered", "name 2"),
            (3, "no-recent-test", "name 3"),
            (4, "not-registered", "name 4"),
            (5, "not-registered", "name 5"),
            (6, "not-registered", "name 6"),
            (7, "invalid-id-number", "z"),
        ]
        # Judged as of the job's creation, not of the takeover a lease later: still 100 h.
        assert answer["rows"][2]["hours_since_test"] == 100
        assert second.claim() is None, "a done job is not claimed again"
    finally:
        other_storage.close()
        context.storage.close()


# ---- names and staff ids: echoed back with the key, kept nowhere ------------------------------


def test_names_and_staff_ids_come_back_only_with_the_key_and_are_stored_nowhere(
    admin: Admin, hr: User, settings: Settings, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    staff = [
        (id_number(1), "张伟明", "STAFF-7731-QX"),
        (id_number(2), "O'Brien, Siobhán", "STAFF-0042-ZK"),
        (with_wrong_check(id_number(3)), "李小红", "STAFF-9000-WE"),
    ]
    import_people(admin, [person(id_number(1))])
    job = screen(hr, staff_csv(staff))
    key = job["key"]
    assert key and len(key) == 43
    wait_until_finished(hr, job["id"])

    without = results(hr, job["id"])
    assert [(row["name"], row["staff_id"]) for row in without["rows"]] == [(None, None)] * 3
    with_key = results(hr, job["id"], key)
    assert [(row["name"], row["staff_id"]) for row in with_key["rows"]] == [
        (name, staff_id) for _number, name, staff_id in staff
    ]
    download = hr.request(
        "GET",
        f"/screenings/{job['id']}/result.csv",
        params={"purpose": PURPOSE},
        headers={KEY_HEADER: key},
    )
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.content.startswith("\ufeff".encode())
    assert list(csv.reader(io.StringIO(download.content.decode("utf-8-sig")))) == [
        ["row", "name", "staff_id", "flag", "hours_since_test"],
        ["1", "张伟明", "STAFF-7731-QX", "ok", ""],
        ["2", "O'Brien, Siobhán", "STAFF-0042-ZK", "not-registered", ""],
        ["3", "李小红", "STAFF-9000-WE", "invalid-id-number", ""],
    ]
    bare = hr.request("GET", f"/screenings/{job['id']}/result.csv", params={"purpose": PURPOSE})
    assert bare.text.splitlines()[0] == "\ufeffrow,flag,hours_since_test"

    other = screen(hr, staff_csv([(id_number(5), "x", "y")]))
    for wrong, says in [
        (other["key"], "not the key of this screening"),
        ("not a key", "base64url of 32 bytes"),
        (key[:-2], "base64url of 32 bytes"),
    ]:
        response = hr.request(
            "GET",
            f"/screenings/{job['id']}",
            params={"purpose": PURPOSE},
            headers={KEY_HEADER: wrong},
        )
        assert response.status_code == 422
        assert response.json()["error"] == "bad-screening-key"
        assert says in response.json()["detail"]

    stored = db_contents(settings)
    assert b64url_decode(key) not in stored
    for secret in [key] + [value for row in staff for value in row]:
        assert secret.encode() not in stored, "kept in clear"
        assert secret.encode().hex().encode() not in stored, "kept in clear, as bytes"
        assert secret not in caplog.text, "logged"


# ---- retention --------------------------------------------------------------------------------


def screening_rows_stored(settings: Settings) -> tuple[int, int]:
    return (
        db_rows(settings, "SELECT COUNT(*) FROM screenings")[0][0],
        db_rows(settings, "SELECT COUNT(*) FROM screening_rows")[0][0],
    )


def test_jobs_and_rows_are_deleted_after_the_retention_period(
    client: TestClient, hr: User, clock: Clock, settings: Settings
):
    context = client.app.state.context
    job = screen(hr, staff_csv([(id_number(1),), (id_number(2),)], "id_number"))
    wait_until_finished(hr, job["id"])
    retention_s = RETENTION_DAYS * DAY_MS / 1000
    clock.advance(retention_s - 60)
    purge_expired(context, Retention())
    assert screening_rows_stored(settings) == (1, 2)
    assert results(hr, job["id"])["status"] == "done"
    clock.advance(120)
    gone = hr.request("GET", f"/screenings/{job['id']}")
    assert gone.status_code == 404, "past its expiry, before the purge"
    assert hr.ok("GET", "/screenings") == []
    purge_expired(context, Retention())
    assert screening_rows_stored(settings) == (0, 0)

    # Never longer than the host keeps check-ins.
    job = screen(hr, staff_csv([(id_number(1),)], "id_number"))
    wait_until_finished(hr, job["id"])
    clock.advance(3 * 24 * HOUR + 60)
    purge_expired(context, Retention(checkin_days=30))
    assert screening_rows_stored(settings) == (1, 1)
    purge_expired(context, Retention(checkin_days=3))
    assert screening_rows_stored(settings) == (0, 0)


# ---- audit ------------------------------------------------------------------------------------


def test_making_a_job_and_every_read_of_results_is_audited(admin: Admin, hr: User):
    rows = [(id_number(n),) for n in range(1, 6)]
    job = screen(hr, staff_csv(rows, "id_number"), purpose="notice 7 of the district")
    wait_until_finished(hr, job["id"])
    (created,) = audit(admin, "screening-create")
    assert created["user_name"] == "hr-acme" and created["role"] == "screener"
    assert created["subject"] == {"org": "Acme Logistics", "screening": job["id"]}
    assert (created["purpose"], created["records"]) == ("notice 7 of the district", 5)

    hr.ok("GET", f"/screenings/{job['id']}")  # progress: no personal data, no record
    hr.ok("GET", "/screenings")
    assert audit(admin, "screening-result") == []
    results(hr, job["id"], limit=2)
    results(hr, job["id"], after=4)
    read = audit(admin, "screening-result")
    assert [(record["records"], record["purpose"]) for record in read] == [
        (1, PURPOSE),
        (2, PURPOSE),
    ]
    assert read[0]["subject"] == {"org": "Acme Logistics", "screening": job["id"]}
    hr.request("GET", f"/screenings/{job['id']}/result.csv", params={"purpose": PURPOSE})
    (downloaded,) = audit(admin, "screening-download")
    assert downloaded["records"] == 5

    no_purpose = hr.request("GET", f"/screenings/{job['id']}/result.csv")
    assert no_purpose.status_code == 422
    with_number = hr.request(
        "GET", f"/screenings/{job['id']}/result.csv", params={"purpose": f"case {id_number(1)}"}
    )
    assert with_number.status_code == 422
    assert len(audit(admin, "screening-download")) == 1, "refused reads read nothing"


# ---- roles ------------------------------------------------------------------------------------


def every_endpoint(screening_id: str) -> list[tuple[str, str, dict]]:
    return [
        ("POST", "/screenings", {"params": {"max_test_age_hours": 48, "purpose": PURPOSE}}),
        ("GET", "/screenings", {}),
        ("GET", f"/screenings/{screening_id}", {}),
        ("GET", f"/screenings/{screening_id}", {"params": {"purpose": PURPOSE}}),
        ("GET", f"/screenings/{screening_id}/result.csv", {"params": {"purpose": PURPOSE}}),
    ]


def test_only_screeners_screen_and_only_their_organisations_lists(
    client: TestClient, admin: Admin, hr: User
):
    body = staff_csv([(id_number(1), "张伟明", "S1")])
    job = screen(hr, body)
    wait_until_finished(hr, job["id"])
    venue = admin.venue()
    others = [
        admin,  # the host's admin token
        admin.user("ops", "admin"),
        admin.user("epi", "epidemiologist"),
        admin.user("manager", "venue-manager", venues=[venue["id"]]),
    ]
    for method, path, options in every_endpoint(job["id"]):
        for other in others:
            response = client.request(
                method, f"{API_PREFIX}{path}", headers=other.headers, **options
            )
            assert response.status_code == 403, (method, path, response.text)
        anonymous = client.request(method, f"{API_PREFIX}{path}", **options)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"

    rival = admin.user("hr-rival", "screener", org="Rival Couriers")
    for method, path, options in every_endpoint(job["id"])[2:]:
        response = rival.request(method, path, headers={KEY_HEADER: job["key"]}, **options)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"] == "unknown-screening"
    assert rival.ok("GET", "/screenings") == []
    rivals_own = screen(rival, body)
    assert [item["id"] for item in rival.ok("GET", "/screenings")] == [rivals_own["id"]]
    assert [item["id"] for item in hr.ok("GET", "/screenings")] == [job["id"]]
    assert results(hr, job["id"], job["key"])["rows"][0]["name"] == "张伟明"


# ---- bad uploads ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "the file is empty"),
        (b"\r\n \r\n", "the file is empty"),
        (f"{id_number(1)},Zhang\n{id_number(2)},Li\n".encode(), "holds an ID number, not column"),
        (b"id_number,email\n1,a@b\n", "column 2 of the header is not known"),
        (b"name,staff_id\nZhang,1\n", "no id_number column"),
        (b"id_number,ID No.\n1,2\n", "both id_number"),
        (b"id_number;name\n1;Zhang\n", "separated by commas"),
        ("id_number,name\n1,张三\n".encode("utf-16"), "UTF-16"),
        ("id_number,name\n1,张三\n".encode("gbk"), "not UTF-8 text (byte 17)"),
        (b"id_number,name\n1,Zh\x00ang\n", "holds NUL bytes: it is not CSV"),
        (b"PK\x03\x04\x14\x00\x06\x00", "a spreadsheet workbook, not CSV"),
        (b"id_number,name\n1," + b"x" * 200_000, "line 2 is not CSV: field larger than"),
        (f"id_number,name\n{id_number(1)},Zhang,Wei\n".encode(), "row 1 has 3 fields, the head"),
        (f"id_number,name\n1,{'x' * 101}\n".encode(), "name is longer than 100 characters"),
        (b"id_number,name\n", "no rows under its header"),
    ],
)
def test_a_malformed_staff_list_is_a_clear_422_quoting_no_cell(hr: User, body: bytes, says: str):
    response = upload(hr, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "bad-staff-list"
    assert says in response.json()["detail"]
    assert id_number(1) not in response.text and "Zhang" not in response.text


def test_header_spellings_blank_lines_and_a_bom_are_accepted():
    lines = ["\ufeff身份证号码, 姓名 ,工号", "", f"{id_number(1)},张三,E1", ",,"]
    lines.append(f"{id_number(2)},李四")
    body = "\r\n".join(lines).encode()
    staff = parse_staff_list(body)
    assert staff.echo_columns == ("name", "staff_id")
    assert [(row.row_no, row.id_number, row.echo) for row in staff.rows] == [
        (1, id_number(1), ("张三", "E1")),
        (2, id_number(2), ("李四", "")),
    ]
    reordered = parse_staff_list(b"Staff ID,ID-Number,Full Name,\nE1,123,Zhang,\n")
    assert reordered.echo_columns == ("name", "staff_id")
    assert [(row.id_number, row.echo) for row in reordered.rows] == [("123", ("Zhang", "E1"))]
    for spellings in COLUMN_SPELLINGS.values():
        for spelling in spellings:
            header = spelling if spelling in COLUMN_SPELLINGS["id_number"] else f"id,{spelling}"
            assert parse_staff_list(f"{header}\n1{',x' * header.count(',')}\n".encode()).rows


def test_too_large_a_list_or_another_body_type_is_refused(hr: User):
    rows = upload(hr, b"id_number\n" + b"1\n" * (MAX_ROWS + 1))
    assert rows.status_code == 413
    assert f"at most {MAX_ROWS:,} rows" in rows.json()["detail"]
    big = upload(hr, b"id_number,name\n" + b"1," + b"x" * MAX_CSV_BYTES + b"\n")
    assert big.status_code == 413
    for content_type in ("multipart/form-data; boundary=x", "application/json"):
        refused = upload(hr, b"id_number\n1\n", content_type=content_type)
        assert refused.status_code == 415
        assert "Content-Type: text/csv" in refused.json()["detail"]
    for params in (
        {"max_test_age_hours": 0, "purpose": PURPOSE},
        {"max_test_age_hours": 48},
        {"max_test_age_hours": 48, "purpose": f"check {id_number(1)}"},
    ):
        response = hr.request("POST", "/screenings", params=params, content=b"id_number\n1\n")
        assert response.status_code == 422, params
    assert hr.ok("GET", "/screenings") == [], "nothing refused was kept"


# ---- properties -------------------------------------------------------------------------------

cell = st.text(alphabet=st.characters(codec="utf-8"), max_size=20) | st.sampled_from(
    [id_number(1), "1101011990000001X", '"', ",", "\r\n", "  ", "\x00"]
)
header_cell = st.sampled_from(
    [spelling for spellings in COLUMN_SPELLINGS.values() for spelling in spellings]
    + ["", "email", "ID No.", " NAME "]
)


@st.composite
def csv_like(draw: st.DrawFn) -> bytes:
    """Text near a staff list: a header of known and unknown words, rows of odd cells."""
    separator = draw(st.sampled_from([",", ";", "\t"]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    header = draw(st.lists(header_cell, min_size=1, max_size=4))
    rows = draw(st.lists(st.lists(cell, max_size=5), max_size=6))
    text = newline.join(separator.join(line) for line in [header, *rows])
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return (bom + text).encode(draw(st.sampled_from(["utf-8", "utf-16", "gb18030"])))


@settings(max_examples=500, database=None, deadline=None)
@given(data=st.binary(max_size=400) | csv_like())
def test_any_bytes_parse_to_rows_or_a_clear_error(data: bytes):
    try:
        staff = parse_staff_list(data)
    except StaffListError as error:
        event(error.detail.split(":")[0])
        assert error.status in (413, 422) and error.detail
        return
    event("parsed")
    assert [row.row_no for row in staff.rows] == list(range(1, len(staff.rows) + 1))
    assert all(len(row.echo) == len(staff.echo_columns) for row in staff.rows)


@settings(
    max_examples=40,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.binary(max_size=300) | csv_like())
def test_no_upload_makes_the_screening_endpoint_fail(hr: User, data: bytes):
    # The test client raises on a server error, so a 500 fails the test before the assert.
    response = upload(hr, data)
    event(f"status {response.status_code}")
    assert response.status_code in (202, 413, 422), response.text
