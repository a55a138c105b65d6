"""The tracing page in headless Chromium against a real host: a query, its audit, CSV, refusals."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.client import HostClient, enroll
from device.clock import DeviceClock
from sentinel.browser import accessibility_problems, dashboard_sign_in
from sentinel.demo import Admin, HostProcess
from shared.idnumber import id_check_character, mask_id_number
from shared.messages import CheckIn, CheckInBatch, DeviceForm
from tests.integration.test_phone_browser import watched
from tests.integration.test_trace_command import checkin as trace_checkin

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")  # the dashboard's times
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
CASE_NUMBER = "11010519850214002" + id_check_character("11010519850214002")
PURPOSE = "case 17 of the district CDC"
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
# The contacts table as it reads: each row's cells.
# What Chromium logs of a form answered 422 with its problems: the only console line expected.
ANSWERED_422 = (
    "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
)
CONTACTS = """() => [...document.querySelectorAll("#contacts tbody tr")].map(
  (row) => [...row.cells].map((cell) => cell.innerText.replace(/\\s+/g, " ").trim()))"""


def checkin(venue_id: str, person_ref: str, minutes_ago: int) -> CheckIn:
    return trace_checkin(venue_id, person_ref, minutes_ago, NOW)


def send(host: HostProcess, admin: Admin, venue_id: str, visits: list[CheckIn]) -> None:
    """Check-ins through the device ingest of a kiosk enrolled at the venue for them."""
    key = Ed25519PrivateKey.generate()
    enrolled = enroll(
        host.url, admin.enrollment_token(venue_id), key, name="gate", form=DeviceForm.KIOSK
    )
    device = HostClient(host.url, enrolled.device_id, key, DeviceClock())
    try:
        assert device.send_checkins(CheckInBatch(checkins=visits)).inserted == len(visits)
    finally:
        device.close()


@pytest.fixture
def hotel(admin: Admin) -> str:
    return admin.venue("Harbour Hotel", "9 Harbour Road", "public_place").id


@pytest.fixture
def case(host: HostProcess, admin: Admin, hotel: str) -> str:
    """A registered case at the hotel, with alice 10 minutes after and bob 55 minutes after."""
    person_ref = admin.person(CASE_NUMBER, "green", 5)
    visits = [checkin(hotel, person_ref, 60), checkin(hotel, "p_alice", 50)]
    send(host, admin, hotel, [*visits, checkin(hotel, "p_bob", 5)])
    return person_ref


def signed_in_page(
    open_page: Callable[[int, int], Page], host: HostProcess, token: str, size: str, then: str
) -> tuple[Page, list[str], list[str]]:
    page = open_page(*SIZES[size])
    elsewhere, errors = watched(page, host)
    dashboard_sign_in(page, host.url, token, then=then)
    return page, elsewhere, errors


@pytest.mark.parametrize("size", SIZES)
def test_a_query_by_id_number_shows_the_contacts_and_is_audited(
    host: HostProcess,
    admin: Admin,
    dashboard_tokens: dict[str, str],
    case: str,
    open_page: Callable[[int, int], Page],
    screenshot: Callable[[Page, str], Path],
    size: str,
):
    page, elsewhere, errors = signed_in_page(
        open_page, host, dashboard_tokens["epidemiologist"], size, "/dashboard/tracing"
    )
    assert page.url.endswith("/dashboard/tracing")
    screenshot(page, f"tracing-form-{size}")

    page.fill("#case", CASE_NUMBER)
    page.fill("#purpose", PURPOSE)
    with page.expect_navigation():
        page.click("#trace-form button[type=submit]")

    assert page.evaluate(CONTACTS) == [
        [
            "p_alice",
            "Harbour Hotel",
            *(
                (NOW - timedelta(minutes=m)).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
                for m in (60, 50)
            ),
            "10.0",
            "未登记 Not in the register",
            "密接 1st",
        ]
    ]
    assert page.locator("#recorded").is_visible()
    assert "This query was recorded in the audit log" in page.inner_text("#recorded")
    html = page.content()
    assert CASE_NUMBER not in html and mask_id_number(CASE_NUMBER) in html
    assert page.locator(".timeline rect.visit").count() == 1
    assert page.locator("#recent tbody tr.this-query").count() == 1
    audit = admin.http.get("/admin/audit", params={"action": "tracing"}).json()
    assert [(record["user_name"], record["purpose"]) for record in audit] == [
        ("eric-epidemiologist", PURPOSE)
    ]
    assert audit[0]["subject"]["case"].startswith(case + ",u_")
    assert page.inner_text("#recent tbody tr.this-query").count(PURPOSE) == 1
    assert accessibility_problems(page) == []
    screenshot(page, f"tracing-result-{size}")

    with page.expect_download() as download:
        page.click("form.export button[type=submit]")
    table = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(table)))
    assert [(row["record"], row["person_ref"]) for row in rows] == [
        ("visit", ""),
        ("contact", "p_alice"),
    ]
    assert CASE_NUMBER not in table
    assert len(admin.http.get("/admin/audit", params={"action": "tracing"}).json()) == 2
    assert elsewhere == [] and errors == []


def test_mistakes_show_on_the_form_and_a_broad_second_degree_is_refused_in_words(
    host: HostProcess,
    admin: Admin,
    hotel: str,
    dashboard_tokens: dict[str, str],
    case: str,
    open_page: Callable[[int, int], Page],
    screenshot: Callable[[Page, str], Path],
):
    page, elsewhere, errors = signed_in_page(
        open_page, host, dashboard_tokens["epidemiologist"], "phone", "/dashboard/tracing"
    )
    until = page.input_value("#until")
    page.fill("#case", CASE_NUMBER)
    page.fill("#purpose", PURPOSE)
    page.fill("#since", until)
    page.fill("#until", (datetime.fromisoformat(until) - timedelta(days=2)).date().isoformat())
    with page.expect_navigation():
        page.click("#trace-form button[type=submit]")

    assert "the last day is before the first" in page.inner_text("#problems")
    assert page.input_value("#case") == "" and page.input_value("#purpose") == PURPOSE
    assert page.get_attribute("#until", "aria-invalid") == "true"
    assert CASE_NUMBER not in page.content()
    assert accessibility_problems(page) == []
    screenshot(page, "tracing-problems-phone")

    page.fill("#case", "p_nobody")
    page.fill("#until", until)
    with page.expect_navigation():
        page.click("#trace-form button[type=submit]")
    assert "no check-ins under this case in this period" in page.inner_text("#problems")
    assert page.input_value("#case") == "p_nobody"

    send(host, admin, hotel, [checkin(hotel, f"p_{n}", 60 - n % 20) for n in range(200)])
    page.fill("#case", case)
    page.check("#second_degree")
    with page.expect_navigation():
        page.click("#trace-form button[type=submit]")
    refused = page.inner_text("#refused")
    assert "The second degree was refused as too broad" in refused
    assert "201 people met the case, more than the 200 a second degree follows" in refused
    assert page.is_checked("#second_degree") and page.input_value("#case") == case
    assert accessibility_problems(page) == []
    screenshot(page, "tracing-too-broad-phone")
    assert errors == [ANSWERED_422, ANSWERED_422] and elsewhere == []


def test_other_roles_get_403_signed_out_goes_to_sign_in_and_csrf_is_checked(
    host: HostProcess,
    dashboard_tokens: dict[str, str],
    open_page: Callable[[int, int], Page],
):
    page = open_page(*SIZES["desktop"])
    answer = page.goto(f"{host.url}/dashboard/tracing")
    assert answer is not None and "/dashboard/sign-in?then=/dashboard/tracing" in page.url
    for role in ("admin", "venue-manager", "screener"):
        page.context.clear_cookies()
        dashboard_sign_in(page, host.url, dashboard_tokens[role])
        answer = page.goto(f"{host.url}/dashboard/tracing")
        assert answer is not None and answer.status == 403, role
    page.context.clear_cookies()
    dashboard_sign_in(page, host.url, dashboard_tokens["epidemiologist"], "/dashboard/tracing")
    form = {"case": "p_case", "since": "2022-05-01", "until": "2022-05-01", "purpose": PURPOSE}
    for path in ("/dashboard/tracing", "/dashboard/tracing.csv"):
        refused = page.request.post(f"{host.url}{path}", form=form | {"csrf": "forged"})
        assert refused.status == 400, path
