"""Storage on both backends: schema versions and migrations, keys, atomic tokens, ingest, purge."""

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from host.core.times import from_ms
from host.signing import HostKeys
from host.storage import Database
from host.storage.base import EnrollmentRefused, Storage, VenueRecord
from host.storage.sql import PURGE_CHUNK
from host.storage.sqlite import SCHEMA_VERSION, SqliteStorage, sqlite_refuses_workers
from shared.messages import CheckIn, DeviceForm
from shared.policy import VenueCategory
from shared.rules.defaults import default_ruleset
from shared.uuid7 import Uuid7Generator, uuid7
from tests.host.conftest import START


@pytest.fixture
def storage(database: Path | str) -> Iterator[Storage]:
    opened = Database.parse(database).open()
    try:
        yield opened
    finally:
        opened.close()


def add_venue(storage: Storage, venue_id: str = "v_one") -> None:
    storage.add_venue(
        VenueRecord(
            venue_id, "Mall", "1 Road", VenueCategory.PUBLIC_PLACE, "https://x/v/v_one", None, 0
        )
    )


def test_the_database_is_in_wal_mode_with_a_schema_version(tmp_path: Path):
    SqliteStorage(tmp_path / "host.db").close()
    with sqlite3.connect(tmp_path / "host.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert SCHEMA_VERSION == 5


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


def test_keys_are_made_once_and_kept(database: Path | str):
    first = Database.parse(database).open()
    keys = HostKeys.load(first)
    assert HostKeys.load(first).published == keys.published
    first.close()
    reopened = Database.parse(database).open()
    try:
        again = HostKeys.load(reopened)
    finally:
        reopened.close()
    assert again.published == keys.published
    assert again.id_hmac_key == keys.id_hmac_key
    assert keys.health.kid != keys.venue.kid


def test_a_closed_storage_refuses_work(database: Path | str):
    storage = Database.parse(database).open()
    storage.close()
    with pytest.raises(RuntimeError, match="closed"):
        storage.list_venues()


def test_many_threads_racing_for_one_token_one_wins(storage: Storage):
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


def test_a_big_batch_is_ingested_once(storage: Storage):
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


def test_check_ins_go_once_both_scanned_and_received_before_the_cutoff(storage: Storage):
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


def test_two_storages_on_one_database_share_tokens_and_nonces(database: Path | str):
    """Two workers are two storages on one database: a token enrolls once, a nonce is seen once."""
    first, second = Database.parse(database).open(), Database.parse(database).open()
    try:
        add_venue(first)
        first.add_enrollment_token(b"t" * 32, "v_one", 0, 60_000)
        enrolled = first.enroll_device(
            b"t" * 32, device_id="d_1", name="gate", form=DeviceForm.GATE, public_key="k", now_ms=1
        )
        with pytest.raises(EnrollmentRefused) as refused:
            second.enroll_device(
                b"t" * 32, device_id="d_2", name="gate", form=DeviceForm.GATE, public_key="k",
                now_ms=2,
            )  # fmt: skip
        assert refused.value.code == "token-used"
        assert second.get_device("d_1") == enrolled
        assert first.accept_nonce("d_1", "n-1", 10) is True
        assert second.accept_nonce("d_1", "n-1", 11) is False
        assert second.get_device("d_1").last_seen_at_ms == 10
    finally:
        first.close()
        second.close()


def test_last_seen_is_written_at_most_once_a_second(storage: Storage):
    add_venue(storage)
    storage.add_enrollment_token(b"t" * 32, "v_one", 0, 60_000)
    storage.enroll_device(
        b"t" * 32, device_id="d_1", name="gate", form=DeviceForm.GATE, public_key="k", now_ms=1
    )
    seen = []
    for number, now_ms in enumerate((1000, 1500, 1999, 2000, 2100)):
        assert storage.accept_nonce("d_1", f"n-{number}", now_ms)
        seen.append(storage.get_device("d_1").last_seen_at_ms)
    assert seen == [1000, 1000, 1000, 2000, 2000]


# ---- PostgreSQL: schema versions, partitions, retention --------------------------------------

DAY_MS = 24 * 3600 * 1000
TODAY = 20_000  # 2024-10-04, as days since 1970


PER_PARTITION = "SELECT tableoid::regclass::text, count(*) FROM checkins GROUP BY 1"


def pg_rows(url: str, query: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as db:
        return db.execute(query, params).fetchall()


def checkins_made_on(day: int, count: int, venue_id: str = "v_one") -> list[CheckIn]:
    """Check-ins whose UUIDv7 (and scan time) fall on `day`, one a second from its start."""
    return [
        CheckIn(
            id=Uuid7Generator()(day * DAY_MS + 1000 * i),  # its own: uuid7 never goes back
            venue_id=venue_id,
            scanned_at=from_ms(day * DAY_MS + 1000 * i),
            kind="health",
            outcome="pass",
            clock_trusted=True,
        )
        for i in range(count)
    ]


def test_postgresql_refuses_a_newer_schema_and_leaves_it_untouched(postgres_url: str):
    from host.storage.postgres import SCHEMA_VERSION as PG_VERSION
    from host.storage.postgres import PostgresStorage

    assert PG_VERSION == SCHEMA_VERSION  # both backends are at the same version
    PostgresStorage(postgres_url).close()
    import psycopg

    with psycopg.connect(postgres_url) as db:
        db.execute("UPDATE schema_version SET version = 99")
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
    before = pg_rows(postgres_url, tables)
    refusal = f"schema version 99; this host knows up to {SCHEMA_VERSION}"
    with pytest.raises(RuntimeError, match=refusal):
        PostgresStorage(postgres_url)
    assert pg_rows(postgres_url, "SELECT version FROM schema_version") == [(99,)]
    assert pg_rows(postgres_url, tables) == before


def test_postgresql_workers_starting_together_migrate_once(postgres_url: str):
    from host.storage.postgres import PostgresStorage

    opened: list[PostgresStorage] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_storage() -> None:
        barrier.wait()
        try:
            opened.append(PostgresStorage(postgres_url, pool_max=2))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_storage) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for storage in opened:
        storage.close()
    assert errors == []
    assert len(opened) == 4
    assert pg_rows(postgres_url, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]


@pytest.fixture
def pg_storage(postgres_url: str) -> Iterator[Storage]:
    """PostgreSQL storage on a fresh schema, with the venue v_one."""
    from host.storage.postgres import PostgresStorage

    storage = PostgresStorage(postgres_url)
    try:
        add_venue(storage)
        yield storage
    finally:
        storage.close()


def test_check_ins_land_in_the_partition_of_their_ids_day(pg_storage, postgres_url: str):
    now_ms = TODAY * DAY_MS + 12 * 3600 * 1000
    assert pg_storage.add_checkins("d_1", "v_one", now_ms, checkins_made_on(TODAY, 5)) == 5
    assert pg_storage.add_checkins("d_1", "v_one", now_ms, checkins_made_on(TODAY - 1, 3)) == 3
    far_off = checkins_made_on(TODAY - 400, 2) + checkins_made_on(TODAY + 30, 2)
    assert pg_storage.add_checkins("d_1", "v_one", now_ms, far_off) == 4  # a wrong clock
    assert pg_storage.partitions() == [
        "checkins_d20241003",
        "checkins_d20241004",
        "checkins_default",
    ]
    counts = dict(pg_rows(postgres_url, PER_PARTITION))
    assert counts == {"checkins_d20241003": 3, "checkins_d20241004": 5, "checkins_default": 4}
    assert pg_storage.add_checkins("d_1", "v_one", now_ms, far_off) == 0  # idempotent there too


def test_a_new_partition_takes_its_days_check_ins_from_the_default_one(
    pg_storage, postgres_url: str
):
    early = checkins_made_on(TODAY + 5, 4)  # from a device clock five days fast
    assert pg_storage.add_checkins("d_1", "v_one", TODAY * DAY_MS, early) == 4
    assert pg_storage.partitions() == ["checkins_default"]
    later = checkins_made_on(TODAY + 5, 6)[4:]
    assert pg_storage.add_checkins("d_1", "v_one", (TODAY + 5) * DAY_MS, later) == 2
    assert pg_storage.add_checkins("d_1", "v_one", (TODAY + 5) * DAY_MS, early) == 0
    counts = dict(pg_rows(postgres_url, PER_PARTITION))
    assert counts == {"checkins_d20241009": 6}


def test_retention_drops_whole_partitions_and_deletes_only_late_arrivals(
    pg_storage, postgres_url: str
):
    for day in range(TODAY - 3, TODAY + 1):
        pg_storage.add_checkins("d_1", "v_one", day * DAY_MS + 1, checkins_made_on(day, 10))
    # Made on TODAY - 3 but received two days later: that day's partition must stay.
    late = checkins_made_on(TODAY - 3, 12)[10:]
    pg_storage.add_checkins("d_1", "v_one", (TODAY - 1) * DAY_MS, late)
    stray = checkins_made_on(TODAY - 300, 3)  # in the default partition
    pg_storage.add_checkins("d_1", "v_one", (TODAY - 2) * DAY_MS, stray)
    # Past retention: days TODAY-3 and TODAY-2 wholly; received before the cutoff too.
    cutoff = (TODAY - 1) * DAY_MS
    assert pg_storage.purge_checkins(cutoff) == 10 + 10 + 3
    assert pg_storage.partitions() == [
        "checkins_d20241001",
        "checkins_d20241003",
        "checkins_d20241004",
        "checkins_default",
    ]
    assert pg_storage.stats().checkins == 2 + 10 + 10
    assert pg_storage.purge_checkins(cutoff) == 0
    assert pg_storage.purge_checkins(TODAY * DAY_MS) == 2 + 10
    assert pg_storage.partitions() == ["checkins_d20241004", "checkins_default"]
    # A dropped day's partition comes back when a check-in of that day arrives again.
    assert pg_storage.add_checkins("d_1", "v_one", TODAY * DAY_MS, late) == 2
    assert "checkins_d20241001" in pg_storage.partitions()


# ---- choosing the backend ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("host.db", Database(path=Path("host.db"))),
        ("/srv/sentinel/host.db", Database(path=Path("/srv/sentinel/host.db"))),
        ("sqlite:///state/host.db", Database(path=Path("state/host.db"))),
        ("sqlite:////srv/host.db", Database(path=Path("/srv/host.db"))),
        ("postgresql://127.0.0.1/test", Database(url="postgresql://127.0.0.1/test")),
        ("postgres://u:secret@db:5433/city", Database(url="postgres://u:secret@db:5433/city")),
    ],
)
def test_the_database_is_chosen_by_its_url(given: str, expected: Database):
    assert Database.parse(given) == expected


