"""Our health code: a host-signed credential in the shared envelope, for phones and paper."""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.envelope import (
    CWT_EXP,
    CWT_IAT,
    CWT_ISS,
    CredentialError,
    Stage,
    check_expiry,
    open_envelope,
    seal,
)
from shared.idnumber import normalise_id_number
from shared.keys import KeyPurpose, SigningKey, TrustStore

PREFIX = "DS1:"
CLAIM_KEY = -65537  # a private-use CWT claim key (below -65536)
SCHEMA_VERSION = 1
DYNAMIC_TTL = timedelta(minutes=3)
PAPER_TTL = timedelta(days=7)
ID_BINDING_BYTES = 16


class Colour(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class CodeKind(StrEnum):
    """A dynamic phone code lives minutes; a paper code lives days and needs the holder's ID."""

    DYNAMIC = "dynamic"
    PAPER = "paper"


class TestResult(StrEnum):
    """The result of a nucleic-acid test."""

    __test__ = False  # not a pytest test class, despite the name
    NEGATIVE = "negative"
    POSITIVE = "positive"


@dataclass(frozen=True)
class NucleicTest:
    sampled_at: datetime
    result: TestResult


@dataclass(frozen=True)
class HealthStatus:
    """A person's current status as the host keeps it: what a paper code is checked against."""

    colour: Colour
    test: NucleicTest | None


@dataclass(frozen=True)
class HealthCode:
    """The claims of a health code; `person_ref` is pseudonymous, never an ID number."""

    person_ref: str
    kind: CodeKind
    colour: Colour
    test: NucleicTest | None
    issued_at: datetime
    expires_at: datetime
    issuer: str = "sentinel"
    id_binding: bytes | None = None  # paper codes: salted hash of the holder's ID number
    id_salt: bytes | None = None


def id_binding(id_number: str, salt: bytes) -> bytes:
    """Salted hash that ties a paper code to its holder's ID without carrying the number."""
    digest = hashlib.sha256(
        b"sentinel-id-binding-v1\0" + salt + normalise_id_number(id_number).encode()
    )
    return digest.digest()[:ID_BINDING_BYTES]


def matches_id(code: HealthCode, id_number: str) -> bool:
    """Whether a paper code belongs to the holder of this ID number."""
    if code.id_binding is None or code.id_salt is None:
        return False
    return hmac.compare_digest(code.id_binding, id_binding(id_number, code.id_salt))


def new_code(
    *,
    person_ref: str,
    kind: CodeKind,
    colour: Colour,
    test: NucleicTest | None,
    now: datetime,
    ttl: timedelta | None = None,
    id_number: str | None = None,
    issuer: str = "sentinel",
) -> HealthCode:
    """Build the claims for a new code; a paper code requires the holder's ID number."""
    if kind is CodeKind.PAPER and not id_number:
        raise ValueError("a paper code must be tied to its holder's ID number")
    salt = os.urandom(8) if kind is CodeKind.PAPER else None
    lifetime = ttl if ttl is not None else (DYNAMIC_TTL if kind is CodeKind.DYNAMIC else PAPER_TTL)
    issued = now.replace(microsecond=0)
    return HealthCode(
        person_ref=person_ref,
        kind=kind,
        colour=colour,
        test=test,
        issued_at=issued,
        expires_at=issued + lifetime,
        issuer=issuer,
        id_binding=id_binding(id_number, salt) if salt and id_number else None,
        id_salt=salt,
    )


def to_claims(code: HealthCode) -> dict[Any, Any]:
    body: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "k": code.kind.value,
        "s": code.person_ref,
        "c": code.colour.value,
    }
    if code.test is not None:
        body["t"] = {"at": int(code.test.sampled_at.timestamp()), "r": code.test.result.value}
    if code.id_binding is not None and code.id_salt is not None:
        body["b"] = code.id_binding
        body["n"] = code.id_salt
    return {
        CWT_ISS: code.issuer,
        CWT_IAT: int(code.issued_at.timestamp()),
        CWT_EXP: int(code.expires_at.timestamp()),
        CLAIM_KEY: body,
    }


def issue(code: HealthCode, key: SigningKey) -> str:
    """Sign a health code into its QR text."""
    return seal(PREFIX, to_claims(code), key)


def _schema_error(reason: str) -> CredentialError:
    return CredentialError(Stage.SCHEMA, reason)


def _enum(enum: type[StrEnum], value: Any, name: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        raise _schema_error(f"{name} {value!r} is not one of {[m.value for m in enum]}") from None


def from_claims(claims: dict[Any, Any]) -> HealthCode:
    """Stage schema: check the health-code claim map and build a HealthCode."""
    body = claims.get(CLAIM_KEY)
    if not isinstance(body, dict):
        raise _schema_error("no health-code claim")
    if body.get("v") != SCHEMA_VERSION:
        raise _schema_error(f"schema version {body.get('v')!r} is not {SCHEMA_VERSION}")
    person_ref = body.get("s")
    if not isinstance(person_ref, str) or not 1 <= len(person_ref) <= 64:
        raise _schema_error("subject is missing or not a short text")
    kind = _enum(CodeKind, body.get("k"), "kind")
    colour = _enum(Colour, body.get("c"), "colour")
    test = None
    if "t" in body:
        raw_test = body["t"]
        if not isinstance(raw_test, dict) or not isinstance(raw_test.get("at"), int):
            raise _schema_error("test must be a map with an integer sample time")
        try:
            sampled = datetime.fromtimestamp(raw_test["at"], UTC)
        except (OverflowError, OSError, ValueError):
            raise _schema_error("test sample time is out of range") from None
        test = NucleicTest(sampled, _enum(TestResult, raw_test.get("r"), "test result"))
    binding, salt = body.get("b"), body.get("n")
    if kind is CodeKind.PAPER and not (
        isinstance(binding, bytes) and len(binding) == ID_BINDING_BYTES and isinstance(salt, bytes)
    ):
        raise _schema_error("a paper code must carry its ID binding")
    issued = claims.get(CWT_IAT)
    expires = claims.get(CWT_EXP)
    if not isinstance(issued, int) or not isinstance(expires, int):
        raise _schema_error("issued-at and expiry must be integers")
    return HealthCode(
        person_ref=person_ref,
        kind=kind,
        colour=colour,
        test=test,
        issued_at=datetime.fromtimestamp(issued, UTC),
        expires_at=datetime.fromtimestamp(expires, UTC),
        issuer=str(claims.get(CWT_ISS, "")),
        id_binding=binding if kind is CodeKind.PAPER else None,
        id_salt=salt if kind is CodeKind.PAPER else None,
    )


def read(text: str, trust: TrustStore, *, now: datetime | None) -> HealthCode:
    """Open and check a health code; `now=None` skips the expiry stage (untrusted clock)."""
    opened = open_envelope(text, PREFIX, trust, KeyPurpose.HEALTH)
    code = from_claims(opened.cwt.claims)
    if now is not None:
        check_expiry(opened.cwt, now)
    return code
