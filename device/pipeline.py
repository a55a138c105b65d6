"""The scan pipeline: frame, decode, verify offline, decide, record, tell; no network waits."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from device.clock import DeviceClock
from device.store import Store
from shared.keys import TrustStore
from shared.messages import CheckIn, DeviceConfig, trust_store
from shared.policy import Decision, Outcome, Policy
from shared.uuid7 import uuid7
from shared.verification import CredentialKind, assess, recognise

DEFAULT_REPEAT_WINDOW_SECONDS = 30.0
REPEAT_REASON = "repeat: already seen moments ago, no new check-in"


class Decoder(Protocol):
    def decode(self, image: np.ndarray) -> list[str]: ...


@dataclass(frozen=True)
class Event:
    """What happened to one code seen in a frame."""

    origin: str
    kind: CredentialKind
    decision: Decision
    checkin_id: str | None = None  # set when a check-in was recorded

    def as_dict(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "kind": self.kind.value,
            "decision": self.decision.outcome.value,
            "reasons": list(self.decision.reasons),
            "checkin_id": self.checkin_id,
        }


@dataclass
class VenueState:
    """What the pipeline needs from the host's configuration, swapped atomically on refresh."""

    venue_id: str
    policy: Policy | None
    trust: TrustStore = field(default_factory=TrustStore)

    @classmethod
    def from_config(cls, config: DeviceConfig) -> VenueState:
        return cls(config.venue.id, config.policy, trust_store(config.keys))


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
    ) -> None:
        self._decoder = decoder
        self._store = store
        self._clock = clock
        self._venue = venue
        self._venue_lock = threading.Lock()
        self._feedback = feedback
        self._on_recorded = on_recorded
        self._repeats = RepeatFilter(repeat_window_seconds)

    def update_venue(self, venue: VenueState) -> None:
        with self._venue_lock:
            self._venue = venue

    def process_image(self, image: np.ndarray, origin: str) -> list[Event]:
        return [self.process_text(text, origin) for text in self._decoder.decode(image)]

    def _repeat(self, kind: CredentialKind, origin: str) -> Event:
        event = Event(origin, kind, Decision(Outcome.IGNORED, (REPEAT_REASON,)))
        self._feedback(event)
        return event

    def process_text(self, text: str, origin: str, *, temperature_c: float | None = None) -> Event:
        # The same text again (a code held up in front of the camera) is known before any
        # signature is checked; the same person with a fresh code is known after.
        text_key = "text:" + hashlib.sha256(text.encode()).hexdigest()
        if self._repeats.seen_recently(text_key):
            return self._repeat(recognise(text), origin)
        with self._venue_lock:
            venue = self._venue
        now = self._clock.now()
        trusted = self._clock.trusted
        assessment = assess(
            text,
            trust=venue.trust,
            policy=venue.policy,
            now=now,
            clock_trusted=trusted,
            temperature_c=temperature_c,
        )
        subject = assessment.verified_subject
        if subject and self._repeats.seen_recently(f"subject:{subject}"):
            return self._repeat(assessment.kind, origin)
        if assessment.decision.outcome is Outcome.IGNORED:
            event = Event(origin, assessment.kind, assessment.decision)
            self._feedback(event)
            return event
        checkin = CheckIn(
            id=uuid7(),
            venue_id=venue.venue_id,
            scanned_at=now,
            person_ref=assessment.verified_subject,
            kind=assessment.kind,
            outcome=assessment.decision.outcome,
            reasons=list(assessment.decision.reasons),
            temperature_c=temperature_c,
            clock_trusted=trusted,
        )
        self._store.record(checkin)  # durable before the person is told anything
        event = Event(origin, assessment.kind, assessment.decision, str(checkin.id))
        self._feedback(event)
        self._on_recorded()
        return event
