"""Rate limits counted in the database, so that every worker enforces the same one.

A limit allows `hits` per fixed window of `window_s` seconds per key (a device, a client
address); the count is one UPSERT ... RETURNING, atomic on both backends. A refusal is a 429
`rate-limited` with `Retry-After`: the seconds until the window ends.

Status lookups (`/device/status`) are the only device requests limited, and by device: a
check-in or a verification writes nothing more. A busy entrance lets one person through every
3 s at most, and only those with an ID card or a paper code are looked up: 20 a minute
sustained, a family of 10 in a burst. A real entrance almost never meets a number the
register does not know (its holder is referred to staff); 20 of them within 10 minutes is a
device asking numbers in turn, which is refused for the rest of the window and raised as an
alert once per device and day.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from host.api.errors import ApiError
from host.storage.limits import LimitQueries

PURGE_EVERY_MS = 60_000

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Limit:
    """At most `hits` per fixed window of `window_s` seconds, per key."""

    name: str
    hits: int
    window_s: int

    @property
    def window_ms(self) -> int:
        return self.window_s * 1000

    def window_start(self, now_ms: int) -> int:
        return now_ms - now_ms % self.window_ms

    def key(self, subject: str) -> str:
        return f"{self.name}:{subject}"

    def refusal(self, now_ms: int, what: str) -> ApiError:
        """The 429 for this limit, with the seconds until its window ends as Retry-After."""
        retry_after = math.ceil((self.window_start(now_ms) + self.window_ms - now_ms) / 1000)
        return ApiError(
            429,
            "rate-limited",
            f"{what}: at most {self.hits} in {self.window_s} s; try again in {retry_after} s",
            headers={"Retry-After": str(max(retry_after, 1))},
        )


def networks(text: str) -> frozenset[IpNetwork]:
    """Comma-separated addresses or networks (`10.0.0.1, 192.168.0.0/16`); ValueError if bad."""
    return frozenset(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )


@dataclass(frozen=True)
class Limits:
    """The limits the host applies, and the reverse proxies whose X-Forwarded-For it trusts."""

    failed_tokens: Limit = Limit("failed-token", 20, 300)  # bearer and sign-in, per address
    failed_enrollments: Limit = Limit("failed-enrollment", 10, 600)  # per client address
    status_burst: Limit = Limit("status-burst", 10, 10)  # per device
    status_sustained: Limit = Limit("status-minute", 20, 60)  # per device
    unknown_status: Limit = Limit("status-unknown", 20, 600)  # per device: a sweep beyond
    trusted_proxies: frozenset[IpNetwork] = field(default_factory=frozenset)

    def longest_window_ms(self) -> int:
        limits = (
            self.failed_tokens,
            self.failed_enrollments,
            self.status_burst,
            self.status_sustained,
            self.unknown_status,
        )
        return max(limit.window_ms for limit in limits)

    def client_address(self, peer: str | None, forwarded_for: Iterable[str]) -> str:
        """Whom a request is from: the peer, or behind trusted proxies the address they name.

        X-Forwarded-For is read from the right (each proxy appends the address it met) only
        while the address met is a trusted proxy's; the first one that is not is the client.
        Anyone can write the header, so it means nothing from a peer not trusted.
        """
        address = peer or "unknown"
        if not self.trusted_proxies:
            return address
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        while hops and self._trusted(address):
            address = hops.pop()
        return address

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)


class RateLimiter:
    """Limits counted in one storage's database; windows long past are purged now and then."""

    def __init__(self, storage: LimitQueries, limits: Limits) -> None:
        self.storage = storage
        self.limits = limits
        self._next_purge_ms = 0
        self._purge_lock = threading.Lock()

    def refuse_if_reached(self, limit: Limit, subject: str, now_ms: int, what: str) -> None:
        """429 if `subject` has used up `limit` in this window (a failure counter, say)."""
        if self.storage.hits(limit.key(subject), limit.window_start(now_ms)) >= limit.hits:
            raise limit.refusal(now_ms, what)

    def count(self, limit: Limit, subject: str, now_ms: int) -> int:
        """Count one hit of `subject` against `limit`; its hits in this window with it."""
        self._purge_now_and_then(now_ms)
        return self.storage.count_hit(limit.key(subject), limit.window_start(now_ms))

    def take(self, limits: list[Limit], subject: str, now_ms: int, what: str) -> None:
        """Count one hit against each limit, in one transaction; 429 if any is exceeded."""
        self._purge_now_and_then(now_ms)
        counted = self.storage.count_hits(
            [(limit.key(subject), limit.window_start(now_ms)) for limit in limits]
        )
        for limit, hits in zip(limits, counted, strict=True):
            if hits > limit.hits:
                raise limit.refusal(now_ms, what)

    def _purge_now_and_then(self, now_ms: int) -> None:
        with self._purge_lock:
            if now_ms < self._next_purge_ms:
                return
            self._next_purge_ms = now_ms + PURGE_EVERY_MS
        self.storage.purge_rate_counters(now_ms - self.limits.longest_window_ms())
