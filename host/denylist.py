"""The deny list as devices receive it: each version signed once, then served from memory."""

from __future__ import annotations

import logging
import threading

from host.core.times import from_ms
from host.storage.base import Storage
from shared.denylist import DenyList
from shared.keys import SigningKey

log = logging.getLogger(__name__)


class DenyListPublisher:
    """Signs each version of the deny list once and hands the same bytes to every device asking.

    Building and signing a large list takes a while; the lock makes devices that ask meanwhile
    wait for that one signature instead of making their own.
    """

    def __init__(self, storage: Storage, key: SigningKey) -> None:
        self._storage = storage
        self._key = key
        self._lock = threading.Lock()
        self._signed: tuple[DenyList, bytes] | None = None  # the version held, signed

    def document(self, now_ms: int) -> bytes:
        """The signed current version; version 0 (never changed) is dated when first signed."""
        return self._current(now_ms)[1]

    def current(self, now_ms: int) -> DenyList:
        """The current version, as the host's own online checks use it."""
        return self._current(now_ms)[0]

    def _current(self, now_ms: int) -> tuple[DenyList, bytes]:
        with self._lock:
            version = self._storage.denylist_version()
            if self._signed is None or self._signed[0].version != version:
                snapshot = self._storage.denylist_snapshot()
                changed_at_ms = snapshot.changed_at_ms
                issued_at = from_ms(now_ms if changed_at_ms is None else changed_at_ms)
                deny_list = DenyList.of(snapshot.version, issued_at, snapshot.digests)
                self._signed = (deny_list, deny_list.sign(self._key))
                log.info(
                    "deny list v%d signed: %d entries, %d bytes",
                    snapshot.version,
                    len(deny_list),
                    len(self._signed[1]),
                )
            return self._signed
