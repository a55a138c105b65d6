"""SQLite storage on its own: schema versioning, persistent keys, atomic token use, bulk ingest."""

import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from host.signing import HostKeys
from host.storage.base import EnrollmentRefused, VenueRecord
from host.storage.sqlite import SqliteStorage
from shared.messages import CheckIn, DeviceForm
from shared.policy import VenueCategory
from shared.uuid7 import uuid7
from tests.host.conftest import START


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[SqliteStorage]:
    opened = SqliteStorage(tmp_path / "host.db")
    try:
        yield opened
    finally:
        opened.close()


def add_venue(storage: SqliteStorage, venue_id: str = "v_one") -> None:
    storage.add_venue(
        VenueRecord(
            venue_id, "Mall", "1 Road", VenueCategory.PUBLIC_PLACE, "https://x/v/v_one", None, 0
        )
    )


def test_the_database_is_in_wal_mode_with_a_schema_version(storage: SqliteStorage, tmp_path: Path):
    with sqlite3.connect(tmp_path / "host.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]


def test_a_database_from_another_schema_version_is_refused(tmp_path: Path):
    SqliteStorage(tmp_path / "host.db").close()
    with sqlite3.connect(tmp_path / "host.db") as db:
        db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(RuntimeError, match="schema version 99"):
        SqliteStorage(tmp_path / "host.db")


def test_keys_are_made_once_and_kept(tmp_path: Path):
    first = SqliteStorage(tmp_path / "host.db")
    keys = HostKeys.load(first)
    assert HostKeys.load(first).published == keys.published
    first.close()
    reopened = SqliteStorage(tmp_path / "host.db")
    try:
        again = HostKeys.load(reopened)
    finally:
        reopened.close()
    assert again.published == keys.published
    assert again.id_hmac_key == keys.id_hmac_key
    assert keys.health.kid != keys.venue.kid


def test_a_closed_storage_refuses_work(tmp_path: Path):
    storage = SqliteStorage(tmp_path / "host.db")
    storage.close()
    with pytest.raises(RuntimeError, match="closed"):
        storage.list_venues()


def test_many_threads_racing_for_one_token_one_wins(storage: SqliteStorage):
    add_venue(storage)
    storage.add_enrollment_token(b"t" * 32, "v_one", 0, 60_000)
    racers = 16
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []

    def enroll(index: int) -> None:
        barrier.wait()
        try:
            storage.enroll_device(
                b"t" * 32,
                device_id=f"d_{index}",
                name="gate",
                form=DeviceForm.GATE,
                public_key="k",
                now_ms=1000,
            )
            outcomes.append("enrolled")
        except EnrollmentRefused as refusal:
            outcomes.append(refusal.code)

    threads = [threading.Thread(target=enroll, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["enrolled"] + ["token-used"] * (racers - 1)
    assert len(storage.list_devices()) == 1


def test_a_big_batch_is_ingested_once(storage: SqliteStorage):
    checkins = [
        CheckIn(
            id=uuid7(),
            venue_id="v_one",
            scanned_at=START + timedelta(seconds=i),
            kind="health",
            outcome="pass",
            clock_trusted=True,
        )
        for i in range(1000)
    ]
    assert storage.add_checkins("d_one", "v_one", 0, checkins) == 1000
    assert storage.add_checkins("d_one", "v_one", 0, checkins[::2]) == 0
    assert storage.stats().checkins == 1000
