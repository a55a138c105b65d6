"""The device's deny list: kept in the store, refreshed from the host, read by the scan pipeline."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from device.client import HostClient, HostError
from device.store import Store
from shared.denylist import DenyList
from shared.envelope import CredentialError, Stage
from shared.keys import TrustStore
from shared.messages import (
    ComponentHealth,
    ComponentState,
    DenyListStatus,
    DenyListUnchanged,
    trust_store,
)

log = logging.getLogger(__name__)
MAX_DETAIL = 300  # ComponentState.detail's limit


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def stored_trust(store: Store) -> TrustStore:
    """The host keys in the configuration kept in the store; none before enrollment."""
    config = store.load_config()
    return trust_store(config.keys if config else [])


class DenyListHolder:
    """The current deny list, swapped whole under a lock, and its state for the status report.

    The scan thread only reads (`current`); the sync thread restores and refreshes it.
    """

    def __init__(
        self, store: Store, clock: Callable[[], datetime], trust: Callable[[], TrustStore]
    ) -> None:
        self._store = store
        self._clock = clock
        self._trust = trust  # the host's keys as the device knows them now
        self._lock = threading.Lock()
        self._held: tuple[DenyList, datetime] | None = None  # the list, when last confirmed
        self._state = ComponentState(state=ComponentHealth.ABSENT, since=clock())

    def current(self) -> DenyList | None:
        """The list to check against: immutable, so it may be used after the lock is let go."""
        with self._lock:
            return None if self._held is None else self._held[0]

    def refreshed_at(self) -> datetime | None:
        """When the host last confirmed the held list current (kept across restarts)."""
        with self._lock:
            return None if self._held is None else self._held[1]

    def status(self) -> DenyListStatus | None:
        with self._lock:
            if self._held is None:
                return None
            held, refreshed_at = self._held
        return DenyListStatus(
            version=held.version,
            issued_at=held.issued_at,
            refreshed_at=refreshed_at,
            entries=len(held),
        )

    def component(self) -> ComponentState:
        """The list's health: ok, failing (with the last error) or absent (none held yet)."""
        with self._lock:
            return self._state

    def restore(self) -> None:
        """Load the list kept in the store, checking its signature again: the SD card may lie."""
        stored = self._store.load_denylist()
        if stored is None:
            return
        document, refreshed_at_ms = stored
        try:
            deny_list = DenyList.open(document, self._trust())
        except CredentialError as error:
            log.error("the stored deny list is refused: %s", error)
            self.failed(f"stored list refused: {error}")
            return
        self._install(deny_list, datetime.fromtimestamp(refreshed_at_ms / 1000, UTC))
        log.info("deny list v%d restored: %d entries", deny_list.version, len(deny_list))

    def refresh(self, client: HostClient) -> None:
        """Fetch and keep a newer version if the host has one; raises HostError, CredentialError.

        A version not newer than the one held is refused: an old signed list replayed to the
        device would otherwise take entries off it.
        """
        held = self.current()
        answer = client.denylist(None if held is None else held.version)
        if isinstance(answer, DenyListUnchanged):
            if held is None:
                raise HostError("the host answered 'unchanged' to a device holding no deny list")
            if answer.version < held.version:
                log.warning(
                    "the host's deny list (v%d) is behind ours (v%d)", answer.version, held.version
                )
            now = self._clock()
            self._store.mark_denylist_refreshed(_ms(now))
            self._install(held, now)
            return
        deny_list = DenyList.open(answer, self._trust())
        if held is not None and deny_list.version <= held.version:
            raise CredentialError(
                Stage.SCHEMA, f"deny list v{deny_list.version} is not newer than v{held.version}"
            )
        now = self._clock()
        self._store.save_denylist(answer, _ms(now))
        self._install(deny_list, now)
        log.info(
            "deny list v%d received: %d entries, %d bytes",
            deny_list.version,
            len(deny_list),
            len(answer),
        )

    def forget(self) -> None:
        """Hold no list any more (the host revoked the device; the store dropped its copy)."""
        with self._lock:
            self._held = None
            self._state = ComponentState(state=ComponentHealth.ABSENT, since=self._clock())

    def failed(self, reason: str) -> None:
        """Record a failed load or refresh; a list already held stays in use."""
        with self._lock:
            self._state = self._next_state(ComponentHealth.FAILING, reason[:MAX_DETAIL])

    def _install(self, deny_list: DenyList, refreshed_at: datetime) -> None:
        with self._lock:
            self._held = (deny_list, refreshed_at)
            self._state = self._next_state(ComponentHealth.OK, None)

    def _next_state(self, state: ComponentHealth, detail: str | None) -> ComponentState:
        """The state to hold next; `since` moves only when the state itself changes."""
        since = self._state.since if self._state.state is state else self._clock()
        return ComponentState(state=state, since=since, detail=detail)
