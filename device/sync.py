"""Background sync: send pending check-ins in batches, back off with jitter, never block scans."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from device.client import HostClient, HostError
from device.denylist import DenyListHolder
from device.store import Store
from shared.envelope import CredentialError
from shared.messages import CheckInBatch, DeviceConfig, DeviceReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: a random wait between half and all of base * 2**failures."""

    base_seconds: float = 0.5
    cap_seconds: float = 60.0

    def delay(self, failures: int, rng: random.Random) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** min(failures, 30))
        return rng.uniform(ceiling / 2, ceiling)


class Syncer:
    """Runs in its own thread: check-ins up, configuration and deny list down, status reports."""

    def __init__(
        self,
        store: Store,
        client: HostClient,
        *,
        on_config: Callable[[DeviceConfig], None],
        denylist: DenyListHolder | None = None,
        report: Callable[[], DeviceReport] | None = None,
        batch_size: int = 500,
        idle_seconds: float = 2.0,
        config_every_seconds: float = 300.0,
        denylist_every_seconds: float = 600.0,
        report_every_seconds: float = 60.0,
    ) -> None:
        self._store = store
        self._client = client
        self._on_config = on_config
        self._denylist = denylist
        self._report = report
        self._batch_size = batch_size
        self._idle_seconds = idle_seconds
        self._config_every = config_every_seconds
        self._denylist_every = denylist_every_seconds
        self._report_every = report_every_seconds
        self._denylist_due = self._report_due = time.monotonic()
        self._denylist_failures = 0
        self._backoff = Backoff()
        self._rng = random.Random()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sync", daemon=True)
        self.failures = 0
        self.last_error: str | None = None
        self.refused: str | None = None  # the host refuses this device (revoked, unknown)
        self.first_contact = threading.Event()  # set once the first config fetch has ended

    def start(self) -> None:
        self._thread.start()

    def nudge(self) -> None:
        """A check-in was recorded: sync soon rather than at the next idle tick."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def refresh_config(self) -> None:
        """Fetch the configuration (venue, policy, keys; the host's time comes with it)."""
        config = self._client.config()
        self._store.save_config(config)
        self._on_config(config)

    def sync_once(self) -> int:
        """Send one batch; returns how many check-ins the host acknowledged."""
        batch = self._store.pending(self._batch_size)
        if not batch:
            return 0
        ack = self._client.send_checkins(CheckInBatch(checkins=batch))
        sent = {checkin.id for checkin in batch}
        acknowledged = [checkin_id for checkin_id in ack.acknowledged if checkin_id in sent]
        self._store.mark_acked(acknowledged)
        log.info("synced %d check-ins (%d new on host)", len(acknowledged), ack.inserted)
        return len(acknowledged)

    def _upkeep(self) -> None:
        """Deny list and status report, each on its own schedule; their failures stop nothing."""
        now = time.monotonic()
        if self._denylist is not None and now >= self._denylist_due:
            try:
                self._denylist.refresh(self._client)
                self._denylist_failures = 0
                self._denylist_due = now + self._denylist_every
                self._report_due = now  # the host learns the list's new age at once
            except (HostError, CredentialError) as error:
                self._denylist_failures += 1
                self._denylist.failed(str(error))
                delay = self._backoff.delay(self._denylist_failures, self._rng)
                self._denylist_due = now + delay
                log.warning(
                    "deny list refresh failed (%d in a row), next try in %.1f s: %s",
                    self._denylist_failures,
                    delay,
                    error,
                )
        if self._report is not None and now >= self._report_due:
            self._report_due = now + self._report_every
            try:
                self._client.send_report(self._report())
            except HostError as error:
                log.warning("status report not sent: %s", error)

    def _run(self) -> None:
        config_due = time.monotonic()
        while not self._stop.is_set():
            wait = self._idle_seconds
            backing_off = False
            try:
                if time.monotonic() >= config_due:
                    try:
                        self.refresh_config()
                    finally:
                        self.first_contact.set()
                    config_due = time.monotonic() + self._config_every
                sent = self.sync_once()
                self.failures = 0
                self.last_error = None
                self.refused = None
                if sent == self._batch_size:
                    wait = 0.0  # a backlog: go on at once
            except HostError as error:
                self.failures += 1
                self.last_error = str(error)
                if not error.retryable:
                    self.refused = str(error)
                    log.error("the host refuses this device: %s", error)
                wait = self._backoff.delay(self.failures, self._rng)
                backing_off = True
                log.warning(
                    "sync failed (%d in a row), next try in %.1f s: %s", self.failures, wait, error
                )
            self._upkeep()
            if backing_off:
                # While backing off, new check-ins do not cut the wait short; stopping does.
                self._stop.wait(wait)
            else:
                self._wake.wait(wait)
                self._wake.clear()
