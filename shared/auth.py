"""Device request authentication: Ed25519 signatures over a canonical request, replay-protected."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.keys import b64url, b64url_decode

HEADER_DEVICE = "X-Sentinel-Device"
HEADER_TIME = "X-Sentinel-Time"
HEADER_NONCE = "X-Sentinel-Nonce"
HEADER_SIGNATURE = "X-Sentinel-Signature"
HEADER_SERVER_TIME = "X-Sentinel-Server-Time"
MAX_SKEW_MS = 5 * 60 * 1000
NONCE_BYTES = 16


class AuthError(Exception):
    """A device request is not authentic, or is a replay; the message says which."""


def canonical_request(method: str, target: str, time_ms: int, nonce: str, body: bytes) -> bytes:
    """The bytes a device signs: method, path with query, time, nonce and the body's hash."""
    digest = hashlib.sha256(body).hexdigest()
    return f"sentinel-request-v1\n{method.upper()}\n{target}\n{time_ms}\n{nonce}\n{digest}".encode()


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_device_public_key(text: str) -> Ed25519PublicKey:
    """A device's public key as it travels: base64url of the 32 raw Ed25519 bytes."""
    raw = b64url_decode(text)
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


# The curve edwards25519 (RFC 8032 §5.1): -x^2 + y^2 = 1 + d x^2 y^2 over GF(p).
_P = 2**255 - 19
_D = -121665 * pow(121666, -1, _P) % _P
_SQRT_MINUS_ONE = pow(2, (_P - 1) // 4, _P)
_IDENTITY = (0, 1)


def _point(raw: bytes) -> tuple[int, int] | None:
    """The point a 32-byte encoding stands for (RFC 8032 §5.1.3).

    None if it stands for none, or is not the one canonical encoding of its point.
    """
    number = int.from_bytes(raw, "little")
    y, x_is_odd = number & ((1 << 255) - 1), number >> 255
    if y >= _P:
        return None
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    if v * x * x % _P == (-u) % _P:
        x = x * _SQRT_MINUS_ONE % _P
    if v * x * x % _P != u:
        return None
    if x == 0 and x_is_odd:
        return None
    return ((_P - x) if x & 1 != x_is_odd else x, y)


def _double(point: tuple[int, int]) -> tuple[int, int]:
    x, y = point
    product = _D * x * x * y * y % _P
    return (
        2 * x * y * pow(1 + product, -1, _P) % _P,
        (y * y + x * x) * pow(1 - product, -1, _P) % _P,
    )


def weak_public_key(raw: bytes) -> str | None:
    """Why a raw Ed25519 public key must not be enrolled, or None for a sound one.

    Refused: bytes that encode no point, or not canonically, and the points of small order
    (the identity and the rest of the 8-torsion), for which one signature made without any
    private key verifies over many messages.
    """
    point = _point(raw)
    if point is None:
        return "the key is not a canonical encoding of a point of edwards25519"
    for _ in range(3):  # [8]P is the identity exactly when P's order divides 8
        point = _double(point)
    if point == _IDENTITY:
        return "the key is a point of small order, which no private key stands behind"
    return None


def sign_request(
    key: Ed25519PrivateKey, device_id: str, *, method: str, target: str, body: bytes, time_ms: int
) -> dict[str, str]:
    """Headers that authenticate one request from a device."""
    nonce = b64url(os.urandom(NONCE_BYTES))
    signature = key.sign(canonical_request(method, target, time_ms, nonce, body))
    return {
        HEADER_DEVICE: device_id,
        HEADER_TIME: str(time_ms),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: b64url(signature),
    }


@dataclass(frozen=True)
class SignedRequest:
    """The authentication headers of a request, checked for form."""

    device_id: str
    time_ms: int
    nonce: str
    signature: bytes

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> SignedRequest:
        lowered = {name.lower(): value for name, value in headers.items()}
        missing = [
            name
            for name in (HEADER_DEVICE, HEADER_TIME, HEADER_NONCE, HEADER_SIGNATURE)
            if name.lower() not in lowered
        ]
        if missing:
            raise AuthError(f"header {', '.join(missing)} is missing")
        device_id = lowered[HEADER_DEVICE.lower()]
        time_text = lowered[HEADER_TIME.lower()]
        nonce = lowered[HEADER_NONCE.lower()]
        signature_text = lowered[HEADER_SIGNATURE.lower()]
        if not (time_text.isascii() and time_text.isdigit()) or len(time_text) > 16:
            raise AuthError("time header is not a millisecond timestamp")
        if not 16 <= len(nonce) <= 64:
            raise AuthError("nonce has the wrong length")
        try:
            signature = b64url_decode(signature_text)
        except ValueError:
            raise AuthError("signature is not base64url") from None
        return cls(device_id, int(time_text), nonce, signature)

    def check(
        self,
        public_key: Ed25519PublicKey,
        method: str,
        target: str,
        body: bytes,
        now_ms: int,
        *,
        max_skew_ms: int = MAX_SKEW_MS,
    ) -> None:
        """Signature valid and time within the allowed skew; the nonce is the caller's to record."""
        if abs(now_ms - self.time_ms) > max_skew_ms:
            raise AuthError(
                f"clock-skew: request time is {(self.time_ms - now_ms) / 1000:+.0f} s off"
            )
        try:
            public_key.verify(
                self.signature, canonical_request(method, target, self.time_ms, self.nonce, body)
            )
        except InvalidSignature:
            raise AuthError("signature does not verify") from None
