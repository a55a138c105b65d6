"""`sentinel bench sync`: a small run, checking what it reports, not how fast."""

from __future__ import annotations

import pytest

from tests.sentinel.test_bench import bench_json

pytestmark = pytest.mark.integration


def test_sync_bench_commits_at_each_level_and_syncs_a_backlog_directly_and_by_proxy():
    report = bench_json("sync", "--quick", "--latency-ms", "50")
    assert [rate["synchronous"] for rate in report["commits"]] == ["FULL", "NORMAL", "OFF"]
    assert all(rate["checkins"] == 200 and rate["per_second"] > 0 for rate in report["commits"])
    assert report["commits"][0]["vs_full"] == 1
    batch = report["batch"]
    assert batch["checkins"] == 1000
    assert batch["json_bytes"] > 3 * batch["gzip_bytes"]  # a batch compresses well
    direct, proxied = report["sync"]
    assert (direct["path"], direct["latency_ms"], direct["checkins"]) == ("direct", 0, 2000)
    assert (proxied["latency_ms"], proxied["checkins"], proxied["window"]) == (50, 2000, 4)
    assert (direct["host_checkins"], proxied["host_checkins"]) == (2000, 4000)
    assert proxied["seconds"] >= 0.1  # two batches at once: 50 ms up and 50 ms down, at least
