"""`sentinel verify`: check one credential offline, an EU DCC (HC1:), a health code or a venue code.

Exit status: 0 when it verifies, 1 when it does not, 2 when the command could not run
(bad arguments, unreadable trust files, schemas, value sets or image).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from shared import healthcode, venuecode
from shared.dcc.certificates import certificates_in, load_certificate, load_certificates
from shared.dcc.hcert import CERTIFICATE_TYPES, VerifiedDcc, verify_dcc
from shared.dcc.schema import SchemaStore
from shared.dcc.value_sets import VALUE_SETS_DIR_ENV, ValueSets, default_value_sets
from shared.envelope import CredentialError, Stage
from shared.healthcode import HealthCode
from shared.keys import TrustedKey, TrustStore, b64url_decode
from shared.messages import PublishedKey
from shared.venuecode import VenueCode
from shared.verification import CredentialKind, recognise

EXIT_VERIFIED = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
PUBLISHED_KEYS = TypeAdapter(list[PublishedKey])


class UsageError(Exception):
    """The command cannot run as asked (exit status 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("text", nargs="?", metavar="TEXT", help="the text a QR code holds")
    parser.add_argument("--image", type=Path, metavar="PNG", help="read the QR code in this image")
    parser.add_argument(
        "--at", metavar="ISO8601", help="verify at this time (default: now; no offset means UTC)"
    )
    parser.add_argument(
        "--trust",
        action="append",
        type=Path,
        default=[],
        metavar="PEM_OR_DIR",
        help="DCC signer certificates (PEM or DER, or a directory of them), or a JSON file of "
        'the host\'s published keys (a list, or {"keys": [...]} as GET /api/v1/keys gives; '
        'a device configuration\'s "dcc_signers" count too); may be repeated',
    )
    parser.add_argument(
        "--schemas",
        type=Path,
        metavar="DIR",
        help="the eu-dcc-schema directory (default: $SENTINEL_DCC_SCHEMAS, else ../shared/data)",
    )
    parser.add_argument(
        "--show-payload",
        action="store_true",
        help="include a DCC's whole payload (the holder's name and birth date) in the claims",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def verification_time(text: str | None) -> datetime:
    """The --at time (UTC when it has no offset), or now."""
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at {text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def keys_in_json(document: Any) -> list[TrustedKey]:
    """The host's published keys: a list of them, or {"keys": [...]} as GET /api/v1/keys gives.

    An object may also hold "dcc_signers" (base64url DER certificates), as a device's
    configuration does.
    """
    if not isinstance(document, dict):
        document = {"keys": document}
    keys = [key.trusted() for key in PUBLISHED_KEYS.validate_python(document.get("keys", []))]
    signers = document.get("dcc_signers", [])
    if not isinstance(signers, list) or not all(isinstance(der, str) for der in signers):
        raise ValueError("dcc_signers must be a list of base64url DER certificates")
    return keys + [load_certificate(b64url_decode(der)).trusted_key() for der in signers]


def load_trust(paths: list[Path]) -> TrustStore:
    """One trust store from certificate files, certificate directories and published-key JSON."""
    keys: list[TrustedKey] = []
    for path in paths:
        try:
            if path.is_dir():
                keys += [certificate.trusted_key() for certificate in load_certificates(path)]
                continue
            data = path.read_bytes()
            if data.lstrip()[:1] in (b"{", b"["):
                keys += keys_in_json(json.loads(data))
            else:
                keys += [certificate.trusted_key() for certificate in certificates_in(data)]
        except (OSError, ValueError, ValidationError) as error:
            # CertificateError, json.JSONDecodeError and a key id mismatch are ValueErrors too.
            raise UsageError(f"--trust {path}: {error}") from None
    return TrustStore.of(keys)


def load_schemas(directory: Path | None) -> SchemaStore | None:
    try:
        return SchemaStore.from_directory(directory) if directory else SchemaStore.default()
    except (OSError, ValueError) as error:
        raise UsageError(f"--schemas: {error}") from None


def load_value_sets() -> ValueSets:
    """The packaged EU DCC value sets, with the newer ones $SENTINEL_DCC_VALUE_SETS holds."""
    try:
        return default_value_sets()
    except (OSError, ValueError) as error:
        raise UsageError(f"${VALUE_SETS_DIR_ENV}: {error}") from None


def text_in_image(path: Path) -> str:
    """The credential in a picture: the first QR code that holds one, else the first code."""
    import cv2

    from hardware.qr import QrDecoder

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise UsageError(f"--image {path}: not a readable image")
    texts = QrDecoder().decode(image)
    if not texts:
        raise UsageError(f"--image {path}: no QR code found")
    return next((text for text in texts if recognise(text) is not CredentialKind.UNKNOWN), texts[0])


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def dcc_claims(dcc: VerifiedDcc, *, show_payload: bool) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "type": CERTIFICATE_TYPES[dcc.certificate_type],
        "uvci": dcc.uvci,
        "country": dcc.country,
        "issued_at": _time(dcc.issued_at),
        "expires_at": _time(dcc.expires_at),
        "signer_kid": dcc.kid.hex(),
        # The schema used, and the version the DCC declared: a version never published is
        # validated against the newest schema of its major version.
        "schema_version": dcc.schema.version if dcc.schema else None,
        "schema_declared": dcc.schema.declared if dcc.schema else None,
        "not_checked": [
            stage.value
            for stage, checked in ((Stage.SCHEMA, dcc.schema), (Stage.EXPIRY, True))
            if not checked
        ],
    }
    if show_payload:
        claims["payload"] = dcc.payload
    return claims


def health_claims(code: HealthCode) -> dict[str, Any]:
    return {
        "person_ref": code.person_ref,
        "code_kind": code.kind.value,
        "colour": code.colour.value,
        "test": None
        if code.test is None
        else {"sampled_at": _time(code.test.sampled_at), "result": code.test.result.value},
        "issuer": code.issuer,
        "issued_at": _time(code.issued_at),
        "expires_at": _time(code.expires_at),
        "bound_to_id_card": code.id_binding is not None,
    }


def venue_claims(venue: VenueCode) -> dict[str, Any]:
    return {"venue_id": venue.venue_id, "binding": str(venue.binding) if venue.binding else None}


def verify_text(
    text: str,
    trust: TrustStore,
    *,
    now: datetime,
    schemas: SchemaStore | None,
    value_sets: ValueSets | None = None,
    show_payload: bool = False,
) -> dict[str, Any]:
    """The verdict on one text: {"ok", "kind", "failed_stage", "reason", "claims"}."""
    kind = recognise(text)
    result: dict[str, Any] = {
        "ok": False,
        "kind": kind.value,
        "failed_stage": None,
        "reason": None,
        "claims": {},
    }
    try:
        if kind is CredentialKind.DCC:
            verified = verify_dcc(text, trust, now=now, schemas=schemas, value_sets=value_sets)
            result["claims"] = dcc_claims(verified, show_payload=show_payload)
        elif kind is CredentialKind.HEALTH:
            result["claims"] = health_claims(healthcode.read(text, trust, now=now))
        elif kind is CredentialKind.VENUE:
            result["claims"] = venue_claims(venuecode.read_url(text, trust))
        else:
            raise CredentialError(
                Stage.UNPREFIX, "not a credential: no HC1: or DS1: prefix, not a venue URL"
            )
    except CredentialError as error:
        result["failed_stage"] = error.stage.value
        result["reason"] = error.reason
        return result
    result["ok"] = True
    return result


KIND_NAMES = {
    CredentialKind.DCC.value: "EU DCC",
    CredentialKind.HEALTH.value: "health code",
    CredentialKind.VENUE.value: "venue code",
    CredentialKind.UNKNOWN.value: "text",
}


def summary(result: dict[str, Any]) -> str:
    """A few lines for a person: the verdict, then the claims that matter."""
    kind = KIND_NAMES[result["kind"]]
    if not result["ok"]:
        return f"NOT VERIFIED {kind}: {result['failed_stage']}: {result['reason']}"
    claims = result["claims"]
    lines = [f"VERIFIED {kind}"]
    for name, value in claims.items():
        if name == "not_checked":
            if value:
                lines.append(f"  not checked: {', '.join(value)}")
        elif name != "payload":
            lines.append(f"  {name}: {value}")
    if "payload" in claims:
        lines.append("  payload: " + json.dumps(claims["payload"], ensure_ascii=False))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        if (args.text is None) == (args.image is None):
            raise UsageError("give either TEXT or --image PNG")
        now = verification_time(args.at)
        trust = load_trust(args.trust)
        text = args.text if args.text is not None else text_in_image(args.image)
        is_dcc = recognise(text) is CredentialKind.DCC
        schemas = load_schemas(args.schemas) if is_dcc else None
        value_sets = load_value_sets() if is_dcc else None
    except UsageError as error:
        print(f"sentinel verify: {error}", file=sys.stderr)
        return EXIT_USAGE
    result = verify_text(
        text,
        trust,
        now=now,
        schemas=schemas,
        value_sets=value_sets,
        show_payload=args.show_payload,
    )
    print(json.dumps(result, ensure_ascii=False) if args.json else summary(result))
    return EXIT_VERIFIED if result["ok"] else EXIT_REFUSED
