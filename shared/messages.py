"""Typed messages between device, host and operators: the `/api/v1` wire contract."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from shared.dcc.certificates import load_certificate
from shared.dcc.value_sets import ValueSet, ValueSets, packaged_value_sets
from shared.denylist import HashKind
from shared.healthcode import (
    CodeKind,
    Colour,
    HealthStatus,
    NucleicTest,
    TestResult,
)
from shared.idnumber import checked_id_number
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
from shared.policy import Outcome, RuleSet, VenueCategory, open_ruleset, sign_ruleset
from shared.sealed import MAX_SEALED_CHARS, PUBLIC_BYTES, SealingKey, public_key_id
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


def known_timezone(name: str) -> str:
    """`name` if it is an IANA time zone this machine knows (tzdata), else ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: give an IANA name such as Asia/Shanghai"
        ) from None
    return name


TimeZoneName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(known_timezone)]
PlaceName = Annotated[str, Field(max_length=100)]


class VenuePlace(Message):
    """Where a venue is, for flows by district (区) and street (街道) in its local time."""

    district: PlaceName = ""
    street: PlaceName = ""
    timezone: TimeZoneName = "Asia/Shanghai"


class VenueCreate(VenuePlace):
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=500)
    category: VenueCategory


class VenueUpdate(Message):
    """Fields of a venue to change; its code and category stay (a new category is a new venue)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    address: str | None = Field(default=None, min_length=1, max_length=500)
    district: PlaceName | None = None
    street: PlaceName | None = None
    timezone: TimeZoneName | None = None


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


ResidentIdNumber = Annotated[
    str,
    Field(
        max_length=40,
        description="a resident ID number (GB 11643): 17 digits and a MOD 11-2 check character; "
        "full-width digits, spaces and a lower-case x are normalised away",
    ),
    AfterValidator(checked_id_number),
]


class NucleicTestIn(Message):
    sampled_at: AwareDatetime
    result: TestResult


class PersonUpsert(Message):
    """Import or update one person; the ID number is used to find them and never stored."""

    id_number: ResidentIdNumber = Field(repr=False)
    colour: Colour
    test: NucleicTestIn | None = None


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
    id_number: ResidentIdNumber | None = Field(default=None, repr=False)


class IssuedCode(Message):
    person_ref: str
    kind: CodeKind
    text: str
    issued_at: AwareDatetime
    expires_at: AwareDatetime


class SignInLink(Message):
    """A citizen's one-time sign-in link to their personal page, as the city app would hold it."""

    url: str
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


class SignedRules(Message):
    """A venue's rule set as the host signed it; devices use it only once the signature checks."""

    version: int = Field(ge=1)
    category: VenueCategory
    document: str = Field(description="base64url of the COSE_Sign1 made by the host's policy key")

    @classmethod
    def of(cls, ruleset: RuleSet, key: SigningKey) -> SignedRules:
        return cls(
            version=ruleset.version,
            category=ruleset.category,
            document=b64url(sign_ruleset(ruleset, key)),
        )

    def open(self, trust: TrustStore) -> RuleSet:
        """The rule set, after checking its signature and that it is what the label says."""
        try:
            data = b64url_decode(self.document)
        except ValueError:
            raise ValueError("the signed rule set is not base64url") from None
        ruleset = open_ruleset(data, trust)
        if (ruleset.version, ruleset.category) != (self.version, self.category):
            raise ValueError("the signed rule set is not the version or category it claims")
        return ruleset


class SealingKeyOut(Message):
    """The host's X25519 public key that devices seal ID-card identities to, base64url raw."""

    kid: str
    public_key: str

    @classmethod
    def of(cls, key: SealingKey) -> SealingKeyOut:
        return cls(kid=b64url(key.kid), public_key=b64url(key.public_raw))

    @field_validator("public_key")
    @classmethod
    def _x25519(cls, public_key: str) -> str:
        if len(b64url_decode(public_key)) != PUBLIC_BYTES:
            raise ValueError(f"an X25519 public key has {PUBLIC_BYTES} bytes")
        return public_key

    def raw(self) -> bytes:
        """The raw public key, after checking that the key id names it."""
        raw = b64url_decode(self.public_key)
        if b64url_decode(self.kid) != public_key_id(raw):
            raise ValueError(f"sealing key id {self.kid} does not match its key")
        return raw


