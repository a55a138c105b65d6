"""Admin endpoints: venues and their codes, people and their codes, devices, counts and stats."""

from __future__ import annotations

import hmac
from dataclasses import replace
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import AwareDatetime

from host.api.deps import (
    Context,
    HostContext,
    Principal,
    require_venue,
    require_venue_for,
    requires,
)
from host.api.errors import ApiError
from host.api.parsing import StrictJsonRoute
from host.core.security import id_number_hmac, new_token, random_id, token_hash
from host.core.times import from_ms, to_ms
from host.phone import issue_sign_in
from host.storage.base import PersonRecord, VenueRecord
from host.storage.users import Role
from shared.healthcode import CodeKind, NucleicTest, issue, new_code
from shared.messages import (
    CodeRequest,
    DeviceInfo,
    EnrollmentToken,
    EnrollmentTokenRequest,
    HostStats,
    HourlyCount,
    IssuedCode,
    PeopleImport,
    PeopleImported,
    SignInLink,
    Venue,
    VenueCodeOut,
    VenueCodeRequest,
    VenueCreate,
    VenueUpdate,
)
from shared.policy import RuleSet
from shared.qrimage import qr_png
from shared.venuecode import Binding, BindingKind, VenueCode, issue_url

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[requires(Role.ADMIN)],
    route_class=StrictJsonRoute,
)
# What venue managers reach too, for their own venues: their codes, counts and devices.
venue_router = APIRouter(prefix="/admin", tags=["admin"], route_class=StrictJsonRoute)
VenueReader = Annotated[Principal, requires(Role.ADMIN, Role.VENUE_MANAGER, Role.EPIDEMIOLOGIST)]
VenueManager = Annotated[Principal, requires(Role.ADMIN, Role.VENUE_MANAGER)]

MAX_DYNAMIC_TTL = timedelta(minutes=10)
DEFAULT_COUNTS_WINDOW = timedelta(hours=24)
PNG = {200: {"content": {"image/png": {}}}}


# ---- venues -------------------------------------------------------------------------------


def _venue_url(context: HostContext, venue: VenueRecord, binding: Binding | None) -> str:
    """The fixed code as stored at creation, or a freshly signed variant bound to a plate/room."""
    if binding is None:
        return venue.code_url
    code = VenueCode(venue.id, binding)
    return issue_url(code, context.settings.public_url, context.keys.venue)


@router.post("/venues", status_code=201)
def create_venue(body: VenueCreate, context: Context) -> Venue:
    return add_venue(context, body).message()


def add_venue(context: HostContext, body: VenueCreate) -> VenueRecord:
    """Store a new venue, its fixed code signed once, with its category's default rules."""
    venue_id = random_id("v_", 10)
    venue = VenueRecord(
        id=venue_id,
        name=body.name,
        address=body.address,
        category=body.category,
        code_url=issue_url(VenueCode(venue_id), context.settings.public_url, context.keys.venue),
        rules=None,
        created_at_ms=context.settings.now_ms(),
        district=body.district,
        street=body.street,
        timezone=body.timezone,
    )
    context.storage.add_venue(venue)
    return venue


@venue_router.get("/venues")
def list_venues(context: Context, principal: VenueReader) -> list[Venue]:
    """Every venue; a venue manager's own only."""
    venues = context.storage.list_venues()
    return [venue.message() for venue in venues if principal.sees_venue(venue.id)]


@venue_router.get("/venues/{venue_id}")
def get_venue(venue_id: str, context: Context, principal: VenueReader) -> Venue:
    return require_venue_for(context, principal, venue_id).message()


@router.patch("/venues/{venue_id}")
def update_venue(venue_id: str, body: VenueUpdate, context: Context) -> Venue:
    """Change a venue's name, address, district, street or time zone; its code stays."""
    return change_venue(context, require_venue(context, venue_id), body).message()


def change_venue(context: HostContext, venue: VenueRecord, body: VenueUpdate) -> VenueRecord:
    """Store the fields of `body` that are set; the venue's id, code and category stay."""
    changed = replace(venue, **body.model_dump(exclude_unset=True, exclude_none=True))
    context.storage.update_venue(changed)
    return changed


