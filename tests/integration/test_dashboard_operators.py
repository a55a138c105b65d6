"""The operator pages in headless Chromium against a real host, used as an admin and a manager."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from sentinel.browser import accessibility_problems, dashboard_sign_in
from sentinel.demo import Admin, HostProcess, sentinel_command
from shared.idnumber import with_check_character
from shared.messages import API_PREFIX
from tests.host.test_admin import decode_qr
from tests.integration.test_phone_browser import watched

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.integration
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
COMMAND_SECONDS = 60


class Watched:
    """A page watched for requests elsewhere and errors, its confirms accepted, and checked."""

    def __init__(self, page: Page, host: HostProcess) -> None:
        self.page = page
        self.elsewhere, self.errors = watched(page, host)
        page.on("dialog", lambda dialog: dialog.accept())  # the confirm before a revocation

    def refused_as_expected(self, status: int) -> None:
        """Forget Chromium's console line about a form answered `status` (422) on purpose."""
        said = f"the server responded with a status of {status}"
        assert any(said in error for error in self.errors)
        self.errors[:] = [error for error in self.errors if said not in error]

    def check(self, name: str, screenshot: Callable[[Page, str], Path]) -> None:
        """What every page must be: accessible, its own only, without errors; and a screenshot."""
        screenshot(self.page, name)
        assert accessibility_problems(self.page) == [], name
        assert self.elsewhere == [] and self.errors == [], name