DccCode = Annotated[str, Field(min_length=1, max_length=100)]


class DccValueSetOut(Message):
    """An EU DCC value set as devices get it: its id, its date and its codes (no names)."""

    id: str = Field(min_length=1, max_length=100)
    date: date
    codes: list[DccCode] = Field(min_length=1, max_length=10_000)

    @classmethod
    def of(cls, value_set: ValueSet) -> DccValueSetOut:
        return cls(id=value_set.id, date=value_set.date, codes=sorted(value_set.codes))

    def value_set(self) -> ValueSet:
        return ValueSet(self.id, self.date, frozenset(self.codes))


class DeviceConfig(Message):
    device_id: str
    venue: Venue
    rules: SignedRules
    keys: list[PublishedKey]
    sealing_key: SealingKeyOut | None = Field(
        default=None, description="seal ID-card identities to this; None: the host opens none"
    )
    dcc_signers: list[str] = Field(
        default_factory=list, description="EU DCC signer certificates, base64url DER"
    )
    dcc_value_sets: list[DccValueSetOut] = Field(
        default_factory=list, description="the EU DCC value sets the host checks codes against"
    )
    server_time: AwareDatetime

    @field_validator("dcc_signers")
    @classmethod
    def _certificates(cls, signers: list[str]) -> list[str]:
        for der in signers:
            load_certificate(b64url_decode(der))  # raises ValueError naming what is wrong
        return signers

    def trust(self) -> TrustStore:
        """The host's published keys and the EU DCC signers, as a device trusts them."""
        store = trust_store(self.keys)
        for der in self.dcc_signers:
            store.add(load_certificate(b64url_decode(der)).trusted_key())
        return store

    def value_sets(self) -> ValueSets:
        """The device's own value sets, each replaced by the host's of its id unless older."""
        return packaged_value_sets().updated(sent.value_set() for sent in self.dcc_value_sets)


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
    report: DeviceReport | None = None  # the latest the device sent
    reported_at: AwareDatetime | None = None  # when the host received it


# ---- check-ins ----------------------------------------------------------------------------


MAX_IMPLAUSIBLE_READINGS = 16  # a check keeps the most recent ones
RawCelsius = Annotated[float, Field(ge=-5000, le=5000, allow_inf_nan=False)]


class ThermometerReadings(Message):
    """What a thermometer gave for one check, kept with the check-in to show how it was decided.

    raw: the plausible readings as the device sent them, before the calibration offset, in
    order (two when a reading at or above the threshold was measured again); implausible_raw:
    readings the decision ignored, outside the plausible range; outcome: the thermometer's
    re-measure rule ("unconfirmed": a high reading no second reading came for).
    """

    outcome: Literal["normal", "fever", "unconfirmed", "no-reading"]
    threshold: float = Field(ge=25, le=45, description="°C at or above which it measured again")
    offset: float = Field(ge=-10, le=10, description="°C added to each raw reading")
    raw: list[RawCelsius] = Field(default_factory=list, max_length=2)
    implausible_raw: list[RawCelsius] = Field(
        default_factory=list, max_length=MAX_IMPLAUSIBLE_READINGS
    )

    @model_validator(mode="after")
    def _readings_match_the_outcome(self) -> ThermometerReadings:
        expected = {"no-reading": (0,), "unconfirmed": (1,), "fever": (2,), "normal": (1, 2)}
        if len(self.raw) not in expected[self.outcome]:
            raise ValueError(f"{len(self.raw)} raw readings cannot give {self.outcome!r}")
        return self


