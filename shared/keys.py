"""Signing keys, key ids and the trust store that maps key ids to public keys by purpose."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


# COSE algorithm identifiers (RFC 9053) that the envelope accepts.
ES256 = -7
EDDSA = -8
PS256 = -37
ALGORITHM_NAMES = {ES256: "ES256", EDDSA: "EdDSA", PS256: "PS256"}


class KeyPurpose(StrEnum):
    """What a host key may sign; a key is trusted only for its own purpose."""

    HEALTH = "health"
    VENUE = "venue"
    POLICY = "policy"
    DCC = "dcc"  # an EU DCC document signer certificate (DSC) from a trust list


def b64url(data: bytes) -> str:
    """Unpadded base64url text."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded (or padded) base64url text; raises ValueError on any other character."""
    padded = text + "=" * (-len(text) % 4)
    return base64.b64decode(padded, altchars=b"-_", validate=True)


def public_key_der(public_key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo DER of a public key."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(der: bytes) -> bytes:
    """Key id as HCERT defines it: the first 8 bytes of the SHA-256 of the DER encoding."""
    return hashlib.sha256(der).digest()[:8]


def load_public_key(der: bytes) -> PublicKey:
    """Load a SubjectPublicKeyInfo DER public key of a supported type."""
    key = serialization.load_der_public_key(der)
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise ValueError(f"unsupported public key type {type(key).__name__}")
    return key


def raw_ecdsa_signature(der_signature: bytes, size: int = 32) -> bytes:
    """A DER ECDSA signature as the r||s of `size`-byte halves that COSE carries."""
    r, s = decode_dss_signature(der_signature)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def verify_cose_signature(
    public_key: PublicKey, alg: int, signature: bytes, message: bytes
) -> None:
    """Check a COSE signature (raw r||s for ECDSA); raises InvalidSignature when it fails."""
    if alg == ES256:
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise InvalidSignature("ES256 needs an EC key")
        half = len(signature) // 2
        if len(signature) != 64:
            raise InvalidSignature(f"ES256 signature is {len(signature)} bytes, not 64")
        der = encode_dss_signature(
            int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
        )
        public_key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    elif alg == PS256:
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise InvalidSignature("PS256 needs an RSA key")
        public_key.verify(
            signature,
            message,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
    elif alg == EDDSA:
        if not isinstance(public_key, ed25519.Ed25519PublicKey):
            raise InvalidSignature("EdDSA needs an Ed25519 key")
        public_key.verify(signature, message)
    else:
        raise InvalidSignature(f"algorithm {alg} is not supported")


class CoseSigner(Protocol):
    """What signs a COSE_Sign1: an algorithm, a key id, and signatures in COSE's form."""

    @property
    def alg(self) -> int: ...

    @property
    def kid(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class SigningKey:
    """A private ES256 key with its key id: what the host signs codes and policies with."""

    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("signing key must be an EC P-256 private key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def alg(self) -> int:
        return ES256

    @property
    def public_der(self) -> bytes:
        return public_key_der(self.private_key.public_key())

    @property
    def kid(self) -> bytes:
        return key_id(self.public_der)

    def sign(self, message: bytes) -> bytes:
        """Sign with ES256 and return the raw 64-byte r||s signature COSE uses."""
        return raw_ecdsa_signature(self.private_key.sign(message, ec.ECDSA(hashes.SHA256())))


@dataclass(frozen=True)
class TrustedKey:
    """A public key the verifier trusts, for one purpose.

    certificate_types narrows what a DCC signer may sign ('t' test, 'v' vaccination,
    'r' recovery) as its certificate's extended key usage says; None places no limit.
    """

    kid: bytes
    purpose: KeyPurpose
    public_key: PublicKey
    certificate_types: frozenset[str] | None = None


@dataclass
class TrustStore:
    """Public keys by key id; several keys may share one id, so each is tried."""

    _by_kid: dict[bytes, list[TrustedKey]] = field(default_factory=dict)

    @classmethod
    def of(cls, keys: Iterable[TrustedKey]) -> TrustStore:
        store = cls()
        for key in keys:
            store.add(key)
        return store

    def add(self, key: TrustedKey) -> None:
        self._by_kid.setdefault(key.kid, []).append(key)

    def candidates(self, kid: bytes, purpose: KeyPurpose) -> list[TrustedKey]:
        """The keys under this id that may sign for this purpose."""
        return [key for key in self._by_kid.get(kid, []) if key.purpose == purpose]

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._by_kid.values())
