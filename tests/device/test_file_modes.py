"""The device's key, enrollment and check-in database are its owner's alone, whatever the umask."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from device.identity import (
    ENROLLMENT_FILE,
    KEY_FILE,
    Enrollment,
    load_or_create_key,
    save_enrollment,
)
from device.store import Store
from tests.conftest import UMASKS, mode, umask


@pytest.mark.parametrize("mask", UMASKS, ids=["umask-022", "umask-000"])
def test_the_devices_files_are_its_owners_alone(tmp_path: Path, mask: int):
    state = tmp_path / "var" / "sentinel"
    with umask(mask):
        load_or_create_key(state)
        save_enrollment(state, Enrollment("d_1", "v_1", "https://host.example.org"))
        store = Store(state / "device.db")
        try:
            store.mark_denylist_refreshed(1)  # a write: the WAL and its index are made
            files = {path.name: mode(path) for path in state.iterdir()}
        finally:
            store.close()
    assert files == {
        KEY_FILE: 0o600,
        ENROLLMENT_FILE: 0o600,
        "device.db": 0o600,
        "device.db-wal": 0o600,
        "device.db-shm": 0o600,
    }
    assert mode(state) == mode(state.parent) == 0o700


def test_an_older_agents_open_database_is_narrowed(tmp_path: Path):
    path = tmp_path / "device.db"
    with umask(0o022), closing(sqlite3.connect(path)) as older:
        older.execute("PRAGMA journal_mode = WAL")
        older.execute("CREATE TABLE t (x)")
        assert mode(path) == 0o644
        Store(path).close()
        assert mode(path) == mode(tmp_path / "device.db-wal") == 0o600
