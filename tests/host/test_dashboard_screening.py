"""The dashboard's screening pages on both backends: upload, progress, flags, key, CSV, scope."""

from __future__ import annotations

import csv
import io
import re

import pytest

from host.core.config import Settings
from host.screening import MAX_CSV_BYTES
from shared.idnumber import id_check_character
from tests.host.conftest import Admin, TestClient, db_rows
from tests.host.test_dashboard_tracing import sign_in, token_of

PURPOSE = "reopening notice 2022-118"


def id_number(serial: int) -> str:
    first17 = f"1101011990{serial:07d}"
    return first17 + id_check_character(first17)


STAFF = (
    "工号,姓名,身份证号\r\n"
    f"E1,张伟明,{id_number(1)}\r\n"
    f"E2,李小红,{id_number(2)}\r\n"
    f"E3,王芳,{id_number(3)}\r\n"
    f"E4,赵强,{id_number(4)[:-1]}\r\n"
).encode()


@pytest.fixture
def screener(client: TestClient, admin: Admin) -> str:
    """A screener of Acme signed in on `client`; two staff registered: one green, one yellow."""
    admin.import_person(id_number=id_number(1), colour="green", hours_ago=10)
    admin.import_person(id_number=id_number(2), colour="yellow", hours_ago=10)
    return sign_in(client, token_of(admin, "hr-acme", "screener", org="Acme Logistics"))


def upload(client: TestClient, csrf: str | None, data: bytes = STAFF, **fields: str):
    form = {"purpose": PURPOSE, "max_test_age_hours": "48"} | fields
    if csrf is not None:
        form["csrf"] = csrf
    files = {"staff_list": ("staff.csv", data, "text/csv")}
    return client.post("/dashboard/screening", data=form, files=files, follow_redirects=False)


def uploaded(client: TestClient, csrf: str) -> tuple[str, str]:
    """Upload STAFF: the screening's id and its key, from the page that answers."""
    answer = upload(client, csrf)
    assert answer.status_code == 201, answer.text
    found = re.search(r'value="([^"]+)" data-screening-key="(scr_\w+)"', answer.text)
    assert found is not None
    return found.group(2), found.group(1)


def table(html: str, table_id: str) -> list[list[str]]:
    """A table's body cells, row by row, without tags."""
    body = re.search(rf'<table id="{table_id}".*?<tbody>(.*?)</tbody>', html, re.S)
    assert body is not None, f"no table {table_id}"
    return [
        [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells]
        for cells in (
            re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
        )
    ]


def audit_actions(settings: Settings) -> list[tuple[str, str]]:
    return [
        (action, purpose)
        for action, purpose in db_rows(
            settings, "SELECT action, purpose FROM audit_log ORDER BY seq"
        )
    ]


# ---- upload, progress, results -----------------------------------------------------------------


def test_an_upload_shows_its_key_once_then_the_job_its_summary_and_flags(
    client: TestClient, settings: Settings, screener: str
):
    screening_id, key = uploaded(client, screener)

    assert len(key) == 43  # base64url of 32 bytes
    listed = client.get("/dashboard/screening")
    assert table(listed.text, "screenings")[0][:4] == [
        screening_id, "已完成 Done", "4 / 4", PURPOSE,
    ]  # fmt: skip
    assert key not in listed.text
    progress = client.get(f"/dashboard/screening/{screening_id}/progress")
    assert progress.json() == {"status": "done", "processed": 4, "total": 4}
    assert progress.headers["cache-control"] == "no-store"

    page = client.get(f"/dashboard/screening/{screening_id}")

    assert page.status_code == 200
    assert key not in page.text and "data-progress-url" not in page.text
    assert [row[:2] for row in table(page.text, "summary")] == [
        ["正常 OK", "1"],
        ["无近期核酸 No recent test", "0"],
        ["非绿码 Not green", "1"],
        ["未登记 Not registered", "1"],
        ["身份证号无效 Invalid ID number", "1"],
    ]
    assert table(page.text, "flagged") == [
        ["2", "非绿码 Not green", ""],
        ["3", "未登记 Not registered", ""],
        ["4", "身份证号无效 Invalid ID number", ""],
    ]
    assert "张伟明" not in page.text and "李小红" not in page.text
    assert audit_actions(settings) == [
        ("screening-create", PURPOSE),
        ("screening-result", PURPOSE),
    ]


