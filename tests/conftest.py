"""Fixtures for every test folder: host keys, a device's trust store, databases, a browser."""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shared.keys import KeyPurpose, SigningKey, TrustedKey, TrustStore

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

REPO_ROOT = Path(__file__).resolve().parents[1]
# The tests that use pcscd and the vpcd reader run on one pytest-xdist worker (--dist loadgroup):
# there is one pcscd on a machine, and its readers' ports are fixed.
PCSCD_GROUP = "pcscd"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def health_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
def venue_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
def policy_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
def trust(health_key: SigningKey, venue_key: SigningKey, policy_key: SigningKey) -> TrustStore:
    return TrustStore.of(
        [
            TrustedKey(health_key.kid, KeyPurpose.HEALTH, health_key.private_key.public_key()),
            TrustedKey(venue_key.kid, KeyPurpose.VENUE, venue_key.private_key.public_key()),
            TrustedKey(policy_key.kid, KeyPurpose.POLICY, policy_key.private_key.public_key()),
        ]
    )


# ---- PostgreSQL -------------------------------------------------------------------------------

POSTGRES_URL = os.environ.get("SENTINEL_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


@functools.cache
def postgres_unreachable() -> str | None:
    """Why the test PostgreSQL cannot be used, asked once per run; None when it answers."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (the `postgres` extra)"
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return f"no PostgreSQL at {POSTGRES_URL}: {str(error).strip().splitlines()[-1]}"


@pytest.fixture
def postgres_server() -> str:
    """The test PostgreSQL's URL; the test is skipped, saying why, where none answers."""
    reason = postgres_unreachable()
    if reason is not None:
        pytest.skip(reason)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL of a fresh schema in the test PostgreSQL, dropped after the test."""
    from host.storage.postgres import scratch_schema

    with scratch_schema(postgres_server, "sentinel_test") as url:
        yield url


BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """The host's database on each backend in turn: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return tmp_path / "host.db"
    return request.getfixturevalue("postgres_url")


# ---- headless Chromium ------------------------------------------------------------------------

PAGE_TIMEOUT_MS = 15_000  # every wait of a page (load, selector, function) is bounded by this


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the session; tests skip, saying why, where it is absent."""
    from sentinel.browser import chromium, unavailable

    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    with chromium() as launched:
        yield launched


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[[int, int], Page]]:
    """Opens a page of this width and height in a fresh context, closed after the test."""
    contexts: list[BrowserContext] = []

    def open_at(width: int, height: int) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_at
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Page, str], Path]:
    """Saves a page's screenshot under the test's tmp_path, and prints where."""

    def take(page: Page, name: str) -> Path:
        path = tmp_path / "screenshots" / f"{name}.png"
        page.screenshot(path=path)
        print(f"screenshot: {path}")
        return path

    return take


# ---- file modes ------------------------------------------------------------------------------

UMASKS = (0o022, 0o000)  # the usual one, and one that would leave every file open to all


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run the block under this process umask."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    """A file's permission bits."""
    return stat.S_IMODE(path.stat().st_mode)
