"""Spike alerts on both backends: synthetic weeks, the rule, workers racing, webhook delivery."""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from host import cli
from host.app import SERVE_ENVIRONMENT, app_from_environment, create_app
from host.core.config import Settings
from host.core.times import DAY_MS, HOUR_MS, to_ms
from host.flows import (
    MAX_ATTEMPTS,
    RETRY_FIRST_S,
    RETRY_MAX_S,
    Alerting,
    SpikeRule,
    deliver_due,
    detect_spikes,
    find_spike,
    retry_delay_ms,
)
from host.storage import Database
from host.storage.flows import Span, Spike
from host.storage.sql import SqlStorage
from shared.messages import API_PREFIX
from tests.host.conftest import ADMIN_TOKEN, PUBLIC_URL, Admin, Clock
from tests.host.test_flows import host_storage, scans, store, venue

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = date(2022, 4, 11)  # three ordinary weeks from here, then the spike on 2 May
SPIKE_DAY = MONDAY + timedelta(weeks=3)
# A market's check-ins by local hour: open 07:00 to 21:00, busiest mornings and evenings.
MARKET_HOURS = {7: 3, 8: 6, 9: 8, 10: 8, 11: 7, 12: 8, 13: 8, 14: 7, 15: 7, 16: 8, 17: 9, 18: 8}
MARKET_HOURS |= {19: 6, 20: 4}
WAIT_S = 20.0  # every wait for a background task is bounded by this


def local(day: date, hour: float) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI) + timedelta(hours=hour)


def day_of_scans(
    day: date, total: int, hours: dict[int, int], rng: random.Random
) -> list[datetime]:
    """`total` scan times spread over a local day's open hours by their weights."""
    weights = sum(hours.values())
    return [
        local(day, hour + rng.random())
        for hour, weight in hours.items()
        for _ in range(round(total * weight / weights))
    ]


def market_total(day: date, rng: random.Random) -> int:
    """About 1,000 a weekday and 1,800 a weekend day, ±10%; ten thousand on the spike day."""
    if day == SPIKE_DAY:
        return 10_000
    usual = 1800 if day.weekday() >= 5 else 1000
    return round(usual * rng.uniform(0.9, 1.1))


@pytest.fixture
def weeks(client: TestClient, admin: Admin) -> dict[str, str]:
    """Three weeks and a day of a market, a quiet shop and a shop that opens on the spike day."""
    ids = {
        "market": venue(admin, "Market", district="Xuhui", street="Tianping"),
        "shop": venue(admin, "Shop", district="Xuhui", street="Tianping"),
        "new": venue(admin, "New mall", district="Xuhui", street="Hunan"),
    }
    storage = host_storage(client)
    rng = random.Random(2022)
    shop_hours = {hour: 1 for hour in range(9, 18)}
    for offset in range(22):
        day = MONDAY + timedelta(days=offset)
        store(
            storage,
            ids["market"],
            scans(ids["market"], day_of_scans(day, market_total(day, rng), MARKET_HOURS, rng)),
        )
        shop = 40 if day == SPIKE_DAY else rng.randint(3, 7)
        store(storage, ids["shop"], scans(ids["shop"], day_of_scans(day, shop, shop_hours, rng)))
    store(storage, ids["new"], scans(ids["new"], day_of_scans(SPIKE_DAY, 3000, MARKET_HOURS, rng)))
    return ids


def run_detector_hourly(storage: SqlStorage, rule: SpikeRule, days: int) -> list[tuple[str, str]]:
    """The detector at 59 minutes past every local hour of `days` days from MONDAY."""
    raised = []
    for hour in range(days * 24):
        now = local(MONDAY, hour + 59 / 60)
        raised += [
            (a.spike.venue_id, a.spike.period) for a in detect_spikes(storage, rule, to_ms(now))
        ]
    return raised


