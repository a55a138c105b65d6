"""`sentinel bench screen`: a small run, checking what it reports, not how fast."""

from __future__ import annotations

import pytest

from sentinel.browser import unavailable
from tests.sentinel.test_bench import bench_json


def test_screen_bench_times_each_decision_at_both_kiosk_sizes() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    report = bench_json("screen", "--decisions", "4")
    assert [size["size"] for size in report["sizes"]] == ["800x480", "1920x1080"]
    for size in report["sizes"]:
        assert size["decisions"] == 4
        assert 0 < size["page_ms"]["p50"] <= size["frame_ms"]["p50"]  # painted after it is in
        assert 0 <= size["over_budget"] <= 4
