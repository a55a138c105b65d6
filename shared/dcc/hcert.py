"""EU Digital COVID Certificates (`HC1:`): the shared envelope's stages and the DCC's own checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from shared.dcc.schema import SchemaCheck, SchemaStore
from shared.dcc.value_sets import ValueSets, packaged_value_sets
from shared.envelope import CredentialError, Stage, check_expiry, open_envelope
from shared.keys import KeyPurpose, TrustedKey, TrustStore

PREFIX = "HC1:"
HCERT_CLAIM = -260  # the CWT claim holding health certificates
EU_DCC_V1 = 1  # under it, the EU DCC payload
CERTIFICATE_TYPES = {"v": "vaccination", "t": "test", "r": "recovery"}


@dataclass(frozen=True)
class VerifiedDcc:
    """A DCC whose signature verified, with what deny lists and decisions need from it."""

    payload: dict[str, Any]  # the DCC JSON (personal data: never log it)
    certificate_type: str  # 'v', 't' or 'r'
    uvci: str  # the entry's unique certificate identifier, `ci`
    country: str | None  # CWT iss, else the entry's `co`
    issued_at: datetime | None
    expires_at: datetime | None
    signature: bytes  # the COSE signature, as DCC revocation lists hash it
    alg: int  # the COSE algorithm of the signature (ES256's is hashed by its r half only)
    kid: bytes  # the signer's key id
    schema: SchemaCheck | None  # the schema it was validated against; None: not checked
    expiry_checked: bool  # False when no clock was given


def json_value(value: Any) -> Any:
    """A decoded CBOR value as JSON: maps with text keys, arrays, text, numbers, true/false/null.

    Tagged date-times (CBOR tag 0 or 1) become RFC 3339 text, as the DCC JSON has them;
    anything else JSON cannot hold (byte strings, undefined, other tags) raises ValueError.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise ValueError("a map has a key that is not text")
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, datetime):
        text = value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
        return text.replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise ValueError(f"a {type(value).__name__} has no JSON form")


def dcc_payload(claims: Mapping[Any, Any]) -> dict[str, Any]:
    """Stage cwt: the EU DCC JSON inside the hcert claim (-260, key 1) of the CWT claims."""
    hcert = claims.get(HCERT_CLAIM)
    if not isinstance(hcert, Mapping):
        raise CredentialError(Stage.CWT, f"no hcert claim ({HCERT_CLAIM}) map")
    payload = hcert.get(EU_DCC_V1)
    if not isinstance(payload, Mapping):
        raise CredentialError(Stage.CWT, f"the hcert claim holds no EU DCC (key {EU_DCC_V1})")
    try:
        return json_value(payload)
    except ValueError as error:
        raise CredentialError(Stage.CWT, f"the DCC is not JSON: {error}") from None


def certificate_types(payload: Mapping[str, Any]) -> frozenset[str]:
    """The types of entries the payload holds ('v', 't', 'r'): one, in a well-formed DCC."""
    return frozenset(kind for kind in CERTIFICATE_TYPES if payload.get(kind))


def check_key_usage(signer: TrustedKey, types: frozenset[str]) -> None:
    """Stage keyusage: the signer's certificate allows every type of entry the DCC holds."""
    allowed = signer.certificate_types
    if allowed is None:
        return
    refused = sorted(types - allowed)
    if refused:
        names = ", ".join(CERTIFICATE_TYPES[kind] for kind in refused)
        permitted = ", ".join(CERTIFICATE_TYPES[kind] for kind in sorted(allowed))
        raise CredentialError(
            Stage.KEYUSAGE, f"the signer may sign {permitted} certificates, not {names}"
        )


def single_entry(payload: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """Stage schema: the DCC's single entry and its type."""
    types = certificate_types(payload)
    if len(types) != 1:
        found = "no" if not types else "more than one type of"
        raise CredentialError(Stage.SCHEMA, f"{found} vaccination, test or recovery entry")
    (kind,) = types
    entries = payload[kind]
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], Mapping):
        raise CredentialError(Stage.SCHEMA, f"'{kind}' must hold exactly one entry")
    return kind, entries[0]


def verify_dcc(
    text: str,
    trust: TrustStore,
    *,
    now: datetime | None,
    schemas: SchemaStore | None,
    value_sets: ValueSets | None = None,
) -> VerifiedDcc:
    """Verify an `HC1:` text: envelope, signature, key usage, schema, codes, expiry.

    The schema is checked if a store is given, the codes against `value_sets` (by default the
    release shipped with the package), the expiry if `now` is given. Raises CredentialError
    naming the stage that failed. With no schema store the result's schema is None; with no
    clock its expiry_checked is False: nothing passes silently.
    """
    opened = open_envelope(text, PREFIX, trust, KeyPurpose.DCC)
    payload = dcc_payload(opened.cwt.claims)
    check_key_usage(opened.signer, certificate_types(payload))
    schema = schemas.validate(payload) if schemas is not None else None
    kind, entry = single_entry(payload)
    uvci = entry.get("ci")
    if not isinstance(uvci, str):
        raise CredentialError(Stage.SCHEMA, "the entry has no certificate identifier (ci)")
    (value_sets if value_sets is not None else packaged_value_sets()).check(kind, entry)
    if now is not None:
        check_expiry(opened.cwt, now, valid_at_expiry=True)
    country = opened.cwt.issuer or entry.get("co")
    return VerifiedDcc(
        payload=payload,
        certificate_type=kind,
        uvci=uvci,
        country=country if isinstance(country, str) else None,
        issued_at=opened.cwt.issued_at,
        expires_at=opened.cwt.expires_at,
        signature=opened.cose.signature,
        alg=opened.cose.alg,
        kid=opened.cose.kid,
        schema=schema,
        expiry_checked=now is not None,
    )
