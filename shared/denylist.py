"""Deny lists: truncated SHA-256 hashes of people and certificates, in a host-signed document."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.envelope import CredentialError, Stage
from shared.keys import SigningKey, TrustStore
from shared.sealed import CardIdentity
from shared.signed import open_document, sign_document

DIGEST_BYTES = 16  # the first 128 bits of the SHA-256, as the EU DCC revocation lists keep
DOCUMENT_TYPE = "denylist"
MEDIA_TYPE = "application/cose"  # how the host serves the signed document, raw
PERSON_DOMAIN = b"digital-sentinel/denylist/person/v1\x00"
IDENTITY_SALT = b"digital-sentinel/denylist/identity/v1"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
MAX_ISSUED_AT_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last a datetime holds
BODY_VERSION = "version"
BODY_ISSUED_AT = "issued_at"  # Unix milliseconds, UTC
BODY_ENTRIES = "entries"  # kind -> the kind's digests, sorted and concatenated in one string


class HashKind(StrEnum):
    """What a digest is the hash of."""

    PERSON = "person"  # our pseudonymous person_ref, domain-separated
    UCI = "uci"  # an EU DCC's unique certificate identifier (UVCI)
    COUNTRYCODEUCI = "countrycodeuci"  # the issuing country code followed by the UVCI
    SIGNATURE = "signature"  # the COSE signature; for ECDSA its first half, r
    IDENTITY = "identity"  # an ID card's number, by scrypt: a device checks it offline


def truncated_sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:DIGEST_BYTES]


def person_hash(person_ref: str) -> bytes:
    """The digest a person is listed under: nothing else on the list can collide with it."""
    return truncated_sha256(PERSON_DOMAIN + person_ref.encode("utf-8"))


def identity_hash(identity: CardIdentity) -> bytes:
    """The digest an ID card is listed under: scrypt, so the list does not give numbers away.

    Anyone holding the list could try every plausible number against a fast hash; at about
    40 ms a try, the roughly 10^11 resident ID numbers would take over a century on one core.
    """
    return hashlib.scrypt(
        identity.lookup_key.encode("utf-8"),
        salt=IDENTITY_SALT,
        n=2**14,
        r=8,
        p=1,
        dklen=DIGEST_BYTES,
    )


def certificate_hashes(
    uci: str, country: str, signature: bytes, *, ecdsa: bool
) -> dict[HashKind, bytes]:
    """The three digests an HC1 certificate may be listed under, as the DCC revocation design has.

    `country` is the issuing country as in the CWT `iss` claim; `ecdsa` is true for ES256, whose
    raw r||s signature is hashed by its r half only (s can be changed without the key).
    """
    signed_part = signature[: len(signature) // 2] if ecdsa else signature
    return {
        HashKind.UCI: truncated_sha256(uci.encode("utf-8")),
        HashKind.COUNTRYCODEUCI: truncated_sha256((country + uci).encode("utf-8")),
        HashKind.SIGNATURE: truncated_sha256(signed_part),
    }


def _schema_error(reason: str) -> CredentialError:
    return CredentialError(Stage.SCHEMA, f"deny list: {reason}")


def _split_digests(packed: Any, kind: str) -> frozenset[bytes]:
    if not isinstance(packed, bytes) or len(packed) % DIGEST_BYTES:
        raise _schema_error(f"{kind} entries are not a string of {DIGEST_BYTES}-byte digests")
    return frozenset(
        packed[start : start + DIGEST_BYTES] for start in range(0, len(packed), DIGEST_BYTES)
    )


def _whole_number(value: Any, name: str, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise _schema_error(f"{name} is not a whole number from 0 to {maximum}")
    return value


@dataclass(frozen=True)
class DenyList:
    """One version of the host's deny list: immutable, so a reader never sees half an update."""

    version: int  # increases with every change on the host
    issued_at: datetime  # when the host made this version
    entries: Mapping[HashKind, frozenset[bytes]]

    @classmethod
    def of(
        cls, version: int, issued_at: datetime, digests: Iterable[tuple[HashKind, bytes]]
    ) -> DenyList:
        """Build from (kind, digest) pairs; every digest must be `DIGEST_BYTES` long.

        `issued_at` (aware) is cut to whole milliseconds, as the signed document carries it.
        """
        by_kind: dict[HashKind, set[bytes]] = {kind: set() for kind in HashKind}
        for kind, digest in digests:
            if len(digest) != DIGEST_BYTES:
                raise ValueError(f"a {kind.value} digest is {len(digest)} bytes")
            by_kind[kind].add(digest)
        issued_at_ms = (issued_at - EPOCH) // MILLISECOND
        entries = {kind: frozenset(found) for kind, found in by_kind.items()}
        return cls(version, EPOCH + issued_at_ms * MILLISECOND, entries)

    def __len__(self) -> int:
        return sum(len(digests) for digests in self.entries.values())

    def count(self, kind: HashKind) -> int:
        return len(self.entries.get(kind, ()))

    def contains_person(self, person_ref: str) -> HashKind | None:
        """HashKind.PERSON if this person is listed, else None."""
        listed = person_hash(person_ref) in self.entries.get(HashKind.PERSON, ())
        return HashKind.PERSON if listed else None

    def contains_identity(self, identity: CardIdentity) -> HashKind | None:
        """HashKind.IDENTITY if this card's number is listed; costs a scrypt only if any are."""
        listed = self.entries.get(HashKind.IDENTITY)
        if not listed:
            return None
        return HashKind.IDENTITY if identity_hash(identity) in listed else None

    def contains_certificate(
        self, uci: str, country: str, signature: bytes, *, ecdsa: bool
    ) -> HashKind | None:
        """The kind under which this certificate is listed, or None if it is not."""
        for kind, digest in certificate_hashes(uci, country, signature, ecdsa=ecdsa).items():
            if digest in self.entries.get(kind, ()):
                return kind
        return None

    def age(self, now: datetime) -> timedelta:
        """How long ago the host made this version (not when a device last checked it)."""
        return now - self.issued_at

    def sign(self, key: SigningKey) -> bytes:
        """The signed document the host publishes: CBOR, 16 bytes per entry plus a small head."""
        body = {
            BODY_VERSION: self.version,
            BODY_ISSUED_AT: (self.issued_at - EPOCH) // MILLISECOND,
            BODY_ENTRIES: {
                kind.value: b"".join(sorted(self.entries.get(kind, ()))) for kind in HashKind
            },
        }
        return sign_document(DOCUMENT_TYPE, body, key)

    @classmethod
    def open(cls, data: bytes, trust: TrustStore) -> DenyList:
        """Check the signature under a trusted policy key, then the body; only CredentialError.

        Kinds this code does not know are skipped, so a newer host can add one without older
        devices refusing the whole list.
        """
        body = open_document(data, DOCUMENT_TYPE, trust)
        if not isinstance(body, Mapping):
            raise _schema_error("the body is not a map")
        entries = body.get(BODY_ENTRIES)
        if not isinstance(entries, Mapping):
            raise _schema_error("the entries are not a map")
        version = _whole_number(body.get(BODY_VERSION), BODY_VERSION, 2**63 - 1)
        issued_at_ms = _whole_number(body.get(BODY_ISSUED_AT), BODY_ISSUED_AT, MAX_ISSUED_AT_MS)
        known = {kind.value: kind for kind in HashKind}
        digests = {
            known[name]: _split_digests(packed, name)
            for name, packed in entries.items()
            if name in known
        }
        return cls(version, EPOCH + issued_at_ms * MILLISECOND, digests)
