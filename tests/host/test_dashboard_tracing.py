"""The dashboard's tracing page on both backends: the query, its audit, CSV, errors, roles, CSRF."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from host.core.config import Settings
from shared.idnumber import id_check_character, mask_id_number
from tests.host.conftest import START, Admin, Clock, Device, TestClient, db_rows
from tests.host.test_checkins import post

PURPOSE = "case 0501-07, order of the district CDC"
CASE_NUMBER = "11010519850214002" + id_check_character("11010519850214002")
ALICE_NUMBER = "44010619750000001" + id_check_character("44010619750000001")
DAY = START.date().isoformat()  # 2022-05-01 in Shanghai as in UTC at 08:30
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def token_of(admin: Admin, name: str, role: str, **scope: object) -> str:
    return admin.user(name, role, **scope).headers["Authorization"].removeprefix("Bearer ")


def sign_in(client: TestClient, token: str) -> str:
    """Sign `client` in to the dashboard with a user's token; the session's CSRF token."""
    client.cookies.clear()
    form = client.get("/dashboard/sign-in")
    signed = client.post(
        "/dashboard/sign-in",
        data={"csrf": CSRF.search(form.text).group(1), "token": token},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    page = client.get("/dashboard/tracing")  # the page, or the 403 page of another role
    return CSRF.search(page.text).group(1)


@pytest.fixture
def doctor(client: TestClient, admin: Admin) -> str:
    """An epidemiologist signed in on `client`: their session's CSRF token."""
    return sign_in(client, token_of(admin, "dr-li", "epidemiologist"))


def at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


def check_in(device: Device, clock: Clock, *visits: tuple[str, float]) -> None:
    """Check-ins at the device's venue, as it sends them: (person_ref, minutes after START)."""
    batch = [device.checkin(person_ref=ref, scanned_at=at(minutes)) for ref, minutes in visits]
    response = post(device, clock, batch)
    assert response.status_code == 200, response.text


def query(client: TestClient, csrf: str, path: str = "/dashboard/tracing", **fields: str):
    form = {
        "csrf": csrf,
        "case": "p_case",
        "since": DAY,
        "until": DAY,
        "window": "30",
        "purpose": PURPOSE,
    } | fields
    return client.post(path, data=form, follow_redirects=False)


def contact_rows(html: str) -> list[list[str]]:
    """The contacts table's cells, row by row, without tags."""
    table = re.search(r'<table id="contacts".*?<tbody>(.*?)</tbody>', html, re.S)
    assert table is not None, "no contacts table"
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table.group(1), re.S)
    return [
        [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells]
        for cells in (re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows)
    ]


def audit_rows(settings: Settings) -> list[tuple]:
    return db_rows(
        settings, "SELECT user_name, action, purpose, subject, records FROM audit_log ORDER BY seq"
    )


# ---- the query --------------------------------------------------------------------------------


def test_the_empty_form_proposes_two_weeks_to_today(client: TestClient, doctor: str):
    page = client.get("/dashboard/tracing")
    assert page.status_code == 200
    assert 'name="since" type="date" value="2022-04-18"' in page.text
    assert f'name="until" type="date" value="{DAY}"' in page.text
    assert 'name="window" type="number" min="1" max="240" value="30"' in page.text
    assert 'id="no-recent"' in page.text
    assert page.headers["cache-control"] == "no-store"


