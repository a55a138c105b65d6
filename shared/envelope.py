"""The credential envelope: PREFIX + Base45(zlib(COSE_Sign1(CWT))), parsed in named stages."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature

from shared.base45 import Base45Error, b45decode, b45encode
from shared.keys import (
    ALGORITHM_NAMES,
    CoseSigner,
    KeyPurpose,
    TrustedKey,
    TrustStore,
    verify_cose_signature,
)

MAX_INFLATED_BYTES = 64 * 1024
COSE_SIGN1_TAG = 18
CWT_TAG = 61  # RFC 8392 section 6: optional, and then around a tagged COSE message
HEADER_ALG = 1
HEADER_KID = 4
CWT_ISS = 1
CWT_EXP = 4
CWT_IAT = 6


class Stage(StrEnum):
    """The stages of opening an envelope, in order; each can fail with its own reason."""

    UNPREFIX = "unprefix"
    BASE45 = "base45"
    INFLATE = "inflate"
    COSE = "cose"
    SIGNATURE = "signature"
    KEYUSAGE = "keyusage"
    CWT = "cwt"
    SCHEMA = "schema"
    VALUESET = "valueset"
    EXPIRY = "expiry"


class CredentialError(ValueError):
    """A credential failed at one stage; `stage` names which and the message says why."""

    def __init__(self, stage: Stage, reason: str, *, untrusted_signer: bool = False) -> None:
        super().__init__(f"{stage.value}: {reason}")
        self.stage = stage
        self.reason = reason
        self.untrusted_signer = untrusted_signer


@dataclass(frozen=True)
class CoseSign1:
    """A parsed COSE_Sign1 structure (RFC 9052 section 4.2)."""

    protected: bytes
    unprotected: dict[Any, Any]
    payload: bytes
    signature: bytes
    alg: int
    kid: bytes

    def to_be_signed(self) -> bytes:
        """The Sig_structure whose bytes the signature covers."""
        return sig_structure(self.protected, self.payload)


@dataclass(frozen=True)
class CwtClaims:
    """The registered CWT claims the envelope uses, plus the whole claims map."""

    issuer: str | None
    issued_at: datetime | None
    expires_at: datetime | None
    claims: dict[Any, Any]


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected, b"", payload])


def unprefix(text: str, prefix: str) -> str:
    """Stage unprefix: strip the context prefix (for example `HC1:`)."""
    if not text.startswith(prefix):
        raise CredentialError(Stage.UNPREFIX, f"does not start with {prefix!r}")
    return text[len(prefix) :]


def base45(body: str) -> bytes:
    """Stage base45: decode the Base45 body."""
    try:
        return b45decode(body)
    except Base45Error as error:
        raise CredentialError(Stage.BASE45, str(error)) from None


def inflate(data: bytes, max_size: int = MAX_INFLATED_BYTES) -> bytes:
    """Stage inflate: zlib-decompress, refusing more than `max_size` bytes of output."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, max_size + 1)
    except zlib.error as error:
        raise CredentialError(Stage.INFLATE, f"not zlib data ({error})") from None
    if len(out) > max_size:
        raise CredentialError(Stage.INFLATE, f"inflates to more than {max_size} bytes")
    if not inflater.eof:
        raise CredentialError(Stage.INFLATE, "zlib stream is truncated")
    return out


def _header_map(raw: Any, name: str) -> dict[Any, Any]:
    if not isinstance(raw, Mapping):
        raise CredentialError(Stage.COSE, f"{name} header is not a map")
    return dict(raw)


def parse_cose(data: bytes) -> CoseSign1:
    """Stage cose: parse a (tagged or untagged) COSE_Sign1 and its alg and kid headers.

    The COSE_Sign1 may also stand inside the CWT tag (61), which RFC 8392 lets wrap a
    tagged COSE message only: 61(18([...])).
    """
    try:
        item = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as error:
        raise CredentialError(Stage.COSE, f"not CBOR ({error})") from None
    if isinstance(item, cbor2.CBORTag) and item.tag == CWT_TAG:
        item = item.value
        if not isinstance(item, cbor2.CBORTag):
            raise CredentialError(
                Stage.COSE,
                f"the CWT tag ({CWT_TAG}) must wrap a tagged COSE_Sign1 ({COSE_SIGN1_TAG})",
            )
    if isinstance(item, cbor2.CBORTag):
        if item.tag != COSE_SIGN1_TAG:
            raise CredentialError(Stage.COSE, f"CBOR tag {item.tag} is not COSE_Sign1 (18)")
        item = item.value
    # A tagged item decodes with immutable containers (tuple, frozendict).
    if not isinstance(item, list | tuple) or len(item) != 4:
        raise CredentialError(Stage.COSE, "COSE_Sign1 must be an array of four items")
    protected_raw, unprotected_raw, payload, signature = item
    if not isinstance(protected_raw, bytes) or not isinstance(payload, bytes):
        raise CredentialError(Stage.COSE, "protected header and payload must be byte strings")
    if not isinstance(signature, bytes):
        raise CredentialError(Stage.COSE, "signature must be a byte string")
    try:
        protected = cbor2.loads(protected_raw) if protected_raw else {}
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as error:
        raise CredentialError(Stage.COSE, f"protected header is not CBOR ({error})") from None
    protected = _header_map(protected, "protected")
    unprotected = _header_map(unprotected_raw, "unprotected")
    alg = protected.get(HEADER_ALG, unprotected.get(HEADER_ALG))
    kid = protected.get(HEADER_KID, unprotected.get(HEADER_KID))
    if not isinstance(alg, int):
        raise CredentialError(Stage.COSE, "no algorithm in the headers")
    if not isinstance(kid, bytes):
        raise CredentialError(Stage.COSE, "no key id in the headers")
    return CoseSign1(protected_raw, unprotected, payload, signature, alg, kid)


