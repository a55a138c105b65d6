"""Choosing the storage backend from the database the operator names: a file path or a URL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from host.storage.base import Storage

POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class Database:
    """Where the host keeps its state: a SQLite file (`path`) or a PostgreSQL URL (`url`)."""

    path: Path | None = None
    url: str | None = None

    @classmethod
    def parse(cls, given: str | Path) -> Database:
        """A path, `sqlite:///relative.db`, `sqlite:////absolute.db` or `postgresql://...`.

        A URL is never read as a file path: an unknown scheme is an error, not a file name.
        """
        if isinstance(given, Path):
            return cls(path=given)
        scheme = urlsplit(given).scheme.lower() if "://" in given else ""
        if scheme in POSTGRES_SCHEMES:
            return cls(url=given)
        if scheme == "sqlite":
            path = given.split("://", 1)[1].removeprefix("/")
            if not path:
                raise ValueError("a sqlite:/// URL names a file: sqlite:///host.db")
            return cls(path=Path(path))
        if scheme:
            raise ValueError(
                f"unknown database URL scheme {scheme!r}: give a file path, sqlite:///FILE"
                " or postgresql://HOST/DATABASE"
            )
        return cls(path=Path(given))

    @property
    def is_postgres(self) -> bool:
        return self.url is not None

    def describe(self) -> str:
        """The database for a log line, without any password the URL may hold."""
        if self.url is None:
            return f"SQLite {self.path}"
        parts = urlsplit(self.url)
        host = parts.hostname or "local socket"
        port = f":{parts.port}" if parts.port else ""
        return f"PostgreSQL {host}{port}{parts.path}"

    def open(self) -> Storage:
        """Open the storage, creating or migrating its schema."""
        if self.url is not None:
            from host.storage.postgres import PostgresStorage

            return PostgresStorage(self.url)
        from host.storage.sqlite import SqliteStorage

        assert self.path is not None
        return SqliteStorage(self.path)