@venue_router.get("/venues/{venue_id}/rules")
def get_venue_rules(venue_id: str, context: Context, principal: VenueReader) -> RuleSet:
    return require_venue_for(context, principal, venue_id).effective_rules()


@router.put("/venues/{venue_id}/rules")
def set_venue_rules(venue_id: str, body: RuleSet, context: Context) -> RuleSet:
    """Replace a venue's rule set; devices get it, signed, with their next config fetch."""
    venue = require_venue(context, venue_id)
    if body.category is not venue.category:
        raise ApiError(
            422, "rules-category", f"the venue is {venue.category.value}, the rule set is not"
        )
    current = venue.effective_rules().version
    if body.version <= current:
        raise ApiError(409, "stale-rules", f"rule set version must be above {current}")
    context.storage.set_venue_rules(venue_id, body)
    return body


@venue_router.post("/venues/{venue_id}/codes")
def venue_code(
    venue_id: str, body: VenueCodeRequest, context: Context, principal: VenueManager
) -> VenueCodeOut:
    venue = require_venue_for(context, principal, venue_id)
    binding = None if body.binding is None else Binding(body.binding.kind, body.binding.value)
    return VenueCodeOut(venue_id=venue.id, url=_venue_url(context, venue, binding))


@venue_router.get("/venues/{venue_id}/code.png", response_class=Response, responses=PNG)
def venue_code_png(
    venue_id: str,
    context: Context,
    principal: VenueManager,
    plate: str | None = None,
    room: str | None = None,
) -> Response:
    """The venue's QR code as a PNG: the fixed code, or one bound to `plate` or `room`."""
    venue = require_venue_for(context, principal, venue_id)
    if plate is not None and room is not None:
        raise ApiError(422, "bad-binding", "bind a code to a plate or a room, not both")
    binding = None
    try:
        if plate is not None:
            binding = Binding(BindingKind.PLATE, plate)
        elif room is not None:
            binding = Binding(BindingKind.ROOM, room)
    except ValueError as error:
        raise ApiError(422, "bad-binding", str(error)) from None
    return Response(qr_png(_venue_url(context, venue, binding)), media_type="image/png")


