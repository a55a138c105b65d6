"""`sentinel demo --json`, the newcomer's first command, checked against what it must show."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from contextlib import closing

import pytest

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
    # Nine people decided (the ignored two make no check-in), all of them on the host once.
    assert report["recorded"] == report["synced"] == report["host_checkins"] == 9


def test_demo_decides_every_case_and_syncs_everything(tmp_path) -> None:
    assert_every_case_decided_and_synced(run_demo("--workdir", str(tmp_path / "demo")))
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
    postgres_server: str,
) -> None:
    import psycopg

    def demo_schemas() -> list[tuple]:
        with psycopg.connect(postgres_server) as db:
            return db.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sentinel_demo_%'"
            ).fetchall()

    before = demo_schemas()
    assert_every_case_decided_and_synced(run_demo("--db", postgres_server))
    assert demo_schemas() == before
