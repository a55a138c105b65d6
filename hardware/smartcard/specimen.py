"""Specimen documents and a throwaway PKI: the virtual passports of tests and demos.

SPECIMEN_TD3 is ICAO's own specimen passport MRZ (Doc 9303 Part 4, Utopia, ERIKSSON ANNA
MARIA); make_test_pki() makes a CSCA and a Document Signer certificate (never trusted by
anything but the tests); issue_passport() builds a VirtualPassport with DG1 from an MRZ,
optionally a DG2 with a made-up face image, and an EF.SOD signed by the test DS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from hardware.smartcard.lds import build_dg1, build_dg2
from hardware.smartcard.sod import build_sod
from hardware.smartcard.virtual_card import VirtualPassport

SPECIMEN_TD3 = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"
)
SPECIMEN_TD1 = (
    "I<UTOD23145890<7349<<<<<<<<<<<\n3407127M9507122UTO<<<<<<<<<<<2\nSTEVENSON<<PETER<JOHN<<<<<<<<<"
)
# Not a real picture: a JPEG start and end marker around filler, large enough to take
# several READ BINARY chunks.
SPECIMEN_FACE = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 12 + b"\xff\xd9"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class TestPki:
    """A CSCA and one Document Signer it issued."""

    __test__ = False  # not a pytest test class, despite the name

    csca_key: PrivateKey = field(repr=False)
    csca: x509.Certificate
    ds_key: PrivateKey = field(repr=False)
    ds: x509.Certificate

    @property
    def csca_pem(self) -> bytes:
        """The CSCA certificate as PEM, as a CSCA list file holds it."""
        return self.csca.public_bytes(serialization.Encoding.PEM)


def _new_key(algorithm: str) -> PrivateKey:
    if algorithm == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError("algorithm is 'ec' or 'rsa'")


def _name(common_name: str, country: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Digital Sentinel test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_test_pki(
    algorithm: str = "ec", *, country: str = "UT", now: datetime | None = None
) -> TestPki:
    """A self-signed CSCA (10 years) and a DS certificate it signed (1 year), around now."""
    now = now or datetime.now(UTC)
    csca_key, ds_key = _new_key(algorithm), _new_key(algorithm)
    csca_name = _name("CSCA test", country)
    csca = (
        x509.CertificateBuilder()
        .subject_name(csca_name)
        .issuer_name(csca_name)
        .public_key(csca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(csca_key, hashes.SHA256())
    )
    ds = (
        x509.CertificateBuilder()
        .subject_name(_name("Document Signer test", country))
        .issuer_name(csca_name)
        .public_key(ds_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(csca_key, hashes.SHA256())
    )
    return TestPki(csca_key, csca, ds_key, ds)


def issue_passport(
    mrz: str = SPECIMEN_TD3,
    *,
    pki: TestPki | None = None,
    dg2: bool | bytes = False,
    hash_algorithm: str = "sha256",
    sod_groups: dict[int, bytes] | None = None,
    **card_options: object,
) -> VirtualPassport:
    """A VirtualPassport for an MRZ; with a PKI, an EF.SOD signing its data groups.

    dg2=True adds a DG2 with SPECIMEN_FACE (bytes: that DG2 as it is). sod_groups replaces
    the data groups the SOD signs (to make one that does not match the card's files).
    """
    dg2_bytes = build_dg2(SPECIMEN_FACE) if dg2 is True else (dg2 or None)
    sod = None
    if pki is not None:
        groups = {1: build_dg1(mrz)}
        if dg2_bytes is not None:
            groups[2] = dg2_bytes
        sod = build_sod(sod_groups or groups, pki.ds_key, pki.ds, hash_algorithm=hash_algorithm)
    return VirtualPassport(mrz, dg2=dg2_bytes, sod=sod, **card_options)  # type: ignore[arg-type]
