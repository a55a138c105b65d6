"""The dashboard's flows and alerts pages, and /docs, on both backends: numbers, scope, roles."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from host.core.times import to_ms
from host.storage.flows import Span, Spike
from host.web.dashboard.common import SESSION_COOKIE
from host.web.docs import SWAGGER_UI
from tests.host.conftest import ADMIN_TOKEN, START, Admin, Clock, Device
from tests.host.test_flows import host_storage, scans, store, venue
from tests.host.test_staff import checkins, decision, decisions

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = START.astimezone(SHANGHAI).date()  # 2022-05-01; START is 16:30 there
# The market's check-ins on the days before, all in the 09:00 hour: a median of 2.
HISTORY = [0, 1, 2, 2, 3, 1, 2]  # 7 days before to 1 day before


def local(day_offset: int, hour: int, minute: int = 10) -> str:
    """A Shanghai local time `day_offset` days from today, as the device sends it."""
    moment = datetime.combine(TODAY + timedelta(days=day_offset), datetime.min.time(), SHANGHAI)
    return (moment + timedelta(hours=hour, minutes=minute)).isoformat()


# ---- reading pages ---------------------------------------------------------------------------


class Parts(HTMLParser):
    """A dashboard page as tests read it: chart bars, table rows, alert rows, links, assets."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str]] = []
        self.usual_lines: list[list[str]] = []  # each line's points
        self.rows: dict[str, list[str]] = {}
        self.alerts: list[dict[str, str]] = []
        self.comparison: dict[str, str] = {}
        self.options: dict[str, list[str]] = {}
        self.urls: list[str] = []
        self._row: str | None = None
        self._select: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "g" and found.get("class") == "chart-bar":
            self.bars.append(found)
        if tag == "polyline" and found.get("class") == "chart-usual":
            self.usual_lines.append(found["points"].split())
        if tag == "tr" and "data-period" in found and "alert-row" not in found.get("class", ""):
            self._row = found["data-period"]
            self.rows[self._row] = []
        if tag == "tr" and "alert-row" in found.get("class", ""):
            self.alerts.append(found)
        if tag == "a" and self.alerts and "href" in found and "link" not in self.alerts[-1]:
            self.alerts[-1]["link"] = found["href"]
        if tag in ("td", "th") and self._row is not None:
            self._cell = []
        if tag == "p" and found.get("id") == "comparison":
            self.comparison = found
        if tag == "select":
            self._select = found["name"]
            self.options[self._select] = []
        if tag == "option" and self._select is not None:
            self.options[self._select].append(found["value"])
        for name in ("src", "href"):
            if name in found:
                self.urls.append(found[name])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self.rows[self._row].append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "tr":
            self._row = None
        if tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parts(html: str) -> Parts:
    parsed = Parts()
    parsed.feed(html)
    return parsed


NUMBERS = ("total", "passed", "denied", "referred", "staff-let-through", "staff-refused")


def bar_numbers(bar: dict[str, str]) -> tuple[int, ...]:
    return tuple(int(bar[f"data-{name}"]) for name in NUMBERS)


def row_numbers(row: list[str]) -> tuple[int, ...]:
    """A table row's numbers, as its bar's: total, pass, deny, referred, staff's two."""
    return tuple(int(cell) for cell in row[1:7])


# ---- signing in ------------------------------------------------------------------------------


