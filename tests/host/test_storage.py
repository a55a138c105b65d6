"""SQLite storage on its own: schema migrations, keys, atomic token use, ingest and purge."""

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from host.core.times import from_ms
from host.signing import HostKeys
from host.storage.base import EnrollmentRefused, VenueRecord
from host.storage.sqlite import PURGE_CHUNK, SCHEMA_VERSION, SqliteStorage
from shared.messages import CheckIn, DeviceForm
from shared.policy import VenueCategory
from shared.rules.defaults import default_ruleset
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
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert SCHEMA_VERSION == 3


def test_a_database_from_a_newer_schema_version_is_refused(tmp_path: Path):
    SqliteStorage(tmp_path / "host.db").close()
    with sqlite3.connect(tmp_path / "host.db") as db:
        db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(
        RuntimeError, match=f"schema version 99; this host knows up to {SCHEMA_VERSION}"
    ):
        SqliteStorage(tmp_path / "host.db")


# The host's schema as version 1 was first released, venue policies in their first form.
SCHEMA_V1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (1);
CREATE TABLE host_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE venues (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, address TEXT NOT NULL, category TEXT NOT NULL,
    code_url TEXT NOT NULL, policy TEXT, created_at BIGINT NOT NULL);
CREATE TABLE people (
    person_ref TEXT PRIMARY KEY, id_hmac BLOB NOT NULL UNIQUE, colour TEXT NOT NULL,
    test_sampled_at BIGINT, test_result TEXT, updated_at BIGINT NOT NULL);
CREATE TABLE enrollment_tokens (
    token_hash BLOB PRIMARY KEY, venue_id TEXT NOT NULL REFERENCES venues (id),
    created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT);
CREATE TABLE devices (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, form TEXT NOT NULL,
    venue_id TEXT NOT NULL REFERENCES venues (id), public_key TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL, last_seen_at BIGINT, revoked_at BIGINT);
CREATE TABLE device_nonces (
    device_id TEXT NOT NULL, nonce TEXT NOT NULL, seen_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, nonce));
CREATE INDEX device_nonces_seen_at ON device_nonces (seen_at);
CREATE TABLE checkins (
    id BLOB PRIMARY KEY, device_id TEXT NOT NULL, venue_id TEXT NOT NULL,
    scanned_at BIGINT NOT NULL, person_ref TEXT, kind TEXT NOT NULL, outcome TEXT NOT NULL,
    reasons TEXT NOT NULL, temperature_c REAL, clock_trusted BOOLEAN NOT NULL,
    received_at BIGINT NOT NULL);
CREATE INDEX checkins_venue_time ON checkins (venue_id, scanned_at);
"""
OLD_POLICY = (
    '{"version":1,"category":"public_place","accept_colours":["green"],'
    '"max_test_age_hours":48.0,"fever_celsius":37.3,"require_temperature":false,'
    '"paper_code":"refer"}'
)


def test_a_version_1_database_is_migrated_with_its_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    path = tmp_path / "host.db"
    residential = default_ruleset(VenueCategory.RESIDENTIAL)
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(SCHEMA_V1)
        db.executemany(
            "INSERT INTO venues VALUES (?, 'Venue', '1 Road', ?, 'https://x/v', ?, 0)",
            [
                ("v_old", "public_place", OLD_POLICY),  # a policy of the first form
                ("v_rules", "residential", residential.model_dump_json()),  # a rule set
                ("v_default", "office", None),
            ],
        )
        db.execute("INSERT INTO devices VALUES ('d_1', 'gate', 'gate', 'v_old', 'k', 5, 6, NULL)")
        db.execute(
            "INSERT INTO checkins VALUES (?, 'd_1', 'v_old', 7, 'p_1', 'health', 'pass',"
            " '[\"ok\"]', 36.5, 1, 8)",
            (uuid7().bytes,),
        )
    storage = SqliteStorage(path)
    try:
        venues = {venue.id: venue for venue in storage.list_venues()}
        assert venues["v_old"].rules is None  # the category's default rule set from now on
        assert venues["v_old"].effective_rules() == default_ruleset(VenueCategory.PUBLIC_PLACE)
        assert venues["v_rules"].rules == residential
        assert venues["v_default"].rules is None
        assert "venue v_old: its stored policy is not a rule set" in caplog.text
        assert "v_rules" not in caplog.text
        device = storage.get_device("d_1")
        assert device is not None and device.last_seen_at_ms == 6
        assert storage.stats().checkins == 1
        assert storage.denylist_version() == 0  # tables added within version 1 are there
        storage.set_venue_rules("v_default", residential)
    finally:
        storage.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        # version 3: a check-in keeps its thermometer readings; older ones have none
        assert db.execute("SELECT temperature_c, thermometer FROM checkins").fetchall() == [
            (36.5, None)
        ]
    reopened = SqliteStorage(path)  # a second open migrates nothing
    try:
        venue = reopened.get_venue("v_default")
        assert venue is not None and venue.rules == residential
    finally:
        reopened.close()


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


def test_check_ins_go_once_both_scanned_and_received_before_the_cutoff(storage: SqliteStorage):
    add_venue(storage)
    add_venue(storage, "v_two")
    day_ms = 24 * 3600 * 1000

    def checkins(venue_id: str, count: int, scanned_day: int) -> list[CheckIn]:
        return [
            CheckIn(
                id=uuid7(),
                venue_id=venue_id,
                scanned_at=from_ms(scanned_day * day_ms + i),
                kind="health",
                outcome="pass",
                clock_trusted=True,
            )
            for i in range(count)
        ]

    storage.add_checkins("d_one", "v_one", 1 * day_ms, checkins("v_one", PURGE_CHUNK + 7, 1))
    storage.add_checkins("d_two", "v_two", 2 * day_ms, checkins("v_two", 3, 1))
    storage.add_checkins("d_one", "v_one", 40 * day_ms, checkins("v_one", 2, 1))  # sent late
    storage.add_checkins("d_one", "v_one", 40 * day_ms, checkins("v_one", 4, 40))
    assert storage.purge_checkins(30 * day_ms) == PURGE_CHUNK + 7 + 3
    assert storage.stats().checkins == 6
    assert storage.purge_checkins(30 * day_ms) == 0
    assert storage.purge_checkins(41 * day_ms) == 6
