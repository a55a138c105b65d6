"""The host's settings: where its database lives, its public URL, admin token and clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from host.flows import Alerting
from host.ratelimit import IpNetwork
from host.storage import Database
from shared.auth import MAX_SKEW_MS

MIN_ADMIN_TOKEN_LENGTH = 16


def public_origin(url: str) -> str:
    """The https origin venue codes are printed under; ValueError says what is wrong with url."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError("public_url must be an https URL: phones only open https venue codes")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError("public_url must be a bare origin (venue codes live at /v/...)")
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class Settings:
    """Everything `create_app` needs; `clock` returns Unix seconds and is injectable in tests."""

    database: Database | Path | str  # a SQLite file, sqlite:///FILE or postgresql://...
    public_url: str  # base of the URLs printed in venue codes, e.g. https://sentinel.example.org
    admin_token: str = field(repr=False)
    clock: Callable[[], float] = time.time
    max_device_body_bytes: int = 4 * 1024 * 1024
    nonce_purge_interval_s: float = 60.0
    max_skew_ms: int = MAX_SKEW_MS  # device requests further off than this are refused
    dcc_trust: Path | None = None  # EU DCC signer certificates (PEM/DER file or directory)
    alerting: Alerting = field(default_factory=Alerting)  # spike detection, alert webhook
    # A phone opening a venue code again this soon after checking in there records nothing new.
    phone_repeat_minutes: float = 10.0
    # Reverse proxies whose X-Forwarded-For names the client (rate limits count by client).
    trusted_proxies: frozenset[IpNetwork] = frozenset()
    body_timeout_s: float = 60.0  # a request's whole body must arrive within this

    def __post_init__(self) -> None:
        if not isinstance(self.database, Database):
            object.__setattr__(self, "database", Database.parse(self.database))
        object.__setattr__(self, "public_url", public_origin(self.public_url))
        if len(self.admin_token) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(f"admin token must be at least {MIN_ADMIN_TOKEN_LENGTH} characters")
        if self.body_timeout_s <= 0:
            raise ValueError("the body timeout must be a positive number of seconds")

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    @property
    def phone_repeat_ms(self) -> int:
        return int(self.phone_repeat_minutes * 60_000)
