"""The storage interface the API runs on: records, refusals, and one abstract `Storage`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from host.core.times import from_ms
from shared.denylist import HashKind
from shared.healthcode import Colour, NucleicTest
from shared.messages import (
    CheckIn,
    DenyListSummary,
    DeviceForm,
    DeviceInfo,
    DeviceReport,
    HostStats,
    NucleicTestIn,
    PersonOut,
    StatusResponse,
    Venue,
)
from shared.policy import RuleSet, VenueCategory
from shared.rules.defaults import default_ruleset


class EnrollmentRefused(Exception):
    """An enrollment token cannot be used; `code` is bad-token, token-used or token-expired."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


DEFAULT_TIMEZONE = "Asia/Shanghai"  # a venue's local time, for counts by hour and day


class CheckInSource(StrEnum):
    """What recorded a check-in: a kiosk (synced from the device) or a citizen's phone."""

    DEVICE = "device"
    PHONE = "phone"


@dataclass(frozen=True)
class VenueRecord:
    id: str
    name: str
    address: str
    category: VenueCategory
    code_url: str  # signed once at creation, so the fixed code never changes
    rules: RuleSet | None  # None: the category's default rule set
    created_at_ms: int
    district: str = ""  # 区
    street: str = ""  # 街道
    timezone: str = DEFAULT_TIMEZONE  # an IANA time zone name

    def message(self) -> Venue:
        return Venue(
            id=self.id,
            name=self.name,
            address=self.address,
            category=self.category,
            district=self.district,
            street=self.street,
            timezone=self.timezone,
            code_url=self.code_url,
        )

    def effective_rules(self) -> RuleSet:
        return self.rules if self.rules is not None else default_ruleset(self.category)


def nucleic_test_message(test: NucleicTest | None) -> NucleicTestIn | None:
    return None if test is None else NucleicTestIn(sampled_at=test.sampled_at, result=test.result)


@dataclass(frozen=True)
class PersonRecord:
    """A person as stored: a pseudonymous ref and a keyed hash of the ID number, not the number."""

    person_ref: str
    id_hmac: bytes
    colour: Colour
    test: NucleicTest | None
    updated_at_ms: int

    def message(self) -> PersonOut:
        return PersonOut(
            person_ref=self.person_ref,
            colour=self.colour,
            test=nucleic_test_message(self.test),
            updated_at=from_ms(self.updated_at_ms),
        )

    def status(self) -> StatusResponse:
        return StatusResponse(
            person_ref=self.person_ref,
            known=True,
            colour=self.colour,
            test=nucleic_test_message(self.test),
            updated_at=from_ms(self.updated_at_ms),
        )


@dataclass(frozen=True)
class DeviceRecord:
    id: str
    name: str
    form: DeviceForm
    venue_id: str
    public_key: str  # base64url of the raw Ed25519 public key
    enrolled_at_ms: int
    last_seen_at_ms: int | None
    revoked_at_ms: int | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at_ms is not None

    def message(self, report: ReportRecord | None = None) -> DeviceInfo:
        return DeviceInfo(
            id=self.id,
            name=self.name,
            form=self.form,
            venue_id=self.venue_id,
            enrolled_at=from_ms(self.enrolled_at_ms),
            last_seen_at=None if self.last_seen_at_ms is None else from_ms(self.last_seen_at_ms),
            revoked=self.revoked,
            report=None if report is None else report.report,
            reported_at=None if report is None else from_ms(report.received_at_ms),
        )


@dataclass(frozen=True)
class ReportRecord:
    """A device's latest status report and when the host received it."""

    received_at_ms: int
    report: DeviceReport


@dataclass(frozen=True)
class DenyListEntry:
    """A deny-list entry to store: the digest and why, never the reference or number it hashes."""

    kind: HashKind
    digest: bytes
    reason: str


@dataclass(frozen=True)
class DenyListState:
    """The deny list's version (0 before its first change), last change and size per kind."""

    version: int
    changed_at_ms: int | None
    counts: dict[HashKind, int]

    def message(self) -> DenyListSummary:
        return DenyListSummary(
            version=self.version,
            changed_at=None if self.changed_at_ms is None else from_ms(self.changed_at_ms),
            counts={kind: self.counts.get(kind, 0) for kind in HashKind},
        )


@dataclass(frozen=True)
class DenyListSnapshot:
    """Every listed digest at one version, read in one transaction."""

    version: int
    changed_at_ms: int | None
    digests: list[tuple[HashKind, bytes]]


@dataclass(frozen=True)
class HourCount:
    hour_ms: int  # start of the UTC hour
    total: int
    passed: int
    denied: int
    referred: int
    staff_let_through: int  # of the hour's referrals, let through by staff
    staff_refused: int  # and refused by them


