"""The handheld form: staff hold the device, scan on a trigger, check vehicles and register by hand.

- Scanning runs only once triggered (a GPIO button, the screen's Scan button), until a
  decision or for `scan_seconds`, whichever comes first: a camera waved about reads nothing.
- A vehicle: staff enter its plate (or scan the plate-bound venue code on it); every check-in
  until "end vehicle" is recorded with the plate as its binding and one group id, and the
  screen lists each occupant's result.
- Manual registration, for someone with neither phone nor card: staff type the ID number,
  which goes the way of a card read (sealed, looked up online, else deny list or referral).
  It is checked (MOD 11-2) before anything else, and never logged, kept or shown unmasked.
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from device.cardreader import RESIDENT_CARD_ISSUER
from device.pipeline import SHOW_ID_REASON, CheckInGroup, Event, Pipeline
from shared.idnumber import is_valid_id_number, normalise_id_number
from shared.policy import Outcome
from shared.sealed import CardIdentity, DocumentType
from shared.venuecode import Binding, BindingKind
from shared.verification import CardValidity

log = logging.getLogger(__name__)
DEFAULT_SCAN_SECONDS = 10.0
MANUAL_ORIGIN = "manual"  # the origin of a check-in registered by hand
MAX_OCCUPANTS = 100  # results listed for one vehicle (a coach's worth)


class ScanTrigger:
    """Scanning armed for a bounded time by a trigger, and disarmed by a decision (thread-safe)."""

    def __init__(self, seconds: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        if seconds <= 0:
            raise ValueError(f"a scan lasts a positive number of seconds, not {seconds}")
        self.seconds = seconds
        self._monotonic = monotonic
        self._until = 0.0
        self._lock = threading.Lock()

    def arm(self) -> None:
        with self._lock:
            self._until = self._monotonic() + self.seconds

    def disarm(self) -> None:
        with self._lock:
            self._until = 0.0

    def armed(self) -> bool:
        with self._lock:
            return self._monotonic() < self._until


def plate_binding(plate: str) -> Binding:
    """A typed plate as a binding (normal form: NFKC, no spaces, upper case); ValueError if bad."""
    normal = "".join(unicodedata.normalize("NFKC", plate).split()).upper()
    try:
        return Binding(BindingKind.PLATE, normal)
    except ValueError as error:
        raise ValueError(f"plate: {error}") from None


def ends_a_scan(event: Event) -> bool:
    """Whether a scan has found what it was for: a decision, a plate code, a request for an ID."""
    return (
        event.decision.outcome is not Outcome.IGNORED
        or event.binding is not None
        or event.decision.reasons == (SHOW_ID_REASON,)
    )


@dataclass(frozen=True)
class Vehicle:
    """The open vehicle: its group, and its occupants' latest events in the order they came."""

    group: CheckInGroup
    occupants: tuple[Event, ...]


class Handheld:
    """The handheld's trigger, open vehicle and manual registration, over one pipeline."""

    def __init__(
        self,
        pipeline: Pipeline,
        trigger: ScanTrigger,
        *,
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.trigger = trigger
        self._pipeline = pipeline
        self._changed = changed  # the screen redraws the handheld's panel
        self._lock = threading.Lock()
        self._occupants: dict[str, Event] = {}  # by check-in id, in the order they came

    def scan(self) -> None:
        """Start scanning (the trigger was pressed)."""
        self.trigger.arm()
        self._changed()

    def observe(self, event: Event) -> None:
        """A decision ends the scan; a plate code opens a vehicle; occupants' results are listed."""
        if ends_a_scan(event):
            self.trigger.disarm()
        group = self._pipeline.group
        if event.binding is not None and event.checkin_id is None:
            binding = Binding.parse(event.binding)
            if binding.kind is BindingKind.PLATE:
                self._open(CheckInGroup(str(binding)))
        elif group is not None and event.checkin_id is not None and event.group_id == str(group.id):
            with self._lock:
                if len(self._occupants) < MAX_OCCUPANTS or event.checkin_id in self._occupants:
                    self._occupants[event.checkin_id] = event  # a staff decision replaces it
        self._changed()

    def start_vehicle(self, plate: str) -> CheckInGroup:
        """Open a vehicle by its typed plate (closing any open one); ValueError for a bad plate."""
        group = CheckInGroup(str(plate_binding(plate)))
        self._open(group)
        self._changed()
        return group

    def _open(self, group: CheckInGroup) -> None:
        with self._lock:
            self._pipeline.group = group
            self._occupants = {}
        log.info("vehicle %s: group %s opened", group.binding, group.id)

    def end_vehicle(self) -> None:
        """Close the open vehicle: later check-ins belong to no vehicle."""
        with self._lock:
            group, self._pipeline.group = self._pipeline.group, None
            count = len(self._occupants)
            self._occupants = {}
        if group is not None:
            log.info("vehicle %s: group %s closed, %d occupants", group.binding, group.id, count)
        self._changed()

    def vehicle(self) -> Vehicle | None:
        """The open vehicle and its occupants' results, if one is open."""
        with self._lock:
            group = self._pipeline.group
            return None if group is None else Vehicle(group, tuple(self._occupants.values()))

    def register(self, id_number: str) -> Event:
        """Register a person by their typed ID number, as a card read; ValueError if not valid.

        The error never quotes the number.
        """
        number = normalise_id_number(id_number)
        if not is_valid_id_number(number):
            raise ValueError(
                "not a resident ID number: 17 digits and a check character (0-9 or X) that"
                " matches them (MOD 11-2)"
            )
        identity = CardIdentity.of(DocumentType.CN_ID, RESIDENT_CARD_ISSUER, number)
        return self._pipeline.present_id(identity, MANUAL_ORIGIN, CardValidity.VALID)
