"""The screening pages in headless Chromium against a real host: upload, key, flags, download."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sentinel.browser import accessibility_problems, dashboard_sign_in
from sentinel.demo import Admin, HostProcess
from shared.idnumber import id_check_character
from tests.integration.test_dashboard_tracing import SIZES
from tests.integration.test_phone_browser import watched

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.integration
PURPOSE = "reopening notice 2022-118"
FILLER_ROWS = 3000  # so that the job is likely still running when its page opens
# A table's body as it reads: each row's cells.
TABLE = """(id) => [...document.querySelectorAll(`#${id} tbody tr`)].map(
  (row) => [...row.cells].map((cell) => cell.innerText.replace(/\\s+/g, " ").trim()))"""


def id_number(serial: int) -> str:
    first17 = f"3301061985{serial:07d}"
    return first17 + id_check_character(first17)


@pytest.fixture
def staff(admin: Admin, tmp_path: Path) -> Path:
    """A list: one fine, one yellow, one tested too long ago, a typo; then unknown filler rows."""
    admin.person(id_number(1), "green", 10)
    admin.person(id_number(2), "yellow", 10)
    admin.person(id_number(3), "green", 99.5)
    rows = [
        "工号,姓名,身份证号",
        f"E1,张伟明,{id_number(1)}",
        f"E2,李小红,{id_number(2)}",
        f"E3,王芳,{id_number(3)}",
        f"E4,赵强,{id_number(4)[:-1]}",
        *(f"F{n},员工{n},{id_number(1000 + n)}" for n in range(FILLER_ROWS)),
    ]
    path = tmp_path / "staff.csv"
    path.write_text("\ufeff" + "\r\n".join(rows) + "\r\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("size", SIZES)
def test_a_list_is_uploaded_followed_read_with_names_and_downloaded(
    host: HostProcess,
    admin: Admin,
    dashboard_tokens: dict[str, str],
    staff: Path,
    open_page: Callable[[int, int], Page],
    screenshot: Callable[[Page, str], Path],
    size: str,
):
    page = open_page(*SIZES[size])
    elsewhere, errors = watched(page, host)
    dashboard_sign_in(page, host.url, dashboard_tokens["screener"])
    assert page.url.endswith("/dashboard/screening")
    assert accessibility_problems(page) == []
    screenshot(page, f"screening-upload-{size}")

    page.set_input_files("#staff_list", str(staff))
    page.fill("#purpose", PURPOSE)
    with page.expect_navigation():
        page.click("form.upload-form button[type=submit]")
    key = page.input_value("#screening-key")
    assert len(key) == 43
    assert accessibility_problems(page) == []
    screenshot(page, f"screening-key-{size}")

    with page.expect_navigation():
        page.click("#follow")
    screenshot(page, f"screening-progress-{size}")
    page.wait_for_selector("#summary")  # the page reloads itself once the job is done
    summary = dict(row[:2] for row in page.evaluate(TABLE, "summary"))
    assert summary == {
        "正常 OK": "1",
        "无近期核酸 No recent test": "1",
        "非绿码 Not green": "1",
        "未登记 Not registered": f"{FILLER_ROWS:,}",
        "身份证号无效 Invalid ID number": "1",
    }
    assert page.evaluate(TABLE, "flagged")[:3] == [
        ["2", "非绿码 Not green", ""],
        ["3", "无近期核酸 No recent test", "100"],
        ["4", "身份证号无效 Invalid ID number", ""],
    ]
    assert "李小红" not in page.content()
    assert page.input_value("#key") == key  # kept by this tab, not sent by the host
    assert key not in page.content()

    with page.expect_navigation():
        page.click("#names-form button:not(#download)")
    assert page.evaluate(TABLE, "flagged")[0] == ["2", "李小红", "E2", "非绿码 Not green", ""]
    assert accessibility_problems(page) == []
    screenshot(page, f"screening-results-{size}")

    with page.expect_download() as download:
        page.click("#download")
    text = Path(download.value.path()).read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[:3] == [
        ["row", "name", "staff_id", "flag", "hours_since_test"],
        ["1", "张伟明", "E1", "ok", ""],
        ["2", "李小红", "E2", "not-green", ""],
    ]
    assert len(rows) == 5 + FILLER_ROWS and id_number(1) not in text
    audit = admin.http.get("/admin/audit", params={"user": "sam-screener"}).json()
    actions = [record["action"] for record in reversed(audit)]
    assert actions[0] == "screening-create" and actions[-1] == "screening-download"
    assert all(record["purpose"] == PURPOSE for record in audit)

    with page.expect_navigation():
        page.click("a[href='/dashboard/screening']")
    listed = page.evaluate(TABLE, "screenings")
    assert [row[1:4] for row in listed] == [
        ["已完成 Done", f"{4 + FILLER_ROWS:,} / {4 + FILLER_ROWS:,}", PURPOSE]
    ]
    assert elsewhere == [] and errors == []


def test_other_roles_get_403_signed_out_goes_to_sign_in_and_csrf_is_checked(
    host: HostProcess,
    dashboard_tokens: dict[str, str],
    open_page: Callable[[int, int], Page],
):
    page = open_page(*SIZES["desktop"])
    page.goto(f"{host.url}/dashboard/screening")
    assert "/dashboard/sign-in?then=/dashboard/screening" in page.url
    for role in ("admin", "venue-manager", "epidemiologist"):
        page.context.clear_cookies()
        dashboard_sign_in(page, host.url, dashboard_tokens[role])
        answer = page.goto(f"{host.url}/dashboard/screening")
        assert answer is not None and answer.status == 403, role
    page.context.clear_cookies()
    dashboard_sign_in(page, host.url, dashboard_tokens["screener"])
    refused = page.request.post(
        f"{host.url}/dashboard/screening",
        multipart={
            "csrf": "forged",
            "purpose": PURPOSE,
            "max_test_age_hours": "48",
            "staff_list": {"name": "s.csv", "mimeType": "text/csv", "buffer": b"id_number\r\n"},
        },
    )
    assert refused.status == 400
    page.reload()
    assert page.locator("#no-screenings").is_visible()
