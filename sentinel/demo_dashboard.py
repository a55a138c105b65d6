"""The demo's dashboard: a user of each role, their tokens printed, and its pages' screenshots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from sentinel.demo import Admin

DASHBOARD_PATH = "/dashboard"
SCREENING_ORG = "central-library"


@dataclass(frozen=True)
class DashboardUser:
    """A demo user of the dashboard: name, role, what they may see, and their token."""

    name: str
    role: str
    scope: str
    token: str

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role, "scope": self.scope, "token": self.token}


def dashboard_users(admin: Admin, venue_id: str, venue_name: str) -> list[DashboardUser]:
    """One user of each role on the demo's host; the venue manager manages `venue_id`."""
    made = []
    for name, role, scope, words in (
        ("olivia-operator", "admin", {}, "everything"),
        ("eric-epidemiologist", "epidemiologist", {}, "flows, alerts, tracing"),
        ("mia-manager", "venue-manager", {"venues": [venue_id]}, venue_name),
        ("sam-screener", "screener", {"org": SCREENING_ORG}, SCREENING_ORG),
    ):
        made.append(DashboardUser(name, role, words, admin.user(name, role, **scope)))
    return made


def print_dashboard(url: str, users: list[dict[str, Any]], keep: bool) -> None:
    """Where the dashboard is, and a token to sign in with for each role."""
    print(f"dashboard: {url}{DASHBOARD_PATH}  (sign in with one of these tokens)")
    width = max(len(user["role"]) for user in users)
    for user in users:
        print(f"  {user['role']:<{width}}  {user['name']:<20} {user['token']}  ({user['scope']})")
    if keep:
        print("  serving until interrupted (Ctrl-C)")
    else:
        print("  (the host stopped with the demo; run with --keep to keep it serving)")
    print()


SIZE = (1280, 800)
CASE_PURPOSE = "Demo case 2022-001: a red code at Central Library"
SCREENING_PURPOSE = "Demo: the library's weekly staff screening"
SUMMARY_SECONDS = 60.0  # the screening's page reloads itself until its job is done


def _signed_in(browser: Browser, host_url: str, token: str, then: str) -> Page:
    from sentinel.browser import dashboard_sign_in

    width, height = SIZE
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(SUMMARY_SECONDS * 1000)
    page = context.new_page()
    dashboard_sign_in(page, host_url, token, then)
    return page


def staff_list(id_numbers: dict[str, str], path: Path) -> Path:
    """A staff CSV of the demo's people, and one the register does not know."""
    rows = ["工号,姓名,身份证号"]
    rows += [f"E{n},员工{n},{number}" for n, number in enumerate(id_numbers.values(), start=1)]
    rows.append(f"E{len(rows)},新员工,11010519491231002X")
    path.write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    return path


def dashboard_screenshots(
    browser: Browser,
    host_url: str,
    users: list[DashboardUser],
    shots: Path,
    *,
    case_ref: str,
    staff_csv: Path,
) -> dict[str, str]:
    """The flows, tracing, devices and screening pages as their users see them, saved."""
    token = {user.role: user.token for user in users}
    saved: dict[str, str] = {}

    def save(page: Page, name: str) -> None:
        path = shots / f"dashboard-{name}.png"
        page.screenshot(path=path, full_page=True)
        saved[name] = str(path)
        page.context.close()

    save(_signed_in(browser, host_url, token["epidemiologist"], "/dashboard/flows"), "flows")

    page = _signed_in(browser, host_url, token["epidemiologist"], "/dashboard/tracing")
    page.fill("#case", case_ref)
    page.fill("#purpose", CASE_PURPOSE)
    with page.expect_navigation():
        page.click("#trace-form button[type=submit]")
    save(page, "tracing")

    save(_signed_in(browser, host_url, token["admin"], "/dashboard/devices"), "devices")

    page = _signed_in(browser, host_url, token["screener"], "/dashboard/screening")
    page.set_input_files("#staff_list", str(staff_csv))
    page.fill("#purpose", SCREENING_PURPOSE)
    with page.expect_navigation():
        page.click("form.upload-form button[type=submit]")
    with page.expect_navigation():
        page.click("#follow")
    page.wait_for_selector("#summary")  # the page reloads itself once the job is done
    save(page, "screening")
    return saved
