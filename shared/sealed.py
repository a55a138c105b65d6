"""ID-card identities sealed on the device to the host's X25519 key, so a stolen kiosk leaks none.

A sealed identity is `SI1:` + base64url(kid | ephemeral public key | AES-256-GCM ciphertext).
The device makes a fresh X25519 key pair for every seal, agrees a secret with the host's public
key, and derives the AES key and nonce from it with HKDF-SHA256 (the shape of HPKE's base mode).
The plaintext is a small CBOR map: document type, issuing country, number. Only the holder of
the host's private key can open it; the device keeps no way to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

import cbor2
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.idnumber import normalise_id_number
from shared.keys import b64url, b64url_decode

PREFIX = "SI1:"
KID_BYTES = 8
PUBLIC_BYTES = 32
TAG_BYTES = 16
MAX_SEALED_CHARS = 400  # far more than a seal of the longest number needs
HKDF_INFO = b"digital-sentinel/sealed-identity/v1"
AES_KEY_BYTES = 32
NONCE_BYTES = 12


class DocumentType(StrEnum):
    """What kind of card an identity was read from."""

    CN_ID = "cn-id"  # China's second-generation resident identity card, read by a SAM module
    EMRTD = "emrtd"  # an ICAO 9303 passport or eID card, read over PC/SC


class SealError(ValueError):
    """A sealed identity that is malformed, for another key, or altered."""


@dataclass(frozen=True, repr=False)
class CardIdentity:
    """Who a card says its holder is: the least that finds them. repr() shows nothing personal."""

    document: DocumentType
    country: str  # ISO 3166-1 alpha-3 of the issuer, "CHN" for a resident identity card
    number: str  # the ID or document number, normalised (no spaces, upper case)

    @classmethod
    def of(cls, document: DocumentType, country: str, number: str) -> CardIdentity:
        normalised = normalise_id_number(number)
        if not normalised or len(normalised) > 40:
            raise ValueError("an ID number has 1 to 40 characters")
        return cls(document, country.upper(), normalised)

    @property
    def lookup_key(self) -> str:
        """What the host keys people by: a resident ID number as it is, others by issuer too."""
        if self.document is DocumentType.CN_ID:
            return self.number
        return f"{self.document.value}:{self.country}:{self.number}"

    def __repr__(self) -> str:
        return f"CardIdentity({self.document.value}, {self.country}, <number>)"


def public_key_id(public_raw: bytes) -> bytes:
    """The sealing key's id: the first 8 bytes of the SHA-256 of its raw public key."""
    return hashlib.sha256(public_raw).digest()[:KID_BYTES]


def _aead(shared_secret: bytes, kid: bytes, ephemeral: bytes, recipient: bytes) -> AESGCM:
    material = HKDF(
        algorithm=hashes.SHA256(),
        length=AES_KEY_BYTES + NONCE_BYTES,
        salt=ephemeral + recipient,
        info=HKDF_INFO + kid,
    ).derive(shared_secret)
    return AESGCM(material[:AES_KEY_BYTES]), material[AES_KEY_BYTES:]


def _raw(public_key: X25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def seal(identity: CardIdentity, recipient_public: bytes) -> str:
    """Seal an identity to the host's raw X25519 public key; a new ephemeral key every time."""
    recipient = X25519PublicKey.from_public_bytes(recipient_public)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = _raw(ephemeral.public_key())
    kid = public_key_id(recipient_public)
    aead, nonce = _aead(ephemeral.exchange(recipient), kid, ephemeral_public, recipient_public)
    plaintext = cbor2.dumps(
        {"d": identity.document.value, "c": identity.country, "n": identity.number}
    )
    ciphertext = aead.encrypt(nonce, plaintext, PREFIX.encode() + kid)
    return PREFIX + b64url(kid + ephemeral_public + ciphertext)


class SealingKey:
    """The host's private sealing key: it alone opens what devices sealed."""

    def __init__(self, private: X25519PrivateKey) -> None:
        self._private = private
        self.public_raw = _raw(private.public_key())
        self.kid = public_key_id(self.public_raw)

    @classmethod
    def generate(cls) -> SealingKey:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, raw: bytes) -> SealingKey:
        return cls(X25519PrivateKey.from_private_bytes(raw))

    def to_bytes(self) -> bytes:
        return self._private.private_bytes_raw()

    def open(self, sealed: str) -> CardIdentity:
        """The identity inside; SealError for anything malformed, for another key, or altered."""
        if not sealed.startswith(PREFIX) or len(sealed) > MAX_SEALED_CHARS:
            raise SealError(f"not a sealed identity (prefix {PREFIX}, at most {MAX_SEALED_CHARS})")
        try:
            data = b64url_decode(sealed[len(PREFIX) :])
        except ValueError:
            raise SealError("a sealed identity is not base64url") from None
        if len(data) < KID_BYTES + PUBLIC_BYTES + TAG_BYTES:
            raise SealError("a sealed identity is too short")
        kid, ephemeral = data[:KID_BYTES], data[KID_BYTES : KID_BYTES + PUBLIC_BYTES]
        if kid != self.kid:
            raise SealError(f"sealed for key {kid.hex()}, not this host's {self.kid.hex()}")
        try:
            secret = self._private.exchange(X25519PublicKey.from_public_bytes(ephemeral))
            aead, nonce = _aead(secret, kid, ephemeral, self.public_raw)
            plaintext = aead.decrypt(nonce, data[KID_BYTES + PUBLIC_BYTES :], PREFIX.encode() + kid)
        except (InvalidTag, ValueError):
            raise SealError(
                "a sealed identity does not open: altered, or not for this key"
            ) from None
        return _identity(plaintext)


def _identity(plaintext: bytes) -> CardIdentity:
    try:
        fields = cbor2.loads(plaintext)
        return CardIdentity.of(DocumentType(fields["d"]), fields["c"], fields["n"])
    except (cbor2.CBORDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise SealError("a sealed identity opened but does not hold an identity") from None