def test_a_market_jumping_tenfold_raises_one_alert_that_day(
    client: TestClient, admin: Admin, weeks: dict[str, str]
):
    raised = run_detector_hourly(host_storage(client), SpikeRule(), 22)
    assert raised == [(weeks["market"], SPIKE_DAY.isoformat())]  # weekends and the shop: none

    epidemiologist = admin.user("epi", "epidemiologist")
    (alert,) = epidemiologist.ok("GET", "/alerts")
    # It fired at the first hour the market opened: ten times its usual 07:00.
    assert alert["measure"] == "hour"
    assert alert["hour"] == local(SPIKE_DAY, 7).isoformat()
    assert alert["count"] >= 300 and 25 <= alert["baseline"] <= 40
    assert alert["ratio"] == pytest.approx(alert["count"] / alert["baseline"], abs=0.01)
    assert {k: alert[k] for k in ("venue_id", "venue_name", "district", "street", "period")} == {
        "venue_id": weeks["market"],
        "venue_name": "Market",
        "district": "Xuhui",
        "street": "Tianping",
        "period": "2022-05-02",
    }
    assert alert["delivered_at"] is None


def test_the_day_so_far_fires_when_no_single_hour_does(
    client: TestClient, admin: Admin, weeks: dict[str, str]
):
    # Hours must reach 5,000 each: only the day so far (minimum 500) can fire.
    rule = SpikeRule(min_hour=5000)
    raised = run_detector_hourly(host_storage(client), rule, 22)
    assert raised == [(weeks["market"], SPIKE_DAY.isoformat())]
    (alert,) = admin.client.get(f"{API_PREFIX}/alerts", headers=admin.headers).json()
    assert alert["measure"] == "day" and alert["count"] >= 500
    assert alert["count"] / alert["baseline"] >= 3


@pytest.mark.parametrize(
    ("history", "today", "rule", "fires"),
    [
        ([100] * 7, 300, SpikeRule(), (Span.HOUR, 300, 100.0, 3.0)),
        ([100] * 7, 299, SpikeRule(), None),  # just under three times
        ([0, 0, 0, 10, 10, 10, 10], 99, SpikeRule(), None),  # under the minimum
        ([0, 0, 0, 10, 10, 10, 10], 100, SpikeRule(), (Span.HOUR, 100, 10.0, 10.0)),
        ([0, 0, 0, 0, 0, 0, 0], 150, SpikeRule(), None),  # no history: a new venue
        ([0, 0, 0, 0, 1, 1, 1], 150, SpikeRule(), None),  # three days of seven: not yet usual
        ([0, 0, 0, 1, 1, 1, 1], 150, SpikeRule(), (Span.HOUR, 150, 1.0, 150.0)),
        ([20, 20, 20, 20, 1000, 1000, 1000], 300, SpikeRule(), (Span.HOUR, 300, 20.0, 15.0)),
        ([20, 20, 20, 1000, 1000, 1000, 1000], 300, SpikeRule(), None),  # the median is 1000
    ],
)
def test_the_rule(history: list[int], today: int, rule: SpikeRule, fires: tuple | None):
    """One venue open 10:00-11:00 Shanghai time; the detector runs at 10:30 on the eighth day."""
    hours = [(to_ms(local(MONDAY + timedelta(days=d), 10)), n) for d, n in enumerate(history)]
    hours.append((to_ms(local(MONDAY + timedelta(days=7), 10)), today))
    now = to_ms(local(MONDAY + timedelta(days=7), 10.5))
    spike = find_spike(rule, "v_x", "Asia/Shanghai", hours, now)
    if fires is None:
        assert spike is None
        return
    assert spike is not None
    assert (spike.measure, spike.count, spike.baseline, spike.ratio) == fires
    assert spike.period == "2022-04-18" and spike.hour_ms == hours[-1][0]


def test_hours_after_now_are_not_counted_yet():
    hours = [(to_ms(local(MONDAY + timedelta(days=d), 10)), 100) for d in range(7)]
    hours.append((to_ms(local(MONDAY + timedelta(days=7), 11)), 5000))  # a device clock ahead
    at_ten = to_ms(local(MONDAY + timedelta(days=7), 10.5))
    assert find_spike(SpikeRule(), "v_x", "Asia/Shanghai", hours, at_ten) is None


def test_rules_that_cannot_work_are_refused():
    for bad in ({"ratio": 1.0}, {"min_hour": 0}, {"history_days": 8}, {"history_days": 0}):
        with pytest.raises(ValueError):
            SpikeRule(**bad)
    with pytest.raises(ValueError, match="http"):
        Alerting(webhook="file:///etc/passwd")
    with pytest.raises(ValueError):
        Alerting(detect_every_s=0)
    alerting = Alerting(SpikeRule(ratio=4, min_day=900), "https://hooks.example/x", 30, 2)
    assert Alerting.from_json(json.loads(json.dumps(alerting.as_json()))) == alerting