class CheckIn(Message):
    """One decision at an entrance: pseudonymous, no identity data in clear."""

    id: UUID = Field(description="UUIDv7 made on the device; the idempotency key")
    venue_id: str = Field(min_length=1, max_length=64)
    scanned_at: AwareDatetime
    person_ref: str | None = Field(default=None, max_length=64)
    kind: CredentialKind
    # An ignored scan is not a check-in. A Literal, checked inside pydantic-core: a Python
    # validator here was 15% of parsing a batch.
    outcome: Literal[Outcome.PASS, Outcome.DENY, Outcome.REFER]
    reasons: list[Reason] = Field(default_factory=list, max_length=16)
    temperature_c: float | None = Field(default=None, ge=25, le=45)
    thermometer: ThermometerReadings | None = Field(
        default=None, description="the readings behind temperature_c, when a thermometer is fitted"
    )
    clock_trusted: bool
    binding: str | None = Field(
        default=None,
        pattern=r"^(room|plate):[^:]{1,32}$",
        description="the room or vehicle plate a bound venue code named, as room:1203",
    )
    sealed_identity: str | None = Field(
        default=None,
        max_length=MAX_SEALED_CHARS,
        description="an ID card holder the device could not look up, sealed to the host's key; "
        "the host resolves it to a person_ref on ingest and keeps only that",
    )
    group_id: UUID | None = Field(
        default=None,
        description="the vehicle a handheld checked this person in with: one id (UUIDv7, made "
        "on the device) for all of its occupants",
    )


class CheckInBatch(Message):
    checkins: list[CheckIn] = Field(min_length=1, max_length=MAX_BATCH)


class StaffAction(StrEnum):
    """What staff at the device decided on a referral."""

    LET_THROUGH = "let-through"
    REFUSE = "refuse"


class StaffReason(StrEnum):
    """Why, from the short list on the screen."""

    EMERGENCY = "emergency"  # emergency medical care: the 2022 rules let it through
    IDENTITY_CHECKED = "identity-checked"  # staff checked the person's identity by hand
    OTHER = "other"


StaffId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,16}$")]


class StaffDecision(Message):
    """Staff settling a referral at the device: who (their PIN's id), what, why, when."""

    id: UUID = Field(description="UUIDv7 made on the device; the idempotency key")
    checkin_id: UUID = Field(description="the referral it settles: a check-in of this device")
    venue_id: str = Field(min_length=1, max_length=64)
    staff_id: StaffId
    action: StaffAction
    reason: StaffReason
    decided_at: AwareDatetime
    clock_trusted: bool


class StaffDecisionBatch(Message):
    decisions: list[StaffDecision] = Field(min_length=1, max_length=MAX_BATCH)


class RejectedCheckIn(Message):
    """A check-in the host refuses for good (a scan time no clock could give), and why."""

    id: UUID
    reason: str


class CheckInAck(Message):
    """Every id in `acknowledged` is settled on the host; the device may let it go.

    Settled: stored, or refused for good and then also listed in `rejected`, with the reason
    (sending it again would be refused again). The answer to a batch of check-ins, and to a
    batch of staff decisions.
    """

    acknowledged: list[UUID]
    inserted: int
    duplicates: int
    rejected: list[RejectedCheckIn] = Field(default_factory=list)


class HourlyCount(Message):
    """A venue's check-ins of one UTC hour; what staff decided on that hour's referrals."""

    venue_id: str
    hour: AwareDatetime
    total: int
    passed: int
    denied: int
    referred: int
    staff_let_through: int
    staff_refused: int


class HostStats(Message):
    venues: int
    people: int
    devices: int
    checkins: int


# ---- online checks ------------------------------------------------------------------------


class StatusRequest(Message):
    """Ask by a paper code's person reference, or by an ID card's identity sealed to the host."""

    person_ref: str | None = Field(default=None, min_length=1, max_length=64)
    sealed_identity: str | None = Field(default=None, min_length=1, max_length=MAX_SEALED_CHARS)

    @model_validator(mode="after")
    def _one_way_to_ask(self) -> StatusRequest:
        if (self.person_ref is None) == (self.sealed_identity is None):
            raise ValueError("give either person_ref or sealed_identity")
        return self