def sign_in(client: TestClient, token: str) -> TestClient:
    """Sign `client` in to the dashboard through its form, as a browser would."""
    client.cookies.clear()
    client.get("/dashboard/sign-in")
    secret = client.cookies.get("sentinel_dashboard_sign_in")
    response = client.post(
        "/dashboard/sign-in", data={"csrf": secret, "token": token}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    assert client.cookies.get(SESSION_COOKIE)
    return client


def token_of(admin: Admin, name: str, role: str, **scope: Any) -> str:
    return admin.ok("POST", "/users", json={"name": name, "role": role, **scope})["token"]


# ---- a small city, through the real device ingest ------------------------------------------


@pytest.fixture
def city(client: TestClient, admin: Admin, clock: Clock) -> dict[str, str]:
    """A market and a mall in Xuhui and a clinic in Pudong, with today's and earlier check-ins.

    Today (1 May, Shanghai) at the market: 09:xx 3 pass, 1 deny; 14:xx 1 pass and 3
    referrals, of which staff let 1 through and refused 1. At the clinic: 10:xx 2 pass, 1
    deny. At the mall: 09:xx 5 pass. On the 7 days before, the market's 09:xx: HISTORY.
    """
    ids = {
        "market": venue(admin, "Market", district="Xuhui", street="Tianping"),
        "mall": venue(admin, "Mall", district="Xuhui", street="Tianping"),
        "clinic": venue(admin, "Clinic", district="Pudong", street="Hunan", category="medical"),
    }
    devices = {name: Device.enroll(client, admin.token(ids[name])) for name in ids}
    market = devices["market"]
    today = [market.checkin(scanned_at=local(0, 9), outcome="pass") for _ in range(3)]
    today += [market.checkin(scanned_at=local(0, 9, 40), outcome="deny")]
    today += [market.checkin(scanned_at=local(0, 14), outcome="pass")]
    referrals = [
        market.checkin(scanned_at=local(0, 14, 20), outcome="refer", reasons=["no-test"])
        for _ in range(3)
    ]
    earlier = [
        market.checkin(scanned_at=local(-back, 9), outcome="pass")
        for back, count in zip(range(7, 0, -1), HISTORY, strict=True)
        for _ in range(count)
    ]
    checkins(market, clock, today + referrals + earlier)
    staff = [
        decision(market, referrals[0], decided_at=local(0, 14, 25)),
        decision(market, referrals[1], action="refuse", decided_at=local(0, 14, 26)),
    ]
    assert decisions(market, clock, staff).status_code == 200
    clinic = devices["clinic"]
    checkins(
        clinic,
        clock,
        [clinic.checkin(scanned_at=local(0, 10), outcome="pass") for _ in range(2)]
        + [clinic.checkin(scanned_at=local(0, 10), outcome="deny")],
    )
    mall = devices["mall"]
    checkins(mall, clock, [mall.checkin(scanned_at=local(0, 9, 5)) for _ in range(5)])
    return ids


def page(client: TestClient, path: str, status: int = 200, **params: str) -> Parts:
    response = client.get(path, params=params, follow_redirects=False)
    assert response.status_code == status, response.text
    return parts(response.text)


def flows_page(client: TestClient, status: int = 200, **params: str) -> Parts:
    return page(client, "/dashboard/flows", status, **params)


# ---- flows -----------------------------------------------------------------------------------


def test_a_venues_hours_today_are_its_check_ins_by_outcome_against_the_usual(
    client: TestClient, city: dict[str, str]
):
    shown = flows_page(sign_in(client, ADMIN_TOKEN), level="venue", group=city["market"])
    assert len(shown.bars) == 24
    bars = {bar["data-period"]: bar for bar in shown.bars}
    # total, passed, denied, referred, staff let through, staff refused
    assert bar_numbers(bars["09:00"]) == (4, 3, 1, 0, 0, 0)
    assert bar_numbers(bars["14:00"]) == (4, 1, 0, 3, 1, 1)
    assert bars["14:00"]["data-referred-undecided"] == "1"
    assert sum(bar_numbers(bar)[0] for bar in shown.bars) == 8
    assert bars["09:00"]["data-usual"] == "2"  # the median of HISTORY
    assert bars["14:00"]["data-usual"] == "0"
    assert [len(line) for line in shown.usual_lines] == [24]  # the usual level, every hour
    # The table says what the chart draws.
    assert row_numbers(shown.rows["09:00"]) == bar_numbers(bars["09:00"])
    assert row_numbers(shown.rows["14:00"]) == bar_numbers(bars["14:00"])
    assert shown.rows["09:00"][7] == "2"
    # Up to 17:00 today: 8 check-ins, against a usual 2 by then.
    assert (shown.comparison["data-count"], shown.comparison["data-usual"]) == ("8", "2")


def test_a_district_counts_all_its_venues_and_a_category_its_own(
    client: TestClient, city: dict[str, str]
):
    sign_in(client, ADMIN_TOKEN)
    xuhui = {
        bar["data-period"]: bar_numbers(bar)
        for bar in flows_page(client, level="district", group="Xuhui").bars
    }
    assert xuhui["09:00"] == (9, 8, 1, 0, 0, 0)  # the market's 4 and the mall's 5
    assert xuhui["10:00"] == (0, 0, 0, 0, 0, 0)
    pudong = {
        bar["data-period"]: bar_numbers(bar)
        for bar in flows_page(client, level="district", group="Pudong").bars
    }
    assert pudong["10:00"] == (3, 2, 1, 0, 0, 0)
    assert sum(total for total, *_ in pudong.values()) == 3
    medical = flows_page(client, level="category", group="medical")
    assert sum(bar_numbers(bar)[0] for bar in medical.bars) == 3
    street = flows_page(client, level="street", group='["Xuhui", "Tianping"]')
    assert sum(bar_numbers(bar)[0] for bar in street.bars) == 13


def test_venues_with_no_district_are_a_district_of_their_own(
    client: TestClient, admin: Admin, city: dict[str, str]
):
    kiosk = venue(admin, "Kiosk")  # no district, no street
    moment = datetime.fromisoformat(local(0, 11))
    store(host_storage(client), kiosk, scans(kiosk, [moment, moment]))
    sign_in(client, ADMIN_TOKEN)
    assert flows_page(client, level="district").options["group"] == ["Pudong", "Xuhui", ""]
    shown = flows_page(client, level="district", group="")
    assert {
        bar["data-period"]: bar_numbers(bar)[0] for bar in shown.bars if bar_numbers(bar)[0]
    } == {"11:00": 2}


def test_days_are_whole_local_days_with_the_median_of_the_week_before(
    client: TestClient, city: dict[str, str]
):
    sign_in(client, ADMIN_TOKEN)
    shown = flows_page(client, level="venue", group=city["market"], bucket="day", days="7")
    days = {bar["data-period"]: bar for bar in shown.bars}
    assert list(days) == [(TODAY - timedelta(days=back)).isoformat() for back in range(6, -1, -1)]
    assert bar_numbers(days[TODAY.isoformat()]) == (8, 4, 1, 3, 1, 1)
    assert [bar_numbers(days[d])[0] for d in list(days)[:-1]] == HISTORY[1:]
    assert days[TODAY.isoformat()]["data-usual"] == "2"  # median of HISTORY
    assert row_numbers(shown.rows[TODAY.isoformat()]) == bar_numbers(days[TODAY.isoformat()])
    month = flows_page(client, level="venue", group=city["market"], bucket="day", days="30")
    assert len(month.bars) == 30
    assert sum(bar_numbers(bar)[0] for bar in month.bars) == 8 + sum(HISTORY)


def test_an_earlier_day_is_compared_whole(client: TestClient, city: dict[str, str]):
    sign_in(client, ADMIN_TOKEN)
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    shown = flows_page(client, level="venue", group=city["market"], day=yesterday)
    assert shown.comparison["data-count"] == str(HISTORY[-1])
    assert sum(bar_numbers(bar)[0] for bar in shown.bars) == HISTORY[-1]


def test_officials_land_on_districts_and_see_every_group(
    client: TestClient, admin: Admin, city: dict[str, str]
):
    sign_in(client, token_of(admin, "eve", "epidemiologist"))
    shown = flows_page(client)
    assert shown.options["group"] == ["Pudong", "Xuhui"]
    assert sum(bar_numbers(bar)[0] for bar in shown.bars) == 3  # the first: Pudong
    venues = flows_page(client, level="venue").options["group"]
    assert set(venues) == set(city.values())


def test_a_venue_manager_sees_their_venues_only_at_every_level(
    client: TestClient, admin: Admin, city: dict[str, str]
):
    sign_in(client, token_of(admin, "mia", "venue-manager", venues=[city["market"]]))
    shown = flows_page(client)  # a manager lands on their venues
    assert shown.options["group"] == [city["market"]]
    assert sum(bar_numbers(bar)[0] for bar in shown.bars) == 8
    xuhui = flows_page(client, level="district")
    assert xuhui.options["group"] == ["Xuhui"]
    assert sum(bar_numbers(bar)[0] for bar in xuhui.bars) == 8  # not the mall's 5
    assert flows_page(client, level="category").options["group"] == ["public_place"]
    # Another's venue, or a district of none of theirs, is as if it did not exist.
    for level, group in (("venue", city["mall"]), ("venue", "v_nowhere"), ("district", "Pudong")):
        assert flows_page(client, 404, level=level, group=group).bars == []


def test_with_no_check_ins_before_there_is_no_usual_line(client: TestClient, city: dict[str, str]):
    sign_in(client, ADMIN_TOKEN)
    shown = flows_page(client, level="district", group="Pudong")
    assert shown.usual_lines == []
    assert {bar["data-usual"] for bar in shown.bars} == {""}
    assert shown.comparison["data-usual"] == ""


def test_a_host_with_no_venues_says_there_is_nothing_to_show(client: TestClient):
    response = sign_in(client, ADMIN_TOKEN).get("/dashboard/flows")
    assert response.status_code == 200
    assert "No venues to show yet" in response.text


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"level": "city"}, "The level is not one of the choices"),
        ({"bucket": "week"}, "The bucket is not one of the choices"),
        ({"day": "1 May"}, "The day must be a date"),
        ({"day": "1900-01-01"}, "The day must be from"),
        ({"days": "9"}, "The number of days must be 7 or 30"),
    ],
)
def test_a_bad_filter_is_refused_with_its_reason(
    client: TestClient, city: dict[str, str], params: dict[str, str], words: str
):
    sign_in(client, ADMIN_TOKEN)
    response = client.get("/dashboard/flows", params=params)
    assert response.status_code == 400
    assert words in response.text
    assert 'class="chart-bar"' not in response.text


