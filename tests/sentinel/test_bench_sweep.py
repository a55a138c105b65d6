"""`sentinel bench sweep`: a quick run prints its table and its JSON, checked for what they say."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from sentinel.bench.sweep import QUICK_NUMBERS
from tests.sentinel.test_bench import bench_json

pytestmark = pytest.mark.integration
ROW = re.compile(
    r"^\| (off|on) \| True \| ([\d,]+) \| ([\d,]+) \| [\d.]+ h \([\d,]+ s\) \| [\d.]+ \|$"
)


def test_a_quick_sweep_prints_its_table():
    result = subprocess.run(
        [sys.executable, "-m", "sentinel", "bench", "sweep", "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("A status sweep (measured ")
    assert f"{QUICK_NUMBERS:,} ID numbers" in lines[0]
    header = lines.index(
        "| limits | found | requests | refused (429) | attacker's time | ms per status |"
    )
    rows = [ROW.match(line) for line in lines[header + 2 : header + 4]]
    assert all(rows), lines
    counts = {row[1]: (int(row[2].replace(",", "")), int(row[3].replace(",", ""))) for row in rows}
    assert counts["off"] == (QUICK_NUMBERS, 0)  # every number asked once, none refused
    requests, refused = counts["on"]
    assert refused > 0 and requests == QUICK_NUMBERS + refused


def test_a_quick_sweep_as_json_waits_out_the_limits():
    report = bench_json("sweep", "--quick")
    off, on = report["limits"]["off"], report["limits"]["on"]
    assert report["numbers"] == QUICK_NUMBERS
    assert off["found"] and on["found"]
    assert (off["lookups"], off["refused"]) == (QUICK_NUMBERS, 0)
    assert on["lookups"] == QUICK_NUMBERS + on["refused"] and on["refused"] > 0
    assert on["attacker_seconds"] > off["attacker_seconds"]
    assert on["ms_per_status"] > 0