class StatusResponse(Message):
    person_ref: str
    known: bool
    colour: Colour | None = None
    test: NucleicTestIn | None = None
    updated_at: AwareDatetime | None = None

    def health_status(self) -> HealthStatus | None:
        """The current status to check a paper code against; None for an unknown person."""
        if not self.known or self.colour is None:
            return None
        test = None if self.test is None else NucleicTest(self.test.sampled_at, self.test.result)
        return HealthStatus(self.colour, test)


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


# ---- deny lists and device reports ---------------------------------------------------------

DigestHex = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="16 bytes, lowercase hex")]
ComponentName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,39}$")]


class DenyPersonRef(Message):
    person_ref: str = Field(min_length=1, max_length=64)


class DenyIdNumber(Message):
    """A person found by ID number; the host keeps only their digest, never the number."""

    id_number: ResidentIdNumber = Field(repr=False)


class DenyDigest(Message):
    """A digest of a given kind, as the EU DCC revocation lists publish them."""

    kind: HashKind
    digest: DigestHex


DenyListEntryIn = DenyPersonRef | DenyIdNumber | DenyDigest


class DenyListAdd(Message):
    reason: str = Field(min_length=1, max_length=200)
    entries: list[DenyListEntryIn] = Field(min_length=1, max_length=10_000)


class DenyListEntryOut(Message):
    kind: HashKind
    digest: DigestHex


class DenyListSummary(Message):
    version: int
    changed_at: AwareDatetime | None = Field(description="None until the first change")
    counts: dict[HashKind, int]


class DenyListAdded(DenyListSummary):
    added: int = Field(description="entries that were not listed yet")
    entries: list[DenyListEntryOut] = Field(description="what each requested entry is listed as")


class DenyListUnchanged(Message):
    """The device's deny list is current; `version` is the host's."""

    version: int


MAX_DETAIL_CHARS = 300


class ComponentHealth(StrEnum):
    OK = "ok"
    ABSENT = "absent"
    FAILING = "failing"


class ComponentState(Message):
    """A part of a device (the deny list, a card reader, the thermometer) as the device sees it."""

    state: ComponentHealth
    since: AwareDatetime = Field(description="when it came into this state")
    detail: str | None = Field(default=None, max_length=MAX_DETAIL_CHARS)

    @field_validator("detail", mode="before")
    @classmethod
    def _shortened(cls, detail: object) -> object:
        """A driver's error can be long (paths, nested causes): keep its start, mark the cut."""
        if isinstance(detail, str) and len(detail) > MAX_DETAIL_CHARS:
            return detail[: MAX_DETAIL_CHARS - 1] + "…"
        return detail


class DenyListStatus(Message):
    version: int = Field(ge=0)
    issued_at: AwareDatetime = Field(description="when the host made this version")
    refreshed_at: AwareDatetime = Field(
        description="when the host last confirmed it current: a download or an 'unchanged'"
    )
    entries: int = Field(ge=0)


SelfTestItem = Annotated[str, Field(min_length=1, max_length=40)]  # "camera", "card reader"


class SelfTestSummary(Message):
    """A device's last `sentinel selftest`: when it ran, and the items that did not pass."""

    ran_at: AwareDatetime
    failed: list[SelfTestItem] = Field(default_factory=list, max_length=32)
    warned: list[SelfTestItem] = Field(default_factory=list, max_length=32)
    passed: int = Field(ge=0, le=64)


class DeviceReport(Message):
    """What a device tells the host about itself with its sync; the host keeps the latest."""

    sent_at: AwareDatetime
    clock_trusted: bool
    pending_checkins: int = Field(ge=0)
    denylist: DenyListStatus | None
    components: dict[ComponentName, ComponentState] = Field(default_factory=dict, max_length=32)
    software_version: str | None = Field(
        default=None,
        max_length=64,
        description="the installed digital-sentinel version; None from devices before it was sent",
    )
    last_selftest: SelfTestSummary | None = Field(
        default=None, description="the last `sentinel selftest` run with the device's state"
    )


DeviceInfo.model_rebuild()  # its report is defined further down
