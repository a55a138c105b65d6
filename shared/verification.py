"""From a scanned text to a decision: recognise, verify offline, gather facts, apply the rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared import healthcode, venuecode
from shared.dcc import hcert
from shared.dcc.hcert import VerifiedDcc
from shared.dcc.schema import SchemaStore
from shared.dcc.value_sets import ValueSets, packaged_value_sets
from shared.denylist import DenyList
from shared.envelope import CredentialError, Stage
from shared.healthcode import CodeKind, HealthCode, HealthStatus
from shared.keys import ES256, TrustStore
from shared.policy import (
    CredentialKindName,
    Decision,
    Facts,
    IdCheck,
    Outcome,
    RuleSet,
    StatusSource,
    decide,
)
from shared.sealed import CardIdentity
from shared.venuecode import VenueCode


class CredentialKind(StrEnum):
    HEALTH = "health"
    VENUE = "venue"
    DCC = "dcc"
    ID_CARD = "idcard"  # an ID card shown alone, by someone without a phone
    UNKNOWN = "unknown"


class CardValidity(StrEnum):
    """Whether an ID card is within its validity dates on the day it is shown."""

    VALID = "valid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    UNREADABLE = "unreadable"  # the card's dates could not be read


@dataclass(frozen=True)
class CheckContext:
    """What the device knows at the moment of a check, besides the credential itself."""

    now: datetime
    clock_trusted: bool
    temperature_c: float | None = None
    deny_list: DenyList | None = None
    deny_list_age_minutes: int | None = None
    id_number: str | None = None  # read from the holder's ID card for this check
    # Paper codes: the host's current status behind a person reference; None when offline.
    status_lookup: Callable[[str], HealthStatus | None] | None = None
    dcc_schemas: SchemaStore | None = None  # without them an EU DCC goes to staff
    # The EU DCC value sets: the host's when it sent newer ones, else the package's own.
    dcc_value_sets: ValueSets = field(default_factory=packaged_value_sets)


@dataclass(frozen=True)
class Assessment:
    """What a scanned text is, the decision on it, and the verified claims if any."""

    kind: CredentialKind
    decision: Decision
    code: HealthCode | None = None
    venue: VenueCode | None = None
    dcc: VerifiedDcc | None = None
    holder: str | None = None  # an ID card's holder as the host named them

    @property
    def verified_subject(self) -> str | None:
        return self.code.person_ref if self.code else self.holder


@dataclass(frozen=True)
class IdentityStatus:
    """The host's answer about an ID card's holder: who they are and their status, if known."""

    person_ref: str  # the host's reference, or its pseudonym for someone it does not know
    status: HealthStatus | None  # None: not in the host's register


def _failure(kind: CredentialKind, error: CredentialError) -> Assessment:
    if error.untrusted_signer:
        return Assessment(kind, Decision(Outcome.REFER, (f"untrusted-signer: {error.reason}",)))
    if error.stage is Stage.SIGNATURE:
        return Assessment(kind, Decision(Outcome.DENY, (f"bad-signature: {error.reason}",)))
    if error.stage is Stage.KEYUSAGE:
        return Assessment(kind, Decision(Outcome.DENY, (f"wrong-key-usage: {error.reason}",)))
    if error.stage is Stage.EXPIRY:
        return Assessment(kind, Decision(Outcome.DENY, (f"expired: {error.reason}",)))
    if error.stage is Stage.VALUESET:
        # Signed, but a code the device's value sets lack: a forged code, or a new one the
        # device has not been sent yet. It cannot be verified, so staff decide.
        return Assessment(kind, Decision(Outcome.REFER, (f"unknown-code: {error.reason}",)))
    # Damaged or malformed beyond the signature: it cannot be verified, so staff decide.
    return Assessment(kind, Decision(Outcome.REFER, (f"unreadable: {error}",)))


def recognise(text: str) -> CredentialKind:
    if text.startswith(healthcode.PREFIX):
        return CredentialKind.HEALTH
    if text.startswith(hcert.PREFIX):
        return CredentialKind.DCC
    if venuecode.looks_like_venue_url(text):
        return CredentialKind.VENUE
    return CredentialKind.UNKNOWN


def _status_payload(status: HealthStatus) -> dict[str, Any]:
    payload: dict[str, Any] = {"colour": status.colour.value}
    if status.test is not None:
        payload["test"] = {
            "sampledAt": status.test.sampled_at.isoformat(),
            "result": status.test.result.value,
        }
    return payload


def health_payload(code: HealthCode, status: HealthStatus | None) -> dict[str, Any]:
    """A health code's claims as rules read them; the host's current status wins when known."""
    current = status if status is not None else HealthStatus(code.colour, code.test)
    return {
        "kind": code.kind.value,
        "issuedAt": code.issued_at.isoformat(),
        "expiresAt": code.expires_at.isoformat(),
        **_status_payload(current),
    }


def assess_id_card(
    identity: CardIdentity,
    found: IdentityStatus | None,
    *,
    rules: RuleSet | None,
    context: CheckContext,
    validity: CardValidity = CardValidity.VALID,
) -> Assessment:
    """Decide on an ID card shown alone; `found` is the host's answer, None when offline.

    Offline, only the deny list can say anything about the holder, so the rules refer.
    """
    payload: dict[str, Any] = {
        "kind": "idcard",
        "known": bool(found and found.status),
        "validity": validity.value,
    }
    if found is not None and found.status is not None:
        payload |= _status_payload(found.status)
    listed = None
    if context.deny_list is not None:
        listed = context.deny_list.contains_identity(identity)
        if listed is None and found is not None:
            listed = context.deny_list.contains_person(found.person_ref)
    facts = _facts(
        "idcard",
        payload,
        context,
        listed,
        status_source="online" if found is not None else "none",
    )
    holder = found.person_ref if found is not None else None
    return Assessment(CredentialKind.ID_CARD, decide(rules, facts), holder=holder)


def _id_check(code: HealthCode, id_number: str | None) -> IdCheck:
    if id_number is None:
        return "none"
    return "matched" if healthcode.matches_id(code, id_number) else "mismatch"


def health_facts(code: HealthCode, context: CheckContext) -> Facts:
    """The facts about a verified health code; a paper code is looked up online when possible."""
    status = None
    id_check: IdCheck = "none"
    if code.kind is CodeKind.PAPER:
        id_check = _id_check(code, context.id_number)
        # Only a holder whose ID matched is worth asking the host about.
        if id_check == "matched" and context.status_lookup is not None:
            status = context.status_lookup(code.person_ref)
    listed = context.deny_list.contains_person(code.person_ref) if context.deny_list else None
    return _facts(
        "health",
        health_payload(code, status),
        context,
        listed,
        id_check=id_check,
        status_source="online" if status is not None else "code",
    )


def _facts(
    kind: CredentialKindName,
    payload: dict[str, Any],
    context: CheckContext,
    listed: str | None,
    *,
    id_check: IdCheck = "none",
    status_source: StatusSource = "code",
) -> Facts:
    """The facts of a check: the credential's claims, the moment, the reading, the deny list."""
    return Facts(
        kind=kind,
        payload=payload,
        now=context.now,
        clock_trusted=context.clock_trusted,
        temperature_c=context.temperature_c,
        deny_listed=listed,
        deny_list_age_minutes=context.deny_list_age_minutes,
        id_check=id_check,
        status_source=status_source,
    )