def test_the_key_opens_the_names_and_a_wrong_key_says_so(
    client: TestClient, settings: Settings, screener: str
):
    screening_id, key = uploaded(client, screener)
    path = f"/dashboard/screening/{screening_id}"

    named = client.post(path, data={"csrf": screener, "key": key})
    assert named.status_code == 200
    assert table(named.text, "flagged")[0] == ["2", "李小红", "E2", "非绿码 Not green", ""]
    assert key not in named.text  # the key field is filled by the tab, never by the host

    wrong = client.post(path, data={"csrf": screener, "key": key[:-2] + "AA"})
    assert wrong.status_code == 422
    assert "this is not the key of this screening" in wrong.text
    assert "李小红" not in wrong.text
    assert [action for action, _ in audit_actions(settings)].count("screening-result") == 2


def test_the_download_is_the_apis_csv_with_names_by_the_key_and_audited(
    client: TestClient, settings: Settings, screener: str
):
    screening_id, key = uploaded(client, screener)
    path = f"/dashboard/screening/{screening_id}/result.csv"

    with_names = client.post(path, data={"csrf": screener, "key": key})
    without = client.post(path, data={"csrf": screener})

    assert with_names.status_code == 200, with_names.text
    assert with_names.headers["content-type"] == "text/csv; charset=utf-8"
    assert with_names.headers["content-disposition"] == f'attachment; filename="{screening_id}.csv"'
    assert with_names.headers["cache-control"] == "no-store"
    assert with_names.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(with_names.content.decode("utf-8-sig"))))
    assert rows == [
        ["row", "name", "staff_id", "flag", "hours_since_test"],
        ["1", "张伟明", "E1", "ok", ""],
        ["2", "李小红", "E2", "not-green", ""],
        ["3", "王芳", "E3", "not-registered", ""],
        ["4", "赵强", "E4", "invalid-id-number", ""],
    ]
    plain = list(csv.reader(io.StringIO(without.content.decode("utf-8-sig"))))
    assert plain[0] == ["row", "flag", "hours_since_test"] and len(plain) == 5
    for answer in (with_names, without):
        assert id_number(1) not in answer.text
    assert [action for action, _ in audit_actions(settings)][-2:] == [
        "screening-download",
        "screening-download",
    ]


def test_a_list_with_no_names_goes_straight_to_its_page(client: TestClient, screener: str):
    answer = upload(client, screener, f"id_number\r\n{id_number(1)}\r\n".encode())
    assert answer.status_code == 303
    assert re.fullmatch(r"/dashboard/screening/scr_\w+", answer.headers["location"])
    page = client.get(answer.headers["location"])
    assert table(page.text, "summary")[0][:2] == ["正常 OK", "1"]
    assert 'name="key"' not in page.text and 'id="no-flags"' in page.text


# ---- problems ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fields", "status", "message"),
    [
        (b"name,staff_id\r\nx,1\r\n", {}, 422, "the header names no id_number column"),
        (b"\xd0\xd5\xc3\xfb,id\r\n", {}, 422, "the file is not UTF-8 text"),
        (STAFF, {"purpose": "no"}, 422, "at least 3 characters"),
        (STAFF, {"purpose": f"list of {id_number(9)}"}, 422, "must not hold an ID number"),
        (STAFF, {"max_test_age_hours": "0"}, 422, "whole hours, 1 to 720"),
        (b"", {}, 422, "the file is empty"),
    ],
)
def test_a_bad_upload_says_why_and_keeps_what_was_typed(
    client: TestClient, settings: Settings, screener: str, data: bytes, fields: dict,
    status: int, message: str,
):  # fmt: skip
    answer = upload(client, screener, data, **fields)
    assert answer.status_code == status
    problems = re.search(r'id="problems">(.*?)</div>', answer.text, re.S)
    assert problems is not None and message in problems.group(1)
    purpose = fields.get("purpose", PURPOSE)
    shown = "" if "1101" in purpose else purpose
    assert f'name="purpose" value="{shown}"' in answer.text
    assert id_number(9) not in answer.text
    assert audit_actions(settings) == []


