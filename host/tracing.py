"""Tracing (流调溯源): whom a case met, by place and time; the request, the answer and its CSV.

The rule: a contact is a check-in that identifies someone other than the case, at the venue of
one of the case's check-ins (their visits), bound to the same room or vehicle plate as the
visit (or, like it, to none), scanned within `window_minutes` of it either way. Each person is
listed once per visit, at their check-in nearest the case's, nearest first. A second degree
follows each first-degree contact from their check-in that met the case until `until`, and
lists each person it finds once, at their nearest meeting.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from host.api.deps import HostContext, Principal
from host.api.fields import Purpose
from host.core.security import id_number_hmac
from host.core.times import from_ms, to_ms
from host.identities import pseudonym
from host.storage.base import nucleic_test_message
from host.storage.tracing import Contact, Trace, TraceQuery, Visit
from shared.healthcode import Colour
from shared.idnumber import is_valid_id_number, normalise_id_number
from shared.messages import NucleicTestIn

DEFAULT_WINDOW_MINUTES = 30
MAX_WINDOW_MINUTES = 240
MAX_SPAN = timedelta(days=28)  # the default retention: older check-ins are gone anyway
# The second degree has bounds of its own: it follows many people, so it stays narrow.
SECOND_DEGREE_MAX_SPAN = timedelta(days=14)
SECOND_DEGREE_MAX_WINDOW_MINUTES = 60
SECOND_DEGREE_MAX_SOURCES = 200  # first-degree people followed at most
MINUTE_MS = 60_000


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TraceRequest(Model):
    """A case, named by their reference or their resident ID number (used, never kept)."""

    person_ref: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"
    )
    id_number: str | None = Field(
        default=None,
        max_length=40,
        repr=False,
        description="the case's resident ID number: traced under their reference and under "
        "the pseudonym their card is checked in with; never stored or logged",
    )
    since: AwareDatetime
    until: AwareDatetime
    window_minutes: int = Field(default=DEFAULT_WINDOW_MINUTES, ge=1, le=MAX_WINDOW_MINUTES)
    depth: Literal[1, 2] = Field(default=1, description="2: the first-degree contacts' too")
    purpose: Purpose

    @field_validator("id_number")
    @classmethod
    def _resident_id_number(cls, value: str | None) -> str | None:
        if value is None:
            return None
        number = normalise_id_number(value)
        if not is_valid_id_number(number):
            raise ValueError("is not a resident ID number (18 characters, a right check character)")
        return number

    @model_validator(mode="after")
    def _bounded(self) -> TraceRequest:
        if (self.person_ref is None) == (self.id_number is None):
            raise ValueError("give the case's person_ref or their id_number, not both")
        if self.until <= self.since:
            raise ValueError("until must be later than since")
        span = self.until - self.since
        if span > MAX_SPAN:
            raise ValueError(f"since to until spans at most {MAX_SPAN.days} days")
        if self.depth == 2:
            if span > SECOND_DEGREE_MAX_SPAN:
                raise ValueError(
                    f"a second degree spans at most {SECOND_DEGREE_MAX_SPAN.days} days"
                )
            if self.window_minutes > SECOND_DEGREE_MAX_WINDOW_MINUTES:
                raise ValueError(
                    f"a second degree's window is at most {SECOND_DEGREE_MAX_WINDOW_MINUTES}"
                    " minutes"
                )
        return self


def case_refs(context: HostContext, request: TraceRequest) -> tuple[str, ...]:
    """Every reference the case may be checked in under: the register's and the card's.

    Someone in the register may also have been checked in by their ID card before they were
    registered, under the pseudonym a card holder unknown to the host gets: it is made from
    the keyed hash of their number, which the register keeps.
    """
    if request.id_number is None:
        assert request.person_ref is not None
        person = context.storage.get_person(request.person_ref)
        card = () if person is None else (pseudonym(person.id_hmac),)
        return (request.person_ref, *card)
    id_hmac = id_number_hmac(context.keys.id_hmac_key, request.id_number)
    person = context.storage.find_person_by_id_hmac(id_hmac)
    registered = () if person is None else (person.person_ref,)
    return (*registered, pseudonym(id_hmac))


def trace_query(request: TraceRequest, refs: tuple[str, ...]) -> TraceQuery:
    return TraceQuery(
        case_refs=refs,
        since_ms=to_ms(request.since),
        until_ms=to_ms(request.until),
        window_ms=request.window_minutes * MINUTE_MS,
        depth=request.depth,
        max_sources=SECOND_DEGREE_MAX_SOURCES,
    )


def run_trace(context: HostContext, principal: Principal, request: TraceRequest) -> TraceOut:
    """The case's visits and contacts, read with its audit record in one transaction.

    The record names who, why, the case by reference (never by number), and how many records
    were read. A second degree wider than it may follow raises `TooBroad`.
    """
    refs = case_refs(context, request)
    draft = principal.audit(
        "tracing",
        request.purpose,
        case=",".join(refs),
        since=request.since.isoformat(),
        until=request.until.isoformat(),
        depth=str(request.depth),
    )
    found = context.storage.trace(trace_query(request, refs), draft, context.settings.now_ms())
    return TraceOut.of(found, request, refs)


class VisitOut(Model):
    venue_id: str
    venue_name: str | None
    binding: str | None
    scanned_at: AwareDatetime


class ContactStatus(Model):
    """A contact's health status now, for follow-up; `known` is false for a card's pseudonym."""

    known: bool
    colour: Colour | None
    test: NucleicTestIn | None
    updated_at: AwareDatetime | None


class ContactOut(Model):
    person_ref: str
    degree: Literal[1, 2]
    via: str | None = Field(description="the first-degree contact met, for the second degree")
    venue_id: str
    binding: str | None
    case_scanned_at: AwareDatetime = Field(
        description="the visit's time: the case's check-in, or the first-degree contact's"
    )
    contact_scanned_at: AwareDatetime
    minutes_apart: float
    status: ContactStatus


class TraceSummary(Model):
    case_refs: list[str] = Field(description="every reference the case was traced under")
    since: AwareDatetime
    until: AwareDatetime
    window_minutes: int
    depth: int
    visits: int
    contacts: int = Field(description="contacts listed: a person once per visit they met")
    people: int = Field(description="first-degree people, each once however many visits")
    second_degree_people: int | None = Field(description="None at depth 1")


class TraceOut(Model):
    visits: list[VisitOut]
    contacts: list[ContactOut]
    summary: TraceSummary

    @classmethod
    def of(cls, trace: Trace, request: TraceRequest, refs: tuple[str, ...]) -> TraceOut:
        """The answer, validated in one pass: hundreds of contacts are usual."""
        first = {c.person_ref for c in trace.contacts if c.degree == 1}
        second = {c.person_ref for c in trace.contacts if c.degree == 2}
        return cls.model_validate(
            {
                "visits": [_visit(visit) for visit in trace.visits],
                "contacts": [_contact(contact) for contact in trace.contacts],
                "summary": {
                    "case_refs": refs,
                    "since": request.since,
                    "until": request.until,
                    "window_minutes": request.window_minutes,
                    "depth": request.depth,
                    "visits": len(trace.visits),
                    "contacts": len(trace.contacts),
                    "people": len(first),
                    "second_degree_people": len(second) if request.depth == 2 else None,
                },
            }
        )


def _visit(visit: Visit) -> dict[str, object]:
    return {
        "venue_id": visit.venue_id,
        "venue_name": visit.venue_name,
        "binding": visit.binding,
        "scanned_at": from_ms(visit.scanned_at_ms),
    }


def _contact(contact: Contact) -> dict[str, object]:
    updated = contact.status_updated_at_ms
    return {
        "person_ref": contact.person_ref,
        "degree": contact.degree,
        "via": contact.via,
        "venue_id": contact.venue_id,
        "binding": contact.binding,
        "case_scanned_at": from_ms(contact.case_scanned_at_ms),
        "contact_scanned_at": from_ms(contact.contact_scanned_at_ms),
        "minutes_apart": round(contact.apart_ms / MINUTE_MS, 1),
        "status": {
            "known": contact.colour is not None,
            "colour": contact.colour,
            "test": nucleic_test_message(contact.test),
            "updated_at": None if updated is None else from_ms(updated),
        },
    }


CSV_COLUMNS = (
    "record",
    "degree",
    "person_ref",
    "via",
    "venue_id",
    "venue_name",
    "binding",
    "case_scanned_at",
    "contact_scanned_at",
    "minutes_apart",
    "colour",
    "test_result",
    "test_sampled_at",
    "status_updated_at",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet would run as a formula


def _cell(value: object) -> str:
    """A CSV cell: times in ISO 8601 UTC, nothing for None, text a spreadsheet keeps as text."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def trace_csv(trace: TraceOut) -> str:
    """The answer as one CSV table: a `visit` row per visit, then a `contact` row per contact."""
    rows: list[tuple[object, ...]] = [
        ("visit", None, None, None, v.venue_id, v.venue_name, v.binding, v.scanned_at)
        + (None,) * 6
        for v in trace.visits
    ]
    for c in trace.contacts:
        test = c.status.test
        rows.append(
            (
                "contact",
                c.degree,
                c.person_ref,
                c.via,
                c.venue_id,
                None,
                c.binding,
                c.case_scanned_at,
                c.contact_scanned_at,
                c.minutes_apart,
                c.status.colour,
                None if test is None else test.result,
                None if test is None else test.sampled_at,
                c.status.updated_at,
            )
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return out.getvalue()