@venue_router.get("/venues/{venue_id}/counts")
def venue_counts(
    venue_id: str,
    context: Context,
    principal: VenueReader,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> list[HourlyCount]:
    """Check-ins per UTC hour: totals per outcome, and of the referrals, what staff decided.

    By default the last 24 hours.
    """
    venue = require_venue_for(context, principal, venue_id)
    end = until if until is not None else context.settings.now()
    start = since if since is not None else end - DEFAULT_COUNTS_WINDOW
    # Nothing was scanned before 1970; a window reaching further back would only meet wrong
    # device clocks, and hours before year 1 that a datetime cannot hold.
    since_ms, until_ms = max(to_ms(start), 0), to_ms(end)
    if since_ms >= until_ms:
        raise ApiError(422, "bad-window", "since must be before until, and after 1970")
    return [
        HourlyCount(
            venue_id=venue.id,
            hour=from_ms(count.hour_ms),
            total=count.total,
            passed=count.passed,
            denied=count.denied,
            referred=count.referred,
            staff_let_through=count.staff_let_through,
            staff_refused=count.staff_refused,
        )
        for count in context.storage.hourly_counts(venue.id, since_ms, until_ms)
    ]


# ---- people -------------------------------------------------------------------------------


def _require_person(context: HostContext, person_ref: str) -> PersonRecord:
    person = context.storage.get_person(person_ref)
    if person is None:
        raise ApiError(404, "unknown-person", f"no person {person_ref}")
    return person


@router.post("/people")
def import_people(body: PeopleImport, context: Context) -> PeopleImported:
    """Upsert people by ID number; only a keyed hash of the number is kept."""
    now_ms = context.settings.now_ms()
    records = [
        PersonRecord(
            person_ref=random_id("p_", 16),
            id_hmac=id_number_hmac(context.keys.id_hmac_key, person.id_number),
            colour=person.colour,
            test=(
                None
                if person.test is None
                else NucleicTest(person.test.sampled_at, person.test.result)
            ),
            updated_at_ms=now_ms,
        )
        for person in body.people
    ]
    stored = context.storage.upsert_people(records)
    return PeopleImported(people=[person.message() for person in stored])


@router.post("/people/{person_ref}/codes", response_model=IssuedCode, responses=PNG)
def issue_person_code(
    person_ref: str,
    body: CodeRequest,
    context: Context,
    output: Annotated[Literal["json", "png"], Query(alias="format")] = "json",
) -> IssuedCode | Response:
    """Sign a health code with the person's current colour and latest test; JSON or a PNG."""
    person = _require_person(context, person_ref)
    if body.kind is CodeKind.DYNAMIC:
        if body.id_number is not None:
            raise ApiError(422, "unexpected-id-number", "only a paper code takes an ID number")
        if body.ttl_seconds is not None and body.ttl_seconds > MAX_DYNAMIC_TTL.total_seconds():
            raise ApiError(422, "bad-ttl", "a dynamic code lives at most 10 minutes")
    else:
        if body.id_number is None:
            raise ApiError(422, "id-number-required", "a paper code is tied to an ID number")
        given = id_number_hmac(context.keys.id_hmac_key, body.id_number)
        if not hmac.compare_digest(given, person.id_hmac):
            raise ApiError(403, "id-mismatch", "the ID number does not belong to this person")
    code = new_code(
        person_ref=person.person_ref,
        kind=body.kind,
        colour=person.colour,
        test=person.test,
        now=context.settings.now(),
        ttl=None if body.ttl_seconds is None else timedelta(seconds=body.ttl_seconds),
        id_number=body.id_number,
    )
    text = issue(code, context.keys.health)
    if output == "png":
        return Response(
            qr_png(text),
            media_type="image/png",
            headers={"X-Code-Expires-At": code.expires_at.isoformat()},
        )
    return IssuedCode(
        person_ref=person.person_ref,
        kind=code.kind,
        text=text,
        issued_at=code.issued_at,
        expires_at=code.expires_at,
    )


@router.post("/people/{person_ref}/sign-in")
def person_sign_in(person_ref: str, context: Context) -> SignInLink:
    """A one-time link, valid minutes, that signs the person in on their phone (their page)."""
    link = issue_sign_in(context, _require_person(context, person_ref))
    return SignInLink(url=link.url, expires_at=from_ms(link.expires_at_ms))


# ---- devices ------------------------------------------------------------------------------


@router.post("/enrollment-tokens", status_code=201)
def create_enrollment_token(body: EnrollmentTokenRequest, context: Context) -> EnrollmentToken:
    """A one-time token for enrolling one device at a venue; only its hash is stored."""
    return add_enrollment_token(context, require_venue(context, body.venue_id), body.ttl_seconds)


def add_enrollment_token(
    context: HostContext, venue: VenueRecord, ttl_seconds: int
) -> EnrollmentToken:
    """Make a one-time enrollment token for `venue`, valid `ttl_seconds`; store only its hash."""
    token = new_token("enroll")
    now_ms = context.settings.now_ms()
    expires_at_ms = now_ms + ttl_seconds * 1000
    context.storage.add_enrollment_token(token_hash(token), venue.id, now_ms, expires_at_ms)
    return EnrollmentToken(token=token, venue_id=venue.id, expires_at=from_ms(expires_at_ms))


@venue_router.get("/devices")
def list_devices(context: Context, principal: VenueManager) -> list[DeviceInfo]:
    """Every device (a venue manager's venues' only), with its latest status report."""
    return devices_seen_by(context, principal)


def devices_seen_by(
    context: HostContext, principal: Principal, venue_id: str | None = None
) -> list[DeviceInfo]:
    """The devices of the venues `principal` sees (or of one of them), with their latest reports."""
    if venue_id is not None and not principal.sees_venue(venue_id):
        return []
    reports = context.storage.device_reports(venue_id)
    return [
        device.message(reports.get(device.id))
        for device in context.storage.list_devices(venue_id)
        if principal.sees_venue(device.venue_id)
    ]


@router.post("/devices/{device_id}/revoke")
def revoke_device(device_id: str, context: Context) -> DeviceInfo:
    device = context.storage.revoke_device(device_id, context.settings.now_ms())
    if device is None:
        raise ApiError(404, "unknown-device", f"no device {device_id}")
    return device.message()


@router.get("/stats")
def stats(context: Context) -> HostStats:
    return context.storage.stats()
