"""The scan pipeline: frame or card, verify, decide, record, tell; paper codes meet ID cards."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol
from uuid import UUID

import numpy as np

from device.clock import DeviceClock
from device.store import Store, StoreError
from shared.dcc.schema import SchemaStore
from shared.dcc.value_sets import ValueSets, packaged_value_sets
from shared.denylist import DenyList
from shared.healthcode import CodeKind, HealthStatus, NucleicTest
from shared.idnumber import mask_id_number
from shared.keys import TrustStore
from shared.messages import CheckIn, DeviceConfig, ThermometerReadings
from shared.policy import Decision, Outcome, RuleSet
from shared.sealed import CardIdentity, seal
from shared.uuid7 import uuid7
from shared.verification import (
    Assessment,
    CardValidity,
    CheckContext,
    CredentialKind,
    IdentityStatus,
    assess,
    assess_id_card,
    recognise,
)

log = logging.getLogger(__name__)
DEFAULT_REPEAT_WINDOW_SECONDS = 30.0
REPEAT_REASON = "repeat: already seen moments ago, no new check-in"
PAPER_WAIT_SECONDS = 20.0  # a paper code waits this long for its holder's ID card
ID_KEEP_SECONDS = 20.0  # an ID card read waits this long for a paper code
SHOW_ID_REASON = "paper-code-show-id: show the ID card of the code's holder"
CANNOT_RECORD_REASON = "cannot-record"
OUT_OF_SERVICE_REASON = "out-of-service"  # the host revoked the device: staff decide everything


@dataclass(frozen=True)
class DenyListState:
    """The deny list as the pipeline sees it: a lookup and how long ago it was confirmed."""

    lookup: DenyList | None
    age_minutes: int | None


class Decoder(Protocol):
    def decode(self, image: np.ndarray) -> list[str]: ...


@dataclass(frozen=True)
class Temperature:
    """A temperature taken for a check: what the policy decides on, and the readings behind it.

    celsius is None for "no reading" (no thermometer, or none came in time); readings is None
    without a thermometer.
    """

    celsius: float | None
    readings: ThermometerReadings | None = None


NO_THERMOMETER = Temperature(None)


@dataclass(frozen=True)
class Event:
    """What happened to one code seen in a frame."""

    origin: str
    kind: CredentialKind
    decision: Decision
    checkin_id: str | None = None  # set when a check-in was recorded
    holder: str | None = None  # an ID card's number, masked for the screen
    temperature_c: float | None = None  # the reading the decision was made with
    test: NucleicTest | None = None  # the latest test, as the code or the host's answer gave it
    # The plate or room: a check-in's, or what a scanned venue code of this venue is bound to.
    binding: str | None = None
    group_id: str | None = None  # the vehicle group the check-in was recorded in
    staff_id: str | None = None  # a staff decision: who made it (their PIN's id)

    def as_dict(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "kind": self.kind.value,
            "decision": self.decision.outcome.value,
            "reasons": list(self.decision.reasons),
            "checkin_id": self.checkin_id,
            "holder": self.holder,
            "temperature_c": self.temperature_c,
            "test": None
            if self.test is None
            else {"sampled_at": self.test.sampled_at.isoformat(), "result": self.test.result.value},
            "binding": self.binding,
            "group_id": self.group_id,
            "staff_id": self.staff_id,
        }


@dataclass(frozen=True)
class CheckInGroup:
    """People checked in together (a vehicle's occupants): their binding and the group's id."""

    binding: str  # plate:京A12345
    id: UUID = field(default_factory=uuid7)


@dataclass
class VenueState:
    """What the pipeline needs from the host's configuration, swapped atomically on refresh."""

    venue_id: str
    rules: RuleSet | None
    trust: TrustStore = field(default_factory=TrustStore)
    sealing_key: bytes | None = None  # the host's X25519 key that ID-card identities go to
    dcc_value_sets: ValueSets = field(default_factory=packaged_value_sets)

    @classmethod
    def from_config(cls, config: DeviceConfig) -> VenueState:
        """Trust the published keys; use the rule set only if the host's policy key signed it."""
        trust = config.trust()
        try:
            rules = config.rules.open(trust)
        except ValueError as error:
            log.error("venue rule set refused, every check is referred to staff: %s", error)
            rules = None
        sealing_key = None
        if config.sealing_key is not None:
            try:
                sealing_key = config.sealing_key.raw()
            except ValueError as error:
                log.error("sealing key refused, ID cards are decided offline: %s", error)
        return cls(config.venue.id, rules, trust, sealing_key, config.value_sets())


@dataclass(frozen=True)
class Checked:
    """A decision and what it was made under: the venue, the moment, the clock, the readings."""

    assessment: Assessment
    context: CheckContext
    venue_id: str
    thermometer: ThermometerReadings | None = None
    test: NucleicTest | None = None  # the latest test the decision saw, if any


@dataclass(frozen=True)
class PendingPaperCode:
    """A paper code waiting for its holder's ID card."""

    text: str
    origin: str
    temperature: Temperature
    since: float


class RepeatFilter:
    """Remembers recently seen codes so one person in front of the camera makes one check-in."""

    def __init__(
        self, window_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window_seconds
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def seen_recently(self, key: str) -> bool:
        """True if `key` was seen within the window (a code held up stays one check-in)."""
        now = self._clock()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now - self._window:
                self._seen.popitem(last=False)
            repeat = key in self._seen
            self._seen[key] = now
            self._seen.move_to_end(key)
            return repeat


class Pipeline:
    """Turns frames into decisions and durable check-ins; feedback is told after the commit."""

    def __init__(
        self,
        decoder: Decoder,
        store: Store,
        clock: DeviceClock,
        venue: VenueState,
        *,
        feedback: Callable[[Event], None],
        on_recorded: Callable[[], None] = lambda: None,
        repeat_window_seconds: float = DEFAULT_REPEAT_WINDOW_SECONDS,
        deny_list: Callable[[], DenyListState] = lambda: DenyListState(None, None),
        status_lookup: Callable[[str], HealthStatus | None] | None = None,
        identity_lookup: Callable[[str], IdentityStatus | None] | None = None,
        id_reader: bool = False,
        temperature: Callable[[], Temperature] | None = None,
        dcc_schemas: SchemaStore | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._decoder = decoder
        self._store = store
        self._clock = clock
        self._venue = venue
        self._venue_lock = threading.Lock()
        self._feedback = feedback
        self._on_recorded = on_recorded
        self._repeats = RepeatFilter(repeat_window_seconds, clock=monotonic)
        self._deny_list = deny_list
        self._status_lookup = status_lookup
        self._identity_lookup = identity_lookup  # a sealed identity to the host's answer
        self._id_reader = id_reader  # with a reader, a paper code waits for the card
        self._temperature = temperature  # measures one, when a person is being checked
        self._dcc_schemas = dcc_schemas
        self._monotonic = monotonic
        self._paper_lock = threading.Lock()
        self._pending_paper: PendingPaperCode | None = None
        self._recent_id: tuple[str, float] | None = None  # never logged, never stored
        self.out_of_service: str | None = None  # why, once the host revoked this device
        self.group: CheckInGroup | None = None  # check-ins are recorded in it while it is set

    def update_venue(self, venue: VenueState) -> None:
        with self._venue_lock:
            self._venue = venue

    def stop_service(self, reason: str) -> None:
        """Decide nothing from now on: the host revoked this device.

        Every check is referred to staff, on a venue state with no keys, rules or sealing key,
        so nothing is verified and nothing is asked of the host.
        """
        with self._venue_lock:
            self._venue = VenueState(self._venue.venue_id, None)
            self.out_of_service = reason

    def process_image(self, image: np.ndarray, origin: str) -> list[Event]:
        events = self.expire_waiting()
        return events + [self.process_text(text, origin) for text in self._decoder.decode(image)]

    def _tell(self, event: Event) -> Event:
        self._feedback(event)
        return event

    def _repeat(self, kind: CredentialKind, origin: str) -> Event:
        return self._tell(Event(origin, kind, Decision(Outcome.IGNORED, (REPEAT_REASON,))))

    def _recent_id_number(self) -> str | None:
        if self._recent_id is None:
            return None
        id_number, read_at = self._recent_id
        if self._monotonic() - read_at > ID_KEEP_SECONDS:
            self._recent_id = None
            return None
        return id_number

    def process_text(self, text: str, origin: str) -> Event:
        # The same text again (a code held up in front of the camera) is known before any
        # signature is checked; the same person with a fresh code is known after.
        text_key = "text:" + hashlib.sha256(text.encode()).hexdigest()
        kind = recognise(text)
        if self._repeats.seen_recently(text_key):
            return self._repeat(kind, origin)
        is_a_person = kind in {CredentialKind.HEALTH, CredentialKind.DCC}
        temperature = self._measure() if is_a_person else NO_THERMOMETER
        with self._paper_lock:
            id_number = self._recent_id_number()
        checked = self._assess(text, temperature, id_number)
        assessment = checked.assessment
        code = assessment.code
        if code is not None and code.kind is CodeKind.PAPER:
            if id_number is None and self._id_reader:
                with self._paper_lock:
                    self._pending_paper = PendingPaperCode(
                        text, origin, temperature, self._monotonic()
                    )
                return self._tell(
                    Event(origin, assessment.kind, Decision(Outcome.IGNORED, (SHOW_ID_REASON,)))
                )
            with self._paper_lock:
                self._recent_id = None  # one ID card vouches for one paper code
        subject = assessment.verified_subject
        if subject and self._repeats.seen_recently(f"subject:{subject}"):
            return self._repeat(assessment.kind, origin)
        if assessment.decision.outcome is Outcome.IGNORED:
            venue = assessment.venue
            ours = venue is not None and venue.venue_id == checked.venue_id
            binding = str(venue.binding) if ours and venue.binding is not None else None
            return self._tell(Event(origin, assessment.kind, assessment.decision, binding=binding))
        return self._record(origin, checked)

    def present_id(
        self, identity: CardIdentity, origin: str, validity: CardValidity = CardValidity.VALID
    ) -> Event:
        """An ID card was read: it completes a waiting paper code, or is decided on its own.

        Decided alone, it is also kept for ID_KEEP_SECONDS, so a paper code shown right after
        is checked against it. Its validity counts when it is decided alone: with a paper code
        it only shows whose code that is.
        """
        with self._paper_lock:
            pending, self._pending_paper = self._pending_paper, None
            if pending is None or self._monotonic() - pending.since > PAPER_WAIT_SECONDS:
                self._recent_id = (identity.number, self._monotonic())
                pending = None
        holder = mask_id_number(identity.number)
        if pending is not None:
            checked = self._assess(pending.text, pending.temperature, identity.number)
            return self._record(f"{pending.origin}+{origin}", checked, holder=holder)
        card_key = "card:" + hashlib.sha256(identity.lookup_key.encode()).hexdigest()
        if self._repeats.seen_recently(card_key):
            return self._repeat(CredentialKind.ID_CARD, origin)
        with self._venue_lock:
            venue = self._venue
        sealed = seal(identity, venue.sealing_key) if venue.sealing_key is not None else None
        found = None
        if sealed is not None and self._identity_lookup is not None:
            found = self._identity_lookup(sealed)
        temperature = self._measure()
        context = self._context(venue, temperature.celsius, None)
        assessment = assess_id_card(
            identity, found, rules=venue.rules, context=context, validity=validity
        )
        if found is not None and self._repeats.seen_recently(f"subject:{found.person_ref}"):
            return self._repeat(CredentialKind.ID_CARD, origin)
        # The host was not asked: it learns whom the check-in was from the seal, later.
        keep_sealed = sealed if found is None else None
        test = found.status.test if found is not None and found.status is not None else None
        checked = Checked(assessment, context, venue.venue_id, temperature.readings, test)
        return self._record(origin, checked, sealed_identity=keep_sealed, holder=holder)

    def expire_waiting(self) -> list[Event]:
        """A paper code whose ID card never came is decided without it (staff are asked)."""
        with self._paper_lock:
            pending = self._pending_paper
            if pending is None or self._monotonic() - pending.since <= PAPER_WAIT_SECONDS:
                return []
            self._pending_paper = None
        return [self._record(pending.origin, self._assess(pending.text, pending.temperature, None))]

    def _measure(self) -> Temperature:
        """A temperature measured now, if a thermometer is fitted."""
        return NO_THERMOMETER if self._temperature is None else self._temperature()

    def _context(
        self, venue: VenueState, temperature_c: float | None, id_number: str | None
    ) -> CheckContext:
        deny_list = self._deny_list()
        return CheckContext(
            now=self._clock.now(),
            clock_trusted=self._clock.trusted,
            temperature_c=temperature_c,
            deny_list=deny_list.lookup,
            deny_list_age_minutes=deny_list.age_minutes,
            id_number=id_number,
            status_lookup=self._status_lookup,
            dcc_schemas=self._dcc_schemas,
            dcc_value_sets=venue.dcc_value_sets,
        )

    def _assess(self, text: str, temperature: Temperature, id_number: str | None) -> Checked:
        with self._venue_lock:
            venue = self._venue
        answers: list[HealthStatus] = []  # what the host said of a paper code's holder, if asked
        context = self._context(venue, temperature.celsius, id_number)
        context = replace(context, status_lookup=self._remembering_lookup(answers))
        assessment = assess(text, trust=venue.trust, rules=venue.rules, context=context)
        code = assessment.code
        test = answers[-1].test if answers else code.test if code is not None else None
        return Checked(assessment, context, venue.venue_id, temperature.readings, test)

    def _remembering_lookup(
        self, answers: list[HealthStatus]
    ) -> Callable[[str], HealthStatus | None] | None:
        """The status lookup, keeping each answer in `answers` (the screen shows its test)."""
        lookup = self._status_lookup
        if lookup is None:
            return None

        def remembered(person_ref: str) -> HealthStatus | None:
            status = lookup(person_ref)
            if status is not None:
                answers.append(status)
            return status

        return remembered

    def _record(
        self,
        origin: str,
        checked: Checked,
        *,
        sealed_identity: str | None = None,
        holder: str | None = None,
    ) -> Event:
        assessment, context = checked.assessment, checked.context
        decision = assessment.decision
        person_ref = assessment.verified_subject
        if self.out_of_service is not None:
            decision = Decision(Outcome.REFER, (f"{OUT_OF_SERVICE_REASON}: {self.out_of_service}",))
            person_ref = sealed_identity = None
        group = self.group
        checkin = CheckIn(
            id=uuid7(),
            venue_id=checked.venue_id,
            scanned_at=context.now,
            person_ref=person_ref,
            kind=assessment.kind,
            outcome=decision.outcome,
            reasons=list(decision.reasons),
            temperature_c=context.temperature_c,
            thermometer=checked.thermometer,
            clock_trusted=context.clock_trusted,
            sealed_identity=sealed_identity,
            binding=None if group is None else group.binding,
            group_id=None if group is None else group.id,
        )
        try:
            self._store.record(checkin)  # durable before the person is told anything
        except StoreError as error:
            # Nothing was committed, so nothing may be let through: staff check by hand.
            log.error("check-in not recorded, the person is referred to staff: %s", error)
            refused = Decision(Outcome.REFER, (f"{CANNOT_RECORD_REASON}: {error}",))
            return self._tell(Event(origin, assessment.kind, refused))
        event = self._tell(
            Event(
                origin,
                assessment.kind,
                decision,
                str(checkin.id),
                holder,
                context.temperature_c,
                checked.test,
                checkin.binding,
                None if group is None else str(group.id),
            )
        )
        self._on_recorded()
        return event