def enroll_on_command_line(host: HostProcess, token: str, state: Path) -> None:
    """Enroll a device as the technician would, typing the command the page shows."""
    command = sentinel_command(
        "device", "enroll", "--host", host.url, "--token", token, "--state", str(state)
    )
    done = subprocess.run(
        [*command, "--name", "north-door", "--form", "gate"],
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("size", SIZES)
def test_an_admin_runs_venues_devices_users_and_reads_the_audit_log(
    host: HostProcess,
    admin: Admin,
    dashboard_tokens: dict[str, str],
    open_page: Callable[[int, int], Page],
    screenshot: Callable[[Page, str], Path],
    tmp_path: Path,
    size: str,
):
    page = open_page(*SIZES[size])
    watched = Watched(page, host)
    dashboard_sign_in(page, host.url, dashboard_tokens["admin"], then="/dashboard/venues")
    assert page.locator("h1").inner_text().startswith("场所")
    watched.check(f"{size}-venues", screenshot)

    # A new venue, through the form: a mistake first, said and kept, then put right.
    page.click("a[href='/dashboard/venues/new']")
    page.fill("#name", "市图书馆 City Library")
    page.fill("#address", "8 Book Street")
    page.select_option("#category", "public_place")
    page.fill("#district", "海淀区")
    page.fill("#street", "中关村街道")
    page.fill("#timezone", "Mars/Olympus")
    with page.expect_navigation():
        page.click("form button[type=submit] >> text=保存")
    assert "unknown time zone" in page.locator("#timezone-problem").inner_text()
    assert page.input_value("#name") == "市图书馆 City Library"
    watched.refused_as_expected(422)
    watched.check(f"{size}-venue-form-problem", screenshot)
    page.fill("#timezone", "Asia/Shanghai")
    with page.expect_navigation():
        page.click("form button[type=submit] >> text=保存")
    assert page.locator("h1").inner_text() == "市图书馆 City Library"
    venue_url = page.url
    assert "Version" in page.locator("#rules-heading + p").inner_text()
    assert page.locator("table.rules tbody tr").count() >= 1
    watched.check(f"{size}-venue", screenshot)

    page.click(f"a[href='{venue_url.removeprefix(host.url)}/edit']")
    page.fill("#street", "学院路街道")
    with page.expect_navigation():
        page.click("form button[type=submit] >> text=保存")
    assert "学院路街道" in page.locator("dl.facts").inner_text()

    # An enrollment token for the technician: shown once, its QR code the token itself.
    page.goto(f"{host.url}/dashboard/devices")
    page.select_option("#venue_id", label="市图书馆 City Library")
    page.select_option("#ttl_seconds", "3600")
    with page.expect_navigation():
        page.click("form[action='/dashboard/devices/enroll'] button[type=submit]")
    token = page.locator("#enrollment-token").inner_text()
    assert decode_qr(page.locator(".qr-box svg").screenshot()) == token
    assert f"--token {token}" in page.locator("#enroll-command").inner_text()
    watched.check(f"{size}-enrollment-token", screenshot)
    enroll_on_command_line(host, token, tmp_path / "device")

    page.goto(f"{host.url}/dashboard/devices")
    row = page.locator("table.devices tbody tr", has_text="north-door")
    assert "闸机 Gate" in row.inner_text() and "市图书馆 City Library" in row.inner_text()
    watched.check(f"{size}-devices", screenshot)
    with page.expect_navigation():
        row.locator("a", has_text="north-door").click()
    with page.expect_navigation():
        page.click("button.danger >> text=撤销设备")  # confirmed in the dialog
    assert "Revoked" in page.locator("#device-status").inner_text()
    watched.check(f"{size}-device-revoked", screenshot)
    assert json.loads(admin.http.get("/admin/devices").text)[0]["revoked"] is True

    # A user added, their token shown once; then revoked after the confirm.
    page.goto(f"{host.url}/dashboard/users")
    page.fill("#user-name", "lin-manager")
    page.select_option("#user-role", "venue-manager")
    page.select_option("#user-venues", label="市图书馆 City Library")
    with page.expect_navigation():
        page.click("form[action='/dashboard/users'] button[type=submit]")
    assert page.locator("#user-token").inner_text().startswith("user_")
    watched.check(f"{size}-user-added", screenshot)
    page.goto(f"{host.url}/dashboard/users")
    watched.check(f"{size}-users", screenshot)
    with page.expect_navigation():
        page.locator("tr[data-user='lin-manager'] button.danger").click()
    assert page.locator("tr[data-user='lin-manager'] .revoked-at").inner_text() != "—"

    # The epidemiologist looks a person up through the API: the audit page shows who and why.
    person_ref = admin.person(with_check_character("11010119900307777"), "green", 12)
    looked = httpx.get(
        f"{host.url}{API_PREFIX}/people/{person_ref}",
        params={"purpose": "case 2022-0417"},
        headers={"Authorization": f"Bearer {dashboard_tokens['epidemiologist']}"},
        timeout=COMMAND_SECONDS,
    )
    assert looked.status_code == 200, looked.text
    page.goto(f"{host.url}/dashboard/audit")
    with page.expect_navigation():
        page.click("#verify-chain")
    assert "intact" in page.locator(".verdict").inner_text()
    row = page.locator("table.audit tbody tr").first.inner_text()
    assert "eric-epidemiologist" in row and "person-lookup" in row and "case 2022-0417" in row
    watched.check(f"{size}-audit", screenshot)
    page.fill("#audit-user", "olivia-operator")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    assert "No records match" in page.locator("table.audit tbody").inner_text()


@pytest.mark.parametrize("size", SIZES)
def test_a_venue_manager_sees_their_venue_and_downloads_its_posters(
    host: HostProcess,
    admin: Admin,
    dashboard_tokens: dict[str, str],
    open_page: Callable[[int, int], Page],
    screenshot: Callable[[Page, str], Path],
    size: str,
):
    admin.venue("Harbour Clinic", "2 Harbour Road", "medical")
    page = open_page(*SIZES[size])
    watched = Watched(page, host)
    dashboard_sign_in(page, host.url, dashboard_tokens["venue-manager"], then="/dashboard/venues")
    assert page.locator("table.venues tbody tr").all_inner_texts()[0].startswith("Riverside Mall")
    assert page.locator("table.venues tbody tr").count() == 1
    assert page.locator("a[href='/dashboard/venues/new']").count() == 0
    watched.check(f"{size}-manager-venues", screenshot)

    with page.expect_navigation():
        page.click("table.venues a")
    assert page.locator("#today-total").inner_text() == "0"
    assert page.locator("table.counts tbody tr").count() == 7
    watched.check(f"{size}-manager-venue", screenshot)

    with page.expect_download() as single:
        page.click("a.download >> text=PDF A5")
    assert single.value.suggested_filename.endswith("-a5.pdf")
    assert Path(single.value.path()).read_bytes().startswith(b"%PDF")

    page.check("input[name=kind][value=room]")
    page.fill("#poster-items", "101-103")
    with page.expect_download() as rooms:
        page.click(".poster-form button[type=submit]")
    assert Path(rooms.value.path()).read_bytes().startswith(b"%PDF")

    page.fill("#poster-items", "120-101")
    with page.expect_navigation():
        page.click(".poster-form button[type=submit]")
    assert "runs backwards" in page.locator("#poster-problem").inner_text()
    assert page.input_value("#poster-items") == "120-101"
    watched.refused_as_expected(422)
    watched.check(f"{size}-manager-poster-problem", screenshot)

    for path in ("/dashboard/users", "/dashboard/audit"):
        page.goto(f"{host.url}{path}")
        assert "Not for your role" in page.locator("h1").inner_text()
        watched.refused_as_expected(403)
    page.goto(f"{host.url}/dashboard/devices")
    watched.check(f"{size}-manager-devices", screenshot)
