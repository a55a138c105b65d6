"""The citizen's phone: sign-in links, sessions, their dynamic code, and venue-code check-ins.

A citizen signs in with a one-time link (the city app would hold the login) and gets a session
cookie; sessions and links live in the database, kept as hashes. When a signed-in phone opens
a venue code, the host decides as a kiosk does: it issues the person a dynamic code with its
health key and assesses it against the venue's rule set, with its own clock and deny list.
The check-in is recorded with source `phone`, through the same ingest as kiosks' (so it is in
the counts, flows and tracing), unless the same person checked in at the same venue and
binding within the repeat window, when the earlier check-in is shown again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from host.api.deps import HostContext
from host.core.security import new_token, token_hash
from host.core.times import from_ms
from host.storage.base import CheckInSource, PersonRecord, VenueRecord
from host.storage.citizens import PhoneVisit
from shared.healthcode import CodeKind, HealthCode, issue, new_code
from shared.messages import CheckIn
from shared.uuid7 import uuid7
from shared.venuecode import VenueCode
from shared.verification import assess

SIGN_IN_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(days=7)
SESSION_COOKIE = "sentinel_citizen"
PHONE_DEVICE = "phone"  # the device id of every phone check-in: no kiosk recorded it
SIGN_IN_PATH = "/sign-in"


@dataclass(frozen=True)
class SignIn:
    url: str
    expires_at_ms: int


@dataclass(frozen=True)
class Session:
    token: str  # the cookie's value; the database keeps its hash only
    max_age_s: int


def issue_sign_in(context: HostContext, person: PersonRecord) -> SignIn:
    """A one-time link to the person's page, valid for `SIGN_IN_TTL`."""
    token = new_token("signin")
    now_ms = context.settings.now_ms()
    expires_at_ms = now_ms + int(SIGN_IN_TTL.total_seconds() * 1000)
    context.storage.add_sign_in(token_hash(token), person.person_ref, now_ms, expires_at_ms)
    return SignIn(f"{context.settings.public_url}{SIGN_IN_PATH}?token={token}", expires_at_ms)


def start_session(context: HostContext, sign_in_token: str) -> Session:
    """Use up a sign-in link and start a session; `TokenRefused` says why it cannot."""
    token = new_token("session")
    now_ms = context.settings.now_ms()
    max_age_s = int(SESSION_TTL.total_seconds())
    context.storage.start_session(
        token_hash(sign_in_token), token_hash(token), now_ms, now_ms + max_age_s * 1000
    )
    return Session(token, max_age_s)


def signed_in(context: HostContext, session_token: str | None) -> PersonRecord | None:
    """The person whose live session this cookie names; None without one."""
    if not session_token:
        return None
    now_ms = context.settings.now_ms()
    person_ref = context.storage.session_person(token_hash(session_token), now_ms)
    return None if person_ref is None else context.storage.get_person(person_ref)


def dynamic_code(context: HostContext, person: PersonRecord) -> tuple[HealthCode, str]:
    """A fresh dynamic code for the person, as the city app shows it: its claims and its text."""
    code = new_code(
        person_ref=person.person_ref,
        kind=CodeKind.DYNAMIC,
        colour=person.colour,
        test=person.test,
        now=context.settings.now(),
    )
    return code, issue(code, context.keys.health)


def check_in(
    context: HostContext, person: PersonRecord, venue: VenueRecord, code: VenueCode
) -> PhoneVisit:
    """Decide on the person at the venue as a kiosk would, and record it once per window."""
    now_ms = context.settings.now_ms()
    _, text = dynamic_code(context, person)
    assessment = assess(
        text,
        trust=context.keys.trust,
        rules=venue.effective_rules(),
        context=context.check_context(now_ms),
    )
    checkin = CheckIn(
        id=uuid7(now_ms),
        venue_id=venue.id,
        scanned_at=from_ms(now_ms),
        person_ref=person.person_ref,
        kind=assessment.kind,
        outcome=assessment.decision.outcome,
        reasons=list(assessment.decision.reasons),
        clock_trusted=True,
        binding=None if code.binding is None else str(code.binding),
    )
    visit = context.storage.claim_phone_visit(checkin, now_ms, context.settings.phone_repeat_ms)
    context.storage.add_checkins(
        PHONE_DEVICE, venue.id, now_ms, [visit.checkin], source=CheckInSource.PHONE
    )
    return visit