def test_the_alert_options_reach_every_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv(SERVE_ENVIRONMENT, "")  # restored afterwards
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)  # no server, no workers
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    common = ["serve", "--db", str(tmp_path / "host.db"), "--public-url", PUBLIC_URL]
    options = ["--alert-webhook", "https://hooks.example/cdc", "--alert-ratio", "4"]
    options += ["--alert-min-hour", "50", "--alert-min-day", "300", "--alert-every", "30"]
    assert cli.run(parser.parse_args([*common, *options])) == 0
    worker = app_from_environment()  # what each worker process builds
    assert worker.state.context.settings.alerting == Alerting(
        SpikeRule(ratio=4, min_hour=50, min_day=300), "https://hooks.example/cdc", 30
    )
    worker.state.context.storage.close()
    assert cli.run(parser.parse_args([*common, "--alert-webhook", "hooks.example"])) == 2
    assert "the alert webhook must be an http(s) URL" in capsys.readouterr().err
    assert cli.run(parser.parse_args([*common, "--alert-ratio", "1"])) == 2
    assert "the alert ratio must be above 1" in capsys.readouterr().err


# ---- several workers ----------------------------------------------------------------------

SPIKING = 20
SMALL_RULE = SpikeRule(min_hour=10, min_day=10)


def week_then_spike(admin: Admin, storage: SqlStorage, name: str) -> str:
    """A venue with a week of 20 check-ins a day at noon, then 200 on the eighth; its id."""
    venue_id = venue(admin, name)
    moments = [
        local(MONDAY + timedelta(days=day), 12 + number / 360)  # ten seconds apart
        for day in range(8)
        for number in range(200 if day == 7 else 20)
    ]
    store(storage, venue_id, scans(venue_id, moments))
    return venue_id


def spiking_venues(admin: Admin, storage: SqlStorage) -> list[str]:
    return [week_then_spike(admin, storage, f"Venue {number}") for number in range(SPIKING)]


SPIKE_TIME = local(MONDAY + timedelta(days=7), 12.99)  # the detector, in the spike's hour


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; their results, each waited for (bounded)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait(timeout=WAIT_S)
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT_S)
        assert not thread.is_alive()
    return results