def test_who_may_open_the_flows_and_alerts_pages(
    client: TestClient, admin: Admin, city: dict[str, str]
):
    for path in ("/dashboard/flows", "/dashboard/alerts"):
        client.cookies.clear()
        signed_out = client.get(path, follow_redirects=False)
        assert signed_out.status_code == 303
        assert signed_out.headers["location"].startswith("/dashboard/sign-in?then=")
    sign_in(client, token_of(admin, "sam", "screener", org="Acme"))
    for path in ("/dashboard/flows", "/dashboard/alerts"):
        refused = client.get(path)
        assert refused.status_code == 403
        assert "chart-bar" not in refused.text
    for role, scope in (
        ("admin", {}),
        ("epidemiologist", {}),
        ("venue-manager", {"venues": [city["mall"]]}),
    ):
        sign_in(client, token_of(admin, f"u-{role}", role, **scope))
        for path in ("/dashboard/flows", "/dashboard/alerts"):
            response = client.get(path)
            assert response.status_code == 200, (role, path)
            assert response.headers["content-security-policy"].startswith("default-src 'self'")
            assert 'data-refresh="60"' in response.text


def test_the_flows_page_is_read_only(client: TestClient, city: dict[str, str]):
    sign_in(client, ADMIN_TOKEN)
    assert client.post("/dashboard/flows", data={"level": "venue"}).status_code == 405


