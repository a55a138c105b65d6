"""Specimen EU DCCs: self-signed signer certificates and HC1 texts, for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from shared.dcc.certificates import SignerCertificate, load_certificate
from shared.dcc.hcert import EU_DCC_V1, HCERT_CLAIM, PREFIX
from shared.envelope import CWT_EXP, CWT_IAT, CWT_ISS, seal
from shared.keys import ES256, PS256, key_id, raw_ecdsa_signature

SPECIMEN_COUNTRY = "XX"  # a user-assigned ISO 3166 code: no real issuer
# Where the specimen's vaccination or test took place: a code of the EU country value set,
# which holds no user-assigned code.
EVENT_COUNTRY = "CN"
EPOCH = datetime(2021, 6, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SpecimenSigner:
    """A document signer: a private key and its self-signed certificate (DER)."""

    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    certificate_der: bytes

    @classmethod
    def generate(
        cls,
        alg: int = ES256,
        *,
        extended_key_usage: Sequence[str] = (),
        valid_from: datetime = EPOCH - timedelta(days=30),
        valid_until: datetime = EPOCH + timedelta(days=730),
        curve: ec.EllipticCurve | None = None,
    ) -> SpecimenSigner:
        """A new signer: ES256 on P-256 (or `curve`) or PS256 on RSA-2048; EKU OIDs if given."""
        private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        if alg == ES256:
            private_key = ec.generate_private_key(curve or ec.SECP256R1())
        elif alg == PS256:
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(f"a DCC signer signs with ES256 or PS256, not {alg}")
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, SPECIMEN_COUNTRY),
                x509.NameAttribute(NameOID.COMMON_NAME, "Sentinel specimen DSC"),
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid_from)
            .not_valid_after(valid_until)
        )
        if extended_key_usage:
            usages = [x509.ObjectIdentifier(oid) for oid in extended_key_usage]
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        certificate = builder.sign(private_key, hashes.SHA256())
        return cls(private_key, certificate.public_bytes(serialization.Encoding.DER))

    @property
    def alg(self) -> int:
        return ES256 if isinstance(self.private_key, ec.EllipticCurvePrivateKey) else PS256

    @property
    def kid(self) -> bytes:
        return key_id(self.certificate_der)

    @property
    def certificate(self) -> SignerCertificate:
        return load_certificate(self.certificate_der)

    @property
    def pem(self) -> bytes:
        certificate = x509.load_der_x509_certificate(self.certificate_der)
        return certificate.public_bytes(serialization.Encoding.PEM)

    def sign(self, message: bytes) -> bytes:
        """A COSE signature: r||s for ECDSA, RSASSA-PSS with a 32-byte salt for RSA."""
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            size = (self.private_key.curve.key_size + 7) // 8
            der = self.private_key.sign(message, ec.ECDSA(hashes.SHA256()))
            return raw_ecdsa_signature(der, size)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return self.private_key.sign(message, pss, hashes.SHA256())


def specimen_payload(
    kind: str = "v", *, uvci: str = "URN:UVCI:01:XX:SENTINEL/SPECIMEN0001#K"
) -> dict[str, Any]:
    """A DCC (schema 1.3.0) of a fictional holder with one entry of this type ('v', 't', 'r')."""
    common = {"tg": "840539006", "co": EVENT_COUNTRY, "is": "Sentinel specimen", "ci": uvci}
    entries: dict[str, dict[str, Any]] = {
        "v": {
            "vp": "1119349007",
            "mp": "EU/1/20/1528",
            "ma": "ORG-100030215",
            "dn": 2,
            "sd": 2,
            "dt": "2021-05-20",
        },
        "t": {"tt": "LP6464-4", "nm": "PCR", "sc": "2021-05-31T08:00:00Z", "tr": "260415000"},
        "r": {"fr": "2021-04-01", "df": "2021-04-12", "du": "2021-10-01"},
    }
    return {
        "ver": "1.3.0",
        "nam": {"fn": "Specimen", "fnt": "SPECIMEN", "gn": "Sam", "gnt": "SAM"},
        "dob": "1970-01-01",
        kind: [{**entries[kind], **common}],
    }


def issue_dcc(
    payload: dict[str, Any],
    signer: SpecimenSigner,
    *,
    issued_at: datetime = EPOCH,
    lifetime: timedelta = timedelta(days=365),
) -> str:
    """The HC1: text of a DCC signed by the signer."""
    claims = {
        CWT_ISS: SPECIMEN_COUNTRY,
        CWT_IAT: int(issued_at.timestamp()),
        CWT_EXP: int((issued_at + lifetime).timestamp()),
        HCERT_CLAIM: {EU_DCC_V1: payload},
    }
    return seal(PREFIX, claims, signer)