def verify(cose: CoseSign1, trust: TrustStore, purpose: KeyPurpose) -> TrustedKey:
    """Stage signature: the signature verifies under a trusted key with this key id.

    Returns the key that verified it (several keys may share one key id; each is tried).
    """
    if cose.alg not in ALGORITHM_NAMES:
        raise CredentialError(Stage.SIGNATURE, f"algorithm {cose.alg} is not supported")
    candidates = trust.candidates(cose.kid, purpose)
    if not candidates:
        raise CredentialError(
            Stage.SIGNATURE,
            f"no {purpose.value} key with id {cose.kid.hex()}",
            untrusted_signer=True,
        )
    message = cose.to_be_signed()
    for candidate in candidates:
        try:
            verify_cose_signature(candidate.public_key, cose.alg, cose.signature, message)
        except InvalidSignature:
            continue
        return candidate
    raise CredentialError(
        Stage.SIGNATURE, f"signature does not verify under key {cose.kid.hex()} (forged or altered)"
    )


def _epoch(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise CredentialError(Stage.CWT, f"claim {name} is not a number")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise CredentialError(Stage.CWT, f"claim {name} is out of range") from None


def parse_cwt(payload: bytes) -> CwtClaims:
    """Stage cwt: the payload is a CBOR map of CWT claims with well-typed iss, iat and exp."""
    try:
        claims = cbor2.loads(payload)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as error:
        raise CredentialError(Stage.CWT, f"payload is not CBOR ({error})") from None
    if not isinstance(claims, dict):
        raise CredentialError(Stage.CWT, "payload is not a claims map")
    issuer = claims.get(CWT_ISS)
    if issuer is not None and not isinstance(issuer, str):
        raise CredentialError(Stage.CWT, "claim iss is not text")
    return CwtClaims(
        issuer=issuer,
        issued_at=_epoch(claims.get(CWT_IAT), "iat"),
        expires_at=_epoch(claims.get(CWT_EXP), "exp"),
        claims=claims,
    )


def check_expiry(
    cwt: CwtClaims,
    now: datetime,
    *,
    clock_skew_seconds: float = 300,
    valid_at_expiry: bool = False,
) -> None:
    """Stage expiry: not expired at `now` and not issued in the future (beyond clock skew).

    A CWT is expired from its exp on (RFC 8392, after RFC 7519); the HCERT specification
    rejects only *after* exp, which `valid_at_expiry` selects.
    """
    if cwt.expires_at is None:
        raise CredentialError(Stage.EXPIRY, "no expiry claim")
    if now > cwt.expires_at or (now == cwt.expires_at and not valid_at_expiry):
        raise CredentialError(Stage.EXPIRY, f"expired at {cwt.expires_at.isoformat()}")
    if cwt.issued_at is not None and (cwt.issued_at - now).total_seconds() > clock_skew_seconds:
        raise CredentialError(Stage.EXPIRY, f"issued in the future ({cwt.issued_at.isoformat()})")


@dataclass(frozen=True)
class OpenedEnvelope:
    """What the stages up to cwt yield: the signed structure, its claims and who signed it."""

    cose: CoseSign1
    cwt: CwtClaims
    signer: TrustedKey


def open_envelope(text: str, prefix: str, trust: TrustStore, purpose: KeyPurpose) -> OpenedEnvelope:
    """Run the stages unprefix, base45, inflate, cose, signature and cwt in order."""
    cose = parse_cose(inflate(base45(unprefix(text, prefix))))
    signer = verify(cose, trust, purpose)
    return OpenedEnvelope(cose, parse_cwt(cose.payload), signer)


def seal(prefix: str, claims: dict[Any, Any], key: CoseSigner) -> str:
    """Sign CWT claims into a COSE_Sign1 and wrap it: the inverse of `open_envelope`."""
    return wrap(prefix, sign_cose(claims, key))


def sign_cose(claims: dict[Any, Any], key: CoseSigner) -> bytes:
    protected = cbor2.dumps({HEADER_ALG: key.alg, HEADER_KID: key.kid})
    payload = cbor2.dumps(claims)
    signature = key.sign(sig_structure(protected, payload))
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))


def wrap(prefix: str, cose_bytes: bytes) -> str:
    """Compress, Base45-encode and prefix an already signed COSE_Sign1."""
    return prefix + b45encode(zlib.compress(cose_bytes, 9))
