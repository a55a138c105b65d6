"""Device endpoints: enrollment with a one-time token, then signed config, check-ins and checks."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter

from host.api.deps import (
    Context,
    DeviceRequest,
    HostContext,
    SignedCall,
    in_device_thread,
    require_venue,
)
from host.api.errors import ApiError
from host.api.parsing import StrictJsonRoute, parse_body
from host.core.security import random_id, token_hash
from host.core.times import from_ms
from host.identities import holder_of, resolve_holders
from host.storage.base import DeviceRecord, EnrollmentRefused
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

router = APIRouter(tags=["devices"], route_class=StrictJsonRoute)


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
def enroll(body: EnrollRequest, context: Context) -> EnrollResponse:
    """Enroll a device with its own public key; the one-time token is the credential."""
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
        raise ApiError(401, refusal.code, refusal.detail) from None
    return EnrollResponse(device_id=device.id, config=_config(context, device, now_ms))


@router.get("/device/config")
async def config(call: SignedCall, context: Context) -> DeviceConfig:
    return await in_device_thread(
        context, call, lambda signed: _config(context, signed.device, signed.now_ms)
    )


@router.post("/device/checkins")
async def checkins(call: SignedCall, context: Context) -> CheckInAck:
    """Store a batch idempotently (by check-in id); every id acknowledged is durably stored."""
    return await in_device_thread(context, call, partial(_store_checkins, context))


def _store_checkins(context: HostContext, signed: DeviceRequest) -> CheckInAck:
    batch = parse_body(CheckInBatch, signed.body)
    venue_id = signed.device.venue_id
    if any(checkin.venue_id != venue_id for checkin in batch.checkins):
        raise ApiError(422, "venue-mismatch", f"this device checks people in at {venue_id} only")
    inserted = context.storage.add_checkins(
        signed.device.id, venue_id, signed.now_ms, resolve_holders(context, batch.checkins)
    )
    return CheckInAck(
        acknowledged=list(dict.fromkeys(checkin.id for checkin in batch.checkins)),
        inserted=inserted,
        duplicates=len(batch.checkins) - inserted,
    )


@router.post("/device/staff-decisions")
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
    """The current status behind a paper code's person reference or an ID card's identity."""
    return await in_device_thread(context, call, partial(_status, context))


def _status(context: HostContext, signed: DeviceRequest) -> StatusResponse:
    asked = parse_body(StatusRequest, signed.body)
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
        return StatusResponse(person_ref=person_ref, known=False)
    return person.status()


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