def test_a_query_shows_the_visit_its_contacts_nearest_first_and_is_audited(
    client: TestClient, admin: Admin, device: Device, clock: Clock, settings: Settings, doctor: str
):
    alice = admin.import_person(id_number=ALICE_NUMBER, colour="yellow")
    check_in(
        device,
        clock,
        ("p_case", 0),
        ("p_bob", -20),
        (alice["person_ref"], 5),
        ("p_carol", 31),  # outside the window
    )

    page = query(client, doctor)

    assert page.status_code == 200, page.text
    assert contact_rows(page.text) == [
        [alice["person_ref"], "Riverside Mall", "2022-05-01 16:30", "2022-05-01 16:35", "5.0",
         "黄码 Yellow · 阴性 negative 2022-05-01 04:30", "密接 1st"],
        ["p_bob", "Riverside Mall", "2022-05-01 16:30", "2022-05-01 16:10", "20.0",
         "未登记 Not in the register", "密接 1st"],
    ]  # fmt: skip
    assert "p_carol" not in page.text
    assert "<time>2022-05-01 16:30</time> <strong>Riverside Mall</strong>" in page.text
    assert 'aria-label="2 名密接，之前 1，之后 1; 2 contacts within 30 minutes' in page.text
    assert page.text.count('class="contact-dot"') == 2
    assert page.text.count('class="visit"') == 1
    ((name, action, purpose, subject, records),) = audit_rows(settings)
    assert (name, action, purpose, records) == ("dr-li", "tracing", PURPOSE, 3)
    assert '"case": "p_case"' in subject
    recorded = re.search(r'<p class="recorded"[^>]*>(.*?)</p>', page.text, re.S)
    assert recorded is not None and "(#1, 2022-05-01 16:30, 3 <span" in recorded.group(1)
    assert 'class="this-query"' in page.text and f"<td>{PURPOSE}</td>" in page.text


def test_a_case_by_id_number_is_shown_masked_and_named_by_reference_after(
    client: TestClient, admin: Admin, device: Device, clock: Clock, settings: Settings, doctor: str
):
    case = admin.import_person(id_number=CASE_NUMBER)["person_ref"]
    check_in(device, clock, (case, 0), ("p_bob", 3))

    page = query(client, doctor, case=f" {CASE_NUMBER[:6]} {CASE_NUMBER[6:]} ")

    assert page.status_code == 200, page.text
    assert CASE_NUMBER not in page.text and CASE_NUMBER[:6] + " " not in page.text
    assert mask_id_number(CASE_NUMBER) in page.text
    assert f'name="case" value="{case}"' in page.text  # in the form and the CSV form
    assert [row[0] for row in contact_rows(page.text)] == ["p_bob"]
    ((_name, _action, _purpose, subject, _records),) = audit_rows(settings)
    assert CASE_NUMBER not in subject and f'"case": "{case},u_' in subject


def test_the_second_degree_is_listed_after_the_first(
    client: TestClient, admin: Admin, device: Device, clock: Clock, doctor: str
):
    check_in(device, clock, ("p_case", 0), ("p_bob", 10), ("p_dan", 35))

    page = query(client, doctor, second_degree="on")

    rows = contact_rows(page.text)
    assert [(row[0], row[-1]) for row in rows] == [
        ("p_bob", "密接 1st"),
        ("p_dan", "次密接 2nd, via p_bob"),
    ]
    assert "1 名次密接" in page.text and 'name="second_degree" value="on"' in page.text


def test_the_csv_export_answers_the_same_query_as_the_api_does_and_is_audited(
    client: TestClient, device: Device, clock: Clock, settings: Settings, doctor: str
):
    check_in(device, clock, ("p_case", 0), ("p_bob", 7))

    answer = query(client, doctor, path="/dashboard/tracing.csv")

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == 'attachment; filename="tracing.csv"'
    assert answer.headers["cache-control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["record"], r["person_ref"], r["minutes_apart"]) for r in rows] == [
        ("visit", "", ""),
        ("contact", "p_bob", "7.0"),
    ]
    assert [row[1] for row in audit_rows(settings)] == ["tracing"]


# ---- problems, shown on the form ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [
        ({"until": "2022-04-30"}, "截止日期", "the last day is before the first"),
        ({"since": "2022-13-01"}, "起始日期", "not a date (YYYY-MM-DD)"),
        ({"since": "2022-03-01"}, None, "since to until spans at most 28 days"),
        ({"window": "241"}, "时间窗", "less than or equal to 240"),
        ({"purpose": "no"}, "查询事由", "at least 3 characters"),
        ({"purpose": f"case of {CASE_NUMBER}"}, "查询事由", "must not hold an ID number"),
        ({"case": "p case!"}, "病例", "String should match pattern"),
        ({"since": "2022-04-10", "second_degree": "on"}, None, "a second degree spans at most"),
    ],
)
def test_a_bad_form_says_what_is_wrong_and_keeps_what_was_typed(
    client: TestClient, settings: Settings, doctor: str, fields: dict, where: str | None,
    message: str,
):  # fmt: skip
    page = query(client, doctor, **fields)

    assert page.status_code == 422
    problems = re.search(r'<div class="problem-box" role="alert" id="problems">(.*?)</div>',
                         page.text, re.S)  # fmt: skip
    assert problems is not None
    item = next(
        li for li in re.findall(r"<li>(.*?)</li>", problems.group(1), re.S) if message in li
    )
    assert item.startswith(where) if where else ":" not in item.split(message)[0]
    for name, value in fields.items():
        if name not in ("purpose", "case") or CASE_NUMBER not in value:
            typed = "checked" if name == "second_degree" else f'value="{value}"'
            assert re.search(rf'name="{name}"[^>]*{re.escape(typed)}', page.text), name
    assert CASE_NUMBER not in page.text
    assert audit_rows(settings) == []


