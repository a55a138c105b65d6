"""The device store: durable check-ins, acks, migrations, retention, kills, a full disk, damage."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from device.store import SCHEMA_VERSION, Store, StoreError, StoreFull
from shared.messages import CheckIn, ComponentHealth, ThermometerReadings
from shared.policy import Outcome
from shared.sealed import CardIdentity, DocumentType, SealingKey, seal
from shared.uuid7 import uuid7
from shared.verification import CredentialKind

PAGE_SIZE = 4096  # SQLite's default
# A first reading at the threshold, measured again: 37.8 + 0.2 = 38.0 °C confirms the fever.
FEVER_READINGS = ThermometerReadings(
    outcome="fever", threshold=37.3, offset=0.2, raw=[37.6, 37.8], implausible_raw=[21.5]
)


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


def test_checkins_since_a_time_and_the_backlog_are_counted_together(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    items = [checkin() for _ in range(4)]
    for item in items:
        store.record(item)
    store.mark_acked([items[0].id])
    second_ms = int(items[1].scanned_at.timestamp() * 1000)
    assert store.since_and_unsynced(0) == (4, 3)
    assert store.since_and_unsynced(second_ms) == (
        sum(item.scanned_at >= items[1].scanned_at for item in items),
        3,
    )
    assert store.since_and_unsynced(second_ms + 10**9) == (0, 3)
    assert Store(tmp_path / "empty.db").since_and_unsynced(0) == (0, 0)


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


# ---- schema versions ----------------------------------------------------------------------

# The device's schema as version 1 was first released: no deny list, no sealed identities.
SCHEMA_V1 = """
CREATE TABLE checkins (
    id TEXT PRIMARY KEY,
    venue_id TEXT NOT NULL,
    scanned_at_ms INTEGER NOT NULL,
    person_ref TEXT,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reasons TEXT NOT NULL,
    temperature_c REAL,
    clock_trusted INTEGER NOT NULL,
    acked_at_ms INTEGER
);
CREATE INDEX checkins_pending ON checkins (acked_at_ms, id);
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO settings (name, value) VALUES ('schema_version', '1');
"""


def schema_version(path: Path) -> str:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT value FROM settings WHERE name = 'schema_version'").fetchone()[0]


def test_a_version_1_database_is_migrated_with_its_check_ins(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    pending, acked = checkin(Outcome.REFER), checkin()
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(SCHEMA_V1)
        for item, acked_at_ms in ((pending, None), (acked, 1_000)):
            db.execute(
                "INSERT INTO checkins VALUES (?, 'v_1', ?, 'p_1', 'health', ?, '[\"ok\"]',"
                " 36.6, 1, ?)",
                (
                    str(item.id),
                    int(item.scanned_at.timestamp() * 1000),
                    item.outcome.value,
                    acked_at_ms,
                ),
            )
    store = Store(path)
    assert schema_version(path) == str(SCHEMA_VERSION) == "4"
    assert store.pending(10) == [pending.model_copy(update={"temperature_c": 36.6})]
    assert store.counts() == (2, 1)
    sealed = checkin().model_copy(update={"sealed_identity": "ds-sealed-text"})
    store.record(sealed)
    store.save_denylist(b"document", 5)  # the table came with the migration
    assert store.pending(10)[-1].sealed_identity == "ds-sealed-text"
    measured = checkin().model_copy(update={"thermometer": FEVER_READINGS})
    store.record(measured)  # the column came with version 3
    assert store.pending(10)[-1] == measured
    in_a_vehicle = checkin().model_copy(update={"binding": "plate:京A12345", "group_id": uuid7()})
    store.record(in_a_vehicle)  # the columns came with version 4
    assert store.pending(10)[-1] == in_a_vehicle
    store.close()
    assert Store(path).counts() == (5, 1)  # opening again migrates nothing
    assert schema_version(path) == "4"


def test_a_database_from_a_newer_version_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).record(checkin())
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE settings SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(
        StoreError, match=f"schema version 99; this software knows up to {SCHEMA_VERSION}"
    ):
        Store(path)
    assert sorted(item.name for item in tmp_path.iterdir() if "corrupt" in item.name) == []
    assert schema_version(path) == "99"


def test_the_thermometer_readings_are_kept_until_sent(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    measured = checkin(Outcome.DENY).model_copy(
        update={"temperature_c": 38.0, "thermometer": FEVER_READINGS}
    )
    store.record(measured)
    store.record(checkin())
    store.close()
    first, second = Store(tmp_path / "s.db").pending(10)
    assert first == measured
    assert first.thermometer is not None and first.thermometer.raw == [37.6, 37.8]
    assert second.thermometer is None


def test_a_sealed_identity_is_kept_until_sent(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    key = SealingKey.generate()
    identity = CardIdentity.of(DocumentType.CN_ID, "CHN", "110101199003077774")
    item = CheckIn.model_validate(
        checkin(Outcome.REFER).model_dump() | {"sealed_identity": seal(identity, key.public_raw)}
    )
    store.record(item)
    (pending,) = store.pending(1)
    assert pending == item
    assert pending.sealed_identity is not None and key.open(pending.sealed_identity) == identity


# ---- retention ----------------------------------------------------------------------------


def test_acknowledged_check_ins_go_after_the_retention_period_and_no_others(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    old, recent, unsent = checkin(), checkin(), checkin()
    for item in (old, recent, unsent):
        store.record(item)
    store.mark_acked([old.id, recent.id])
    eight_days_ago_ms = time.time_ns() // 1_000_000 - 8 * 24 * 3600 * 1000
    with closing(sqlite3.connect(tmp_path / "s.db")) as db, db:
        db.execute(
            "UPDATE checkins SET acked_at_ms = ? WHERE id = ?", (eight_days_ago_ms, str(old.id))
        )
        db.execute(
            "UPDATE checkins SET scanned_at_ms = 0 WHERE id = ?", (str(unsent.id),)
        )  # scanned long ago, never acknowledged
    assert store.purge_acked(7 * 24 * 3600) == 1
    assert store.counts() == (2, 1)
    time.sleep(0.002)  # the recent ack must lie in the past, not in this same millisecond
    assert store.purge_acked(0) == 1  # the recent one, once its retention is zero
    assert store.purge_acked(0) == 0
    assert [item.id for item in store.pending(10)] == [unsent.id]


def test_damaged_files_moved_aside_go_after_the_retention_period(tmp_path: Path) -> None:
    path = tmp_path / "sentinel.db"
    path.write_bytes(os.urandom(8192))
    Store(path).close()  # moved aside now: kept for the retention period
    (fresh,) = quarantined(tmp_path)
    old = [tmp_path / f"sentinel.db.corrupt-20260101T000000.000000Z{end}" for end in ("", "-wal")]
    strangers = [
        tmp_path / "sentinel.db.corrupt-notes.txt",  # not a time: not one of ours
        tmp_path / "other.db.corrupt-20260101T000000.000000Z",  # another store's
    ]
    for item in old + strangers:
        item.write_bytes(b"damaged")
    store = Store(path)
    assert store.purge_quarantined(7 * 24 * 3600) == sorted(old)
    assert sorted(quarantined(tmp_path)) == sorted([fresh, *strangers])
    assert store.purge_quarantined(7 * 24 * 3600) == []
    assert store.purge_quarantined(0) == [fresh]  # once the retention is zero
    assert sorted(quarantined(tmp_path)) == sorted(strangers)


# ---- faults -------------------------------------------------------------------------------


def test_a_full_disk_refuses_check_ins_until_there_is_room_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "s.db")
    connection = store._connect()
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLITE_FULL, as from the disk
    recorded: list[CheckIn] = []
    refused = None
    for _ in range(1000):
        item = checkin()
        try:
            store.record(item)
        except StoreFull:
            refused = item
            break
        recorded.append(item)
    assert refused is not None and recorded
    health = store.component()
    assert (health.state, health.detail) == (
        ComponentHealth.FAILING,
        "disk full: check-ins are refused",
    )
    assert "disk full" in caplog.text
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert store.pending(10_000) == recorded  # all of those, and not the refused one
    with pytest.raises(StoreFull):
        store.record(refused)
    assert store.component().since == health.since  # still the same spell

    connection.execute(f"PRAGMA max_page_count = {pages + 100}")
    store.record(refused)
    assert store.component().state is ComponentHealth.OK
    assert store.pending(10_000)[-1] == refused


def quarantined(directory: Path) -> list[Path]:
    return sorted(path for path in directory.iterdir() if ".corrupt-" in path.name)


def test_a_corrupt_database_is_moved_aside_and_what_can_be_read_is_salvaged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sentinel.db"
    store = Store(path)
    items = [checkin() for _ in range(600)]
    items[300] = items[300].model_copy(update={"reasons": ["marked for damage"]})
    for item in items:
        store.record(item)
    store.mark_acked([item.id for item in items[:100]])
    store.close()  # the last connection checkpoints the WAL into the file
    data = bytearray(path.read_bytes())
    page = data.index(b"marked for damage") // PAGE_SIZE
    data[page * PAGE_SIZE : page * PAGE_SIZE + 64] = b"\xff" * 64  # its b-tree page header
    path.write_bytes(bytes(data))

    fresh = Store(path)

    (moved,) = quarantined(tmp_path)
    assert moved.name.startswith("sentinel.db.corrupt-")
    assert moved.read_bytes() == bytes(data)  # kept as found
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 2 and "is corrupt" in errors[0].getMessage()
    salvaged = {item.id: item for item in fresh.pending(10_000)}
    originals = {item.id: item for item in items}
    lost = set(originals) - set(salvaged) - {item.id for item in items[:100]}
    assert items[300].id in lost
    assert 0 < len(lost) <= 60  # the check-ins of the damaged page, no more
    assert all(originals[key] == value for key, value in salvaged.items())
    assert fresh.counts() == (600 - len(lost), 100)  # the acknowledged ones kept as such
    health = fresh.component()
    assert health.state is ComponentHealth.FAILING
    assert health.detail is not None and moved.name in health.detail
    assert (
        f"{600 - len(lost)} check-ins salvaged ({500 - len(lost)} not yet synced)" in health.detail
    )
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    fresh.record(checkin())


def test_a_file_that_is_no_database_is_replaced_by_a_fresh_one(tmp_path: Path) -> None:
    path = tmp_path / "sentinel.db"
    path.write_bytes(os.urandom(8192))
    store = Store(path)
    assert len(quarantined(tmp_path)) == 1
    assert store.counts() == (0, 0)
    assert store.component().state is ComponentHealth.FAILING
    store.record(checkin())
    assert schema_version(path) == str(SCHEMA_VERSION)


def test_an_unopenable_file_is_an_error_not_a_quarantine(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        Store(tmp_path / "no-such-directory" / "sentinel.db")
    assert quarantined(tmp_path) == []


def test_a_revocation_drops_the_hosts_gifts_and_keeps_check_ins(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.save_denylist(b"signed list", 1)
    store.record(checkin())
    assert store.revocation("d_1") is None
    store.mark_revoked("d_1", "host answered 403 device-revoked")
    assert store.revocation("d_1") == "host answered 403 device-revoked"
    assert store.revocation("d_2") is None, "a device enrolled anew is not revoked"
    assert store.load_config() is None and store.load_denylist() is None
    assert store.counts() == (1, 0)
    reopened = Store(tmp_path / "s.db")
    assert reopened.revocation("d_1") == "host answered 403 device-revoked"
