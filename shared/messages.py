"""Typed messages between device, host and operators: the `/api/v1` wire contract."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.healthcode import CodeKind, Colour, TestResult, normalise_id_number
from shared.keys import (
    KeyPurpose,
    SigningKey,
    TrustedKey,
    TrustStore,
    b64url,
    b64url_decode,
    key_id,
    load_public_key,
)
from shared.policy import Outcome, Policy, VenueCategory
from shared.venuecode import BindingKind
from shared.verification import CredentialKind

API_PREFIX = "/api/v1"
MAX_BATCH = 1000
Reason = Annotated[str, Field(min_length=1, max_length=200)]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceForm(StrEnum):
    KIOSK = "kiosk"
    GATE = "gate"
    HANDHELD = "handheld"


# ---- venues -------------------------------------------------------------------------------


class VenueCreate(Message):
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=500)
    category: VenueCategory


class Venue(VenueCreate):
    id: str
    code_url: str  # the venue's one fixed code


class VenueBinding(Message):
    kind: BindingKind
    value: str = Field(min_length=1, max_length=32, pattern=r"^[^:]+$")


class VenueCodeRequest(Message):
    binding: VenueBinding | None = None


class VenueCodeOut(Message):
    venue_id: str
    url: str


# ---- people and their codes ---------------------------------------------------------------


class NucleicTestIn(Message):
    sampled_at: AwareDatetime
    result: TestResult


class PersonUpsert(Message):
    """Import or update one person; the ID number is used to find them and never stored."""

    id_number: str = Field(min_length=6, max_length=40)
    colour: Colour
    test: NucleicTestIn | None = None

    @field_validator("id_number")
    @classmethod
    def _long_enough_without_spaces(cls, value: str) -> str:
        if len(normalise_id_number(value)) < 6:
            raise ValueError("an ID number has at least 6 characters besides spaces")
        return value


class PeopleImport(Message):
    people: list[PersonUpsert] = Field(min_length=1, max_length=10_000)


class PersonOut(Message):
    person_ref: str
    colour: Colour
    test: NucleicTestIn | None
    updated_at: AwareDatetime


class PeopleImported(Message):
    people: list[PersonOut]


class CodeRequest(Message):
    kind: CodeKind = CodeKind.DYNAMIC
    ttl_seconds: int | None = Field(default=None, ge=1, le=30 * 24 * 3600)
    id_number: str | None = Field(default=None, min_length=6, max_length=40)


class IssuedCode(Message):
    person_ref: str
    kind: CodeKind
    text: str
    issued_at: AwareDatetime
    expires_at: AwareDatetime


# ---- devices ------------------------------------------------------------------------------


class EnrollmentTokenRequest(Message):
    venue_id: str
    ttl_seconds: int = Field(default=900, ge=60, le=24 * 3600)


class EnrollmentToken(Message):
    token: str
    venue_id: str
    expires_at: AwareDatetime


class EnrollRequest(Message):
    token: str = Field(min_length=16, max_length=128)
    public_key: str = Field(description="base64url of the raw 32-byte Ed25519 public key")
    name: str = Field(default="sentinel", min_length=1, max_length=100)
    form: DeviceForm = DeviceForm.KIOSK


class PublishedKey(Message):
    """A host public key for devices to trust: key id and SubjectPublicKeyInfo, base64url."""

    kid: str
    purpose: KeyPurpose
    public_key: str

    @classmethod
    def of(cls, key: SigningKey, purpose: KeyPurpose) -> PublishedKey:
        """The public half of a signing key, as the host publishes it."""
        return cls(kid=b64url(key.kid), purpose=purpose, public_key=b64url(key.public_der))

    def trusted(self) -> TrustedKey:
        der = b64url_decode(self.public_key)
        if b64url_decode(self.kid) != key_id(der):
            raise ValueError(f"key id {self.kid} does not match its key")
        return TrustedKey(key_id(der), self.purpose, load_public_key(der))


def trust_store(keys: list[PublishedKey]) -> TrustStore:
    return TrustStore.of(key.trusted() for key in keys)


class DeviceConfig(Message):
    device_id: str
    venue: Venue
    policy: Policy
    keys: list[PublishedKey]
    server_time: AwareDatetime


class EnrollResponse(Message):
    device_id: str
    config: DeviceConfig


class DeviceInfo(Message):
    id: str
    name: str
    form: DeviceForm
    venue_id: str
    enrolled_at: AwareDatetime
    last_seen_at: AwareDatetime | None
    revoked: bool


# ---- check-ins ----------------------------------------------------------------------------


class CheckIn(Message):
    """One decision at an entrance: pseudonymous, no identity data in clear."""

    id: UUID = Field(description="UUIDv7 made on the device; the idempotency key")
    venue_id: str = Field(min_length=1, max_length=64)
    scanned_at: AwareDatetime
    person_ref: str | None = Field(default=None, max_length=64)
    kind: CredentialKind
    outcome: Outcome
    reasons: list[Reason] = Field(default_factory=list, max_length=16)
    temperature_c: float | None = Field(default=None, ge=25, le=45)
    clock_trusted: bool

    @field_validator("outcome")
    @classmethod
    def _a_decision(cls, value: Outcome) -> Outcome:
        if value is Outcome.IGNORED:
            raise ValueError("an ignored scan is not a check-in")
        return value


class CheckInBatch(Message):
    checkins: list[CheckIn] = Field(min_length=1, max_length=MAX_BATCH)


class CheckInAck(Message):
    """Every id in `acknowledged` is stored on the host; the device may let it go."""

    acknowledged: list[UUID]
    inserted: int
    duplicates: int


class HourlyCount(Message):
    venue_id: str
    hour: AwareDatetime
    total: int
    passed: int
    denied: int
    referred: int


class HostStats(Message):
    venues: int
    people: int
    devices: int
    checkins: int


# ---- online checks ------------------------------------------------------------------------


class StatusRequest(Message):
    person_ref: str = Field(min_length=1, max_length=64)


class StatusResponse(Message):
    person_ref: str
    known: bool
    colour: Colour | None = None
    test: NucleicTestIn | None = None
    updated_at: AwareDatetime | None = None


class VerifyRequest(Message):
    text: str = Field(min_length=1, max_length=4096)
    temperature_c: float | None = Field(default=None, ge=25, le=45)


class VerifyResponse(Message):
    kind: CredentialKind
    outcome: Outcome
    reasons: list[str]
    person_ref: str | None


class ErrorBody(Message):
    error: str
    detail: str