def test_a_mistyped_id_number_is_refused_and_not_typed_back(
    client: TestClient, settings: Settings, doctor: str
):
    wrong = CASE_NUMBER[:17] + ("0" if CASE_NUMBER[17] != "0" else "1")
    page = query(client, doctor, case=wrong)
    assert page.status_code == 422
    assert "is not a resident ID number" in page.text
    assert wrong not in page.text and 'name="case" value=""' in page.text
    assert audit_rows(settings) == []


def test_an_unknown_case_is_said_so_on_the_form_and_still_recorded(
    client: TestClient, settings: Settings, doctor: str
):
    page = query(client, doctor, case="p_nobody")
    assert page.status_code == 200
    assert "no check-ins under this case in this period" in page.text
    assert 'id="case-problem"' in page.text and 'name="case" value="p_nobody"' in page.text
    assert [row[1] for row in audit_rows(settings)] == ["tracing"]


def test_a_too_broad_second_degree_is_refused_in_words(
    client: TestClient, device: Device, clock: Clock, settings: Settings, doctor: str
):
    check_in(device, clock, ("p_case", 0), *((f"p_{n}", n % 20) for n in range(201)))

    page = query(client, doctor, second_degree="on")

    assert page.status_code == 422
    refused = re.search(r'id="refused">(.*?)</div>', page.text, re.S)
    assert refused is not None
    assert "201 people met the case, more than the 200 a second degree follows" in refused.group(1)
    assert audit_rows(settings) == []  # as in the API: a refused query reads nothing


# ---- who may ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/dashboard/tracing", "/dashboard/tracing.csv"])
def test_signed_out_is_sent_to_sign_in(client: TestClient, path: str):
    if path.endswith(".csv"):
        answer = client.post(path, data={"csrf": "x"}, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].endswith(
            "/sign-in?then=/dashboard"
        )
    else:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/dashboard/sign-in?then=/dashboard/tracing"


@pytest.mark.parametrize(
    ("role", "scope"),
    [("admin", {}), ("venue-manager", {"venues": ["mall"]}), ("screener", {"org": "acme"})],
)
def test_other_roles_get_403(
    client: TestClient, admin: Admin, venue: dict, settings: Settings, role: str, scope: dict
):
    if "venues" in scope:
        scope = {"venues": [venue["id"]]}
    csrf = sign_in(client, token_of(admin, f"someone-{role}", role, **scope))
    assert client.get("/dashboard/tracing").status_code == 403
    for path in ("/dashboard/tracing", "/dashboard/tracing.csv"):
        refused = query(client, csrf, path=path)
        assert refused.status_code == 403 and "Not for your role" in refused.text
    assert audit_rows(settings) == []


@pytest.mark.parametrize("sent", [None, "", "0" * 64])
def test_a_query_without_this_sessions_csrf_token_is_refused(
    client: TestClient, settings: Settings, doctor: str, sent: str | None
):
    form = {"case": "p_case", "since": DAY, "until": DAY, "window": "30", "purpose": PURPOSE}
    if sent is not None:
        form["csrf"] = sent
    for path in ("/dashboard/tracing", "/dashboard/tracing.csv"):
        refused = client.post(path, data=form, follow_redirects=False)
        assert refused.status_code == 400 and "Stale form" in refused.text
    assert audit_rows(settings) == []