def test_an_upload_over_the_apis_size_limit_is_refused(
    client: TestClient, settings: Settings, screener: str
):
    just_over = b"id_number\r\n" + b"1" * MAX_CSV_BYTES  # within the form's allowance
    answer = upload(client, screener, just_over)
    assert answer.status_code == 413
    assert f"a staff list is at most {MAX_CSV_BYTES:,} bytes: split it" in answer.text
    far_over = b"id_number\r\n" + b"1" * (MAX_CSV_BYTES + 70_000)
    assert upload(client, screener, far_over).status_code == 413  # before a byte is read
    assert audit_actions(settings) == []


def test_a_download_before_the_job_is_done_says_so(
    client: TestClient, admin: Admin, settings: Settings, screener: str
):
    from host.api.deps import Principal
    from host.screening import parse_staff_list, submit_screening
    from host.storage.users import Role

    context = client.app.state.context
    principal = Principal("u", "hr-acme", Role.SCREENER, org="Acme Logistics")
    queued, _key = submit_screening(
        context, principal, parse_staff_list(STAFF), purpose=PURPOSE, max_test_age_hours=48
    )
    page = client.get(f"/dashboard/screening/{queued.id}")
    assert f'data-progress-url="/dashboard/screening/{queued.id}/progress"' in page.text
    assert 'id="progress" max="4" value="1"' in page.text  # the invalid number, flagged at once
    answer = client.post(f"/dashboard/screening/{queued.id}/result.csv", data={"csrf": screener})
    assert answer.status_code == 409 and "not done yet" in answer.text


# ---- who may ----------------------------------------------------------------------------------


def test_another_organisations_screening_is_not_found(
    client: TestClient, admin: Admin, screener: str
):
    screening_id, key = uploaded(client, screener)
    other = sign_in(client, token_of(admin, "hr-other", "screener", org="Other Ltd"))
    path = f"/dashboard/screening/{screening_id}"
    assert client.get(path).status_code == 404
    assert client.get(f"{path}/progress").status_code == 404
    for target in (path, f"{path}/result.csv"):
        answer = client.post(target, data={"csrf": other, "key": key})
        assert answer.status_code == 404 and "No such screening" in answer.text
    assert screening_id not in client.get("/dashboard/screening").text


@pytest.mark.parametrize(
    ("role", "scope"),
    [("admin", {}), ("epidemiologist", {}), ("venue-manager", {"venues": ["mall"]})],
)
def test_other_roles_get_403(
    client: TestClient, admin: Admin, venue: dict, settings: Settings, role: str, scope: dict
):
    if "venues" in scope:
        scope = {"venues": [venue["id"]]}
    csrf = sign_in(client, token_of(admin, f"someone-{role}", role, **scope))
    for path in (
        "/dashboard/screening",
        "/dashboard/screening/scr_x",
        "/dashboard/screening/scr_x/progress",
    ):
        assert client.get(path).status_code == 403, path
    assert upload(client, csrf).status_code == 403
    assert audit_actions(settings) == []


@pytest.mark.parametrize(
    "path",
    ["/dashboard/screening", "/dashboard/screening/scr_x", "/dashboard/screening/scr_x/progress"],
)
def test_signed_out_is_sent_to_sign_in(client: TestClient, path: str):
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/dashboard/sign-in?then={path}"


@pytest.mark.parametrize("sent", [None, "0" * 64])
def test_forms_without_this_sessions_csrf_token_are_refused(
    client: TestClient, settings: Settings, screener: str, sent: str | None
):
    screening_id, key = uploaded(client, screener)
    before = audit_actions(settings)
    assert upload(client, sent).status_code == 400
    form = {"key": key} | ({} if sent is None else {"csrf": sent})
    for path in (
        f"/dashboard/screening/{screening_id}",
        f"/dashboard/screening/{screening_id}/result.csv",
    ):
        refused = client.post(path, data=form)
        assert refused.status_code == 400 and "Stale form" in refused.text
    assert audit_actions(settings) == before
    assert len(table(client.get("/dashboard/screening").text, "screenings")) == 1
