"""Venue codes: https URLs that phones open and that a device can check offline by signature."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import SplitResult, parse_qs, quote, urlsplit

from cryptography.exceptions import InvalidSignature

from shared.envelope import CredentialError, Stage
from shared.keys import ES256, KeyPurpose, SigningKey, TrustStore, b64url, b64url_decode
from shared.keys import verify_cose_signature as verify_signature

VENUE_PATH = re.compile(r"^/v/(?P<venue>[A-Za-z0-9_-]{1,64})$")
MAX_BINDING_LENGTH = 32


class BindingKind(StrEnum):
    """A venue code variant bound to one vehicle (plate) or one room."""

    PLATE = "plate"
    ROOM = "room"


@dataclass(frozen=True)
class Binding:
    kind: BindingKind
    value: str

    def __post_init__(self) -> None:
        if not self.value or len(self.value) > MAX_BINDING_LENGTH or ":" in self.value:
            raise ValueError(f"binding value must be 1-{MAX_BINDING_LENGTH} characters, no ':'")

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> Binding:
        kind, _, value = text.partition(":")
        return cls(BindingKind(kind), value)


@dataclass(frozen=True)
class VenueCode:
    venue_id: str
    binding: Binding | None = None


def signed_message(code: VenueCode) -> bytes:
    binding = str(code.binding) if code.binding else ""
    return f"sentinel-venue-v1\n{code.venue_id}\n{binding}".encode()


def issue_url(code: VenueCode, base_url: str, key: SigningKey) -> str:
    """The URL printed on the venue's poster (fixed code) or on a bound variant."""
    if not VENUE_PATH.match(f"/v/{code.venue_id}"):
        raise ValueError(f"venue id {code.venue_id!r} is not URL-safe")
    query = []
    if code.binding:
        query.append("b=" + quote(str(code.binding), safe=":"))
    query.append("k=" + b64url(key.kid))
    query.append("s=" + b64url(key.sign(signed_message(code))))
    return f"{base_url.rstrip('/')}/v/{code.venue_id}?" + "&".join(query)


def _split(text: str) -> SplitResult | None:
    """The URL's parts; None for text no URL parser takes (an unclosed IPv6 bracket, say)."""
    try:
        return urlsplit(text)
    except ValueError:
        return None


def looks_like_venue_url(text: str) -> bool:
    parts = _split(text)
    return parts is not None and parts.scheme == "https" and bool(VENUE_PATH.match(parts.path))


def read_url(text: str, trust: TrustStore) -> VenueCode:
    """Parse a venue URL and check its signature offline against the trusted venue keys."""
    parts = _split(text)
    match = None if parts is None else VENUE_PATH.match(parts.path)
    if parts is None or parts.scheme != "https" or not match:
        raise CredentialError(Stage.UNPREFIX, "not a venue URL (https://HOST/v/VENUE)")
    query = parse_qs(parts.query, keep_blank_values=True)
    if any(len(values) != 1 for values in query.values()):
        raise CredentialError(Stage.SCHEMA, "a query parameter is repeated")
    try:
        kid = b64url_decode(query["k"][0])
        signature = b64url_decode(query["s"][0])
        binding = Binding.parse(query["b"][0]) if "b" in query else None
    except KeyError as missing:
        raise CredentialError(Stage.SCHEMA, f"parameter {missing.args[0]} is missing") from None
    except ValueError as error:
        raise CredentialError(Stage.SCHEMA, f"bad parameter: {error}") from None
    code = VenueCode(match["venue"], binding)
    candidates = trust.candidates(kid, KeyPurpose.VENUE)
    if not candidates:
        raise CredentialError(
            Stage.SIGNATURE,
            f"no venue key with id {kid.hex()}",
            untrusted_signer=True,
        )
    for candidate in candidates:
        try:
            verify_signature(candidate.public_key, ES256, signature, signed_message(code))
        except InvalidSignature:
            continue
        return code
    raise CredentialError(Stage.SIGNATURE, "venue signature does not verify (forged or altered)")
