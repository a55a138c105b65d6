"""`sentinel bench flows-pages` on a small SQLite city: every flows page timed and tabled."""

from __future__ import annotations

from sentinel.bench import dashboard_flows
from sentinel.bench.host import DEFAULT_DB_URL


def test_every_flows_page_is_timed_and_tabled() -> None:
    runs = dashboard_flows.measure(3000, ["sqlite"], DEFAULT_DB_URL)
    assert [run.page for run in runs] == [
        "busiest venue, hours",
        "busiest venue, 30 days",
        "district (whole city), hours",
        "district (whole city), 30 days",
        "alerts",
    ]
    assert all(0 < run.median_ms <= run.slowest_ms for run in runs)
    assert all(run.checkins > 0 and run.venues > 1 for run in runs)
    lines = dashboard_flows.table(runs)
    assert lines[0] == "| backend | check-ins | venues | page | median ms | slowest ms |"
    assert len(lines) == 2 + len(runs) and lines[2].startswith("| SQLite |")