def assess(
    text: str, *, trust: TrustStore, rules: RuleSet | None, context: CheckContext
) -> Assessment:
    """Decide on one scanned text; no rule set or an unsure clock never yields a pass."""
    kind = recognise(text)
    if kind is CredentialKind.UNKNOWN:
        return Assessment(kind, Decision(Outcome.IGNORED, ("not-a-credential: ordinary text",)))
    if kind is CredentialKind.DCC:
        return _assess_dcc(text, trust, rules, context)
    if kind is CredentialKind.VENUE:
        try:
            venue = venuecode.read_url(text, trust)
        except CredentialError as error:
            return _failure(kind, error)
        reason = f"venue-code: venue {venue.venue_id}, not a personal credential"
        return Assessment(kind, Decision(Outcome.IGNORED, (reason,)), venue=venue)
    try:
        code = healthcode.read(text, trust, now=context.now if context.clock_trusted else None)
    except CredentialError as error:
        return _failure(kind, error)
    return Assessment(kind, decide(rules, health_facts(code, context)), code)


def _assess_dcc(
    text: str, trust: TrustStore, rules: RuleSet | None, context: CheckContext
) -> Assessment:
    kind = CredentialKind.DCC
    now = context.now if context.clock_trusted else None
    try:
        verified = hcert.verify_dcc(
            text,
            trust,
            now=now,
            schemas=context.dcc_schemas,
            value_sets=context.dcc_value_sets,
        )
    except CredentialError as error:
        return _failure(kind, error)
    listed = None
    if context.deny_list is not None and verified.country is not None:
        listed = context.deny_list.contains_certificate(
            verified.uvci, verified.country, verified.signature, ecdsa=verified.alg == ES256
        )
    facts = _facts("dcc", verified.payload, context, listed)
    decision = decide(rules, facts)
    if verified.schema is None and decision.outcome is Outcome.PASS:
        decision = Decision(Outcome.REFER, ("schema-unchecked: no EU DCC schemas on this device",))
    return Assessment(kind, decision, dcc=verified)