class Storage(ABC):
    """All the host's state. Times are integer Unix milliseconds, UTC; methods are thread-safe."""

    @abstractmethod
    def close(self) -> None: ...

    # ---- host keys: kept in a key directory, never here -------------------------------------

    @property
    @abstractmethod
    def default_key_directory(self) -> Path:
        """Where the host's keys are kept when no key directory is named."""

    @abstractmethod
    def legacy_secrets(self) -> dict[str, bytes]:
        """The keys an older version kept in the database, by name; to be moved out."""

    @abstractmethod
    def forget_legacy_secrets(self, names: Collection[str]) -> None:
        """Delete these keys from the database, leaving no copy in its files where it can."""

    @abstractmethod
    def bound_key_ring(self) -> str | None:
        """The id of the key ring this database was served with; None before its first start."""

    @abstractmethod
    def bind_key_ring(self, key_ring: str) -> str:
        """Record the key ring served with this database (first writer wins); the one bound."""

    # ---- venues ------------------------------------------------------------------------------

    @abstractmethod
    def add_venue(self, venue: VenueRecord) -> None: ...

    @abstractmethod
    def get_venue(self, venue_id: str) -> VenueRecord | None: ...

    @abstractmethod
    def list_venues(self) -> list[VenueRecord]: ...

    @abstractmethod
    def update_venue(self, venue: VenueRecord) -> None:
        """Store a venue's name, address and place as given (its code and category stay)."""

    @abstractmethod
    def set_venue_rules(self, venue_id: str, rules: RuleSet) -> None: ...

    # ---- people ------------------------------------------------------------------------------

    @abstractmethod
    def upsert_people(self, people: Sequence[PersonRecord]) -> list[PersonRecord]:
        """Insert or update by `id_hmac`, in one transaction; results in input order.

        An existing person keeps their `person_ref`; colour and `updated_at` are replaced; the
        stored test is replaced only by a test sampled at the same time or later.
        """

    @abstractmethod
    def get_person(self, person_ref: str) -> PersonRecord | None: ...

    # ---- devices -----------------------------------------------------------------------------

    @abstractmethod
    def add_enrollment_token(
        self, token_hash: bytes, venue_id: str, created_at_ms: int, expires_at_ms: int
    ) -> None: ...

    @abstractmethod
    def enroll_device(
        self,
        token_hash: bytes,
        *,
        device_id: str,
        name: str,
        form: DeviceForm,
        public_key: str,
        now_ms: int,
    ) -> DeviceRecord:
        """Use up a token and add the device for its venue, atomically; or `EnrollmentRefused`."""

    @abstractmethod
    def get_device(self, device_id: str) -> DeviceRecord | None: ...

    @abstractmethod
    def list_devices(self, venue_id: str | None = None) -> list[DeviceRecord]:
        """Every device, or one venue's, oldest enrollment first."""

    @abstractmethod
    def revoke_device(self, device_id: str, now_ms: int) -> DeviceRecord | None:
        """Mark a device revoked (the first revocation time stays); None if it is unknown."""

    @abstractmethod
    def accept_nonce(self, device_id: str, nonce: str, now_ms: int) -> bool:
        """Record a request nonce and the device's last-seen time; False if the nonce was seen."""

    @abstractmethod
    def purge_nonces(self, before_ms: int) -> int: ...

    # ---- check-ins ---------------------------------------------------------------------------

    @abstractmethod
    def add_checkins(
        self,
        device_id: str,
        venue_id: str,
        received_at_ms: int,
        checkins: Sequence[CheckIn],
        *,
        source: CheckInSource = CheckInSource.DEVICE,
    ) -> int:
        """Store a batch in one transaction, skipping ids already stored; how many were new."""

    @abstractmethod
    def purge_checkins(self, before_ms: int) -> int:
        """Delete check-ins both scanned and received before `before_ms`; how many went.

        Both: a device with a wrong clock may send a scan time long past with a fresh record.
        """

    @abstractmethod
    def hourly_counts(self, venue_id: str, since_ms: int, until_ms: int) -> list[HourCount]:
        """Check-ins per UTC hour of `scanned_at`, of the hours overlapping [since, until).

        Read from the counts kept at ingest, which outlive the check-ins; hours with none are
        left out.
        """

    @abstractmethod
    def stats(self) -> HostStats: ...

    # ---- deny list ---------------------------------------------------------------------------

    @abstractmethod
    def find_person_by_id_hmac(self, id_hmac: bytes) -> PersonRecord | None: ...

    @abstractmethod
    def add_denylist_entries(self, entries: Sequence[DenyListEntry], now_ms: int) -> int:
        """List the entries not listed yet, as of `now_ms`, in one transaction; how many were new.

        The version goes up by one when anything was added.
        """

    @abstractmethod
    def remove_denylist_entry(self, kind: HashKind, digest: bytes, now_ms: int) -> bool:
        """Unlist one entry, raising the version; False if it was not listed."""

    @abstractmethod
    def denylist_version(self) -> int: ...

    @abstractmethod
    def denylist_state(self) -> DenyListState: ...

    @abstractmethod
    def denylist_snapshot(self) -> DenyListSnapshot: ...

    # ---- device reports ----------------------------------------------------------------------

    @abstractmethod
    def save_device_report(self, device_id: str, received_at_ms: int, report: DeviceReport) -> None:
        """Keep this report as the device's latest, replacing the one before."""

    @abstractmethod
    def device_reports(self, venue_id: str | None = None) -> dict[str, ReportRecord]:
        """The latest report of every device (or one venue's) that sent one, by device id."""
