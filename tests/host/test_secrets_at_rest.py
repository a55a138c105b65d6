"""Secrets at rest: owner-only files whatever the umask, keys apart from the database, moved out."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from host.app import create_app
from host.cli import ensure_admin_token
from host.core.config import Settings
from host.core.security import id_number_hmac
from host.keystore import KeyDirectory, KeyDirectoryError
from host.signing import HostKeys
from host.storage import Database
from host.storage.base import Storage
from sentinel.demo import HostProcess, free_port
from shared.keys import SigningKey
from shared.private_files import private_database_file
from shared.sealed import SealingKey
from tests.conftest import UMASKS, mode, umask
from tests.host.conftest import ID_NUMBER, PUBLIC_URL, Admin, TestClient, db_contents

SERVE_SECONDS = 60


def key_directory_of(settings: Settings) -> Path:
    storage = settings.database.open()
    try:
        return storage.default_key_directory
    finally:
        storage.close()


def execute(settings: Settings, sql: str, rows: list[tuple]) -> None:
    """Statements straight on the host's database, as an older version would have run them."""
    database = settings.database
    assert isinstance(database, Database)
    if database.path is not None:
        with closing(sqlite3.connect(database.path)) as db, db:
            db.executemany(sql, rows)
        return
    import psycopg

    assert database.url is not None
    with psycopg.connect(database.url) as db, db.cursor() as cursor:
        cursor.executemany(sql.replace("?", "%s"), rows)


def secret_bytes(keys: HostKeys) -> list[bytes]:
    """Every form in which the host's private keys and hash key could sit in a file."""
    found = [keys.id_hmac_key, keys.sealing.to_bytes()]
    for key in (keys.health, keys.venue, keys.policy):
        found.append(key.private_key.private_numbers().private_value.to_bytes(32, "big"))
        found.append(b"".join(key.to_pem().splitlines()[1:-1])[:40])  # the PEM's base64
    return found + [value.hex().encode() for value in found]  # PostgreSQL's COPY writes hex


def holds_any(contents: bytes, secrets: list[bytes]) -> bool:
    return any(secret in contents for secret in secrets)


# ---- file modes ------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", UMASKS, ids=["umask-022", "umask-000"])
def test_the_hosts_files_are_its_owners_alone_whatever_the_umask(tmp_path: Path, mask: int):
    with umask(mask):
        storage = Database.parse(tmp_path / "data" / "host.db").open()
        try:
            HostKeys.load(storage)  # makes the keys, and writes to the database
            database = tmp_path / "data" / "host.db"
            for name in ("host.db", "host.db-wal", "host.db-shm"):
                assert mode(tmp_path / "data" / name) == 0o600, name
            assert mode(database.parent) == 0o700
            keys = storage.default_key_directory
        finally:
            storage.close()
        token = ensure_admin_token(tmp_path / "secret" / "admin-token")
        journaled = tmp_path / "other.db"
        private_database_file(journaled)
        with closing(sqlite3.connect(journaled, isolation_level=None)) as db:
            db.execute("PRAGMA journal_mode = DELETE")
            db.execute("BEGIN IMMEDIATE")
            db.execute("CREATE TABLE t (x)")
            assert mode(journaled.with_name("other.db-journal")) == 0o600
            db.execute("COMMIT")
    assert mode(keys) == 0o700
    assert sorted(path.name for path in keys.iterdir() if mode(path) != 0o600) == []
    assert len(list(keys.iterdir())) == 7  # 4 keys, the hash key, the manifest, the lock
    assert (mode(token), mode(token.parent)) == (0o600, 0o700)


def test_a_served_host_makes_only_owner_only_files(tmp_path: Path):
    """`sentinel host serve`, a real process started under umask 000: database, keys, token."""
    with umask(0o000):
        host = HostProcess(tmp_path / "served", free_port(), None)
        host.workdir.mkdir(mode=0o700)
        try:
            host.start()
            with httpx.Client(base_url=host.url, timeout=10) as client:
                Admin(client, token_of(host)).venue()
            made = {
                path.relative_to(host.workdir).as_posix(): mode(path)
                for path in host.workdir.rglob("*")
                if path.name != "host.log"  # the test's own capture of the host's output
            }
        finally:
            host.kill()
    assert {"host.db", "host.db-wal", "host.db-shm", "admin-token", "host.db.keys"} <= set(made)
    assert {name for name, bits in made.items() if bits not in (0o600, 0o700)} == set()


def token_of(host: HostProcess) -> str:
    return (host.workdir / "admin-token").read_text().strip()


def test_an_older_versions_open_files_are_narrowed(tmp_path: Path):
    path = tmp_path / "host.db"
    with umask(0o022), closing(sqlite3.connect(path)) as older:
        older.execute("PRAGMA journal_mode = WAL")
        older.execute("CREATE TABLE t (x)")
        assert mode(path) == mode(tmp_path / "host.db-wal") == 0o644
        Database.parse(path).open().close()
        assert mode(path) == mode(tmp_path / "host.db-wal") == 0o600


def test_a_key_directory_others_can_read_is_refused(tmp_path: Path):
    storage = Database.parse(tmp_path / "host.db").open()
    try:
        HostKeys.load(storage)
        storage.default_key_directory.chmod(0o755)
        with pytest.raises(KeyDirectoryError, match=r"open to other users .*chmod go-rwx"):
            HostKeys.load(storage)
    finally:
        storage.close()


# ---- keys apart from the data ----------------------------------------------------------------


