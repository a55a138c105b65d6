"""`sentinel demo --json`, the newcomer's first command, checked against what it must show."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from contextlib import closing

import cv2
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


def test_demo_decides_every_case_and_syncs_everything(tmp_path) -> None:
    report = run_demo("--workdir", str(tmp_path / "demo"))
    assert_every_case_decided_and_synced(report)
    if unavailable() is None:
        assert_the_screen_and_the_phone_were_shown(report)
        saved = sorted(path.name for path in (tmp_path / "demo" / "screenshots").iterdir())
        assert saved == [
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
