"""Host test fixtures: the app on each backend (SQLite, PostgreSQL), a clock, signed requests."""

from __future__ import annotations

import json
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from host.app import create_app
from host.core.config import Settings
from host.storage import Database
from shared.auth import public_key_bytes, sign_request
from shared.keys import TrustStore, b64url
from shared.messages import API_PREFIX, PublishedKey, trust_store
from shared.uuid7 import uuid7

with warnings.catch_warnings():
    # Starlette would rather use the `httpx2` package; the `httpx` we depend on works.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
PUBLIC_URL = "https://sentinel.example.org"
START = datetime(2022, 5, 1, 8, 30, tzinfo=UTC)
# Resident ID numbers with right check characters: the host refuses any other.
ID_NUMBER = "110101199003077774"
OTHER_ID_NUMBER = "11010119880808888X"


def person_entry(
    id_number: str = ID_NUMBER, colour: str = "green", hours_ago: float | None = 12
) -> dict:
    """One person for an import, with a negative test sampled `hours_ago` before START."""
    entry: dict = {"id_number": id_number, "colour": colour}
    if hours_ago is not None:
        sampled = START - timedelta(hours=hours_ago)
        entry["test"] = {"sampled_at": sampled.isoformat(), "result": "negative"}
    return entry


class Clock:
    """A clock the test sets and moves; the host reads it as Unix seconds."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def ms(self) -> int:
        return int(self.now * 1000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(database: Path | str, clock: Clock) -> Settings:
    return Settings(database=database, public_url=PUBLIC_URL, admin_token=ADMIN_TOKEN, clock=clock)


def db_rows(settings: Settings, query: str, params: tuple = ()) -> list[tuple]:
    """Rows straight from the host's database, whichever backend; UUIDs as their 16 bytes.

    Write `query` with `?` placeholders.
    """
    database = settings.database
    assert isinstance(database, Database)
    if database.path is not None:
        with closing(sqlite3.connect(database.path)) as db:
            return db.execute(query, params).fetchall()
    import psycopg

    assert database.url is not None
    with psycopg.connect(database.url) as db:
        rows = db.execute(query.replace("?", "%s"), params).fetchall()
    return [tuple(v.bytes if isinstance(v, UUID) else v for v in row) for row in rows]


def db_contents(settings: Settings) -> bytes:
    """Everything the host's database holds on disk (SQLite) or in its tables (PostgreSQL)."""
    database = settings.database
    assert isinstance(database, Database)
    if database.path is not None:
        named = database.path.parent.glob(f"{database.path.name}*")  # not host.db.keys/
        files = sorted(path for path in named if path.is_file())
        assert {path.name for path in files} >= {database.path.name}
        return b"".join(path.read_bytes() for path in files)
    import psycopg

    assert database.url is not None
    dumped = bytearray()
    with psycopg.connect(database.url) as db:
        tables = db.execute(
            "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p')"
            " AND relnamespace = current_schema()::regnamespace"
        ).fetchall()
        for (table,) in tables:
            with db.cursor().copy(f'COPY (SELECT * FROM "{table}") TO STDOUT') as copy:
                for chunk in copy:
                    dumped += chunk
    return bytes(dumped)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


class Admin:
    """The admin API through a client, with the bearer token."""

    def __init__(self, client: httpx.Client, token: str = ADMIN_TOKEN) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = self.headers | (headers or {})
        return self.client.request(method, f"{API_PREFIX}/admin{path}", headers=headers, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        assert response.is_success, response.text
        return response.json()

    def venue(self, name: str = "Riverside Mall", category: str = "public_place") -> dict:
        return self.ok(
            "POST", "/venues", json={"name": name, "address": "1 River Road", "category": category}
        )

    def import_person(self, **fields: Any) -> dict:
        return self.ok("POST", "/people", json={"people": [person_entry(**fields)]})["people"][0]

    def token(self, venue_id: str, ttl_seconds: int = 900) -> str:
        body = {"venue_id": venue_id, "ttl_seconds": ttl_seconds}
        return self.ok("POST", "/enrollment-tokens", json=body)["token"]

    def user(self, name: str, role: str, **scope: Any) -> User:
        """A new host user with `role` (and `venues=[...]` or `org=...`), as a client."""
        made = self.ok("POST", "/users", json={"name": name, "role": role, **scope})
        return User(self.client, made["token"], role)


class User:
    """A host user's calls to `/api/v1`, with their bearer token."""

    def __init__(self, client: httpx.Client, token: str, role: str) -> None:
        self.client = client
        self.role = role
        self.headers = {"Authorization": f"Bearer {token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self.headers | kwargs.pop("headers", {})
        return self.client.request(method, f"{API_PREFIX}{path}", headers=headers, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        assert response.is_success, response.text
        return response.json()


@dataclass
class Device:
    """An enrolled device: its own Ed25519 key, and signed requests made with it."""

    client: httpx.Client
    key: Ed25519PrivateKey
    device_id: str
    config: dict

    @classmethod
    def enroll(cls, client: httpx.Client, token: str, name: str = "gate-1") -> Device:
        key = Ed25519PrivateKey.generate()
        response = client.post(
            f"{API_PREFIX}/devices/enroll",
            json={
                "token": token,
                "public_key": b64url(public_key_bytes(key.public_key())),
                "name": name,
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return cls(client, key, body["device_id"], body["config"])

    @property
    def venue_id(self) -> str:
        return self.config["venue"]["id"]

    def trust(self) -> TrustStore:
        """What the device trusts: the host keys published in its config."""
        return trust_store([PublishedKey.model_validate(key) for key in self.config["keys"]])

    def headers(self, method: str, target: str, body: bytes, time_ms: int) -> dict[str, str]:
        return sign_request(
            self.key, self.device_id, method=method, target=target, body=body, time_ms=time_ms
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        time_ms: int,
        content: bytes | None = None,
    ) -> httpx.Response:
        """A signed request to `API_PREFIX + path`; `content` is sent as is, else `json_body`."""
        target = API_PREFIX + path
        if content is None:
            content = b"" if json_body is None else json.dumps(json_body).encode()
        headers = self.headers(method, target, content, time_ms)
        headers["Content-Type"] = "application/json"
        return self.client.request(method, target, content=content, headers=headers)

    def checkin(self, **fields: Any) -> dict:
        """A check-in as the device would record it; `fields` override the defaults."""
        return {
            "id": str(uuid7()),
            "venue_id": self.venue_id,
            "scanned_at": START.isoformat(),
            "person_ref": None,
            "kind": "health",
            "outcome": "pass",
            "reasons": ["ok"],
            "temperature_c": 36.5,
            "clock_trusted": True,
        } | fields


@pytest.fixture
def admin(client: TestClient) -> Admin:
    return Admin(client)


@pytest.fixture
def venue(admin: Admin) -> dict:
    return admin.venue()


@pytest.fixture
def device(client: TestClient, admin: Admin, venue: dict) -> Device:
    return Device.enroll(client, admin.token(venue["id"]))
