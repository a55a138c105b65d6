"""Device endpoints: enrollment with a one-time token, then signed config, check-ins and checks."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial

from fastapi import APIRouter, Request

from host.api.deps import (
    Context,
    DeviceRequest,
    HostContext,
    SignedCall,
    client_address,
    in_device_thread,
    require_venue,
)
from host.api.errors import ApiError
from host.api.parsing import StrictJsonRoute, parse_body
from host.core.security import random_id, token_hash
from host.core.times import DAY_MS, from_ms, to_ms
from host.flows import local_day
from host.identities import holder_of, resolve_holders
from host.storage.base import DeviceRecord, EnrollmentRefused, nucleic_test_message
from host.storage.flows import hour_of
from host.storage.staff import StaffDecisionRefused
from shared.auth import load_device_public_key, public_key_bytes, weak_public_key
from shared.keys import b64url
from shared.messages import (
    CheckInAck,
    CheckInBatch,
    DccValueSetOut,
    DeviceConfig,
    DeviceReport,
    EnrollRequest,
    EnrollResponse,
    RejectedCheckIn,
    SealingKeyOut,
    SignedRules,
    StaffDecisionBatch,
    StatusRequest,
    StatusResponse,
    VerifyRequest,
    VerifyResponse,
)
from shared.sealed import SealError
from shared.verification import assess

log = logging.getLogger(__name__)
router = APIRouter(tags=["devices"], route_class=StrictJsonRoute)
# Check-ins scanned outside [EARLIEST_SCAN, the host's clock + LATEST_SCAN_AHEAD] come from a
# clock no entrance had: refused for good, never stored (nor kept past retention for ever).
EARLIEST_SCAN = datetime(2020, 1, 1, tzinfo=UTC)
LATEST_SCAN_AHEAD_MS = DAY_MS
IMPLAUSIBLE_SCAN_TIME = (
    f"scan-time-implausible: scanned before {EARLIEST_SCAN.date()} or more than a day"
    " ahead of the host's clock"
)


def _config(context: HostContext, device: DeviceRecord, now_ms: int) -> DeviceConfig:
    venue = require_venue(context, device.venue_id)
    return DeviceConfig(
        device_id=device.id,
        venue=venue.message(),
        rules=SignedRules.of(venue.effective_rules(), context.keys.policy),
        keys=context.keys.published,
        sealing_key=SealingKeyOut.of(context.keys.sealing),
        dcc_signers=[b64url(signer.der) for signer in context.keys.dcc_signers],
        dcc_value_sets=[DccValueSetOut.of(value_set) for value_set in context.keys.dcc_value_sets],
        server_time=from_ms(now_ms),
    )


@router.post("/devices/enroll", status_code=201)
def enroll(body: EnrollRequest, context: Context, request: Request) -> EnrollResponse:
    """Enroll a device with its own public key; the one-time token is the credential.

    429 once the client's address has had too many tokens refused.
    """
    address = client_address(context, request)
    failures = context.limits.failed_enrollments
    context.limiter.refuse_if_reached(
        failures, address, context.settings.now_ms(), "refused enrollments from this address"
    )
    try:
        public_key = load_device_public_key(body.public_key)
    except ValueError as error:
        raise ApiError(422, "bad-public-key", f"not an Ed25519 public key: {error}") from None
    weakness = weak_public_key(public_key_bytes(public_key))
    if weakness is not None:
        raise ApiError(422, "weak-public-key", weakness)
    now_ms = context.settings.now_ms()
    try:
        device = context.storage.enroll_device(
            token_hash(body.token),
            device_id=random_id("d_", 16),
            name=body.name,
            form=body.form,
            public_key=b64url(public_key_bytes(public_key)),
            now_ms=now_ms,
        )
    except EnrollmentRefused as refusal:
        context.limiter.count(failures, address, now_ms)
        raise ApiError(401, refusal.code, refusal.detail) from None
    return EnrollResponse(device_id=device.id, config=_config(context, device, now_ms))


@router.get("/device/config")
async def config(call: SignedCall, context: Context) -> DeviceConfig:
    return await in_device_thread(
        context, call, lambda signed: _config(context, signed.device, signed.now_ms)
    )


# `rejected` only when some are: a device of an older version reads the answer as it was.
@router.post("/device/checkins", response_model_exclude_defaults=True)
async def checkins(call: SignedCall, context: Context) -> CheckInAck:
    """Store a batch idempotently (by check-in id); every id acknowledged is settled.

    Stored durably, or (a scan time before 2020 or over a day ahead of the host's clock)
    refused for good: listed in `rejected` with the reason, never stored.
    """
    return await in_device_thread(context, call, partial(_store_checkins, context))


def _store_checkins(context: HostContext, signed: DeviceRequest) -> CheckInAck:
    batch = parse_body(CheckInBatch, signed.body)
    venue_id = signed.device.venue_id
    if any(checkin.venue_id != venue_id for checkin in batch.checkins):
        raise ApiError(422, "venue-mismatch", f"this device checks people in at {venue_id} only")
    earliest_ms, latest_ms = to_ms(EARLIEST_SCAN), signed.now_ms + LATEST_SCAN_AHEAD_MS
    plausible = [c for c in batch.checkins if earliest_ms <= to_ms(c.scanned_at) <= latest_ms]
    rejected = [
        RejectedCheckIn(id=checkin.id, reason=IMPLAUSIBLE_SCAN_TIME)
        for checkin in batch.checkins
        if not earliest_ms <= to_ms(checkin.scanned_at) <= latest_ms
    ]
    if rejected:
        log.warning(
            "device %s: %d check-ins refused for a scan time no clock could give",
            signed.device.id,
            len(rejected),
        )
    inserted = 0
    if plausible:
        inserted = context.storage.add_checkins(
            signed.device.id, venue_id, signed.now_ms, resolve_holders(context, plausible)
        )
    return CheckInAck(
        acknowledged=list(dict.fromkeys(checkin.id for checkin in batch.checkins)),
        inserted=inserted,
        duplicates=len(plausible) - inserted,
        rejected=rejected,
    )


@router.post("/device/staff-decisions", response_model_exclude_defaults=True)
async def staff_decisions(call: SignedCall, context: Context) -> CheckInAck:
    """Store staff decisions idempotently (by id); each settles a referral this device recorded.

    A batch naming any other check-in is refused whole (422 unknown-checkin, not-a-referral).
    """
    return await in_device_thread(context, call, partial(_store_staff_decisions, context))


def _store_staff_decisions(context: HostContext, signed: DeviceRequest) -> CheckInAck:
    batch = parse_body(StaffDecisionBatch, signed.body)
    venue_id = signed.device.venue_id
    if any(decision.venue_id != venue_id for decision in batch.decisions):
        raise ApiError(422, "venue-mismatch", f"this device decides at {venue_id} only")
    try:
        inserted = context.storage.add_staff_decisions(
            signed.device.id, venue_id, signed.now_ms, batch.decisions
        )
    except StaffDecisionRefused as refusal:
        raise ApiError(422, refusal.code, refusal.detail) from None
    return CheckInAck(
        acknowledged=list(dict.fromkeys(decision.id for decision in batch.decisions)),
        inserted=inserted,
        duplicates=len(batch.decisions) - inserted,
    )


@router.post("/device/status")
async def status(call: SignedCall, context: Context) -> StatusResponse:
    """The current status behind a paper code's person reference or an ID card's identity.

    Only what the kiosk's rules need: the holder's reference (checked against the deny list,
    recorded with the check-in), colour and latest test. Limited per device (429): see
    `host.ratelimit`; a device asking many unknown numbers is raised as a status-sweep alert.
    """
    return await in_device_thread(context, call, partial(_status, context))


def _status(context: HostContext, signed: DeviceRequest) -> StatusResponse:
    asked = parse_body(StatusRequest, signed.body)
    limits, device_id, now_ms = context.limits, signed.device.id, signed.now_ms
    what = "status lookups of this device"
    context.limiter.take([limits.status_burst, limits.status_sustained], device_id, now_ms, what)
    context.limiter.refuse_if_reached(
        limits.unknown_status, device_id, now_ms, "unknown numbers asked by this device"
    )
    if asked.sealed_identity is not None:
        try:
            identity = context.keys.sealing.open(asked.sealed_identity)
        except SealError as error:
            raise ApiError(422, "bad-sealed-identity", str(error)) from None
        holder = holder_of(context, identity)
        person, person_ref = holder.person, holder.person_ref
    else:
        person_ref = asked.person_ref
        person = context.storage.get_person(person_ref)
    if person is None:
        _count_unknown(context, signed.device, now_ms)
        return StatusResponse(person_ref=person_ref, known=False)
    return StatusResponse(
        person_ref=person.person_ref,
        known=True,
        colour=person.colour,
        test=nucleic_test_message(person.test),
    )


def _count_unknown(context: HostContext, device: DeviceRecord, now_ms: int) -> None:
    """Count an unknown number the device asked; at the limit, raise a status-sweep alert.

    Once per device and local day: the database keeps the first alert stored.
    """
    limit = context.limits.unknown_status
    if context.limiter.count(limit, device.id, now_ms) != limit.hits:
        return
    venue = require_venue(context, device.venue_id)
    alert_id = random_id("a_", 16)
    stored = context.storage.add_sweep_alert(
        alert_id,
        venue_id=venue.id,
        device_id=device.id,
        period=local_day(venue.timezone, now_ms).isoformat(),
        hour_ms=hour_of(now_ms),
        unknown=limit.hits,
        threshold=limit.hits,
        now_ms=now_ms,
    )
    if stored:
        log.warning(
            "status-sweep alert %s: device %s at venue %s asked %d unknown numbers within %d s",
            alert_id,
            device.id,
            venue.id,
            limit.hits,
            limit.window_s,
        )


@router.post("/device/verify")
async def verify(call: SignedCall, context: Context) -> VerifyResponse:
    """Online verification: the device's own assessment, with the host's keys and clock."""
    return await in_device_thread(context, call, partial(_verify, context))


def _verify(context: HostContext, signed: DeviceRequest) -> VerifyResponse:
    asked = parse_body(VerifyRequest, signed.body)
    venue = require_venue(context, signed.device.venue_id)
    check = context.check_context(signed.now_ms, asked.temperature_c)
    assessment = assess(
        asked.text, trust=context.keys.trust, rules=venue.effective_rules(), context=check
    )
    return VerifyResponse(
        kind=assessment.kind,
        outcome=assessment.decision.outcome,
        reasons=list(assessment.decision.reasons),
        person_ref=assessment.verified_subject,
    )


@router.post("/device/report", status_code=204)
async def report(call: SignedCall, context: Context) -> None:
    """Keep the device's status report (deny-list age, pending check-ins, components) as latest."""
    await in_device_thread(context, call, partial(_save_report, context))


def _save_report(context: HostContext, signed: DeviceRequest) -> None:
    received = parse_body(DeviceReport, signed.body)
    context.storage.save_device_report(signed.device.id, signed.now_ms, received)