def test_two_workers_detecting_at_once_store_one_alert_per_venue(
    client: TestClient, admin: Admin, database: Path | str, settings: Settings
):
    ids = spiking_venues(admin, host_storage(client))
    now = to_ms(SPIKE_TIME)
    workers = [Database.parse(database).open() for _ in range(2)]
    try:
        first, second = at_once(
            *(lambda worker=worker: detect_spikes(worker, SMALL_RULE, now) for worker in workers)
        )
    finally:
        for worker in workers:
            worker.close()
    stored = [alert.spike.venue_id for alert in first + second]
    assert sorted(stored) == sorted(ids)  # each venue's alert stored by one of them
    listed = admin.client.get(
        f"{API_PREFIX}/alerts", params={"limit": 1000}, headers=admin.headers
    ).json()
    assert sorted(alert["venue_id"] for alert in listed) == sorted(ids)
    assert detect_spikes(host_storage(client), SMALL_RULE, now + HOUR_MS // 2) == []


def test_one_worker_runs_the_detector_per_interval(database: Path | str):
    workers = [Database.parse(database).open() for _ in range(3)]
    now = to_ms(datetime(2022, 5, 1, tzinfo=UTC))
    try:
        claims = at_once(*(lambda w=w: w.claim_job("spike-detector", now, 60_000) for w in workers))
        assert sorted(claims) == [False, False, True]
        assert not workers[0].claim_job("spike-detector", now + 59_999, 60_000)
        assert workers[1].claim_job("spike-detector", now + 60_000, 60_000)
        assert not workers[2].claim_job("spike-detector", now + 60_001, 60_000)
    finally:
        for worker in workers:
            worker.close()


# ---- who sees alerts ----------------------------------------------------------------------


def test_who_sees_which_alerts(client: TestClient, admin: Admin):
    storage = host_storage(client)
    ids = spiking_venues(admin, storage)
    detect_spikes(storage, SMALL_RULE, to_ms(SPIKE_TIME))
    # The next day, one more: the newest.
    later = Spike(ids[3], "2022-04-19", Span.DAY, to_ms(SPIKE_TIME) + DAY_MS, 900, 90, 10)
    assert storage.add_alert("a_later", later, to_ms(SPIKE_TIME) + DAY_MS)
    everyone = admin.client.get(f"{API_PREFIX}/alerts", headers=admin.headers).json()
    assert len(everyone) == SPIKING + 1
    assert everyone[0]["id"] == "a_later"  # newest first

    epidemiologist = admin.user("epi", "epidemiologist")
    manager = admin.user("manager", "venue-manager", venues=ids[:2])
    screener = admin.user("screener", "screener", org="Acme")
    assert epidemiologist.ok("GET", "/alerts") == everyone
    assert {a["venue_id"] for a in manager.ok("GET", "/alerts")} == set(ids[:2])
    assert [a["venue_id"] for a in manager.ok("GET", "/alerts", params={"venue": ids[1]})] == [
        ids[1]
    ]
    other = manager.request("GET", "/alerts", params={"venue": ids[5]})
    assert (other.status_code, other.json()["error"]) == (404, "unknown-venue")
    refused = screener.request("GET", "/alerts")
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert client.get(f"{API_PREFIX}/alerts").status_code == 401

    assert len(epidemiologist.ok("GET", "/alerts", params={"limit": 3})) == 3
    since = {"since": everyone[0]["created_at"]}
    assert [a["id"] for a in epidemiologist.ok("GET", "/alerts", params=since)] == ["a_later"]
    for bad in ({"limit": 0}, {"limit": 1001}, {"since": "2022-05-01T00:00:00"}):
        response = epidemiologist.request("GET", "/alerts", params=bad)
        assert (response.status_code, response.json()["error"]) == (422, "invalid-request")


# ---- delivery to the webhook --------------------------------------------------------------


class Webhook:
    """A real HTTP server on 127.0.0.1 that refuses its first `failures` POSTs, then takes them."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], dict]] = []
        self.answered: list[int] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hook.lock:
                    status = 503 if len(hook.answered) < hook.failures else 200
                    hook.received.append((dict(self.headers), body))
                    hook.answered.append(status)
                    hook.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, answers: int) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.answered) >= answers, timeout=WAIT_S)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=WAIT_S)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(failures=1)
    try:
        yield hook
    finally:
        hook.close()


def one_spike(admin: Admin, storage: SqlStorage) -> tuple[str, int]:
    """One venue's spike, its alert stored: (the alert's id, the time it was raised)."""
    week_then_spike(admin, storage, "Hall")
    now = to_ms(SPIKE_TIME)
    (alert,) = detect_spikes(storage, SMALL_RULE, now)
    return alert.id, now


def test_an_alert_is_delivered_once_the_webhook_takes_it(
    client: TestClient, admin: Admin, webhook: Webhook
):
    storage = host_storage(client)
    alert_id, now = one_spike(admin, storage)
    rng = random.Random(1)
    with httpx.Client(timeout=5) as http:
        assert deliver_due(storage, webhook.url, lambda: now, http, rng) == 0  # 503
        assert webhook.answered == [503]
        assert deliver_due(storage, webhook.url, lambda: now, http, rng) == 0  # not due yet
        assert len(webhook.answered) == 1
        retry_at = now + int(RETRY_FIRST_S * 1000)  # the first retry: 5-10 s later
        assert deliver_due(storage, webhook.url, lambda: retry_at, http, rng) == 1
        assert deliver_due(storage, webhook.url, lambda: retry_at + HOUR_MS, http, rng) == 0
    assert webhook.answered == [503, 200]
    (headers, body), _ = webhook.received
    assert headers["Idempotency-Key"] == alert_id and headers["Content-Type"] == "application/json"
    assert body["id"] == alert_id and body["venue_name"] == "Hall" and body["count"] == 200
    assert webhook.received[1][1] == body
    stored = storage.get_alert(alert_id)
    assert stored is not None
    assert (stored.attempts, stored.delivered_at_ms) == (2, retry_at)


def test_a_claimed_alert_waits_for_its_lease_to_end(client: TestClient, admin: Admin):
    storage = host_storage(client)
    alert_id, now = one_spike(admin, storage)
    claim = {"lease_ms": 60_000, "raised_since_ms": now - HOUR_MS, "limit": 10}
    assert [a.id for a in storage.claim_alerts(now, **claim)] == [alert_id]
    assert storage.claim_alerts(now + 59_999, **claim) == []  # another worker: leased
    (again,) = storage.claim_alerts(now + 60_000, **claim)  # the first worker died
    assert (again.id, again.attempts) == (alert_id, 2)
    storage.alert_delivered(alert_id, now + 60_001)
    assert storage.claim_alerts(now + 10 * 60_000, **claim) == []


def test_delivery_gives_up_after_the_last_attempt(client: TestClient, admin: Admin):
    storage = host_storage(client)
    alert_id, now = one_spike(admin, storage)
    closed = Webhook(failures=0)
    closed.close()  # nothing listens there any more: each attempt fails to connect
    rng = random.Random(2)
    at = now
    with httpx.Client(timeout=1) as http:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            assert deliver_due(storage, closed.url, lambda at=at: at, http, rng) == 0
            stored = storage.get_alert(alert_id)
            assert stored is not None and stored.attempts == attempt
            at += int(min(RETRY_FIRST_S * 2 ** (attempt - 1), RETRY_MAX_S) * 1000)
    assert at - now < DAY_MS  # every attempt made while the alert was still worth sending
    claim = {"lease_ms": 1, "raised_since_ms": now, "limit": 10}
    assert storage.claim_alerts(at + DAY_MS, **claim) == []  # given up


def test_a_webhook_set_up_late_is_not_sent_old_alerts(
    client: TestClient, admin: Admin, webhook: Webhook
):
    storage = host_storage(client)
    _, now = one_spike(admin, storage)
    with httpx.Client(timeout=5) as http:
        late = now + DAY_MS + 1
        assert deliver_due(storage, webhook.url, lambda: late, http, random.Random(4)) == 0
    assert webhook.received == []


def test_retries_back_off_with_jitter_up_to_a_cap():
    rng = random.Random(3)
    for attempts in range(1, 30):
        delay = min(RETRY_FIRST_S * 2 ** (attempts - 1), RETRY_MAX_S) * 1000
        assert delay / 2 <= retry_delay_ms(attempts, rng) <= delay
    spread = {retry_delay_ms(4, rng) for _ in range(50)}
    assert len(spread) > 40  # jittered: workers' retries do not line up


# ---- in the background, in the host -------------------------------------------------------


def test_the_host_detects_and_delivers_in_the_background(
    database: Path | str, clock: Clock, webhook: Webhook
):
    alerting = Alerting(webhook=webhook.url, detect_every_s=0.05, deliver_every_s=0.05)
    clock.now = local(MONDAY, 0).timestamp()
    settings = Settings(
        database=database,
        public_url=PUBLIC_URL,
        admin_token=ADMIN_TOKEN,
        clock=clock,
        alerting=alerting,
    )
    with TestClient(create_app(settings)) as client:
        admin = Admin(client)
        ids = spiking_venues(admin, host_storage(client))
        clock.now = SPIKE_TIME.timestamp()
        webhook.wait_for(1)  # the first POST, refused
        deadline = time.monotonic() + WAIT_S
        listed: list[dict] = []
        while time.monotonic() < deadline:
            clock.advance(RETRY_FIRST_S)  # past the first retry's time
            listed = admin.client.get(
                f"{API_PREFIX}/alerts", params={"limit": 1000}, headers=admin.headers
            ).json()
            if len(listed) == SPIKING and all(a["delivered_at"] for a in listed):
                break
            time.sleep(0.05)
        assert len(listed) == SPIKING and all(a["delivered_at"] for a in listed)
        assert {a["venue_id"] for a in listed} == set(ids)
    sent = [body["id"] for _, body in webhook.received]
    assert sorted(set(sent)) == sorted(a["id"] for a in listed)
    assert len(sent) == SPIKING + 1  # each once, and the one refused at first once more
