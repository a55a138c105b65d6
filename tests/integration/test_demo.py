"""`sentinel demo --json`, the newcomer's first command, checked against what it must show."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import cv2
import httpx
import pytest

from sentinel.browser import unavailable
from sentinel.demo import CASES, sentinel_command

pytestmark = pytest.mark.integration


def run_demo(*options: str) -> dict:
    result = subprocess.run(
        sentinel_command("demo", "--json", *options),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def assert_every_case_decided_and_synced(report: dict) -> None:
    decisions = {item["case"]: item for item in report["decisions"]}
    assert list(decisions) == [case.name for case in CASES]
    for case in ("green", "stale-test-residential"):
        assert decisions[case]["decision"] == "pass"
    causes = {
        "stale-test": "test-too-old",
        "yellow": "yellow",
        "red": "red",
        "expired": "expired",
        "forged": "bad-signature",
        "foreign-issuer": "untrusted-signer",
        "fever": "fever",  # the clinic's emulated thermometer reads 38.2 °C
    }
    for case, cause in causes.items():
        assert decisions[case]["decision"] in {"deny", "refer"}, case
        assert cause in " ".join(decisions[case]["reasons"]), case
    assert decisions["not-a-code"]["decision"] == "ignored"
    assert decisions["repeat"]["decision"] == "ignored"
    assert "repeat" in decisions["repeat"]["reasons"][0]
    # Nine people decided (the ignored two make no check-in), all of them on the host once;
    # with Chromium, three ID cards at the kiosk with its screen, and one phone, besides.
    if unavailable() is None:
        assert report["skipped"] is None
        assert (report["recorded"], report["phone_checkins"]) == (12, 1)
    else:
        assert report["skipped"] == unavailable()
        assert (report["recorded"], report["phone_checkins"]) == (9, 0)
    assert report["recorded"] == report["synced"]
    assert report["host_checkins"] == report["synced"] + report["phone_checkins"]


def assert_the_screen_and_the_phone_were_shown(report: dict) -> None:
    """The kiosk screen saved idle and at each decision, and the phone's check-in page read."""
    screen, phone = report["screen"], report["phone"]
    assert list(screen) == ["idle", "pass", "deny", "refer"]
    headlines = {
        "pass": "通过 Pass",
        "deny": "禁止通行 Do not enter",
        "refer": "请稍候 Staff check",
    }
    for state, headline in headlines.items():
        assert screen[state]["text"][0] == headline, state
    assert screen["idle"]["text"][:2] == [
        "请出示健康码或将身份证放在此处",
        "Show your code or lay your ID card here",
    ]
    for seen in screen.values():
        assert cv2.imread(seen["screenshot"]).shape == (480, 800, 3)
    assert (phone["page"], phone["decision"], phone["new"]) == ("checkin", "pass", True)
    assert (phone["colour"], phone["headline"]) == ("绿码 Green code", "通过 Pass")
    assert (phone["venue"], phone["address"]) == ("Central Library", "1 Library Road")
    assert phone["reason"] == "绿码，请通行 / Green code, please enter."
    assert "negative · 10 h ago" in phone["test"]
    for path in phone["screenshots"]:
        assert cv2.imread(path).shape == (844, 390, 3)


def signs_in(host_url: str, token: str) -> str:
    """Sign in to the dashboard with `token` as a browser would; the page it lands on."""
    with httpx.Client(base_url=host_url, timeout=10) as browser:
        form = browser.get("/dashboard/sign-in")
        secret = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert secret is not None
        signed = browser.post(
            "/dashboard/sign-in",
            data={"csrf": secret[1], "token": token, "then": ""},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text[:500]
        return signed.headers["location"]


def run_demo_kept(workdir: Path) -> tuple[list[str], dict]:
    """`sentinel demo --keep --json`: its tables, printed while the host serves; its JSON.

    While it serves, each printed token signs in to the dashboard; then Ctrl-C ends it.
    """
    demo = subprocess.Popen(
        sentinel_command("demo", "--keep", "--json", "--workdir", str(workdir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert demo.stdout is not None
    deadline = time.monotonic() + 300
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if "serving until interrupted" in line:
            break
    assert lines and "serving until interrupted" in lines[-1], demo.stderr.read()[-3000:]
    (url,) = [line.split()[1] for line in lines if line.startswith("dashboard: ")]
    tokens = {words[0]: words[2] for words in (line.split() for line in lines[-5:-1])}
    host_url = url.removesuffix("/dashboard")
    assert {role: signs_in(host_url, token) for role, token in tokens.items()} == {
        "admin": "/dashboard/flows",
        "epidemiologist": "/dashboard/flows",
        "venue-manager": "/dashboard/flows",
        "screener": "/dashboard/screening",
    }
    demo.send_signal(signal.SIGINT)
    rest, errors = demo.communicate(timeout=60)
    assert demo.returncode == 0, errors[-3000:]
    with pytest.raises(httpx.HTTPError):
        httpx.get(host_url, timeout=2)  # the host stopped with the demo
    return lines, json.loads(rest.strip().splitlines()[-1])


def test_demo_decides_every_case_and_syncs_everything(tmp_path) -> None:
    lines, report = run_demo_kept(tmp_path / "demo")
    assert any(line.startswith("green ") and " pass " in line for line in lines)  # the tables
    assert [user["role"] for user in report["dashboard"]["users"]] == [
        "admin",
        "epidemiologist",
        "venue-manager",
        "screener",
    ]
    assert_every_case_decided_and_synced(report)
    if unavailable() is None:
        assert_the_screen_and_the_phone_were_shown(report)
        saved = sorted(path.name for path in (tmp_path / "demo" / "screenshots").iterdir())
        assert sorted(report["dashboard_pages"]) == ["devices", "flows", "screening", "tracing"]
        for path in report["dashboard_pages"].values():
            assert cv2.imread(path).shape[1] == 1280  # the whole page, as wide as the window
        assert saved == [
            "dashboard-devices.png",
            "dashboard-flows.png",
            "dashboard-screening.png",
            "dashboard-tracing.png",
            "kiosk-deny.png",
            "kiosk-idle.png",
            "kiosk-pass.png",
            "kiosk-refer.png",
            "phone-checkin.png",
            "phone-code.png",
        ]
    # The fever, the clinic's one case, reached the host with the thermometer's raw readings:
    # a high reading, measured again.
    with closing(sqlite3.connect(tmp_path / "demo" / "host.db")) as db:
        measured = db.execute(
            "SELECT outcome, temperature_c, thermometer FROM checkins WHERE thermometer IS NOT NULL"
        ).fetchall()
    ((outcome, temperature, readings),) = measured
    assert (outcome, temperature) == ("deny", 38.2)
    assert json.loads(readings) == {
        "outcome": "fever",
        "threshold": 37.3,
        "offset": 0.0,
        "raw": [38.2, 38.2],
        "implausible_raw": [],
    }


def test_the_demo_on_postgresql_decides_the_same_and_leaves_no_schema(
    postgres_server: str, tmp_path
) -> None:
    import psycopg

    def demo_schemas() -> list[tuple]:
        with psycopg.connect(postgres_server) as db:
            return db.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sentinel_demo_%'"
            ).fetchall()

    before = demo_schemas()
    report = run_demo("--db", postgres_server, "--workdir", str(tmp_path / "demo"))
    assert_every_case_decided_and_synced(report)
    if unavailable() is None:
        assert_the_screen_and_the_phone_were_shown(report)
    assert demo_schemas() == before
