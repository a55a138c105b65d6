"""Files only their owner may read (keys, tokens, databases): 0600 in 0700 directories."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

OWNER_FILE = 0o600
OWNER_DIRECTORY = 0o700
# What SQLite keeps beside a database file; it makes them with the database file's own mode.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_directory(path: Path) -> Path:
    """`path` as a directory; those of it made here (parents too) are 0700, whatever the umask.

    A directory that already exists keeps its mode: it may be one the owner shares on purpose.
    """
    missing = []
    for directory in (path, *path.parents):
        if directory.is_dir():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, OWNER_DIRECTORY)
        except FileExistsError:
            continue  # made meanwhile by another process
        os.chmod(directory, OWNER_DIRECTORY)  # mkdir's mode is narrowed by the umask only
    return path


def restrict_to_owner(path: Path) -> None:
    """Take group and other permissions off an existing file (one an older version made 0644)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, mode & 0o700)


def write_private(path: Path, data: bytes) -> None:
    """Write a 0600 file atomically: a partial file, flushed to disk, renamed over `path`."""
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_FILE)
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), OWNER_FILE)  # a partial file left 0644 by an old version
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)
    sync_directory(path.parent)


def sync_directory(path: Path) -> None:
    """Flush a directory's entries to disk, so a rename or unlink in it survives power loss."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def private_database_file(path: Path) -> None:
    """Make an SQLite database file 0600 before SQLite opens it, so its -wal and -shm are too.

    SQLite creates a new file 0644 (less the umask) and its side files with the main file's
    mode; a file that exists already (an older version's) is narrowed, side files with it. A
    missing directory is not made here: SQLite then says it cannot open the file.
    """
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_FILE))
    for name in ("", *SQLITE_SIDE_FILES):
        side = path.with_name(path.name + name)
        if side.exists():
            restrict_to_owner(side)