def test_a_url_is_never_taken_for_a_file_path():
    with pytest.raises(ValueError, match="unknown database URL scheme 'mysql'"):
        Database.parse("mysql://127.0.0.1/test")
    with pytest.raises(ValueError, match="names a file"):
        Database.parse("sqlite:///")


def test_a_database_is_described_without_its_password():
    described = Database.parse("postgresql://city:hunter2@db.example:5433/sentinel").describe()
    assert described == "PostgreSQL db.example:5433/sentinel"
    assert Database.parse("host.db").describe() == "SQLite host.db"


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /srv/shared rw,relatime shared:9 - nfs4 fileserver:/export rw,vers=4.2
31 30 8:2 / /srv/shared/local rw,relatime shared:10 - ext4 /dev/sdb1 rw
"""


def test_sqlite_refuses_several_workers_on_a_network_file_system(tmp_path: Path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    on_nfs = Path("/srv/shared/sentinel/host.db")
    refusal = sqlite_refuses_workers(on_nfs, 2, mountinfo)
    assert refusal is not None and "network file system (nfs4)" in refusal
    assert "postgresql" in refusal
    assert sqlite_refuses_workers(on_nfs, 1, mountinfo) is None  # one worker is safe there
    assert sqlite_refuses_workers(Path("/srv/shared/local/host.db"), 2, mountinfo) is None
    assert sqlite_refuses_workers(Path("/var/lib/sentinel/host.db"), 4, mountinfo) is None


def test_two_workers_making_a_days_first_partition_at_once_both_store(postgres_url: str):
    from host.storage.postgres import PostgresStorage

    workers = [PostgresStorage(postgres_url, pool_max=2) for _ in range(2)]
    try:
        add_venue(workers[0])
        batches = [checkins_made_on(TODAY, 50)[half::2] for half in (0, 1)]
        barrier = threading.Barrier(2)
        stored: list[int] = []

        def ingest(worker: PostgresStorage, batch: list[CheckIn]) -> None:
            barrier.wait()
            stored.append(worker.add_checkins("d_1", "v_one", TODAY * DAY_MS, batch))

        threads = [
            threading.Thread(target=ingest, args=(worker, batch))
            for worker, batch in zip(workers, batches, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(stored) == [25, 25]
        assert workers[1].partitions() == ["checkins_d20241004", "checkins_default"]
        assert dict(pg_rows(postgres_url, PER_PARTITION)) == {"checkins_d20241004": 50}
    finally:
        for worker in workers:
            worker.close()
