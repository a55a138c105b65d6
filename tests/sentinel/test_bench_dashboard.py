"""`sentinel bench dashboard` on a small SQLite city: every page timed, the table printed."""

from __future__ import annotations

from sentinel.bench import dashboard
from sentinel.bench.host import DEFAULT_DB_URL


def test_every_operator_page_is_timed_and_tabled() -> None:
    runs = dashboard.measure(200, 10, ["sqlite"], DEFAULT_DB_URL)
    assert [run.page for run in runs] == [
        "audit log, newest page",
        "audit log, the whole chain verified",
        "audit log, one user's",
        "devices, all",
        "venues, all",
        "one venue",
        "one device",
    ]
    assert all(0 < run.median_ms <= run.slowest_ms for run in runs)
    lines = dashboard.table(runs)
    assert lines[0].startswith("| backend | audit records | devices |")
    assert len(lines) == 2 + len(runs) and "| SQLite | 200 | 10 |" in lines[2]
