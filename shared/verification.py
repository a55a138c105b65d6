"""From a scanned text to a decision: recognise, verify offline, apply the venue policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared import healthcode, venuecode
from shared.envelope import CredentialError, Stage
from shared.healthcode import HealthCode
from shared.keys import TrustStore
from shared.policy import Decision, Outcome, Policy, decide
from shared.venuecode import VenueCode


class CredentialKind(StrEnum):
    HEALTH = "health"
    VENUE = "venue"
    DCC = "dcc"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Assessment:
    """What a scanned text is, the decision on it, and the verified claims if any."""

    kind: CredentialKind
    decision: Decision
    code: HealthCode | None = None
    venue: VenueCode | None = None

    @property
    def verified_subject(self) -> str | None:
        return self.code.person_ref if self.code else None


def _failure(kind: CredentialKind, error: CredentialError) -> Assessment:
    if error.untrusted_signer:
        return Assessment(kind, Decision(Outcome.REFER, (f"untrusted-signer: {error.reason}",)))
    if error.stage is Stage.SIGNATURE:
        return Assessment(kind, Decision(Outcome.DENY, (f"bad-signature: {error.reason}",)))
    if error.stage is Stage.EXPIRY:
        return Assessment(kind, Decision(Outcome.DENY, (f"expired: {error.reason}",)))
    # Damaged or malformed beyond the signature: it cannot be verified, so staff decide.
    return Assessment(kind, Decision(Outcome.REFER, (f"unreadable: {error}",)))


def recognise(text: str) -> CredentialKind:
    if text.startswith(healthcode.PREFIX):
        return CredentialKind.HEALTH
    if text.startswith("HC1:"):
        return CredentialKind.DCC
    if venuecode.looks_like_venue_url(text):
        return CredentialKind.VENUE
    return CredentialKind.UNKNOWN


def assess(
    text: str,
    *,
    trust: TrustStore,
    policy: Policy | None,
    now: datetime,
    clock_trusted: bool,
    temperature_c: float | None = None,
) -> Assessment:
    """Decide on one scanned text; a missing policy or an unsure clock never yields a pass."""
    kind = recognise(text)
    if kind is CredentialKind.UNKNOWN:
        return Assessment(kind, Decision(Outcome.IGNORED, ("not-a-credential: ordinary text",)))
    if kind is CredentialKind.DCC:
        return Assessment(kind, Decision(Outcome.REFER, ("unsupported: EU DCC not verified yet",)))
    if kind is CredentialKind.VENUE:
        try:
            venue = venuecode.read_url(text, trust)
        except CredentialError as error:
            return _failure(kind, error)
        reason = f"venue-code: venue {venue.venue_id}, not a personal credential"
        return Assessment(kind, Decision(Outcome.IGNORED, (reason,)), venue=venue)
    try:
        code = healthcode.read(text, trust, now=now if clock_trusted else None)
    except CredentialError as error:
        return _failure(kind, error)
    if policy is None:
        return Assessment(
            kind, Decision(Outcome.REFER, ("no-policy: venue policy not loaded",)), code
        )
    decision = decide(
        code, policy, now=now, clock_trusted=clock_trusted, temperature_c=temperature_c
    )
    return Assessment(kind, decision, code)