# ---- alerts ----------------------------------------------------------------------------------


def alert(client: TestClient, venue_id: str, day_offset: int, raised_hours: float) -> None:
    """Store a spike alert of the venue on a day, raised `raised_hours` after START."""
    day = TODAY + timedelta(days=day_offset)
    hour = to_ms(datetime.fromisoformat(local(day_offset, 9, 0)))
    spike = Spike(venue_id, day.isoformat(), Span.HOUR, hour, 120, 10.0, 12.0)
    raised = to_ms(START + timedelta(hours=raised_hours))
    assert host_storage(client).add_alert(f"a_{venue_id}_{day_offset}", spike, raised)


def test_alerts_are_listed_newest_first_each_linked_to_its_venues_hours(
    client: TestClient, admin: Admin, city: dict[str, str]
):
    alert(client, city["market"], -2, -48)
    alert(client, city["clinic"], -1, -24)
    alert(client, city["market"], 0, 0)
    shown = page(sign_in(client, ADMIN_TOKEN), "/dashboard/alerts")
    order = [(row["data-venue"], row["data-period"]) for row in shown.alerts]
    assert order == [
        (city["market"], TODAY.isoformat()),
        (city["clinic"], (TODAY - timedelta(days=1)).isoformat()),
        (city["market"], (TODAY - timedelta(days=2)).isoformat()),
    ]
    link = urlsplit(shown.alerts[1]["link"])
    assert link.path == "/dashboard/flows"
    assert parse_qs(link.query) == {
        "level": ["venue"],
        "group": [city["clinic"]],
        "bucket": ["hour"],
        "day": [(TODAY - timedelta(days=1)).isoformat()],
    }
    # The link opens that venue's chart of that day.
    linked = client.get(shown.alerts[1]["link"])
    assert linked.status_code == 200
    assert sum(bar_numbers(bar)[0] for bar in parts(linked.text).bars) == 0  # none that day
    sign_in(client, token_of(admin, "mia", "venue-manager", venues=[city["market"]]))
    mine = page(client, "/dashboard/alerts").alerts
    assert [row["data-venue"] for row in mine] == [city["market"], city["market"]]


def test_no_alerts_says_so(client: TestClient, city: dict[str, str]):
    response = sign_in(client, ADMIN_TOKEN).get("/dashboard/alerts")
    assert response.status_code == 200
    assert 'id="no-alerts"' in response.text


# ---- /docs -----------------------------------------------------------------------------------


def test_the_api_docs_load_swagger_ui_from_the_host_under_a_csp_naming_its_script(
    client: TestClient,
):
    response = client.get("/docs")
    assert response.status_code == 200
    html = response.text
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls and all(url.startswith("/assets/") for url in urls), urls
    assert f"{SWAGGER_UI}/swagger-ui-bundle.js" in urls
    assert "'/openapi.json'" in html
    scripts = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    policy = response.headers["content-security-policy"]
    assert f"script-src 'self' 'sha256-{digest}';" in policy
    assert "unsafe-inline" not in policy
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "VERSION"):
        assert client.get(f"{SWAGGER_UI}/{asset}").status_code == 200, asset
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "Digital Sentinel host"


def test_the_docs_assets_are_swagger_ui_5(client: TestClient):
    bundle = client.get(f"{SWAGGER_UI}/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "SwaggerUIBundle" in bundle.text
    assert client.get(f"{SWAGGER_UI}/VERSION").text.startswith("swagger-ui-dist 5.")
