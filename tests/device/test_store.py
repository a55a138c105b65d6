"""The device store: durable check-ins, acknowledgement, cached configuration, and a hard kill."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from device.store import Store
from shared.messages import CheckIn
from shared.policy import Outcome
from shared.uuid7 import uuid7
from shared.verification import CredentialKind


def checkin(outcome: Outcome = Outcome.PASS) -> CheckIn:
    return CheckIn(
        id=uuid7(),
        venue_id="v_1",
        scanned_at=datetime.fromtimestamp(time.time_ns() // 1_000_000 / 1000, UTC),  # ms, as kept
        person_ref="p_1",
        kind=CredentialKind.HEALTH,
        outcome=outcome,
        reasons=["ok"],
        clock_trusted=True,
    )


def test_recorded_checkins_are_pending_in_order_until_acked(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    items = [checkin() for _ in range(5)]
    for item in items:
        store.record(item)
    assert [item.id for item in store.pending(10)] == [item.id for item in items]
    assert store.pending(2) == items[:2]
    store.mark_acked([items[0].id, items[2].id])
    assert [item.id for item in store.pending(10)] == [items[1].id, items[3].id, items[4].id]
    assert store.counts() == (5, 2)


def test_checkins_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    item = checkin(Outcome.DENY)
    Store(path).record(item)
    assert Store(path).pending(10) == [item]


def test_store_uses_wal_and_full_sync(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    connection = store._connect()
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_checkin_reported_as_recorded_survives_sigkill(tmp_path: Path) -> None:
    """A writer prints each id after `record` returns; whatever it printed must be on disk."""
    path = tmp_path / "s.db"
    writer = (
        "import sys\n"
        "from device.store import Store\n"
        "from tests.device.test_store import checkin\n"
        f"store = Store(__import__('pathlib').Path({str(path)!r}))\n"
        "while True:\n"
        "    item = checkin()\n"
        "    store.record(item)\n"
        "    print(item.id, flush=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", writer],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    reported: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 20
    while len(reported) < 50 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if line:
            reported.append(line.strip())
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    reported += [line.strip() for line in process.stdout.read().splitlines() if line.strip()]
    assert len(reported) >= 50
    on_disk = {str(item.id) for item in Store(path).pending(100_000)}
    assert set(reported) <= on_disk
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