def older_versions_secrets() -> tuple[dict[str, bytes], HostKeys]:
    """What an older version kept in host_secrets, and the keys they are."""
    health, venue, policy = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    sealing, hmac_key = SealingKey.generate(), os.urandom(32)
    stored = {
        "signing-key:health": health.to_pem(),
        "signing-key:venue": venue.to_pem(),
        "signing-key:policy": policy.to_pem(),
        "sealing-key": sealing.to_bytes(),
        "id-hmac-key": hmac_key,
    }
    keys = HostKeys(
        health=health, venue=venue, policy=policy, sealing=sealing, id_hmac_key=hmac_key
    )
    return stored, keys


def same_keys(loaded: HostKeys, expected: HostKeys) -> bool:
    return (
        loaded.published == expected.published
        and loaded.sealing.kid == expected.sealing.kid
        and loaded.id_hmac_key == expected.id_hmac_key
    )


def test_an_older_databases_keys_are_moved_out_and_deleted_from_it(settings: Settings):
    settings.database.open().close()  # the schema
    stored, expected = older_versions_secrets()
    execute(settings, "INSERT INTO host_secrets (name, value) VALUES (?, ?)", list(stored.items()))
    assert holds_any(db_contents(settings), secret_bytes(expected))

    with TestClient(create_app(settings)) as client:
        admin = Admin(client)
        person = admin.import_person()
    storage = settings.database.open()
    try:
        assert storage.legacy_secrets() == {}
        assert same_keys(HostKeys.load(storage), expected)
        assert storage.find_person_by_id_hmac(id_number_hmac(expected.id_hmac_key, ID_NUMBER))
    finally:
        storage.close()
    assert person["person_ref"]
    assert not holds_any(db_contents(settings), secret_bytes(expected))  # nor in free pages


def test_a_move_interrupted_at_any_step_loses_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    settings.database.open().close()
    stored, expected = older_versions_secrets()
    execute(settings, "INSERT INTO host_secrets (name, value) VALUES (?, ?)", list(stored.items()))

    def power_cut(*_args: object) -> None:
        raise OSError("power cut")

    storage = settings.database.open()
    try:
        # Cut before the manifest is written (key files only), then before the database forgets.
        with monkeypatch.context() as cut:
            cut.setattr(KeyDirectory, "save", power_cut)
            with pytest.raises(OSError, match="power cut"):
                HostKeys.load(storage)
        assert storage.legacy_secrets() == stored
        with monkeypatch.context() as cut:
            cut.setattr(storage, "forget_legacy_secrets", power_cut)
            with pytest.raises(OSError, match="power cut"):
                HostKeys.load(storage)
        assert storage.legacy_secrets() == stored
        assert same_keys(HostKeys.load(storage), expected)  # the next start finishes the move
        assert storage.legacy_secrets() == {}
        assert same_keys(HostKeys.load(storage), expected)
    finally:
        storage.close()


def test_a_copy_of_the_database_alone_holds_no_key_and_starts_no_host(
    settings: Settings, tmp_path: Path
):
    with TestClient(create_app(settings)) as client:
        Admin(client).import_person()
        Admin(client).venue()
    storage = settings.database.open()
    try:
        keys = HostKeys.load(storage)
    finally:
        storage.close()
    assert not holds_any(db_contents(settings), secret_bytes(keys))

    database = settings.database
    assert isinstance(database, Database)
    if database.path is not None:  # the files copied, and opened where the keys are not
        copy = tmp_path / "stolen" / "host.db"
        copy.parent.mkdir()
        for path in database.path.parent.glob("host.db*"):
            if path.is_file():
                shutil.copy(path, copy.with_name(path.name))
        opened, keys_given = Database(path=copy).open(), None
    else:  # the same database, opened with another key directory
        opened, keys_given = database.open(), tmp_path / "stolen" / "keys"
    try:
        with pytest.raises(KeyDirectoryError, match="holds no keys, and this database was served"):
            HostKeys.load(opened, key_directory=keys_given)
        made = keys_given or opened.default_key_directory
    finally:
        opened.close()
    assert not made.exists()  # no new keys made, not even their directory


def test_serve_refuses_a_database_without_its_keys(database: Path | str, tmp_path: Path):
    settings = Settings(database=database, public_url=PUBLIC_URL, admin_token="x" * 16)
    with TestClient(create_app(settings)):  # served once: keys made, the database bound to them
        pass
    elsewhere = tmp_path / "elsewhere"
    token = elsewhere / "admin-token"
    command = [sys.executable, "-m", "sentinel", "host", "serve", "--db", str(database)]
    command += ["--public-url", PUBLIC_URL, "--port", "1", "--keys", str(elsewhere / "keys")]
    command += ["--admin-token-file", str(token)]
    served = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=SERVE_SECONDS
    )
    assert served.returncode == 2, served.stderr
    assert "holds no keys, and this database was served with key ring" in served.stderr
    assert not elsewhere.exists()  # neither keys nor a token made for it


def test_keys_of_another_database_are_refused(tmp_path: Path):
    first, second = (Database.parse(tmp_path / name).open() for name in ("a.db", "b.db"))
    storages: list[Storage] = [first, second]
    try:
        HostKeys.load(first)
        HostKeys.load(second)
        with pytest.raises(KeyDirectoryError, match="but this database was served with key ring"):
            HostKeys.load(second, key_directory=first.default_key_directory)
    finally:
        for storage in storages:
            storage.close()
