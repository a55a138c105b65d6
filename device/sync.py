"""Background sync: send pending check-ins in batches, back off with jitter, never block scans."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from device.client import HostClient, HostError
from device.denylist import MAX_DETAIL, DenyListHolder
from device.store import Store, StoreError
from shared.envelope import CredentialError
from shared.messages import (
    MAX_BATCH,
    CheckIn,
    CheckInAck,
    CheckInBatch,
    ComponentHealth,
    ComponentState,
    DeviceConfig,
    DeviceReport,
    StaffDecision,
    StaffDecisionBatch,
)

log = logging.getLogger(__name__)
DAY_SECONDS = 24 * 3600
DEFAULT_RETENTION_DAYS = 7.0
DEFAULT_WINDOW = 4  # batches in flight: 100 ms each way cost a 100k backlog 10 s, not 33 s
# The host's refusals of a staff decision that sending again cannot change, once the device has
# its check-in's acknowledgement: the check-in was refused (a scan time no clock could give),
# so the host never stored it, or it was no referral. The host refuses the whole batch for one.
DECISION_REFUSED_FOR_GOOD = frozenset({"unknown-checkin", "not-a-referral"})


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: a random wait between half and all of base * 2**failures."""

    base_seconds: float = 0.5
    cap_seconds: float = 60.0

    def delay(self, failures: int, rng: random.Random) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** min(failures, 30))
        return rng.uniform(ceiling / 2, ceiling)


REVOKED = "device-revoked"  # the host's error code for a revoked device


