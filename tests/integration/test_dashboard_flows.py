"""The flows and alerts pages, and /docs, in headless Chromium against a real host process."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import httpx
import pytest

from host.core.times import to_ms
from host.storage import Database
from host.storage.flows import Span, Spike
from sentinel.browser import accessibility_problems, dashboard_sign_in
from sentinel.demo import Admin, HostProcess
from tests.host.conftest import Device
from tests.host.test_staff import decision
from tests.integration.test_phone_browser import watched

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
# The bars as the page draws them: each one's period and numbers, read from the SVG.
BARS = """() => [...document.querySelectorAll("#flow-chart g.chart-bar")].map((bar) => ({
  period: bar.dataset.period,
  total: Number(bar.dataset.total),
  passed: Number(bar.dataset.passed),
  denied: Number(bar.dataset.denied),
  referred: Number(bar.dataset.referred),
  let_through: Number(bar.dataset.staffLetThrough),
  refused: Number(bar.dataset.staffRefused),
  drawn: bar.querySelectorAll("rect").length,
}))"""


def yesterday() -> date:
    return datetime.now(SHANGHAI).date() - timedelta(days=1)


def at(day: date, hour: int, minute: int) -> str:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).isoformat()


def now_ms() -> int:
    return int(time.time() * 1000)


def venue(admin: Admin, name: str, district: str) -> str:
    body = {"name": name, "address": "1 Road", "category": "public_place", "district": district}
    response = admin.http.post("/admin/venues", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def send(device: Device, path: str, key: str, items: list[dict]) -> None:
    response = device.request("POST", path, json_body={key: items}, time_ms=now_ms())
    assert response.status_code == 200, response.text


@pytest.fixture
def seeded(host: HostProcess, admin: Admin, dashboard_tokens: dict[str, str]) -> dict[str, str]:
    """Yesterday's check-ins (Shanghai) at two venues of two districts, through a device each.

    The market (Xuhui): 09:xx 3 pass, 1 deny; 14:xx 3 referrals, staff let 1 through and
    refused 1. The clinic (Pudong): 10:xx 2 pass. Their ids, and the day ("day").
    """
    day = yesterday()
    ids = {"market": venue(admin, "Market", "Xuhui"), "clinic": venue(admin, "Clinic", "Pudong")}
    with httpx.Client(base_url=host.url, timeout=10) as client:
        market = Device.enroll(client, admin.enrollment_token(ids["market"]))
        referrals = [
            market.checkin(scanned_at=at(day, 14, 20), outcome="refer", reasons=["no-test"])
            for _ in range(3)
        ]
        send(
            market,
            "/device/checkins",
            "checkins",
            [market.checkin(scanned_at=at(day, 9, 5)) for _ in range(3)]
            + [market.checkin(scanned_at=at(day, 9, 50), outcome="deny")]
            + referrals,
        )
        send(
            market,
            "/device/staff-decisions",
            "decisions",
            [
                decision(market, referrals[0], decided_at=at(day, 14, 25)),
                decision(market, referrals[1], action="refuse", decided_at=at(day, 14, 26)),
            ],
        )
        clinic = Device.enroll(client, admin.enrollment_token(ids["clinic"]))
        send(
            clinic,
            "/device/checkins",
            "checkins",
            [clinic.checkin(scanned_at=at(day, 10, 0)) for _ in range(2)],
        )
    return ids | {"day": day.isoformat()}


def checked(page: Page, host: HostProcess, go: Callable[[], None]) -> None:
    """Run `go` on the page; nothing may load from elsewhere, nor any error be logged."""
    elsewhere, errors = watched(page, host)
    go()
    assert elsewhere == []
    assert errors == []
    assert accessibility_problems(page) == []


@pytest.mark.parametrize("size", SIZES)
def test_an_epidemiologist_charts_a_venues_day_and_reads_its_numbers(
    host: HostProcess,
    dashboard_tokens: dict[str, str],
    seeded: dict[str, str],
    open_page: Callable[[int, int], Page],
    screenshot: Callable[[Page, str], Path],
    size: str,
) -> None:
    page = open_page(*SIZES[size])

    def use_the_form() -> None:
        dashboard_sign_in(page, host.url, dashboard_tokens["epidemiologist"])
        assert page.url.endswith("/dashboard/flows")
        # Choosing the venue level asks again for its groups (dashboard.js).
        with page.expect_navigation():
            page.select_option("#level", "venue")
        page.select_option("#group", label="Market · Xuhui —")
        page.fill("#day", seeded["day"])
        with page.expect_navigation():
            page.click("form.flow-filters button[type=submit]")

    checked(page, host, use_the_form)
    bars = {bar["period"]: bar for bar in page.evaluate(BARS)}
    assert len(bars) == 24
    assert bars["09:00"] == {
        "period": "09:00",
        "total": 4,
        "passed": 3,
        "denied": 1,
        "referred": 0,
        "let_through": 0,
        "refused": 0,
        "drawn": 2,  # pass and deny
    }
    assert (bars["14:00"]["total"], bars["14:00"]["referred"]) == (3, 3)
    assert (bars["14:00"]["let_through"], bars["14:00"]["refused"]) == (1, 1)
    assert bars["14:00"]["drawn"] == 3  # undecided, let through, refused
    assert sum(bar["total"] for bar in bars.values()) == 7
    cells = page.locator("#flow-numbers tr[data-period='09:00'] td").all_inner_texts()
    assert cells[:3] == ["4", "3", "1"]
    assert page.locator("#comparison").get_attribute("data-count") == "7"
    assert page.locator("body").get_attribute("data-refresh") == "60"
    sideways = page.evaluate("document.documentElement.scrollWidth > innerWidth")
    assert not sideways
    screenshot(page, f"flows-{size}")


def test_a_venue_manager_sees_only_their_venue_and_an_alert_leads_to_its_chart(
    host: HostProcess,
    dashboard_tokens: dict[str, str],
    seeded: dict[str, str],
    open_page: Callable[[int, int], Page],
    screenshot: Callable[[Page, str], Path],
) -> None:
    day = date.fromisoformat(seeded["day"])
    storage = Database.parse(host.db).open()
    try:
        hour = to_ms(datetime.fromisoformat(at(day, 9, 0)))
        for venue_id, raised in ((seeded["market"], 1), (seeded["clinic"], 2)):
            spike = Spike(venue_id, day.isoformat(), Span.HOUR, hour, 4, 1.0, 4.0)
            assert storage.add_alert(f"a_test_{raised}", spike, now_ms() - raised * 60_000)
    finally:
        storage.close()
    page = open_page(*SIZES["desktop"])

    def follow_an_alert() -> None:
        dashboard_sign_in(page, host.url, dashboard_tokens["admin"], then="/dashboard/alerts")
        rows = page.locator("#alerts tr.alert-row")
        assert [rows.nth(i).get_attribute("data-venue") for i in range(rows.count())] == [
            seeded["market"],
            seeded["clinic"],
        ]
        screenshot(page, "alerts-desktop")
        with page.expect_navigation():
            rows.nth(1).get_by_role("link").click()

    checked(page, host, follow_an_alert)
    assert page.locator("#group option:checked").inner_text().startswith("Clinic")
    assert sum(bar["total"] for bar in page.evaluate(BARS)) == 2

    phone = open_page(*SIZES["phone"])

    def as_the_manager() -> None:
        dashboard_sign_in(phone, host.url, dashboard_tokens["venue-manager"])

    checked(phone, host, as_the_manager)
    options = phone.locator("#group option").all_inner_texts()
    assert [option.split(" · ")[0] for option in options] == ["Riverside Mall"]
    phone.goto(f"{host.url}/dashboard/alerts")
    assert phone.locator("#no-alerts").is_visible()  # the alerts are of others' venues
    assert accessibility_problems(phone) == []
    screenshot(phone, "alerts-phone-manager")


@pytest.mark.parametrize("size", SIZES)
def test_the_api_docs_come_from_the_host_and_show_the_operations(
    host: HostProcess,
    open_page: Callable[[int, int], Page],
    screenshot: Callable[[Page, str], Path],
    size: str,
) -> None:
    page = open_page(*SIZES[size])
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    def open_docs() -> None:
        page.goto(f"{host.url}/docs")
        page.wait_for_selector(".opblock-summary-path")

    elsewhere, errors = watched(page, host)
    open_docs()
    assert elsewhere == []
    assert errors == []
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/flows" in [path.strip() for path in paths]
    assert len(paths) > 20
    assert f"{host.url}/assets/vendor/swagger-ui/swagger-ui-bundle.js" in requested
    assert f"{host.url}/openapi.json" in requested
    screenshot(page, f"docs-{size}")
