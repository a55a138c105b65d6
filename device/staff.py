"""Staff at the device: referrals wait for them, and their decisions are durable before the gate.

A referral (a check-in recorded as refer) stays open to staff for OVERRIDE_SECONDS. With a
staff PIN they let the person through or refuse, giving a reason from a short list; the
decision is a record of its own, linked to the check-in, committed to the store before anyone
is told (a let-through opens the gate), then synced to the host. Only a referral can be
settled, only once, only by a PIN: nothing else on the screen changes a decision.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from device.clock import DeviceClock
from device.pins import PinRefused, StaffPins
from device.pipeline import Event
from device.store import AlreadyStored, Store, StoreError
from shared.messages import StaffAction, StaffDecision, StaffReason
from shared.policy import Decision, Outcome
from shared.uuid7 import uuid7

log = logging.getLogger(__name__)
OVERRIDE_SECONDS = 300.0  # how long a referral waits for staff
MAX_OPEN = 50  # referrals kept open at once; beyond, the oldest closes
# The reasons of a staff decision's event: what the voice and the screen say ("code: why").
ACTION_REASONS = {StaffAction.LET_THROUGH: "staff-let-through", StaffAction.REFUSE: "staff-refused"}
ACTION_OUTCOMES = {StaffAction.LET_THROUGH: Outcome.PASS, StaffAction.REFUSE: Outcome.DENY}


class StaffRefusal(Exception):
    """A staff decision that was not made; `code` names why, the message says it to staff."""

    def __init__(self, code: str, message: str, *, locked_seconds: float = 0.0) -> None:
        super().__init__(message)
        self.code = code  # not-open, wrong-pin, locked, cannot-record
        self.locked_seconds = locked_seconds


@dataclass(frozen=True)
class OpenReferral:
    """A referral staff may still settle: the event that told it, and when (device clock)."""

    event: Event
    at: datetime
    since: float  # monotonic


def staff_reason(event: Event) -> StaffReason | None:
    """The reason a staff decision's event gives; None for any other event."""
    if event.staff_id is None or not event.decision.reasons:
        return None
    return StaffReason(event.decision.reasons[0].partition(":")[2].strip())


class StaffDesk:
    """Open referrals, and staff decisions on them (thread-safe)."""

    def __init__(
        self,
        store: Store,
        pins: StaffPins,
        clock: DeviceClock,
        *,
        tell: Callable[[Event], None],
        on_recorded: Callable[[], None] = lambda: None,
        window_seconds: float = OVERRIDE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._pins = pins
        self._clock = clock
        self._tell = tell
        self._on_recorded = on_recorded
        self._window = window_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._open: OrderedDict[str, OpenReferral] = OrderedDict()  # by check-in id, oldest first

    def observe(self, event: Event) -> None:
        """Keep a recorded referral open to staff; any other event is left alone."""
        if event.decision.outcome is not Outcome.REFER or event.checkin_id is None:
            return
        with self._lock:
            self._open[event.checkin_id] = OpenReferral(event, self._clock.now(), self._monotonic())
            while len(self._open) > MAX_OPEN:
                self._open.popitem(last=False)

    def open_referrals(self) -> list[OpenReferral]:
        """The referrals staff may still settle, newest first."""
        with self._lock:
            self._close_expired()
            return list(reversed(self._open.values()))

    def _close_expired(self) -> None:
        cutoff = self._monotonic() - self._window
        while self._open and next(iter(self._open.values())).since < cutoff:
            self._open.popitem(last=False)

    def decide(self, checkin_id: str, action: StaffAction, reason: StaffReason, pin: str) -> Event:
        """Settle an open referral with a staff PIN: recorded, then told (the gate opens).

        StaffRefusal says why nothing was done: the referral is not open (settled, too old, not
        a referral of this device), the PIN is wrong or locked, or the store cannot record.
        """
        with self._lock:
            self._close_expired()
            referral = self._open.get(checkin_id)
        if referral is None:
            raise StaffRefusal(
                "not-open",
                f"no referral {checkin_id} is open to staff: settled already, or older than"
                f" {self._window / 60:g} minutes",
            )
        try:
            staff_id = self._pins.identify(pin)
        except PinRefused as refused:
            code = "locked" if refused.locked_seconds else "wrong-pin"
            raise StaffRefusal(code, str(refused), locked_seconds=refused.locked_seconds) from None
        try:
            checkin = self._store.checkin(UUID(checkin_id))
        except StoreError as error:
            raise StaffRefusal("cannot-record", f"the store cannot be read: {error}") from None
        if checkin is None or checkin.outcome is not Outcome.REFER:
            raise StaffRefusal("not-open", f"check-in {checkin_id} is not a referral held here")
        decision = StaffDecision(
            id=uuid7(),
            checkin_id=checkin.id,
            venue_id=checkin.venue_id,
            staff_id=staff_id,
            action=action,
            reason=reason,
            decided_at=self._clock.now(),
            clock_trusted=self._clock.trusted,
        )
        try:
            self._store.record_staff_decision(decision)  # durable before the gate opens
        except AlreadyStored:
            self._forget(checkin_id)
            raise StaffRefusal("not-open", f"check-in {checkin_id} was settled already") from None
        except StoreError as error:
            log.error("staff decision not recorded, nothing done: %s", error)
            raise StaffRefusal("cannot-record", f"not recorded, nothing done: {error}") from None
        self._forget(checkin_id)
        log.info("staff %s: %s on check-in %s (%s)", staff_id, action, checkin_id, reason)
        told = Event(
            f"staff:{staff_id}",
            checkin.kind,
            Decision(ACTION_OUTCOMES[action], (f"{ACTION_REASONS[action]}: {reason}",)),
            checkin_id,
            referral.event.holder,
            binding=checkin.binding,
            group_id=None if checkin.group_id is None else str(checkin.group_id),
            staff_id=staff_id,
        )
        self._tell(told)
        self._on_recorded()
        return told

    def _forget(self, checkin_id: str) -> None:
        with self._lock:
            self._open.pop(checkin_id, None)
