"""EU DCC signer certificates (DSCs): loading them, their key usage, and a trust list of them."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import x509 as lenient_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from shared.keys import (
    KeyPurpose,
    PublicKey,
    TrustedKey,
    TrustStore,
    key_id,
    load_public_key,
    public_key_der,
)

# Extended key usage OIDs that limit what a DSC may sign (hcert spec, appendix A.4), with the
# alternative arc some issuers use; a certificate with none of them may sign every type.
KEY_USAGE_TYPES = {
    "1.3.6.1.4.1.1847.2021.1.1": "t",
    "1.3.6.1.4.1.1847.2021.1.2": "v",
    "1.3.6.1.4.1.1847.2021.1.3": "r",
    "1.3.6.1.4.1.0.1847.2021.1.1": "t",
    "1.3.6.1.4.1.0.1847.2021.1.2": "v",
    "1.3.6.1.4.1.0.1847.2021.1.3": "r",
}
CERTIFICATE_SUFFIXES = (".pem", ".crt", ".cer", ".der")
PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)
STRICT_PARSER = "cryptography"
LENIENT_PARSER = "asn1crypto"


class CertificateError(ValueError):
    """Bytes that hold no usable signer certificate."""


@dataclass(frozen=True)
class SignerCertificate:
    """A document signer certificate: its key id, public key and the types it may sign."""

    der: bytes
    public_key: PublicKey
    certificate_types: frozenset[str] | None  # None: no DCC key usage, so every type
    parser: str  # which parser read it: STRICT_PARSER, or LENIENT_PARSER when that refused

    @property
    def kid(self) -> bytes:
        """The HCERT key id: the first 8 bytes of the SHA-256 of the DER certificate."""
        return key_id(self.der)

    def trusted_key(self, kid: bytes | None = None) -> TrustedKey:
        """The trust store entry; a trust list may name the key id itself (`kid`)."""
        return TrustedKey(
            self.kid if kid is None else kid,
            KeyPurpose.DCC,
            self.public_key,
            self.certificate_types,
        )


def types_allowed_by(extended_key_usages: Iterable[str]) -> frozenset[str] | None:
    """The certificate types the DCC key usage OIDs among these allow (None: no limit)."""
    types = frozenset(KEY_USAGE_TYPES[oid] for oid in extended_key_usages if oid in KEY_USAGE_TYPES)
    return types or None


def load_certificate(der: bytes) -> SignerCertificate:
    """Read a DER certificate; if cryptography's strict parser refuses it, asn1crypto reads it.

    Some real DSCs carry extensions that break DER rules (an explicit default, say); their
    public key and extended key usage are still sound, and asn1crypto reads those.
    """
    try:
        return _read_strictly(der)
    except (ValueError, UnsupportedAlgorithm) as strict_error:
        try:
            return _read_leniently(der)
        except (ValueError, TypeError, UnsupportedAlgorithm) as lenient_error:
            raise CertificateError(
                f"not a usable X.509 certificate ({STRICT_PARSER}: {strict_error}; "
                f"{LENIENT_PARSER}: {lenient_error})"
            ) from None


def _read_strictly(der: bytes) -> SignerCertificate:
    certificate = x509.load_der_x509_certificate(der)
    public_key = load_public_key(public_key_der(certificate.public_key()))
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        oids: list[str] = []
    else:
        oids = [oid.dotted_string for oid in usage]
    return SignerCertificate(der, public_key, types_allowed_by(oids), STRICT_PARSER)


def _read_leniently(der: bytes) -> SignerCertificate:
    certificate = lenient_x509.Certificate.load(der)
    spki = certificate["tbs_certificate"]["subject_public_key_info"].dump()
    usage = certificate.extended_key_usage_value
    oids = [oid.dotted for oid in usage] if usage is not None else []
    return SignerCertificate(der, load_public_key(spki), types_allowed_by(oids), LENIENT_PARSER)


def certificates_in(data: bytes) -> list[SignerCertificate]:
    """The certificates in a PEM file (one or more blocks), a DER file or base64 DER text."""
    blocks = PEM_BLOCK.findall(data)
    if blocks:
        return [load_certificate(_base64(block)) for block in blocks]
    if data[:1] == b"\x30":  # a DER SEQUENCE
        return [load_certificate(data)]
    return [load_certificate(_base64(data))]


def _base64(text: bytes) -> bytes:
    try:
        return base64.b64decode(b"".join(text.split()), validate=True)
    except ValueError:
        raise CertificateError("neither PEM, DER nor base64 DER") from None


def load_certificates(path: Path) -> list[SignerCertificate]:
    """The certificates in a file, or in every certificate file under a directory."""
    if path.is_dir():
        files = sorted(
            item
            for item in path.rglob("*")
            if item.is_file() and item.suffix.lower() in CERTIFICATE_SUFFIXES
        )
        return [certificate for file in files for certificate in certificates_in(file.read_bytes())]
    return certificates_in(path.read_bytes())


def trust_list(certificates: Iterable[SignerCertificate]) -> TrustStore:
    """A trust store of DCC signers, each under its own key id."""
    return TrustStore.of(certificate.trusted_key() for certificate in certificates)
