"""A real host process on 127.0.0.1 and its operator, for the integration tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.demo import Admin, HostProcess, free_port


@pytest.fixture
def host(tmp_path: Path) -> Iterator[HostProcess]:
    process = HostProcess(tmp_path, free_port(), os.urandom(16).hex())
    process.start()
    yield process
    process.stop()


@pytest.fixture
def admin(host: HostProcess) -> Admin:
    return Admin(host.url, host.token_file.read_text())


@pytest.fixture
def dashboard_tokens(admin: Admin) -> dict[str, str]:
    """A user of each role on the real host (a venue manager of one venue), by role: their tokens.

    The venue manager's venue is `admin`'s first venue: "Riverside Mall", made here.
    """
    venue = admin.venue("Riverside Mall", "1 River Road", "public_place")
    return {
        "admin": admin.user("olivia-operator", "admin"),
        "epidemiologist": admin.user("eric-epidemiologist", "epidemiologist"),
        "venue-manager": admin.user("mia-manager", "venue-manager", venues=[venue.id]),
        "screener": admin.user("sam-screener", "screener", org="city-hospital"),
    }