class Syncer:
    """Runs in its own thread: check-ins up, configuration and deny list down, status reports.

    A backlog goes up as a window of batches in flight at once (`window`), so that the link's
    latency is paid once per window rather than once per batch. Every batch is acknowledged
    id by id; whatever was not acknowledged is simply sent again later, which the host's
    idempotent ingest makes safe. Staff decisions follow their check-ins, the same way.
    Acknowledged check-ins and decisions are purged once `retention_days` have passed.
    """

    def __init__(
        self,
        store: Store,
        client: HostClient,
        *,
        on_config: Callable[[DeviceConfig], None],
        on_revoked: Callable[[str], None] = lambda reason: None,
        denylist: DenyListHolder | None = None,
        report: Callable[[], DeviceReport] | None = None,
        batch_size: int = MAX_BATCH,
        window: int = DEFAULT_WINDOW,
        batches_per_round: int = 20,
        idle_seconds: float = 2.0,
        config_every_seconds: float = 300.0,
        denylist_every_seconds: float = 600.0,
        report_every_seconds: float = 60.0,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        purge_every_seconds: float = 3600.0,
        backoff: Backoff = Backoff(),
    ) -> None:
        self._store = store
        self._client = client
        self._on_config = on_config
        self._on_revoked = on_revoked
        self._denylist = denylist
        self._report = report
        self._batch_size = batch_size
        self._window = window
        self._batches_per_round = batches_per_round
        self._idle_seconds = idle_seconds
        self._config_every = config_every_seconds
        self._denylist_every = denylist_every_seconds
        self._report_every = report_every_seconds
        self._retention_seconds = retention_days * DAY_SECONDS
        self._purge_every = purge_every_seconds
        self._denylist_due = self._report_due = self._purge_due = time.monotonic()
        self._denylist_failures = 0
        self._backoff = backoff
        self._rng = random.Random()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sync", daemon=True)
        self._senders = ThreadPoolExecutor(max_workers=window, thread_name_prefix="sync-send")
        self._state = ComponentState(state=ComponentHealth.OK, since=datetime.now(UTC))
        self.failures = 0
        self.last_error: str | None = None
        self._error_unresolved = True  # one may be left in the store from before: resolve it
        self.refused: str | None = None  # the host refuses this device (revoked, unknown)
        self.revoked = False  # the host revoked this device: nothing more is asked of it
        self.first_contact = threading.Event()  # set once the first config fetch has ended
        self.online = False  # the host answered the last round (the screen shows it)

    def start(self) -> None:
        self._thread.start()

    def nudge(self) -> None:
        """A check-in was recorded: sync soon rather than at the next idle tick."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """End the sync thread, if started, and the threads that send batches."""
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        self._senders.shutdown(wait=False, cancel_futures=True)

    def _record_error(self, error: str) -> None:
        """Keep the failure in the store for `sentinel device status`.

        A store failing too is already logged and shown as the store's state: not raised here.
        """
        try:
            self._store.record_sync_error(error, self.failures)
            self._error_unresolved = True
        except StoreError:
            pass

    def _resolve_error(self) -> None:
        """Sync works: mark the error kept in the store (by this run or an earlier) resolved."""
        if self._error_unresolved:
            self._store.resolve_sync_error()
            self._error_unresolved = False

    def component(self) -> ComponentState:
        """OK while the host answers; failing, with the last error, while it does not."""
        return self._state

    def refresh_config(self) -> None:
        """Fetch the configuration (venue, policy, keys; the host's time comes with it)."""
        config = self._client.config()
        self._store.save_config(config)
        self._on_config(config)

    def sync_once(self) -> int:
        """Send the oldest pending check-ins, up to `window` batches in flight, for one round.

        Returns how many the host acknowledged. If a batch fails, no more are sent, those in
        flight are awaited (and their acknowledgements kept), and the first error is raised.
        """
        in_flight: deque[tuple[list[CheckIn], Future[CheckInAck]]] = deque()
        after: UUID | None = None
        to_send = self._batches_per_round
        acknowledged = 0
        error: HostError | None = None
        while in_flight or to_send:
            while to_send and error is None and len(in_flight) < self._window:
                batch = self._store.pending(self._batch_size, after=after)
                if not batch:
                    to_send = 0
                    break
                to_send = 0 if len(batch) < self._batch_size else to_send - 1
                after = batch[-1].id
                sending = CheckInBatch(checkins=batch)
                in_flight.append((batch, self._senders.submit(self._client.send_checkins, sending)))
            if not in_flight:
                break
            batch, reply = in_flight.popleft()
            try:
                ack = reply.result()
            except HostError as failure:
                error = error or failure
                to_send = 0
                continue
            acknowledged += self._acknowledge(batch, ack)
        if acknowledged:
            log.info("synced %d check-ins", acknowledged)
        if error is not None:
            raise error
        return acknowledged

    def sync_staff_decisions(self) -> int:
        """Send the staff decisions whose check-ins the host settled; how many it acknowledged.

        A decision the host refuses for good (its check-in was refused, or no referral) is
        dropped, logged, so that it does not hold back the decisions after it.
        """
        decisions = self._store.pending_staff_decisions(self._batch_size)
        if not decisions:
            return 0
        acknowledged = self._send_staff_decisions(decisions)
        log.info("synced %d staff decisions", acknowledged)
        return acknowledged

    def _send_staff_decisions(self, decisions: list[StaffDecision]) -> int:
        """Send a batch; if the host refuses it for one decision, halve it to find which."""
        try:
            ack = self._client.send_staff_decisions(StaffDecisionBatch(decisions=decisions))
        except HostError as error:
            if error.code not in DECISION_REFUSED_FOR_GOOD:
                raise
            if len(decisions) > 1:
                half = len(decisions) // 2
                first, second = decisions[:half], decisions[half:]
                return self._send_staff_decisions(first) + self._send_staff_decisions(second)
            refused = decisions[0]
            log.warning(
                "staff decision %s on check-in %s dropped: the host refuses it for good (%s)",
                refused.id,
                refused.checkin_id,
                error.code,
            )
            self._store.mark_staff_decisions_acked([refused.id])
            return 0
        sent = {decision.id for decision in decisions}
        acknowledged = [decision_id for decision_id in ack.acknowledged if decision_id in sent]
        self._store.mark_staff_decisions_acked(acknowledged)
        return len(acknowledged)

    def _acknowledge(self, batch: list[CheckIn], ack: CheckInAck) -> int:
        """Mark what the host settled done: stored, or refused for good (logged, then dropped)."""
        sent = {checkin.id for checkin in batch}
        rejected = [refusal for refusal in ack.rejected if refusal.id in sent]
        for reason in sorted({refusal.reason for refusal in rejected}):
            ids = [str(refusal.id) for refusal in rejected if refusal.reason == reason]
            log.warning(
                "the host refused %d check-ins for good, dropped from the queue: %s",
                len(ids),
                reason,
            )
            log.debug("check-ins refused for good: %s", ", ".join(ids))
        settled = {checkin_id for checkin_id in ack.acknowledged if checkin_id in sent}
        acknowledged = sorted(settled | {refusal.id for refusal in rejected})
        self._store.mark_acked(acknowledged)
        log.debug("synced %d check-ins (%d new on host)", len(acknowledged), ack.inserted)
        return len(acknowledged)

    def _set_state(self, state: ComponentHealth, detail: str | None = None) -> None:
        if (self._state.state, self._state.detail) != (state, detail):
            self._state = ComponentState(
                state=state,
                since=self._state.since if self._state.state is state else datetime.now(UTC),
                detail=None if detail is None else detail[:MAX_DETAIL],
            )

    def _revoked_by(self, error: Exception) -> bool:
        """Whether `error` says the host revoked this device; if so, say it, once, and stop."""
        if not (isinstance(error, HostError) and error.code == REVOKED):
            return False
        if not self.revoked:
            self.revoked = True
            self._set_state(ComponentHealth.FAILING, f"revoked: {error}")
            self._on_revoked(str(error))
        return True

    def _upkeep(self) -> None:
        """Deny list, status report and purge, each on its own schedule; failures stop nothing."""
        now = time.monotonic()
        if self._denylist is not None and now >= self._denylist_due:
            try:
                self._denylist.refresh(self._client)
                self._denylist_failures = 0
                self._denylist_due = now + self._denylist_every
                self._report_due = now  # the host learns the list's new age at once
            except (HostError, CredentialError, StoreError) as error:
                if self._revoked_by(error):
                    return
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
            except (HostError, StoreError) as error:
                if self._revoked_by(error):
                    return
                log.warning("status report not sent: %s", error)
        if now >= self._purge_due:
            self._purge_due = now + self._purge_every
            self._purge()

    def _purge(self) -> None:
        """Delete what the retention period ran out for: acknowledged check-ins, damaged files."""
        days = self._retention_seconds / DAY_SECONDS
        try:
            purged = self._store.purge_acked(self._retention_seconds)
            if purged:
                log.info("purged %d acknowledged check-ins older than %g days", purged, days)
            for path in self._store.purge_quarantined(self._retention_seconds):
                log.info("deleted %s, moved aside as damaged over %g days ago", path.name, days)
        except StoreError as error:
            log.warning("purge after the retention period failed: %s", error)

    def _run(self) -> None:
        config_due = time.monotonic()
        while not self._stop.is_set():
            wait = self._idle_seconds
            backing_off = False
            try:
                if time.monotonic() >= config_due:
                    try:
                        self.refresh_config()
                    except HostError as error:
                        self._revoked_by(error)  # before first contact: no scan sees old keys
                        raise
                    finally:
                        self.first_contact.set()
                    config_due = time.monotonic() + self._config_every
                sent = self.sync_once()
                self.sync_staff_decisions()  # after their check-ins, which the host checks them by
                if self.failures:
                    log.info("sync works again after %d failures", self.failures)
                self.failures = 0
                self.last_error = None
                self.refused = None
                self._resolve_error()
                self.online = True
                self._set_state(ComponentHealth.OK)
                if sent >= self._batch_size:
                    wait = 0.0  # a backlog: go on at once
            except (HostError, StoreError) as error:
                self.failures += 1
                self.last_error = str(error)
                self._record_error(str(error))
                if isinstance(error, HostError):
                    self.online = False  # a store error says nothing about the host
                if isinstance(error, HostError) and not error.retryable:
                    self.refused = str(error)
                    log.error("the host refuses this device: %s", error)
                if self._revoked_by(error):
                    break
                self._set_state(ComponentHealth.FAILING, f"{self.failures} in a row: {error}")
                wait = self._backoff.delay(self.failures, self._rng)
                backing_off = True
                log.warning(
                    "sync failed (%d in a row), next try in %.1f s: %s", self.failures, wait, error
                )
            self._upkeep()
            if self.revoked:
                break
            if backing_off:
                # While backing off, new check-ins do not cut the wait short; stopping does.
                self._stop.wait(wait)
            else:
                self._wake.wait(wait)
                self._wake.clear()
